package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestParseOptionsFlagsFromEnvironment(t *testing.T) {
	opts, err := parseOptions(nil, env(map[string]string{
		envSecret:                      newSecret(t),
		"HANDOFF_NATS_URL":             "nats://127.0.0.1:4333",
		"HANDOFF_NAMESPACE":            "staging",
		"HANDOFF_ALLOW_LOOPBACK":       "true",
		"HANDOFF_TIMEOUT":              "3s",
		"HANDOFF_ENDPOINT_CONCURRENCY": "2",
		"HANDOFF_LOG_LEVEL":            "debug",
		"HANDOFF_HEALTH_ADDR":          ":8081",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4333", opts.natsURL)
	require.Equal(t, "staging", opts.cfg.Namespace)
	require.True(t, opts.cfg.AllowLoopback)
	require.Equal(t, 3*time.Second, opts.cfg.Timeout)
	require.Equal(t, 2, opts.cfg.EndpointConcurrency)
	require.Equal(t, "debug", opts.logLevel)
	require.Equal(t, ":8081", opts.healthAddr)
}

func TestParseOptionsFlagBeatsEnvironment(t *testing.T) {
	opts, err := parseOptions([]string{"--health-addr", "127.0.0.1:9000", "--namespace", "prod"}, env(map[string]string{
		envSecret:             newSecret(t),
		"HANDOFF_HEALTH_ADDR": ":8081",
		"HANDOFF_NAMESPACE":   "staging",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", opts.healthAddr)
	require.Equal(t, "prod", opts.cfg.Namespace)
}

func TestParseOptionsInvalidEnvironment(t *testing.T) {
	_, err := parseOptions(nil, env(map[string]string{envSecret: newSecret(t), "HANDOFF_TIMEOUT": "soon"}), &bytes.Buffer{})
	require.ErrorContains(t, err, `invalid HANDOFF_TIMEOUT "soon"`)
}

func TestHelpNamesEnvironment(t *testing.T) {
	var help bytes.Buffer
	require.Equal(t, 0, start([]string{"-help"}, env(nil), &help))
	require.Contains(t, help.String(), "-health-addr")
	require.Contains(t, help.String(), "(env HANDOFF_HEALTH_ADDR)")
	require.Contains(t, help.String(), "(env HANDOFF_NATS_URL)")
	require.Contains(t, help.String(), "$HANDOFF_WEBHOOK_SECRET")
}

func TestRunServesHealth(t *testing.T) {
	srv := natstest.Start(t)
	srv.Bus(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	opts := testOptions(t, srv.URL)
	opts.healthAddr = addr

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
	require.Eventually(t, func() bool { return status("/readyz") == http.StatusOK }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, status("/healthz"))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	require.Zero(t, status("/healthz"), "the health listener is closed after run returns")
}
