package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// deliverJob makes one attempt of a delivery job, unless the endpoint is
// busy or an earlier job of the task and endpoint is pending, and records
// it on the task. It does not settle the message; settle does.
func (n *Notifier) deliverJob(msg jetstream.Msg) outcome {
	md, err := msg.Metadata()
	if err != nil {
		n.log.Error("drop message without JetStream metadata", zap.String("subject", msg.Subject()), zap.Error(err))
		return outcome{action: actionGiveUp, reason: "no JetStream metadata"}
	}
	j, err := decodeJob(msg.Data())
	if err != nil {
		n.log.Warn("drop invalid delivery job", zap.Uint64(logging.KeySeq, md.Sequence.Stream), zap.Error(err))
		return outcome{action: actionGiveUp, reason: "invalid job"}
	}
	log := n.log.With(logging.Task(j.Tenant, j.TaskID, j.TaskType)...).With(
		zap.String(logging.KeyEvent, j.EventID), zap.String(logging.KeyKind, string(j.EventKind)))
	if j.SubscriptionID != "" {
		log = log.With(zap.String("subscription", j.SubscriptionID))
	}

	// An endpoint at its limit of attempts in flight gets the job later,
	// so that an endpoint that hangs does not take every worker.
	slotKey := j.endpointKey()
	if j.SubscriptionID == "" {
		slotKey = Endpoint{URL: j.URL}.Origin()
	}
	token, wait, ok := n.slots.acquire(slotKey)
	if !ok {
		log.Debug("endpoint busy; delivering later", zap.Duration("delay", wait))
		return outcome{action: actionRetry, delay: wait}
	}
	defer n.slots.release(slotKey, token)

	ctx := context.Background()
	first, gone, err := n.firstInLine(ctx, msg.Subject(), &j, md.Sequence.Stream)
	if err != nil {
		log.Warn("read pending jobs; retrying", zap.Duration("delay", taskRetryDelay), zap.Error(err))
		return outcome{action: actionRetry, delay: taskRetryDelay}
	}
	if gone {
		// Another instance settled the job after a redelivery, or the
		// replica that served the read has not stored the job yet. A
		// settled job is not delivered again, so a retry costs nothing
		// in the first case and delivers the job in the second.
		delay := blockedDelay(md.NumDelivered)
		log.Debug("no pending job on the subject; checking again", zap.Duration("delay", delay))
		return outcome{action: actionRetry, delay: delay}
	}
	if !first {
		delay := blockedDelay(md.NumDelivered)
		log.Debug("wait for an earlier event of the task", zap.Duration("delay", delay))
		return outcome{action: actionRetry, delay: delay}
	}

	url, signer, out, ok := n.target(ctx, log, &j)
	if !ok {
		return out
	}

	// The event and every delivery record of it are at or after its
	// sequence, so the read can start there, which costs far less than
	// reading the task from its first event.
	evs, err := n.readFrom(ctx, &j)
	if err != nil {
		log.Warn("read task; retrying", zap.Duration("delay", taskRetryDelay), zap.Error(err))
		return outcome{action: actionRetry, delay: taskRetryDelay}
	}
	ev := findEvent(evs, j.EventID)
	if ev == nil {
		log.Debug("drop job whose event expired")
		return outcome{action: actionAck}
	}

	ep := j.endpoint(url)
	attempt := countRecords(evs, ev.ID, ep) - j.AttemptBase + 1
	log = log.With(zap.String(logging.KeyEndpoint, ep.Origin()), zap.Int(logging.KeyAttempt, attempt))
	return n.attempt(log, &j, ev, ep, signer, attempt)
}

// readFrom reads the events of the job's task from the job's event on. It
// returns no events once the task has expired. A read that misses the
// event of a task that has not expired comes from a replica that is
// behind, and fails with bus.ErrStaleRead.
func (n *Notifier) readFrom(ctx context.Context, j *job) ([]events.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	te, err := n.bus.ReadEventsThrough(ctx, j.Tenant, j.TaskID, j.EventSeq-1, j.EventSeq)
	if errors.Is(err, bus.ErrStaleRead) && j.expired(time.Now()) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return te.Events, nil
}

// target returns the URL and signer of the job's endpoint. For a
// subscription it reads the subscription, so a deleted or disabled one
// gets nothing. When ok is false, out settles the job.
func (n *Notifier) target(ctx context.Context, log *zap.Logger, j *job) (url string, signer *webhook.Signer, out outcome, ok bool) {
	if j.SubscriptionID == "" {
		return j.URL, n.signer, outcome{}, true
	}
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	t, err := n.store.Target(ctx, j.Tenant, j.SubscriptionID)
	if errors.Is(err, subscription.ErrNotFound) {
		log.Debug("drop job of a deleted subscription")
		return "", nil, outcome{action: actionAck}, false
	}
	if err != nil {
		log.Warn("read subscription; retrying", zap.Duration("delay", taskRetryDelay), zap.Error(err))
		return "", nil, outcome{action: actionRetry, delay: taskRetryDelay}, false
	}
	if t.Status != subscription.StatusActive {
		log.Debug("drop job of a disabled subscription")
		return "", nil, outcome{action: actionAck}, false
	}
	return t.URL, t.Signer(), outcome{}, true
}

// attempt sends the event, records the attempt on the task and returns the
// outcome for the job. The attempt's span is the parent of the request and
// of the record.
func (n *Notifier) attempt(log *zap.Logger, j *job, ev *events.Event, ep Endpoint, signer *webhook.Signer, attempt int) outcome {
	ctx, span := n.startDelivery(ev, ep, attempt)
	res := n.sender.send(ctx, ev, ep, signer)
	interrupted := n.work.Err() != nil && res.StatusCode == 0
	if interrupted {
		res.Err = errInterrupted
	}
	if err := n.record(trace.ContextWithSpan(context.Background(), span), j, ev, ep, attempt, res); err != nil {
		log.Warn("record delivery attempt", zap.Error(err))
	}

	var result string
	defer func() {
		n.metrics.observeDelivery(ev.Kind, result, res.Duration)
		endDelivery(span, res, result)
	}()

	status := zap.Int("status_code", res.StatusCode)
	if interrupted {
		result = outcomeInterrupted
		log.Info("delivery interrupted by shutdown; returning the job", status)
		return outcome{action: actionRetry}
	}
	switch classify(res) {
	case verdictDelivered:
		result = outcomeDelivered
		log.Debug("event delivered", status, zap.Duration("duration", res.Duration))
		return outcome{action: actionAck}

	case verdictRetry:
		delay, ok := n.retry.delay(attempt, res.RetryAfter)
		if ok {
			result = outcomeRetrying
			log.Info("delivery failed; retrying", status, zap.Duration("delay", delay), zap.String(logging.KeyError, describe(res)))
			return outcome{action: actionRetry, delay: delay}
		}
		result = outcomeExhausted
		reason := fmt.Sprintf("gave up after %d attempts: %s", attempt, describe(res))
		log.Warn("delivery failed; giving up after the last retry", status, zap.String(logging.KeyError, describe(res)))
		return outcome{action: actionGiveUp, reason: reason}

	default:
		result = outcomeFailed
		if res.StatusCode == http.StatusGone && j.SubscriptionID != "" {
			n.disable(log, j)
		}
		log.Warn("delivery failed; giving up, a retry would not help", status, zap.String(logging.KeyError, describe(res)))
		return outcome{action: actionGiveUp, reason: describe(res)}
	}
}

// disable disables the job's subscription after its endpoint responded
// 410 Gone, so that no more events are planned for it and its pending
// jobs are dropped.
func (n *Notifier) disable(log *zap.Logger, j *job) {
	ctx, cancel := context.WithTimeout(context.Background(), taskIOTimeout)
	defer cancel()
	_, err := n.store.Disable(ctx, j.Tenant, j.SubscriptionID, "the endpoint responded 410 Gone")
	if err != nil && !errors.Is(err, subscription.ErrNotFound) {
		log.Error("disable subscription after 410 Gone", zap.Error(err))
		return
	}
	log.Info("subscription disabled: the endpoint responded 410 Gone")
}

// findEvent returns the event with id, or nil.
func findEvent(evs []events.Event, id string) *events.Event {
	for i := range evs {
		if evs[i].ID == id {
			return &evs[i]
		}
	}
	return nil
}

// countRecords counts the delivery records of event id to ep among evs.
func countRecords(evs []events.Event, id string, ep Endpoint) int {
	n := 0
	for i := range evs {
		if !evs[i].Kind.Delivery() {
			continue
		}
		var d events.Delivery
		if evs[i].DecodeData(&d) != nil || d.EventID != id || d.SubscriptionID != ep.SubscriptionID {
			continue
		}
		if ep.SubscriptionID == "" && d.Endpoint != ep.Redacted() {
			continue
		}
		n++
	}
	return n
}
