package ingest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

// scrape returns the body of GET /metrics.
func (b *bundle) scrape(t *testing.T) string {
	t.Helper()
	resp := b.get(t, "/metrics")
	require.Equal(t, http.StatusOK, resp.status)
	require.True(t, strings.HasPrefix(resp.header.Get("Content-Type"), "text/plain"), "Content-Type %q", resp.header.Get("Content-Type"))
	return string(resp.body)
}

func TestMetricsCountRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := setup(t, func(c *ingest.Config) { c.Metrics = reg })

	id := b.submit(t, `{"type": "echo", "input": {"message": "hi"}}`).view(t).ID
	b.get(t, "/v1/tasks/"+id)
	b.get(t, "/v1/tasks/"+events.NewID())
	b.get(t, "/v1/nothing/here")
	b.do(t, b.request(t, http.MethodDelete, "/v1/tasks", nil))

	expected := `
# HELP handoff_http_requests_total HTTP requests to the API by route pattern, method and status code.
# TYPE handoff_http_requests_total counter
handoff_http_requests_total{code="202",method="POST",route="/v1/tasks"} 1
handoff_http_requests_total{code="200",method="GET",route="/v1/tasks/{id}"} 1
handoff_http_requests_total{code="404",method="GET",route="/v1/tasks/{id}"} 1
handoff_http_requests_total{code="404",method="GET",route="/"} 1
handoff_http_requests_total{code="405",method="DELETE",route="/v1/tasks"} 1
# HELP handoff_tasks_submitted_total Tasks stored by a submission, delayed ones included and idempotent repeats not, by task type.
# TYPE handoff_tasks_submitted_total counter
handoff_tasks_submitted_total{task_type="echo"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "handoff_http_requests_total", "handoff_tasks_submitted_total"))

	n, err := testutil.GatherAndCount(reg, "handoff_http_request_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 4, n, "one histogram per route and method")

	body := b.scrape(t)
	require.Contains(t, body, `handoff_tasks_submitted_total{task_type="echo"} 1`)
	require.NotContains(t, body, id, "no label holds a task id")
	require.NotContains(t, body, events.DefaultTenant, "no label holds a tenant")
}

func TestMetricsIdempotentRepeat(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := setup(t, func(c *ingest.Config) { c.Metrics = reg })

	body := `{"type": "echo", "input": {"message": "hi"}}`
	require.Equal(t, http.StatusAccepted, b.submit(t, body, "Idempotency-Key", "k1").status)
	require.Equal(t, http.StatusOK, b.submit(t, body, "Idempotency-Key", "k1").status)

	require.Equal(t, 1.0, counterValue(t, reg, "handoff_tasks_submitted_total", "echo"), "a repeat stores no task")
}

func TestMetricsUnregisteredType(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := setup(t, func(c *ingest.Config) {
		c.Metrics = reg
		c.AllowUnregisteredTypes = true
	})

	for _, taskType := range []string{"made.up", "another.one"} {
		require.Equal(t, http.StatusAccepted, b.submit(t, `{"type": "`+taskType+`"}`).status)
	}
	body := b.scrape(t)
	require.Contains(t, body, `handoff_tasks_submitted_total{task_type="unregistered"} 2`)
	require.NotContains(t, body, "made.up", "types that no executor registered share one label value")
}

func TestMetricsCountCancel(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := setup(t, func(c *ingest.Config) { c.Metrics = reg })

	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	resp := b.do(t, b.request(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", []byte(`{}`), "Content-Type", "application/json"))
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.Equal(t, events.StatusCancelled, resp.view(t).Status)

	require.Contains(t, b.scrape(t), `handoff_tasks_finished_total{outcome="cancelled",task_type="echo"} 1`)
}

func TestMetricsOwnRegistry(t *testing.T) {
	b := setup(t)
	b.submit(t, `{"type": "echo"}`)

	body := b.scrape(t)
	require.Contains(t, body, `handoff_tasks_submitted_total{task_type="echo"} 1`)
	require.NotContains(t, body, "go_goroutines", "the server's own registry holds only its metrics")
}

func TestMetricsOpenMetrics(t *testing.T) {
	b := setup(t)
	b.submit(t, `{"type": "echo"}`)

	req := b.request(t, http.MethodGet, "/metrics", nil, "Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text"), "Content-Type %q", resp.Header.Get("Content-Type"))
	require.True(t, strings.HasSuffix(string(body), "# EOF\n"))
}

func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := setup(t, func(c *ingest.Config) { c.Metrics = reg })
	second := setup(t, func(c *ingest.Config) { c.Metrics = reg })

	first.submit(t, `{"type": "echo"}`)
	second.submit(t, `{"type": "echo"}`)
	require.Equal(t, 2.0, counterValue(t, reg, "handoff_tasks_submitted_total", "echo"), "two servers count into one registry")
}

// counterValue returns the value of the counter name whose label values,
// in the order of their names, are labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			values := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				values = append(values, l.GetValue())
			}
			if strings.Join(values, ",") == strings.Join(labels, ",") {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("%s{%s} not found", name, strings.Join(labels, ","))
	return 0
}
