package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

const waitFor = 10 * time.Second

// finish appends a task of tenant and taskType that runs and ends with an
// event of kind, as ingest and an executor would, and returns that event.
func finish(t *testing.T, b *bus.Bus, tenant, taskType string, kind events.Kind, data any) events.Event {
	t.Helper()
	ctx := context.Background()
	id := events.NewID()
	opts := bus.AppendOptions{TTL: time.Hour}
	submitted, err := events.NewEvent(events.KindSubmitted, tenant, id, taskType, "/handoff/ingest", events.Submission{Input: json.RawMessage(`{}`)})
	require.NoError(t, err)
	opts.ExpectSeq, err = b.Append(ctx, &submitted, opts)
	require.NoError(t, err)
	started, err := events.NewEvent(events.KindStarted, tenant, id, taskType, "/handoff/executor/e1", events.Started{Attempt: 1, Executor: "e1"})
	require.NoError(t, err)
	opts.ExpectSeq, err = b.Append(ctx, &started, opts)
	require.NoError(t, err)
	end, err := events.NewEvent(kind, tenant, id, taskType, "/handoff/executor/e1", data)
	require.NoError(t, err)
	end.Seq, err = b.Append(ctx, &end, opts)
	require.NoError(t, err)
	return end
}

func succeeded(t *testing.T, b *bus.Bus, tenant, taskType string) events.Event {
	t.Helper()
	return finish(t, b, tenant, taskType, events.KindSucceeded, events.Succeeded{Result: json.RawMessage(`{"files":3}`)})
}

// collector follows events in the background and collects them.
type collector struct {
	mu     sync.Mutex
	events []events.Event
	cancel context.CancelFunc
	done   chan error
}

func startFollow(t *testing.T, b *bus.Bus, cfg followConfig) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- follow(ctx, b, cfg, func(ev events.Event) error {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.events))
	for i, ev := range c.events {
		out[i] = ev.ID
	}
	return out
}

func (c *collector) waitFor(t *testing.T, n int) []string {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.ids()) >= n }, waitFor, 10*time.Millisecond)
	return c.ids()
}

func (c *collector) stop(t *testing.T) {
	t.Helper()
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	select {
	case err := <-c.done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitFor):
		t.Fatal("follow did not return after cancel")
	}
}

func TestFollowFromThePast(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	old := succeeded(t, b, "acme", "files.manifest")
	since := time.Now()
	failed := finish(t, b, "acme", "files.manifest", events.KindFailed, events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "disk full"}})
	asked := finish(t, b, "acme", "reports.daily", events.KindInputRequired, events.InputRequired{Prompt: "Which quarter?"})
	succeeded(t, b, "globex", "files.manifest")

	// From a point in the past: the events stored since then, in order,
	// of this tenant only, and none of the other kinds.
	c := startFollow(t, b, followConfig{Tenant: "acme", TaskType: ">", Since: since})
	require.Equal(t, []string{failed.ID, asked.ID}, c.waitFor(t, 2))

	// Then live events as they are stored.
	live := succeeded(t, b, "acme", "files.sizes")
	require.Equal(t, []string{failed.ID, asked.ID, live.ID}, c.waitFor(t, 3))
	c.stop(t)
	require.NotContains(t, c.ids(), old.ID)
}

func TestFollowNewEventsOnly(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	succeeded(t, b, "acme", "files.manifest")

	c := startFollow(t, b, followConfig{Tenant: "acme", TaskType: "files.>"})
	// Wait for the consumer to exist before storing the next events.
	require.Eventually(t, func() bool {
		s, err := b.JetStream().Stream(context.Background(), b.Names().TasksStream())
		return err == nil && s.CachedInfo().State.Consumers == 1
	}, waitFor, 10*time.Millisecond)

	succeeded(t, b, "acme", "reports.daily")
	live := succeeded(t, b, "acme", "files.manifest")
	require.Equal(t, []string{live.ID}, c.waitFor(t, 1), "only new events of the files family")
}

func TestFollowDurableResumes(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	first := succeeded(t, b, "acme", "files.manifest")
	cfg := followConfig{Tenant: "acme", TaskType: ">", Durable: "agent-1", Since: first.Stored.Add(-time.Second)}

	c := startFollow(t, b, cfg)
	require.Equal(t, []string{first.ID}, c.waitFor(t, 1))
	c.stop(t)

	// While the agent is away, a task ends. On its return the agent gets
	// that event and not the one it already acked; Since applies only
	// when the consumer is created.
	missed := succeeded(t, b, "acme", "files.manifest")
	again := startFollow(t, b, cfg)
	require.Equal(t, []string{missed.ID}, again.waitFor(t, 1))
}

func TestFollowRejectsInvalidFilter(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	err := follow(context.Background(), b, followConfig{Tenant: "Acme", TaskType: ">"}, nil)
	require.ErrorIs(t, err, events.ErrInvalidToken)
	err = follow(context.Background(), b, followConfig{Tenant: "acme", TaskType: "files.*"}, nil)
	require.ErrorIs(t, err, events.ErrInvalidToken)
}

func TestRunPrintsEvents(t *testing.T) {
	srv := natstest.Start(t)
	b := srv.Bus(t)
	now := time.Now()
	ok := succeeded(t, b, "acme", "files.manifest")
	asked := finish(t, b, "acme", "files.manifest", events.KindInputRequired, events.InputRequired{Prompt: "Grant read access to /data?"})

	var out bytes.Buffer
	err := run(context.Background(), []string{"--nats-url", srv.URL, "--tenant", "acme", "--since", "1m", "--count", "2"}, &out, now)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "task "+ok.TaskID+" (files.manifest) succeeded: {\"files\":3}")
	require.Contains(t, lines[1], "task "+asked.TaskID+" (files.manifest) input_required: Grant read access to /data?")

	err = run(context.Background(), []string{"--since", "soon"}, &out, now)
	require.ErrorContains(t, err, `invalid --since "soon"`)
}

func TestDescribe(t *testing.T) {
	ev, err := events.NewEvent(events.KindFailed, "acme", "t1", "files.manifest", "/x", events.Failed{Error: events.TaskError{Code: "timeout", Message: "the attempt took longer than 30s"}})
	require.NoError(t, err)
	require.Contains(t, describe(ev), "task t1 (files.manifest) failed: timeout: the attempt took longer than 30s")

	ev, err = events.NewEvent(events.KindSucceeded, "acme", "t1", "files.manifest", "/x", events.Succeeded{Result: json.RawMessage(`"` + strings.Repeat("a", 300) + `"`)})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(describe(ev), "..."))

	ev, err = events.NewEvent(events.KindExpired, "acme", "t1", "files.manifest", "/x", nil)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(describe(ev), "task t1 (files.manifest) expired"))
}

func TestDurableRestartsWithCount(t *testing.T) {
	// An agent that leaves after each event and comes straight back gets
	// the next event at once, in stream order: nothing it fetched and did
	// not handle waits for the ack wait to run out.
	srv := natstest.Start(t)
	b := srv.Bus(t)
	now := time.Now()
	var ids []string
	for range 3 {
		ids = append(ids, succeeded(t, b, "acme", "files.manifest").TaskID)
	}

	args := []string{"--nats-url", srv.URL, "--tenant", "acme", "--since", "1m", "--durable", "agent-2", "--count", "1"}
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out bytes.Buffer
		err := run(ctx, args, &out, now)
		cancel()
		require.NoError(t, err)
		require.Contains(t, out.String(), "task "+id+" ")
	}
}
