package ingest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/metrics"
)

// unregisteredType is the task_type label of a task whose type no live
// executor registered, which keeps the label's values to the registered
// types even with AllowUnregisteredTypes.
const unregisteredType = "unregistered"

// otherLabel is the label of a route or method outside the API's own.
const otherLabel = "other"

// httpDurationBuckets are the bounds of the request duration histogram, in
// seconds. They reach past the default MaxWait of 60s, because a request
// may wait for a task to change.
var httpDurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// serverMetrics are the metrics of an ingest server. No label holds a
// tenant or a task id, whose values are unbounded.
type serverMetrics struct {
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	submitted *prometheus.CounterVec
	finished  *prometheus.CounterVec
}

// newServerMetrics registers the server's metrics with reg, or finds them
// there when another server of the process registered them first.
func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	requests, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace,
		Name:      "http_requests_total",
		Help:      "HTTP requests to the API by route pattern, method and status code.",
	}, []string{"route", "method", "code"}))
	if err != nil {
		return nil, fmt.Errorf("register HTTP request metrics: %w", err)
	}
	durations, err := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metrics.Namespace,
		Name:      "http_request_duration_seconds",
		Help:      "Time from the start of an HTTP request to the end of its response, by route pattern and method.",
		Buckets:   httpDurationBuckets,
	}, []string{"route", "method"}))
	if err != nil {
		return nil, fmt.Errorf("register HTTP duration metrics: %w", err)
	}
	submitted, err := metrics.Register(reg, newSubmittedCounter())
	if err != nil {
		return nil, fmt.Errorf("register task metrics: %w", err)
	}
	finished, err := metrics.Register(reg, metrics.NewTasksFinished())
	if err != nil {
		return nil, fmt.Errorf("register task metrics: %w", err)
	}
	return &serverMetrics{requests: requests, durations: durations, submitted: submitted, finished: finished}, nil
}

func newSubmittedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace,
		Name:      "tasks_submitted_total",
		Help:      "Tasks stored by a submission, delayed ones included and idempotent repeats not, by task type.",
	}, []string{"task_type"})
}

// observeRequest counts one request that route served with status code.
func (m *serverMetrics) observeRequest(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.durations.WithLabelValues(route, method).Observe(d.Seconds())
}

// typeLabel returns the task_type label of taskType: the type itself when
// a live executor registered it, and unregisteredType otherwise.
func (s *Server) typeLabel(taskType string) string {
	if _, ok := s.types.Get(taskType); ok {
		return taskType
	}
	return unregisteredType
}

// countSubmitted counts a stored submission of taskType.
func (s *Server) countSubmitted(taskType string) {
	s.metrics.submitted.WithLabelValues(s.typeLabel(taskType)).Inc()
}

// countFinished counts a terminal event that ingest wrote.
func (s *Server) countFinished(task *events.Task) {
	s.metrics.finished.WithLabelValues(s.typeLabel(task.Type), string(task.Status)).Inc()
}

// metricsHandler returns the handler of GET /metrics.
func (s *Server) metricsHandler() http.Handler {
	return metrics.Handler(s.gatherer, s.log)
}

// methodLabel returns the method label of method: the method for those
// the API serves, and otherLabel for any other token a client sends.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return otherLabel
}
