package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	got, err := parseSince("2026-05-01T08:00:00Z", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), got.UTC())

	got, err = parseSince("90m", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-90*time.Minute), got)

	_, err = parseSince("", now)
	require.ErrorContains(t, err, "missing --since")
	_, err = parseSince("yesterday", now)
	require.ErrorContains(t, err, `invalid --since "yesterday"`)
	_, err = parseSince("-2h", now)
	require.ErrorContains(t, err, "positive duration")
}

func TestReplayCommandDeliversAgain(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get(webhook.HeaderID))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}

	srv := natstest.Start(t)
	b := srv.Bus(t)
	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	n, err := notifier.New(notifier.Config{Secrets: []string{secret}, AllowLoopback: true}, b, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	ev := succeededTask(t, b, rcv.URL+"/hook?token=abc")
	require.Eventually(t, func() bool { return len(received()) == 1 }, 10*time.Second, 10*time.Millisecond)

	// A dry run plans nothing.
	out := runCommand(t, newReplayCmd(), "--nats-url", srv.URL, "--since", "1h", "--dry-run")
	require.Contains(t, out, "would plan 1 deliveries of 1 events stored since")
	require.Contains(t, out, "(every endpoint)")

	// Another endpoint: nothing to deliver.
	out = runCommand(t, newReplayCmd(), "--nats-url", srv.URL, "--since", "1h", "--endpoint", "https://elsewhere.example.com/hook")
	require.Contains(t, out, "planned 0 deliveries of 1 events")

	// The endpoint, named without its query, gets the event again.
	out = runCommand(t, newReplayCmd(), "--nats-url", srv.URL, "--since", "1h", "--endpoint", rcv.URL+"/hook")
	require.Contains(t, out, "planned 1 deliveries of 1 events")
	require.Contains(t, out, "a running notifier sends them")
	require.Eventually(t, func() bool { return len(received()) == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{ev.ID, ev.ID}, received())

	// --since is required.
	cmd := newReplayCmd()
	cmd.SetArgs([]string{"--nats-url", srv.URL})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	require.ErrorContains(t, cmd.Execute(), "missing --since")
}

// runCommand runs cmd with args and returns its output.
func runCommand(t *testing.T, cmd *cobra.Command, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	require.NoError(t, cmd.Execute())
	return out.String()
}

// succeededTask appends a task with a webhook that runs and succeeds, and
// returns its succeeded event.
func succeededTask(t *testing.T, b *bus.Bus, webhookURL string) events.Event {
	t.Helper()
	ctx := context.Background()
	id := events.NewID()
	opts := bus.AppendOptions{TTL: time.Hour}
	sub := events.Submission{Input: json.RawMessage(`{}`), TTL: events.Duration(time.Hour), Webhook: &events.Webhook{URL: webhookURL}}
	submitted, err := events.NewEvent(events.KindSubmitted, "default", id, "echo", "/handoff/ingest", sub)
	require.NoError(t, err)
	opts.ExpectSeq, err = b.Append(ctx, &submitted, opts)
	require.NoError(t, err)
	started, err := events.NewEvent(events.KindStarted, "default", id, "echo", "/handoff/executor/e1", events.Started{Attempt: 1, Executor: "e1"})
	require.NoError(t, err)
	opts.ExpectSeq, err = b.Append(ctx, &started, opts)
	require.NoError(t, err)
	end, err := events.NewEvent(events.KindSucceeded, "default", id, "echo", "/handoff/executor/e1", events.Succeeded{Result: json.RawMessage(`{}`)})
	require.NoError(t, err)
	_, err = b.Append(ctx, &end, opts)
	require.NoError(t, err)
	return end
}
