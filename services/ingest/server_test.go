package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestConfigDefaults(t *testing.T) {
	cfg := ingest.Config{}.WithDefaults()

	require.Equal(t, "handoff", cfg.Namespace)
	require.Equal(t, "/handoff/ingest", cfg.Source)
	require.Equal(t, 256<<10, cfg.MaxInputBytes)
	require.Equal(t, 256<<10+64<<10, cfg.MaxBodyBytes)
	require.Equal(t, 64, cfg.MaxDepth)
	require.Equal(t, 7*24*time.Hour, cfg.MaxTTL)
	require.Equal(t, 10*time.Second, cfg.RequestTimeout)
	require.Equal(t, 10*time.Second, cfg.ShutdownTimeout)
	require.False(t, cfg.AllowUnregisteredTypes)
	require.NoError(t, cfg.Validate())

	// The body limit follows a configured input limit.
	require.Equal(t, 1<<20+64<<10, ingest.Config{MaxInputBytes: 1 << 20}.WithDefaults().MaxBodyBytes)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field  string
		change func(*ingest.Config)
	}{
		{"Namespace", func(c *ingest.Config) { c.Namespace = "Hand.off" }},
		{"MaxInputBytes", func(c *ingest.Config) { c.MaxInputBytes = -1 }},
		{"MaxInputBytes", func(c *ingest.Config) { c.MaxInputBytes = 65 << 20 }},
		{"MaxBodyBytes", func(c *ingest.Config) { c.MaxBodyBytes = 100 }},
		{"MaxDepth", func(c *ingest.Config) { c.MaxDepth = 1 }},
		{"MaxDepth", func(c *ingest.Config) { c.MaxDepth = 5000 }},
		{"MaxTTL", func(c *ingest.Config) { c.MaxTTL = time.Millisecond }},
		{"RequestTimeout", func(c *ingest.Config) { c.RequestTimeout = -time.Second }},
		{"ShutdownTimeout", func(c *ingest.Config) { c.ShutdownTimeout = -time.Second }},
	}
	for _, tt := range tests {
		cfg := ingest.Config{}.WithDefaults()
		tt.change(&cfg)
		err := cfg.Validate()
		require.ErrorIs(t, err, ingest.ErrInvalidConfig, "field %s", tt.field)
		require.ErrorContains(t, err, tt.field)
	}
}

func TestNewRejectsMismatchedNamespace(t *testing.T) {
	b := natstest.Start(t).Bus(t)

	_, err := ingest.New(context.Background(), ingest.Config{Namespace: "other"}, b, zap.NewNop())
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	require.ErrorContains(t, err, `Namespace is "other", but the bus uses "handoff"`)
}

func TestNewRejectsBodyOverMaxPayload(t *testing.T) {
	b := natstest.Start(t).Bus(t)

	// natstest's server accepts 8 MiB per message.
	_, err := ingest.New(context.Background(), ingest.Config{MaxInputBytes: 9 << 20}, b, zap.NewNop())
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	require.ErrorContains(t, err, "max_payload of 8388608 bytes")
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	core, logs := observer.New(zap.InfoLevel)
	srv, err := ingest.New(context.Background(), ingest.Config{}, b, zap.New(core))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status": "ok"}`, string(body))

	cancel()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	_, err = net.Dial("tcp", addr)
	require.Error(t, err, "the listener is closed")
	require.Equal(t, 1, logs.FilterMessage("stopped the HTTP API").Len())
}

func TestServeReportsListenerFailure(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	srv, err := ingest.New(context.Background(), ingest.Config{}, b, zap.NewNop())
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())

	err = srv.Serve(context.Background(), ln)
	require.ErrorContains(t, err, "serve HTTP on "+ln.Addr().String())
}

func TestCloseIsIdempotent(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	srv, err := ingest.New(context.Background(), ingest.Config{}, b, zap.NewNop())
	require.NoError(t, err)

	srv.Close()
	srv.Close()
	// goleak in TestMain checks that the registration cache stopped.
}

func TestLogsNeverContainInput(t *testing.T) {
	b := setup(t)
	const secret = "s3cr3t-token-value"

	bodies := []string{
		`{"type": "echo", "input": {"message": "` + secret + `"}}`,
		`{"type": "echo", "input": {"message": "` + secret + `", "extra": 1}}`,
		`{"type": "files.manifest", "input": {"dir": "` + secret + `"}}`,
		`{"type": "echo", "input": {"message": "` + secret + `"}, "max_attempts": 1000}`,
	}
	for _, body := range bodies {
		resp := b.submit(t, body)
		require.Less(t, resp.status, 500)
	}

	entries := b.logs.All()
	require.NotEmpty(t, entries, "requests are logged at Debug")
	requests := 0
	for _, e := range entries {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		require.NotContains(t, line, secret)
		if e.Message == "request" {
			requests++
			require.Equal(t, "/v1/tasks", e.ContextMap()["path"])
		}
	}
	require.Equal(t, len(bodies), requests)
}

func TestErrorsLoggedWithIDs(t *testing.T) {
	b := setupSilent(t)
	const id = "01J0000000000000000000000"

	resp := b.get(t, "/v1/tasks/"+id)
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	failures := b.logs.FilterMessage("reading a task failed").All()
	require.Len(t, failures, 1)
	fields := failures[0].ContextMap()
	require.Equal(t, id, fields["task_id"])
	require.Equal(t, "default", fields["tenant"])
	require.True(t, strings.Contains(fmt.Sprint(fields["error"]), "deadline exceeded"), "error: %v", fields["error"])
}
