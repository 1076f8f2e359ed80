package notifier

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/subscription"
)

// orderDelay is the wait before an event is planned again because an
// earlier notified event of its task is still being planned.
const orderDelay = 200 * time.Millisecond

// dispatchEvent plans the deliveries of one notified event: it stores one
// job per endpoint in the deliveries stream. It does not settle the
// message; settle does.
func (n *Notifier) dispatchEvent(msg jetstream.Msg) outcome {
	ctx := context.Background()
	md, err := msg.Metadata()
	if err != nil {
		n.log.Error("drop message without JetStream metadata", zap.String("subject", msg.Subject()), zap.Error(err))
		return outcome{action: actionGiveUp, reason: "no JetStream metadata"}
	}
	ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
	if err != nil {
		n.log.Warn("drop invalid event", zap.Uint64(logging.KeySeq, md.Sequence.Stream), zap.Error(err))
		return outcome{action: actionGiveUp, reason: "invalid event"}
	}
	log := eventLog(n.log, &ev)

	subs := n.cache.Match(&ev)
	if len(subs) == 0 && n.withoutWebhook(ctx, &ev, log) {
		log.Debug("skip event without webhook or matching subscription")
		return outcome{action: actionAck}
	}

	task, evs, err := readTask(ctx, n.bus, ev.Tenant, ev.TaskID, md.Sequence.Stream)
	if errors.Is(err, bus.ErrTaskNotFound) {
		log.Debug("skip event of an expired task")
		return outcome{action: actionAck}
	}
	if err != nil {
		log.Warn("read task; retrying", zap.Duration("delay", taskRetryDelay), zap.Error(err))
		return outcome{action: actionRetry, delay: taskRetryDelay}
	}
	if skippedByFold(task, ev.ID) {
		log.Warn("skip event that the task's fold ignored as illegal")
		return outcome{action: actionAck}
	}
	// Workers record each attempt without folding the task again, so the
	// records are checked here.
	if err := task.Check(events.KindDelivered); err != nil {
		log.Warn("skip event of a task that takes no delivery records", zap.Error(err))
		return outcome{action: actionAck}
	}

	// The jobs of an earlier event of the task must be stored first, so
	// that each endpoint gets the task's events in order. Another instance
	// may still be planning it.
	waiting, err := n.earlierEventPending(ctx, evs, &ev)
	if err != nil {
		log.Warn("read consumer state; retrying", zap.Duration("delay", taskRetryDelay), zap.Error(err))
		return outcome{action: actionRetry, delay: taskRetryDelay}
	}
	if waiting {
		log.Debug("wait for an earlier event of the task to be planned", zap.Duration("delay", orderDelay))
		return outcome{action: actionRetry, delay: orderDelay}
	}

	jobs := plan(task, &ev, subs)
	if len(jobs) == 0 {
		log.Debug("skip event without webhook or matching subscription")
		return outcome{action: actionAck}
	}
	pubCtx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	if err := publishJobs(pubCtx, n.bus, jobs, ""); err != nil {
		log.Warn("store delivery jobs; retrying", zap.Duration("delay", taskRetryDelay), zap.Error(err))
		return outcome{action: actionRetry, delay: taskRetryDelay}
	}
	log.Debug("deliveries planned", zap.Int("endpoints", len(jobs)))
	return outcome{action: actionAck}
}

// withoutWebhook reports whether the task of ev was submitted without a
// webhook, from its submitted event alone. Most tasks have none, and
// then an event that no subscription matches goes nowhere, so the
// whole task need not be read. It reports false when it cannot tell,
// such as for a task that was cancelled before its run_at, and the
// caller reads the task.
func (n *Notifier) withoutWebhook(ctx context.Context, ev *events.Event, log *zap.Logger) bool {
	submitted, found, err := n.bus.ReadSubmitted(ctx, ev.Tenant, ev.TaskID, ev.TaskType)
	if err != nil {
		log.Debug("reading the submitted event failed; reading the whole task", zap.Error(err))
		return false
	}
	if !found {
		return false
	}
	var sub events.Submission
	if err := submitted.DecodeData(&sub); err != nil {
		log.Debug("decoding the submitted event failed; reading the whole task", zap.Error(err))
		return false
	}
	return sub.Webhook == nil || sub.Webhook.URL == ""
}

// plan returns the jobs that deliver ev: one to the webhook given at
// submit, if any, and one per subscription in subs.
func plan(task *events.Task, ev *events.Event, subs []subscription.Subscription) []job {
	var jobs []job
	if wh := task.Submission.Webhook; wh != nil && wh.URL != "" {
		jobs = append(jobs, newJob(task, ev, wh.URL, ""))
	}
	for _, sub := range subs {
		jobs = append(jobs, newJob(task, ev, "", sub.ID))
	}
	return jobs
}

// earlierEventPending reports whether the task has a notified event before
// ev that the dispatch consumer may not have acked yet, so its jobs may be
// missing. It requests the consumer's ack floor from the server only when
// such an event exists, which is rare: a task has one terminal event and
// few input_required events.
//
// NOTE: the ack floor is the last event before the first unacked one, so
// an unrelated event that waits for a retry of its task read holds back
// the later events of tasks with several notified events until then.
func (n *Notifier) earlierEventPending(ctx context.Context, evs []events.Event, ev *events.Event) (bool, error) {
	var latest uint64
	for i := range evs {
		e := &evs[i]
		if e.Seq < ev.Seq && slices.Contains(NotifiedKinds, e.Kind) {
			latest = e.Seq
		}
	}
	if latest == 0 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	info, err := n.dispatch.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.AckFloor.Stream < latest, nil
}
