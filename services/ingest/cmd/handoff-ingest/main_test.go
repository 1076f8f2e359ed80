package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns a lookup function over a fixed environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(nil, env(nil), io.Discard)
	require.NoError(t, err)

	require.Equal(t, "nats://127.0.0.1:4222", o.natsURL)
	require.Equal(t, "127.0.0.1:8080", o.httpAddr)
	require.Equal(t, "handoff", o.cfg.Namespace)
	require.Equal(t, 256<<10, o.cfg.MaxInputBytes)
	require.False(t, o.cfg.AllowUnregisteredTypes)
	require.False(t, o.cfg.AllowLoopback)
	require.Equal(t, 7*24*time.Hour, o.cfg.MaxTTL)
	require.Equal(t, "json", o.logFormat)
	require.Equal(t, "info", o.logLevel)
}

func TestParseOptionsPrecedence(t *testing.T) {
	vars := map[string]string{
		"HANDOFF_NATS_URL":                 "nats://10.0.0.1:4222",
		"HANDOFF_HTTP_ADDR":                "127.0.0.1:9999",
		"HANDOFF_NAMESPACE":                "staging",
		"HANDOFF_MAX_INPUT_BYTES":          "1024",
		"HANDOFF_ALLOW_UNREGISTERED_TYPES": "true",
		"HANDOFF_ALLOW_LOOPBACK":           "true",
		"HANDOFF_LOG_LEVEL":                "debug",
	}
	o, err := parseOptions([]string{"--http-addr", "127.0.0.1:7070", "--log-level=warn", "--max-ttl", "1h"}, env(vars), io.Discard)
	require.NoError(t, err)

	require.Equal(t, "127.0.0.1:7070", o.httpAddr, "a flag wins over the environment")
	require.Equal(t, "warn", o.logLevel, "a flag wins over the environment")
	require.Equal(t, "nats://10.0.0.1:4222", o.natsURL, "the environment wins over the default")
	require.Equal(t, "staging", o.cfg.Namespace)
	require.Equal(t, 1024, o.cfg.MaxInputBytes)
	require.True(t, o.cfg.AllowUnregisteredTypes)
	require.True(t, o.cfg.AllowLoopback)
	require.Equal(t, time.Hour, o.cfg.MaxTTL)
	require.Equal(t, "json", o.logFormat, "the default remains without flag or variable")
}

func TestParseOptionsInvalid(t *testing.T) {
	_, err := parseOptions(nil, env(map[string]string{"HANDOFF_MAX_INPUT_BYTES": "lots"}), io.Discard)
	require.ErrorContains(t, err, `invalid HANDOFF_MAX_INPUT_BYTES "lots"`)

	_, err = parseOptions([]string{"--max-input-bytes", "lots"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "max-input-bytes")

	_, err = parseOptions([]string{"serve"}, env(nil), io.Discard)
	require.ErrorContains(t, err, `unexpected argument "serve"`)
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Contains(t, out.String(), "HANDOFF_NATS_URL")
	require.Contains(t, out.String(), "-nats-url")
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	err := run(context.Background(), []string{"--max-input-bytes", "-5"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "MaxInputBytes")

	err = run(context.Background(), []string{"--log-format", "xml"}, env(nil), io.Discard)
	require.ErrorContains(t, err, `invalid log format "xml"`)
}

func TestRunRejectsMissingStreams(t *testing.T) {
	ns := natstest.Start(t)

	err := run(context.Background(), []string{"--nats-url", ns.URL, "--log-level", "error"}, env(nil), io.Discard)
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.ErrorContains(t, err, "HANDOFF_TASKS does not exist")
}

func TestRunServesUntilCancelled(t *testing.T) {
	ns := natstest.Start(t)
	ns.Bus(t)
	addr := freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--nats-url", ns.URL, "--http-addr", addr, "--log-level", "error"}, env(nil), io.Discard)
	}()

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
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

func TestRedactURL(t *testing.T) {
	require.Equal(t, "nats://127.0.0.1:4222", redactURL("nats://127.0.0.1:4222"))
	require.Equal(t, "nats://redacted@nats.example:4222", redactURL("nats://alice:s3cret@nats.example:4222"))
	require.Equal(t, "nats://redacted@a:4222,nats://b:4222", redactURL("nats://tok3n@a:4222, nats://b:4222"))

	got := redactURL("nats://alice:s3cret@nats.example:4222")
	require.NotContains(t, got, "s3cret")
	require.NotContains(t, got, "alice")
}
