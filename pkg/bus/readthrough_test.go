package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestReadTaskThroughStoredEvent(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	seq, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "t1", submission()), bus.AppendOptions{})
	require.NoError(t, err)

	task, err := b.ReadTaskThrough(ctx, "acme", "t1", seq)
	require.NoError(t, err)
	require.Equal(t, seq, task.LastSeq)
	require.Equal(t, events.StatusQueued, task.Status)
}

func TestReadTaskThroughWaitsForEvent(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	seq, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "t1", submission()), bus.AppendOptions{})
	require.NoError(t, err)

	// The read asks for the sequence of the started event before it is
	// stored, as a reader does whose replica has not applied it yet.
	type result struct {
		task *events.Task
		err  error
	}
	read := make(chan result, 1)
	go func() {
		task, err := b.ReadTaskThrough(ctx, "acme", "t1", seq+1)
		read <- result{task, err}
	}()
	started, err := b.Append(ctx, newEvent(t, events.KindStarted, "t1", events.Started{Attempt: 1, Executor: "x"}), bus.AppendOptions{ExpectSeq: seq})
	require.NoError(t, err)
	require.Equal(t, seq+1, started, "no other message was stored in between")

	r := <-read
	require.NoError(t, r.err)
	require.Equal(t, started, r.task.LastSeq)
	require.Equal(t, events.StatusRunning, r.task.Status)
}

func TestReadTaskThroughMissingEvent(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	seq, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "t1", submission()), bus.AppendOptions{})
	require.NoError(t, err)

	began := time.Now()
	_, err = b.ReadTaskThrough(ctx, "acme", "t1", seq+100)
	require.ErrorIs(t, err, bus.ErrStaleRead)
	require.NotErrorIs(t, err, bus.ErrTaskNotFound)
	require.Less(t, time.Since(began), 5*time.Second, "the retries are bounded")
}

func TestReadTaskThroughMissingTask(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	_, err := b.ReadTaskThrough(ctx, "acme", "missing", 7)
	require.ErrorIs(t, err, bus.ErrStaleRead, "a task that a caller knows exists is not reported missing")

	_, err = b.ReadTaskThrough(ctx, "acme", "missing", 0)
	require.ErrorIs(t, err, bus.ErrTaskNotFound, "without a known sequence it reads once")
}

func TestReadEventsThroughCancelled(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()

	_, err := b.ReadEventsThrough(ctx, "acme", "missing", 0, 7)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
