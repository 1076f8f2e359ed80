package executor

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/metrics"
)

// outcomeDropped is the outcome label of an attempt whose outcome was not
// recorded: the task ended or was taken over while the attempt ran, or
// the write of the outcome failed and the task is taken over later.
const outcomeDropped = "dropped"

// attemptDurationBuckets are the bounds of the attempt duration histogram,
// in seconds, from a fast echo to an export that runs for hours.
var attemptDurationBuckets = []float64{.005, .025, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200}

// executorMetrics are the metrics of an executor. Their task_type label
// takes only the types the executor serves, and no label holds a tenant
// or a task id.
type executorMetrics struct {
	started   *prometheus.CounterVec
	finished  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	running   *prometheus.GaugeVec
}

// newExecutorMetrics registers the executor's metrics with reg, or finds
// them there when another executor of the process registered them first,
// with the state of the pool's consumer.
func newExecutorMetrics(reg prometheus.Registerer, e *Executor) (*executorMetrics, error) {
	var m executorMetrics
	var err error
	m.started, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace,
		Name:      "tasks_started_total",
		Help:      "Tasks whose first attempt started, by task type.",
	}, []string{"task_type"}))
	if err != nil {
		return nil, fmt.Errorf("register executor metrics: %w", err)
	}
	m.finished, err = metrics.Register(reg, metrics.NewTasksFinished())
	if err != nil {
		return nil, fmt.Errorf("register executor metrics: %w", err)
	}
	m.attempts, err = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace,
		Name:      "attempts_total",
		Help:      "Attempts that ended, by task type and outcome: the kind of the event that recorded the outcome, or dropped.",
	}, []string{"task_type", "outcome"}))
	if err != nil {
		return nil, fmt.Errorf("register executor metrics: %w", err)
	}
	m.durations, err = metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metrics.Namespace,
		Name:      "attempt_duration_seconds",
		Help:      "Time from the started event of an attempt to the record of its outcome, by task type and outcome.",
		Buckets:   attemptDurationBuckets,
	}, []string{"task_type", "outcome"}))
	if err != nil {
		return nil, fmt.Errorf("register executor metrics: %w", err)
	}
	m.running, err = metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metrics.Namespace,
		Name:      "attempts_running",
		Help:      "Attempts whose handler runs now, by task type.",
	}, []string{"task_type"}))
	if err != nil {
		return nil, fmt.Errorf("register executor metrics: %w", err)
	}

	consumer := metrics.Consumer{Stream: e.bus.Names().TasksStream(), Name: ConsumerName(e.cfg.Pool)}
	if _, err := metrics.Register(reg, metrics.NewConsumerCollector(e.bus.JetStream(), 0, consumer)); err != nil {
		return nil, fmt.Errorf("register consumer metrics: %w", err)
	}
	return &m, nil
}

// countWrite counts an event that the executor stored: a started event of
// a first attempt, and a terminal event.
func (m *executorMetrics) countWrite(ev *events.Event) {
	switch {
	case ev.Kind == events.KindStarted && ev.Attempt == 1:
		m.started.WithLabelValues(ev.TaskType).Inc()
	case ev.Kind.Terminal():
		m.finished.WithLabelValues(ev.TaskType, string(ev.Kind)).Inc()
	}
}

// observeAttempt counts an attempt of taskType that ended with outcome,
// the kind of the event that recorded it or "" for none, after d.
func (m *executorMetrics) observeAttempt(taskType string, outcome events.Kind, d time.Duration) {
	label := string(outcome)
	if label == "" {
		label = outcomeDropped
	}
	m.attempts.WithLabelValues(taskType, label).Inc()
	m.durations.WithLabelValues(taskType, label).Observe(d.Seconds())
}
