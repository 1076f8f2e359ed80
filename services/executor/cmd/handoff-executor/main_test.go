package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestParseOptionsFallsBackToEnvironment(t *testing.T) {
	o, err := parseOptions([]string{"--pool", "flagged"}, env(map[string]string{
		"HANDOFF_CONFIG":      "types.yaml",
		"HANDOFF_POOL":        "from-env",
		"HANDOFF_CONCURRENCY": "12",
		"HANDOFF_NATS_URL":    "nats://127.0.0.1:4333",
	}))
	require.NoError(t, err)
	require.Equal(t, "types.yaml", o.configPath)
	require.Equal(t, "flagged", o.pool)
	require.Equal(t, 12, o.concurrency)
	require.Equal(t, "nats://127.0.0.1:4333", o.natsURL)
	require.Equal(t, "json", o.logFormat)
}

func TestParseOptionsErrors(t *testing.T) {
	_, err := parseOptions(nil, env(nil))
	require.ErrorContains(t, err, "--config is required")

	_, err = parseOptions([]string{"--config", "x.yaml"}, env(map[string]string{"HANDOFF_CONCURRENCY": "many"}))
	require.ErrorContains(t, err, `invalid HANDOFF_CONCURRENCY "many"`)

	_, err = parseOptions([]string{"--config", "x.yaml", "extra"}, env(nil))
	require.ErrorContains(t, err, "unexpected arguments")
}

func writeTypes(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handoff.yaml")
	require.NoError(t, os.WriteFile(path, []byte("types:\n  echo: {handler: echo}\n"), 0o644))
	return path
}

func TestRunRequiresStreams(t *testing.T) {
	srv := natstest.Start(t)
	opts := options{natsURL: srv.URL, configPath: writeTypes(t), instance: "cmd-test"}

	err := run(context.Background(), opts, zaptest.NewLogger(t))
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.ErrorContains(t, err, "HANDOFF_TASKS does not exist")
}

func TestRunServesUntilCancelled(t *testing.T) {
	srv := natstest.Start(t)
	b := srv.Bus(t)
	opts := options{natsURL: srv.URL, configPath: writeTypes(t), instance: "cmd-test", pool: "cmd"}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts, zaptest.NewLogger(t)) }()

	ev, err := events.NewEvent(events.KindSubmitted, "default", "cmd-1", "echo", "/test", events.Submission{Input: json.RawMessage(`{"hi":1}`)})
	require.NoError(t, err)
	_, err = b.Append(context.Background(), &ev, bus.AppendOptions{})
	require.NoError(t, err)

	var task *events.Task
	require.Eventually(t, func() bool {
		task, err = b.ReadTask(context.Background(), "default", "cmd-1")
		return err == nil && task.Terminal()
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, "cmd-test", task.Executor)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

func TestParseOptionsHealthAddr(t *testing.T) {
	o, err := parseOptions([]string{"--config", "x.yaml"}, env(nil))
	require.NoError(t, err)
	require.Empty(t, o.healthAddr, "no health listener by default")

	o, err = parseOptions([]string{"--config", "x.yaml"}, env(map[string]string{"HANDOFF_HEALTH_ADDR": ":8081"}))
	require.NoError(t, err)
	require.Equal(t, ":8081", o.healthAddr)

	o, err = parseOptions([]string{"--config", "x.yaml", "--health-addr", "127.0.0.1:9000"}, env(map[string]string{"HANDOFF_HEALTH_ADDR": ":8081"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", o.healthAddr)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestRunServesHealth(t *testing.T) {
	srv := natstest.Start(t)
	srv.Bus(t)
	addr := freeAddr(t)
	opts := options{natsURL: srv.URL, configPath: writeTypes(t), instance: "cmd-test", healthAddr: addr}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts, zaptest.NewLogger(t)) }()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	status := func(path string) int {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return status("/readyz") == http.StatusOK }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusOK, status("/healthz"))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
	require.Zero(t, status("/healthz"), "the health listener is closed after run returns")
}
