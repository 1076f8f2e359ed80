package observability

import (
	"context"
	"errors"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/services/executor"
)

// series is one expected value of a scrape: the family, its labels as
// name and value pairs, and the value.
type series struct {
	family string
	labels []string
	want   float64
}

func TestMetricsAfterRun(t *testing.T) {
	block := func(ctx context.Context, _ *executor.Task) (any, error) {
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	fail := func(context.Context, *executor.Task) (any, error) {
		return nil, executor.Permanent(errors.New("the upstream rejected the request"))
	}
	s := startStack(t, stackOptions{handlers: map[string]executor.Handler{"block": block, "fail": fail}})
	// The first delivery fails with 503 and is retried.
	rcv := newReceiver(t, http.StatusServiceUnavailable, http.StatusOK)

	// Three tasks succeed with a webhook, one fails, one is cancelled
	// while it runs, and one submission is rejected before it is stored.
	for range 3 {
		id := s.submit(t, map[string]any{"type": "echo", "input": map[string]any{"n": 1}, "webhook": map[string]any{"url": rcv.URL}})
		s.waitStatus(t, id, "succeeded")
	}
	s.waitStatus(t, s.submit(t, map[string]any{"type": "fail"}), "failed")
	id := s.submit(t, map[string]any{"type": "block"})
	s.waitStatus(t, id, "running")
	resp := s.do(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", map[string]any{"reason": "test"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", resp.body)
	s.waitStatus(t, id, "cancelled")
	resp = s.do(t, http.MethodPost, "/v1/tasks", map[string]any{"type": "no.such.type"})
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)

	ingest := []series{
		{"handoff_tasks_submitted_total", []string{"task_type", "echo"}, 3},
		{"handoff_tasks_submitted_total", []string{"task_type", "fail"}, 1},
		{"handoff_tasks_submitted_total", []string{"task_type", "block"}, 1},
		{"handoff_http_requests_total", []string{"route", "/v1/tasks", "method", "POST", "code", "202"}, 5},
		{"handoff_http_requests_total", []string{"route", "/v1/tasks", "method", "POST", "code", "422"}, 1},
		{"handoff_http_requests_total", []string{"route", "/v1/tasks/{id}/cancel", "method", "POST", "code", "200"}, 1},
		{"handoff_http_request_duration_seconds", []string{"route", "/v1/tasks", "method", "POST"}, 6},
	}
	executorSeries := []series{
		{"handoff_tasks_started_total", []string{"task_type", "echo"}, 3},
		{"handoff_tasks_started_total", []string{"task_type", "block"}, 1},
		{"handoff_tasks_finished_total", []string{"task_type", "echo", "outcome", "succeeded"}, 3},
		{"handoff_tasks_finished_total", []string{"task_type", "fail", "outcome", "failed"}, 1},
		{"handoff_tasks_finished_total", []string{"task_type", "block", "outcome", "cancelled"}, 1},
		{"handoff_attempts_total", []string{"task_type", "echo", "outcome", "succeeded"}, 3},
		{"handoff_attempts_total", []string{"task_type", "block", "outcome", "cancelled"}, 1},
		{"handoff_attempt_duration_seconds", []string{"task_type", "echo", "outcome", "succeeded"}, 3},
		{"handoff_attempts_running", []string{"task_type", "block"}, 0},
		{"handoff_consumer_pending_messages", []string{"consumer", "executor-obs"}, 0},
		{"handoff_consumer_ack_pending_messages", []string{"consumer", "executor-obs"}, 0},
		{"handoff_consumer_redelivered_messages", []string{"consumer", "executor-obs"}, 0},
	}
	notifierSeries := []series{
		{"handoff_webhook_deliveries_total", []string{"kind", "succeeded", "outcome", "retrying"}, 1},
		{"handoff_webhook_deliveries_total", []string{"kind", "succeeded", "outcome", "delivered"}, 3},
		{"handoff_webhook_delivery_duration_seconds", []string{"outcome", "delivered"}, 3},
		{"handoff_consumer_pending_messages", []string{"consumer", "notifier-deliveries"}, 0},
		{"handoff_consumer_ack_pending_messages", []string{"consumer", "notifier-deliveries"}, 0},
	}

	// The services count a step right after they store it, so the last
	// counts may trail the task's status for a moment.
	for _, scrape := range []struct {
		service string
		url     string
		want    []series
	}{
		{"ingest", s.ingestURL + "/metrics", ingest},
		{"executor", s.executorURL, executorSeries},
		{"notifier", s.notifierURL, notifierSeries},
	} {
		var families map[string]*dto.MetricFamily
		require.Eventually(t, func() bool {
			families = s.scrape(t, scrape.url)
			for _, w := range scrape.want {
				if value(families, w.family, w.labels...) != w.want {
					return false
				}
			}
			return true
		}, waitFor, tick, "the %s metrics", scrape.service)
		for _, w := range scrape.want {
			require.Equal(t, w.want, value(families, w.family, w.labels...), "%s %s%v", scrape.service, w.family, w.labels)
		}
		t.Logf("%s serves %d metric families at %s", scrape.service, len(families), scrape.url)
	}
}
