// Submits a task to Handoff straight to NATS, as an agent written in
// JavaScript would without any Handoff code: the official NATS client
// publishes a structured-mode CloudEvent made with the CloudEvents SDK on
// the task's submitted subject, with the compare-and-set headers that
// schemas/asyncapi.yaml documents. An ordered consumer on the task's
// subjects, started before the publish, follows the task to its end.
//
// Environment: HANDOFF_NATS_URL (default nats://127.0.0.1:4222),
// HANDOFF_NAMESPACE (default handoff), HANDOFF_TIMEOUT_MS (default 60000).
// It prints "task <id> succeeded" and exits 0, or prints what did not
// match and exits 1.
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";

import { connect, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { CloudEvent } from "cloudevents";

const url = process.env.HANDOFF_NATS_URL ?? "nats://127.0.0.1:4222";
const namespace = process.env.HANDOFF_NAMESPACE ?? "handoff";
const timeoutMs = Number(process.env.HANDOFF_TIMEOUT_MS ?? 60000);

const tenant = "default";
const taskType = "echo";
const taskId = "js-" + randomBytes(10).toString("hex");
const input = { greeting: "hello from JavaScript", n: 42, nested: { list: [1, "two", true] } };
const terminalKinds = new Set(["succeeded", "failed", "cancelled", "rejected", "expired"]);

function fail(message) {
  console.error(`interop: ${message}`);
  process.exit(1);
}

// check fails the run with message unless ok.
function check(ok, message) {
  if (!ok) {
    fail(message);
  }
}

const timer = setTimeout(() => fail(`task ${taskId} did not end within ${timeoutMs} ms`), timeoutMs);

const nc = await connect({ servers: url, name: "handoff-js-interop" });
const js = jetstream(nc);
const taskFilter = `${namespace}.task.${tenant}.${taskId}.>`;

// The consumer exists before the publish, so it sees every event.
const consumer = await js.consumers.get(`${namespace.toUpperCase()}_TASKS`, { filter_subjects: [taskFilter] });
const messages = await consumer.consume();

const submission = new CloudEvent({
  specversion: "1.0",
  source: "/agents/js-interop",
  type: "dev.handoff.task.submitted",
  subject: taskId,
  datacontenttype: "application/json",
  tenant,
  tasktype: taskType,
  data: { input },
});
check(submission.validate(), "the CloudEvents SDK rejected the submission");

const subject = `${namespace}.task.${tenant}.${taskId}.submitted.${taskType}`;
const h = headers();
h.set("content-type", "application/cloudevents+json");
h.set("Nats-Msg-Id", submission.id);
h.set("Nats-Expected-Last-Subject-Sequence", "0");
h.set("Nats-Expected-Last-Subject-Sequence-Subject", taskFilter);
h.set("Nats-TTL", "3600");
const ack = await js.publish(subject, JSON.stringify(submission), { headers: h });
check(ack.stream === `${namespace.toUpperCase()}_TASKS`, `the submission was stored in stream ${ack.stream}`);
check(!ack.duplicate, "the first submission was taken for a duplicate");

// The compare-and-set with sequence 0 stores a task id once.
const again = new CloudEvent({ ...submission, id: undefined });
const h2 = headers();
for (const [name, values] of h) {
  h2.set(name, values[0]);
}
h2.set("Nats-Msg-Id", again.id);
let storedTwice = false;
try {
  await js.publish(subject, JSON.stringify(again), { headers: h2 });
  storedTwice = true;
} catch (err) {
  check(String(err.message).includes("wrong last sequence"), `the second submission failed with ${err.message}`);
}
check(!storedTwice, "a second submission of the same task id was stored");

// Follow the task: Handoff writes binary-mode CloudEvents.
const kinds = [];
let outcome;
for await (const m of messages) {
  const tokens = m.subject.split(".");
  const kind = tokens[4];
  kinds.push(kind);
  const attr = (name) => {
    const v = m.headers?.get(`ce-${name}`);
    return v ? decodeURIComponent(v) : undefined;
  };
  const data = m.data.length > 0 ? m.json() : undefined;
  if (kind === "submitted") {
    // The stored submission is the structured CloudEvent as published.
    check(m.headers?.get("content-type") === "application/cloudevents+json", `the stored submission has content-type ${m.headers?.get("content-type")}`);
    m.ack();
    continue;
  }
  const event = new CloudEvent({
    specversion: attr("specversion"),
    id: attr("id"),
    source: attr("source"),
    type: attr("type"),
    subject: attr("subject"),
    time: attr("time"),
    datacontenttype: attr("datacontenttype"),
    tenant: attr("tenant"),
    tasktype: attr("tasktype"),
    data,
  });
  check(event.validate(), `event ${m.seq} is not a valid CloudEvent`);
  check(event.type === `dev.handoff.task.${kind}`, `event ${m.seq} has type ${event.type} on a ${kind} subject`);
  check(event.subject === taskId, `event ${m.seq} has subject ${event.subject}`);
  check(event.tenant === tenant && event.tasktype === taskType, `event ${m.seq} names tenant ${event.tenant} and type ${event.tasktype}`);
  m.ack();
  if (terminalKinds.has(kind)) {
    outcome = event;
    break;
  }
}
clearTimeout(timer);
await messages.close();
await nc.drain();

check(outcome !== undefined, "the consumer ended before the task");
check(outcome.type === "dev.handoff.task.succeeded", `the task ended as ${outcome.type}: ${JSON.stringify(outcome.data)}; events: ${kinds.join(", ")}`);
check(isDeepStrictEqual(outcome.data?.result, input), `the result ${JSON.stringify(outcome.data?.result)} is not the input ${JSON.stringify(input)}`);
check(kinds[0] === "submitted" && kinds.includes("started"), `the events were ${kinds.join(", ")}`);
console.log(`task ${taskId} succeeded; events: ${kinds.join(", ")}`);
