package notifier

import (
	"context"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// record appends the attempt to the task as a delivered or delivery_failed
// event. Delivery records skip the compare-and-set, so they never conflict
// with the task's other writers, and they carry the task's remaining TTL so
// that they expire with its other events. When the dispatcher planned the
// job, it checked with [events.Task.Check] that the task takes delivery
// records. They stay legal for as long as the task exists, and the worker
// confirmed that by reading the event.
func (n *Notifier) record(ctx context.Context, j *job, ev *events.Event, ep Endpoint, attempt int, res attemptResult) error {
	kind := events.KindDeliveryFailed
	if classify(res) == verdictDelivered {
		kind = events.KindDelivered
	}

	data := events.Delivery{
		EventID:        ev.ID,
		EventKind:      ev.Kind,
		Endpoint:       ep.Redacted(),
		SubscriptionID: ep.SubscriptionID,
		Attempt:        attempt,
		StatusCode:     res.StatusCode,
		Error:          describe(res),
		Duration:       events.Duration(res.Duration),
	}
	rec, err := events.NewEvent(kind, ev.Tenant, ev.TaskID, ev.TaskType, n.source, data)
	if err != nil {
		return err
	}
	// The record's parent is the attempt's span in ctx, or the event's
	// own trace context when no span was recorded.
	rec.TraceParent, rec.TraceState = ev.TraceParent, ev.TraceState
	tracing.InjectEvent(ctx, &rec)

	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	if _, err := n.bus.Append(ctx, &rec, bus.AppendOptions{TTL: j.ttlLeft(time.Now())}); err != nil {
		return err
	}
	return nil
}
