package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestRunServesMetrics(t *testing.T) {
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
	go func() { done <- run(ctx, opts, zap.NewNop()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var body string
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`consumer="notifier-deliveries"`))
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, body, `handoff_consumer_pending_messages{consumer="notifier",stream="HANDOFF_TASKS"} 0`)
	require.Contains(t, body, `handoff_consumer_pending_messages{consumer="notifier-deliveries",stream="HANDOFF_DELIVERIES"} 0`)
	require.Contains(t, body, "go_goroutines ")
}

func TestParseOptionsOTLPEndpoint(t *testing.T) {
	opts, err := parseOptions(nil, env(map[string]string{envSecret: newSecret(t), "HANDOFF_OTLP_ENDPOINT": "http://collector:4318"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "http://collector:4318", opts.otlpEndpoint)
}

func TestRunRejectsInvalidOTLPEndpoint(t *testing.T) {
	opts := testOptions(t, "nats://127.0.0.1:1")
	opts.otlpEndpoint = "collector:4318"
	err := run(context.Background(), opts, zap.NewNop())
	require.ErrorContains(t, err, "invalid OTLP endpoint")
}
