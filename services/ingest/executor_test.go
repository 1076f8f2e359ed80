package ingest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// startExecutor runs the tasks of one task type the way an executor does,
// until the test ends: for each submitted event it appends started and
// then succeeded, with the task's input as its result, each with a
// compare-and-set on the task's last event. A task that is not queued is
// left alone.
func startExecutor(tb testing.TB, b *bundle, taskType string) {
	tb.Helper()
	ctx := context.Background()
	cons, err := b.bus.JetStream().CreateConsumer(ctx, b.bus.Names().TasksStream(), jetstream.ConsumerConfig{
		FilterSubject: b.bus.Names().KindFilter(events.KindSubmitted, taskType),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
	})
	require.NoError(tb, err)

	errs := make(chan error, 1)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if err := runTask(b, msg); err != nil {
			select {
			case errs <- err:
			default:
			}
			_ = msg.Nak()
			return
		}
		_ = msg.Ack()
	}, jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {
		// Missed heartbeats and the like: the consumer recovers, and a
		// task that never ends fails its test anyway.
	}))
	require.NoError(tb, err)
	tb.Cleanup(func() {
		cc.Stop()
		select {
		case err := <-errs:
			tb.Errorf("test executor: %v", err)
		default:
		}
	})
}

// runTask starts and finishes the task of a submitted event.
func runTask(b *bundle, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), 0, time.Time{})
	if err != nil {
		return err
	}
	task, err := b.bus.ReadTask(ctx, ev.Tenant, ev.TaskID)
	if err != nil {
		return err
	}
	if task.Status != events.StatusQueued {
		return nil
	}

	attempt := task.Attempt + 1
	steps := []struct {
		kind events.Kind
		data any
	}{
		{events.KindStarted, events.Started{Attempt: attempt, Executor: "test"}},
		{events.KindSucceeded, events.Succeeded{Result: task.Submission.Input}},
	}
	for _, step := range steps {
		next, err := events.NewEvent(step.kind, task.Tenant, task.ID, task.Type, "/test/executor", step.data)
		if err != nil {
			return err
		}
		next.Attempt = attempt
		seq, err := b.bus.Append(ctx, &next, bus.AppendOptions{ExpectSeq: task.LastSeq, TTL: task.TTLLeft(time.Now())})
		if errors.Is(err, bus.ErrConflict) {
			// Cancelled or paused meanwhile.
			return nil
		}
		if err != nil {
			return err
		}
		next.Seq = seq
		task.Fold(&next)
	}
	return nil
}

// appendEventFor is appendEvent for a task of any tenant.
func (b *bundle) appendEventFor(t testing.TB, tenant, taskID string, kind events.Kind, attempt int, data any) uint64 {
	t.Helper()
	ctx := context.Background()
	task, err := b.bus.ReadTask(ctx, tenant, taskID)
	require.NoError(t, err)
	ev, err := events.NewEvent(kind, task.Tenant, task.ID, task.Type, "/test/executor", data)
	require.NoError(t, err)
	ev.Attempt = attempt
	seq, err := b.bus.Append(ctx, &ev, bus.AppendOptions{ExpectSeq: task.LastSeq, TTL: task.TTLLeft(time.Now())})
	require.NoError(t, err)
	return seq
}
