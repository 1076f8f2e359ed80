package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
)

// PurgeSchedules removes the events that hold the task's message
// schedules, its scheduled and deadline_scheduled events, so that neither
// fires any more. Writers call it once a task has ended. A schedule that
// fires anyway, because the purge failed or raced the schedule, publishes
// an event that the fold ignores after the terminal one.
//
// NOTE: while a task is still scheduled, its scheduled event is its only
// submission, and purging it removes the task. A task cancelled while
// scheduled first gets a submitted copy of that event in the same batch
// as its cancelled event; see [Bus.AppendBatch].
func (b *Bus) PurgeSchedules(ctx context.Context, tenant, taskID, taskType string) error {
	stream, err := b.tasksStream(ctx)
	if err != nil {
		return err
	}
	for _, kind := range []events.Kind{events.KindScheduled, events.KindDeadlineScheduled} {
		subject := events.Subject{Namespace: b.names.Namespace, Tenant: tenant, TaskID: taskID, Kind: kind, TaskType: taskType}.String()
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return fmt.Errorf("purge schedule %s: %w", subject, err)
		}
	}
	return nil
}

// tasksStream returns a handle of the tasks stream, looked up once.
func (b *Bus) tasksStream(ctx context.Context) (jetstream.Stream, error) {
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	if b.stream != nil {
		return b.stream, nil
	}
	s, err := b.js.Stream(ctx, b.names.TasksStream())
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", b.names.TasksStream(), err)
	}
	b.stream = s
	return s, nil
}
