package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestRunServesMetrics(t *testing.T) {
	srv := natstest.Start(t)
	srv.Bus(t)
	addr := freeAddr(t)
	opts := options{natsURL: srv.URL, configPath: writeTypes(t), instance: "cmd-test", healthAddr: addr}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts, zaptest.NewLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("run did not return after its context was cancelled")
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
		return err == nil && resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond)
	require.Contains(t, body, `handoff_consumer_pending_messages{consumer="executor-default",stream="HANDOFF_TASKS"} 0`)
	require.Contains(t, body, "go_goroutines ")
}

func TestParseOptionsOTLPEndpoint(t *testing.T) {
	o, err := parseOptions([]string{"--config", "x.yaml"}, env(nil))
	require.NoError(t, err)
	require.Empty(t, o.otlpEndpoint, "no spans are sent by default")

	o, err = parseOptions([]string{"--config", "x.yaml"}, env(map[string]string{"HANDOFF_OTLP_ENDPOINT": "http://collector:4318"}))
	require.NoError(t, err)
	require.Equal(t, "http://collector:4318", o.otlpEndpoint)
}

func TestRunRejectsInvalidOTLPEndpoint(t *testing.T) {
	opts := options{natsURL: "nats://127.0.0.1:1", configPath: writeTypes(t), otlpEndpoint: "collector:4318"}
	err := run(context.Background(), opts, zaptest.NewLogger(t))
	require.ErrorContains(t, err, "invalid OTLP endpoint")
}
