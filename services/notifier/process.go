package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// action is the settlement of an event's message after processing.
type action int

const (
	// actionAck: the event is done with: delivered, or nothing to deliver.
	actionAck action = iota
	// actionRetry: JetStream redelivers the event after a delay.
	actionRetry
	// actionGiveUp: the event is never delivered; JetStream drops it.
	actionGiveUp
)

// outcome is the result of processing one event, settled in [settle].
type outcome struct {
	action action
	// delay is the wait before a retry.
	delay time.Duration
	// reason explains why the notifier gave up, in the JetStream advisory.
	reason string
}

// process decides what to do with one event and delivers it if its task
// has a webhook. It does not ack; settle does.
func (n *Notifier) process(ctx context.Context, msg jetstream.Msg) outcome {
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
	log := n.log.With(logging.Task(ev.Tenant, ev.TaskID, ev.TaskType)...).With(
		zap.String(logging.KeyEvent, ev.ID), zap.String(logging.KeyKind, string(ev.Kind)))

	task, err := n.readTask(ctx, &ev)
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
	if task.Submission.Webhook == nil || task.Submission.Webhook.URL == "" {
		log.Debug("skip event of a task without webhook")
		return outcome{action: actionAck}
	}

	ep := Endpoint{URL: task.Submission.Webhook.URL}
	attempt := int(md.NumDelivered)
	log = log.With(zap.String(logging.KeyEndpoint, ep.Origin()), zap.Int(logging.KeyAttempt, attempt))
	return n.deliver(ctx, log, task, &ev, ep, attempt)
}

// deliver makes one attempt, records it on the task and returns the
// outcome for the event.
func (n *Notifier) deliver(ctx context.Context, log *zap.Logger, task *events.Task, ev *events.Event, ep Endpoint, attempt int) outcome {
	res := n.sender.send(ctx, ev, ep)
	if err := n.record(ctx, task, ev, ep, attempt, res); err != nil {
		log.Warn("record delivery attempt", zap.Error(err))
	}

	status := zap.Int("status_code", res.StatusCode)
	switch classify(res) {
	case verdictDelivered:
		log.Debug("event delivered", status, zap.Duration("duration", res.Duration))
		return outcome{action: actionAck}

	case verdictRetry:
		delay, ok := n.retry.delay(attempt, res.RetryAfter)
		if ok {
			log.Info("delivery failed; retrying", status, zap.Duration("delay", delay), zap.String(logging.KeyError, describe(res)))
			return outcome{action: actionRetry, delay: delay}
		}
		reason := fmt.Sprintf("gave up after %d attempts: %s", attempt, describe(res))
		log.Warn("delivery failed; giving up after the last retry", status, zap.String(logging.KeyError, describe(res)))
		return outcome{action: actionGiveUp, reason: reason}

	default:
		log.Warn("delivery failed; giving up, a retry would not help", status, zap.String(logging.KeyError, describe(res)))
		return outcome{action: actionGiveUp, reason: describe(res)}
	}
}

// readTask reads the task of ev, whose submission holds the webhook.
func (n *Notifier) readTask(ctx context.Context, ev *events.Event) (*events.Task, error) {
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	return n.bus.ReadTask(ctx, ev.Tenant, ev.TaskID)
}

// skippedByFold reports whether the fold ignored the event with id, as an
// illegal transition or invalid data, so it is not part of the task's
// history.
func skippedByFold(task *events.Task, id string) bool {
	for _, s := range task.Skipped {
		if s.ID == id {
			return true
		}
	}
	return false
}

// settle acks, naks or terminates the message of an event according to
// its outcome. It is the only place that does.
func (n *Notifier) settle(msg jetstream.Msg, out outcome) {
	var err error
	switch out.action {
	case actionAck:
		err = msg.Ack()
	case actionRetry:
		err = msg.NakWithDelay(out.delay)
	case actionGiveUp:
		err = msg.TermWithReason(out.reason)
	}
	if err != nil {
		// The message comes back after AckWait and is processed again.
		n.log.Warn("settle event message", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}
