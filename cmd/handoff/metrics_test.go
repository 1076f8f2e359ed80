package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

func TestDevServesMetricsOfAllServices(t *testing.T) {
	dev := startDev(t)
	c := dev.client(t)
	res, err := c.Submit(context.Background(), client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"message":"hi"}`)}, client.SubmitOptions{})
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, waitDone(t, c, res.Task.ID).Status)

	// The executor counts the task right after it stores the terminal
	// event, which the client may read first.
	httpClient := &http.Client{Timeout: 10 * time.Second}
	var body string
	require.Eventually(t, func() bool {
		resp, err := httpClient.Get(dev.apiURL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK && strings.Contains(body, "handoff_tasks_finished_total")
	}, 10*time.Second, 20*time.Millisecond)

	// One registry holds the metrics of ingest, the executor and the
	// notifier, and of the process.
	require.Contains(t, body, `handoff_tasks_submitted_total{task_type="echo"} 1`)
	require.Contains(t, body, `handoff_tasks_started_total{task_type="echo"} 1`)
	require.Contains(t, body, `handoff_tasks_finished_total{outcome="succeeded",task_type="echo"} 1`)
	require.Contains(t, body, `handoff_consumer_pending_messages{consumer="executor-default",stream="HANDOFF_TASKS"}`)
	require.Contains(t, body, `handoff_consumer_pending_messages{consumer="notifier-deliveries",stream="HANDOFF_DELIVERIES"}`)
	require.Contains(t, body, "go_goroutines ")
}
