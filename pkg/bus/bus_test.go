package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func newEvent(t testing.TB, kind events.Kind, taskID string, data any) *events.Event {
	t.Helper()
	ev, err := events.NewEvent(kind, "acme", taskID, "files.manifest", "/test", data)
	require.NoError(t, err)
	return &ev
}

func submission() events.Submission {
	return events.Submission{Input: json.RawMessage(`{"dir":"."}`)}
}

func TestConnectUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	_, err = bus.Connect(context.Background(), "nats://"+addr, "test")
	require.Error(t, err)
	require.Contains(t, err.Error(), "connect to NATS at nats://"+addr)
	require.Contains(t, err.Error(), "handoff dev")
}

func TestConnectChecksVersion(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := bus.Connect(context.Background(), srv.URL, "test")
	require.NoError(t, err)
	defer nc.Close()
	require.NotEmpty(t, nc.ConnectedServerVersion())
}

func TestNamesValidateNamespace(t *testing.T) {
	n, err := bus.NewNames("")
	require.NoError(t, err)
	require.Equal(t, "HANDOFF_TASKS", n.TasksStream())
	require.Equal(t, "handoff.task.>", n.TasksSubjects())
	require.Equal(t, "handoff.registry.type.files.manifest", n.TypeRegistration("files.manifest"))
	require.Equal(t, "handoff.api.submit", n.APISubject("submit"))
	require.Equal(t, "handoff.api.>", n.APISubjects())

	n, err = bus.NewNames("staging-2")
	require.NoError(t, err)
	require.Equal(t, "STAGING-2_REGISTRY", n.RegistryStream())

	_, err = bus.NewNames("Bad.NS")
	require.ErrorIs(t, err, events.ErrInvalidToken)
}

func TestProvisionIsIdempotentAndVerifies(t *testing.T) {
	srv := natstest.Start(t)
	b, err := bus.New(srv.Connect(t), "")
	require.NoError(t, err)
	ctx := context.Background()

	err = b.Verify(ctx)
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.Contains(t, err.Error(), "HANDOFF_TASKS does not exist")

	require.NoError(t, b.Provision(ctx, bus.StreamOptions{}))
	require.NoError(t, b.Provision(ctx, bus.StreamOptions{}))
	require.NoError(t, b.Verify(ctx))

	info, err := b.JetStream().Stream(ctx, "HANDOFF_TASKS")
	require.NoError(t, err)
	cfg := info.CachedInfo().Config
	require.True(t, cfg.AllowDirect)
	require.True(t, cfg.AllowMsgTTL)
	require.True(t, cfg.AllowMsgSchedules)
	require.Equal(t, bus.DuplicateWindow, cfg.Duplicates)
	require.Equal(t, bus.DefaultMaxAge, cfg.MaxAge)
}

func TestAppendCompareAndSet(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	sub := newEvent(t, events.KindSubmitted, "task-1", submission())
	seq1, err := b.Append(ctx, sub, bus.AppendOptions{})
	require.NoError(t, err)

	// The server checks the compare-and-set before its duplicate window, so
	// the same event again is a conflict, not a duplicate.
	_, err = b.Append(ctx, sub, bus.AppendOptions{})
	require.ErrorIs(t, err, bus.ErrConflict)

	// Another submission of the same task expecting no events loses.
	other := newEvent(t, events.KindSubmitted, "task-1", submission())
	_, err = b.Append(ctx, other, bus.AppendOptions{})
	require.ErrorIs(t, err, bus.ErrConflict)
	require.True(t, bus.IsConflict(err))

	started := newEvent(t, events.KindStarted, "task-1", events.Started{Attempt: 1, Executor: "x"})
	seq2, err := b.Append(ctx, started, bus.AppendOptions{ExpectSeq: seq1})
	require.NoError(t, err)
	require.Greater(t, seq2, seq1)

	// A writer that read before the started event loses.
	stale := newEvent(t, events.KindStarted, "task-1", events.Started{Attempt: 1, Executor: "y"})
	_, err = b.Append(ctx, stale, bus.AppendOptions{ExpectSeq: seq1})
	require.ErrorIs(t, err, bus.ErrConflict)

	// Events of another task do not move this task's sequence.
	_, err = b.Append(ctx, newEvent(t, events.KindSubmitted, "task-2", submission()), bus.AppendOptions{})
	require.NoError(t, err)
	done := newEvent(t, events.KindSucceeded, "task-1", events.Succeeded{Result: json.RawMessage(`{"ok":true}`)})
	_, err = b.Append(ctx, done, bus.AppendOptions{ExpectSeq: seq2})
	require.NoError(t, err)

	// A delivery record does not use the compare-and-set, so the duplicate
	// window drops its repeat and returns the first copy's sequence.
	delivered := newEvent(t, events.KindDelivered, "task-1", events.Delivery{EventID: done.ID, EventKind: done.Kind, Endpoint: "http://127.0.0.1:1/", Attempt: 1, StatusCode: 204})
	dseq, err := b.Append(ctx, delivered, bus.AppendOptions{})
	require.NoError(t, err)
	again, err := b.Append(ctx, delivered, bus.AppendOptions{})
	require.NoError(t, err)
	require.Equal(t, dseq, again)

	task, err := b.ReadTask(ctx, "acme", "task-1")
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 4, task.Events)
	require.Equal(t, 1, task.Deliveries)
	require.JSONEq(t, `{"ok":true}`, string(task.Result))
}

func TestAppendAsync(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	evs := make([]*events.Event, 50)
	futures := make([]jetstream.PubAckFuture, len(evs))
	for i := range evs {
		evs[i] = newEvent(t, events.KindSubmitted, fmt.Sprintf("async-%d", i), submission())
		f, err := b.AppendAsync(evs[i], bus.AppendOptions{})
		require.NoError(t, err)
		futures[i] = f
	}
	// A second submission of task async-0 is refused by the server, and
	// the future reports it as a conflict.
	dup := newEvent(t, events.KindSubmitted, "async-0", submission())
	dupFuture, err := b.AppendAsync(dup, bus.AppendOptions{})
	require.NoError(t, err)

	seen := map[uint64]bool{}
	for i, ev := range evs {
		seq, err := bus.AppendResult(ctx, ev, bus.AppendOptions{}, futures[i])
		require.NoError(t, err)
		require.False(t, seen[seq], "sequence %d returned twice", seq)
		seen[seq] = true
	}
	_, err = bus.AppendResult(ctx, dup, bus.AppendOptions{}, dupFuture)
	require.ErrorIs(t, err, bus.ErrConflict)
}

func TestReadEventsBatches(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	seq, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "long", submission()), bus.AppendOptions{})
	require.NoError(t, err)
	seq, err = b.Append(ctx, newEvent(t, events.KindStarted, "long", events.Started{Attempt: 1, Executor: "x"}), bus.AppendOptions{ExpectSeq: seq})
	require.NoError(t, err)
	// More progress events than one batch holds, interleaved with another
	// task's events.
	const progress = 1500
	for i := 0; i < progress; i++ {
		ev := newEvent(t, events.KindProgress, "long", events.Progress{Percent: float64(i) / progress * 100})
		seq, err = b.Append(ctx, ev, bus.AppendOptions{ExpectSeq: seq})
		require.NoError(t, err)
		if i%100 == 0 {
			_, err = b.Append(ctx, newEvent(t, events.KindSubmitted, fmt.Sprintf("other-%d", i), submission()), bus.AppendOptions{})
			require.NoError(t, err)
		}
	}

	te, err := b.ReadEvents(ctx, "acme", "long", 0)
	require.NoError(t, err)
	require.Len(t, te.Events, progress+2)
	require.Equal(t, seq, te.LastSeq)
	for i := 1; i < len(te.Events); i++ {
		require.Greater(t, te.Events[i].Seq, te.Events[i-1].Seq)
		require.Equal(t, "long", te.Events[i].TaskID)
	}

	tail, err := b.ReadEvents(ctx, "acme", "long", te.Events[10].Seq)
	require.NoError(t, err)
	require.Len(t, tail.Events, progress+2-11)
}

func TestReadTaskNotFound(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	_, err := b.ReadTask(context.Background(), "acme", "missing")
	require.ErrorIs(t, err, bus.ErrTaskNotFound)
}

func TestReadTaskSkipsUndecodable(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	// A publisher that ignores the contract: no CloudEvents headers.
	raw := nats.NewMsg("handoff.task.acme.bad.submitted.files.manifest")
	raw.Data = []byte(`{"input":{}}`)
	ack, err := b.JetStream().PublishMsg(ctx, raw)
	require.NoError(t, err)

	rejected := newEvent(t, events.KindRejected, "bad", events.Rejected{Error: events.TaskError{Code: events.CodeInvalidEvent, Message: "not a CloudEvent"}})
	_, err = b.Append(ctx, rejected, bus.AppendOptions{ExpectSeq: ack.Sequence})
	require.NoError(t, err)

	task, err := b.ReadTask(ctx, "acme", "bad")
	require.NoError(t, err)
	require.Equal(t, events.StatusRejected, task.Status)
	require.Len(t, task.Skipped, 1)
	require.Equal(t, ack.Sequence, task.Skipped[0].Seq)
	require.Contains(t, task.Skipped[0].Reason, "ce-specversion")
}

func TestEventTTLExpiresTask(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	sub := newEvent(t, events.KindSubmitted, "short", events.Submission{Input: json.RawMessage(`{}`), TTL: events.Duration(time.Second)})
	_, err := b.Append(ctx, sub, bus.AppendOptions{TTL: time.Second})
	require.NoError(t, err)
	_, err = b.ReadTask(ctx, "acme", "short")
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		_, err := b.ReadTask(ctx, "acme", "short")
		return errors.Is(err, bus.ErrTaskNotFound)
	}, 10*time.Second, 50*time.Millisecond)
}

func TestReadTaskOnClosedConnection(t *testing.T) {
	srv := natstest.Start(t)
	b := srv.Bus(t)
	ctx := context.Background()
	_, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "t1", submission()), bus.AppendOptions{})
	require.NoError(t, err)

	b.Conn().Close()
	_, err = b.ReadTask(ctx, "acme", "t1")
	require.Error(t, err)
	require.NotErrorIs(t, err, bus.ErrTaskNotFound)
}

func TestReadTaskServerDown(t *testing.T) {
	srv := natstest.Start(t)
	b := srv.Bus(t)
	ctx := context.Background()
	_, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "t1", submission()), bus.AppendOptions{})
	require.NoError(t, err)

	srv.Shutdown()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = b.ReadTask(short, "acme", "t1")
	require.Error(t, err)
	require.NotErrorIs(t, err, bus.ErrTaskNotFound)
}

func TestReadSubmitted(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	sub := submission()
	sub.Webhook = &events.Webhook{URL: "https://agent.example.com/hook"}
	submitted := newEvent(t, events.KindSubmitted, "t1", sub)
	seq, err := b.Append(ctx, submitted, bus.AppendOptions{})
	require.NoError(t, err)
	_, err = b.Append(ctx, newEvent(t, events.KindStarted, "t1", events.Started{Attempt: 1, Executor: "x"}), bus.AppendOptions{ExpectSeq: seq})
	require.NoError(t, err)
	_, err = b.Append(ctx, newEvent(t, events.KindSubmitted, "t2", submission()), bus.AppendOptions{})
	require.NoError(t, err)

	ev, found, err := b.ReadSubmitted(ctx, "acme", "t1", "files.manifest")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, submitted.ID, ev.ID)
	require.Equal(t, seq, ev.Seq)
	var got events.Submission
	require.NoError(t, ev.DecodeData(&got))
	require.Equal(t, "https://agent.example.com/hook", got.Webhook.URL)

	_, found, err = b.ReadSubmitted(ctx, "acme", "missing", "files.manifest")
	require.NoError(t, err)
	require.False(t, found)

	// The raw message of a publisher that ignores the contract.
	raw := nats.NewMsg("handoff.task.acme.bad.submitted.files.manifest")
	raw.Data = []byte(`{"input":{}}`)
	_, err = b.JetStream().PublishMsg(ctx, raw)
	require.NoError(t, err)
	_, _, err = b.ReadSubmitted(ctx, "acme", "bad", "files.manifest")
	require.ErrorContains(t, err, "ce-specversion")
}
