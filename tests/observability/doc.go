// Package observability holds the end-to-end tests of Handoff's metrics,
// traces and logs. Each test runs ingest, an executor and a notifier in
// the test process against an embedded NATS server, with a webhook
// receiver on loopback, and checks what the three services report
// together: the metrics that each serves after a run, one trace from the
// caller's traceparent to the webhook request, and logs that never show
// a task's input, its result or a secret.
//
// The package has no code outside its tests.
package observability
