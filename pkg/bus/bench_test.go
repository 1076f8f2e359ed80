package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

// The benchmarks that append or read run against natstest's embedded
// server with file storage, so they measure the round trip to a real
// store on loopback, client and server together.

// BenchmarkAppendCompareAndSet appends one event per iteration to the
// same task, each expecting the sequence of the one before: the write
// path of every transition after the submission.
func BenchmarkAppendCompareAndSet(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ctx := context.Background()
	seq, err := bs.Append(ctx, newEvent(b, events.KindSubmitted, "cas", submission()), bus.AppendOptions{TTL: time.Hour})
	require.NoError(b, err)
	ev := newEvent(b, events.KindProgress, "cas", events.Progress{Percent: 50, Message: "halfway"})

	b.ReportAllocs()
	for b.Loop() {
		ev.ID = events.NewID()
		seq, err = bs.Append(ctx, ev, bus.AppendOptions{ExpectSeq: seq, TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendSubmission appends the submitted event of a new task per
// iteration, expecting no earlier event: the write of every submission.
func BenchmarkAppendSubmission(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ctx := context.Background()
	ev := newEvent(b, events.KindSubmitted, "first", submission())

	b.ReportAllocs()
	for b.Loop() {
		ev.ID = events.NewID()
		ev.TaskID = ev.ID
		if _, err := bs.Append(ctx, ev, bus.AppendOptions{TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendCompareAndSetParallel is BenchmarkAppendCompareAndSet
// with 32 writers per CPU, each on a task of its own, as the executor
// writes for many tasks at once.
func BenchmarkAppendCompareAndSetParallel(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ctx := context.Background()
	var writers atomic.Int64

	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		taskID := fmt.Sprintf("writer-%d", writers.Add(1))
		seq, err := bs.Append(ctx, newEvent(b, events.KindSubmitted, taskID, submission()), bus.AppendOptions{TTL: time.Hour})
		if err != nil {
			b.Error(err)
			return
		}
		ev := newEvent(b, events.KindProgress, taskID, events.Progress{Percent: 50})
		for pb.Next() {
			ev.ID = events.NewID()
			if seq, err = bs.Append(ctx, ev, bus.AppendOptions{ExpectSeq: seq, TTL: time.Hour}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReadTask reads and folds a finished task of three events: the
// read behind GET /v1/tasks/{id}.
func BenchmarkReadTask(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ctx := context.Background()
	seq, err := bs.Append(ctx, newEvent(b, events.KindSubmitted, "read", submission()), bus.AppendOptions{})
	require.NoError(b, err)
	seq, err = bs.Append(ctx, newEvent(b, events.KindStarted, "read", events.Started{Attempt: 1, Executor: "x"}), bus.AppendOptions{ExpectSeq: seq})
	require.NoError(b, err)
	_, err = bs.Append(ctx, newEvent(b, events.KindSucceeded, "read", events.Succeeded{Result: json.RawMessage(`{"files":[]}`)}), bus.AppendOptions{ExpectSeq: seq})
	require.NoError(b, err)

	b.ReportAllocs()
	for b.Loop() {
		task, err := bs.ReadTask(ctx, "acme", "read")
		if err != nil {
			b.Fatal(err)
		}
		if task.Status != events.StatusSucceeded {
			b.Fatalf("task is %s", task.Status)
		}
	}
}

// BenchmarkMessage builds the message of a compare-and-set append: the
// CloudEvents headers and Handoff's JetStream headers.
func BenchmarkMessage(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ev := newEvent(b, events.KindSucceeded, "msg", events.Succeeded{Result: json.RawMessage(`{"files":[]}`)})
	opts := bus.AppendOptions{ExpectSeq: 41, TTL: time.Hour}

	b.ReportAllocs()
	for b.Loop() {
		bs.Message(ev, opts)
	}
}

// BenchmarkDecodeStructured decodes a structured-mode CloudEvent, as an
// agent may publish its submissions.
func BenchmarkDecodeStructured(b *testing.B) {
	body := []byte(`{"specversion":"1.0","id":"agent-42","source":"urn:agent:planner","type":"dev.handoff.task.submitted",` +
		`"subject":"01J0TASK","time":"2026-12-04T10:00:00Z","datacontenttype":"application/json",` +
		`"tenant":"acme","tasktype":"files.manifest","data":{"input":{"dir":"."}}}`)
	h := nats.Header{"Content-Type": []string{"application/cloudevents+json"}}

	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Decode(subjectSubmitted, h, body, 1, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadTaskRetained is BenchmarkReadTask on a random one of
// 20,000 finished tasks stored before the timer starts, so that the read
// meets a stream of realistic size: 60,000 events in several blocks.
func BenchmarkReadTaskRetained(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ctx := context.Background()
	const tasks = 20_000
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = events.NewID()
		for _, ev := range []*events.Event{
			newEvent(b, events.KindSubmitted, ids[i], submission()),
			newEvent(b, events.KindStarted, ids[i], events.Started{Attempt: 1, Executor: "x"}),
			newEvent(b, events.KindSucceeded, ids[i], events.Succeeded{Result: json.RawMessage(`{"files":[]}`)}),
		} {
			// Raw publishes without the compare-and-set fill the stream
			// faster than appends.
			msg := bs.Message(ev, bus.AppendOptions{TTL: time.Hour})
			delete(msg.Header, bus.HeaderExpectedSubjSeq)
			delete(msg.Header, bus.HeaderExpectedSubjSeqSubj)
			if _, err := bs.JetStream().PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-bs.JetStream().PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("the stored tasks were not acknowledged within a minute")
	}

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % tasks
		task, err := bs.ReadTask(ctx, "acme", ids[i])
		if err != nil {
			b.Fatal(err)
		}
		if task.Status != events.StatusSucceeded {
			b.Fatalf("task is %s", task.Status)
		}
	}
}
