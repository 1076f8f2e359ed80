package executor

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestMetricsCountAttempts(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(nil)
	cfg.Metrics = reg

	var calls atomic.Int32
	flaky := func(ctx context.Context, task *Task) (any, error) {
		if calls.Add(1) == 1 {
			return nil, errBoom
		}
		return "done", nil
	}
	fail := func(ctx context.Context, task *Task) (any, error) { return nil, Permanent(errBoom) }
	tb.start(t, tb.bus, cfg, map[string]Handler{"flaky": flaky, "broken": fail})

	waitTerminal(t, tb.bus, submit(t, tb.bus, "flaky", input(`{}`)))
	waitTerminal(t, tb.bus, submit(t, tb.bus, "broken", input(`{}`)))

	expected := `
# HELP handoff_attempts_total Attempts that ended, by task type and outcome: the kind of the event that recorded the outcome, or dropped.
# TYPE handoff_attempts_total counter
handoff_attempts_total{outcome="failed",task_type="broken"} 1
handoff_attempts_total{outcome="retrying",task_type="flaky"} 1
handoff_attempts_total{outcome="succeeded",task_type="flaky"} 1
# HELP handoff_attempts_running Attempts whose handler runs now, by task type.
# TYPE handoff_attempts_running gauge
handoff_attempts_running{task_type="broken"} 0
handoff_attempts_running{task_type="flaky"} 0
# HELP handoff_tasks_finished_total Tasks that ended, by task type and terminal status, counted by the service that wrote the terminal event.
# TYPE handoff_tasks_finished_total counter
handoff_tasks_finished_total{outcome="failed",task_type="broken"} 1
handoff_tasks_finished_total{outcome="succeeded",task_type="flaky"} 1
# HELP handoff_tasks_started_total Tasks whose first attempt started, by task type.
# TYPE handoff_tasks_started_total counter
handoff_tasks_started_total{task_type="broken"} 1
handoff_tasks_started_total{task_type="flaky"} 1
`
	// The outcome is counted right after its event is written, so poll.
	require.Eventually(t, func() bool {
		return testutil.GatherAndCompare(reg, strings.NewReader(expected),
			"handoff_attempts_total", "handoff_attempts_running", "handoff_tasks_finished_total", "handoff_tasks_started_total") == nil
	}, waitTimeout, pollEvery)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"handoff_attempts_total", "handoff_attempts_running", "handoff_tasks_finished_total", "handoff_tasks_started_total"))

	n, err := testutil.GatherAndCount(reg, "handoff_attempt_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 3, n, "one histogram per task type and outcome")
}

func TestMetricsConsumerState(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(nil)
	cfg.Metrics = reg

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	blocked := func(ctx context.Context, task *Task) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	}
	cfg.Concurrency = 1
	tb.start(t, tb.bus, cfg, map[string]Handler{"blocked": blocked})
	for range 3 {
		submit(t, tb.bus, "blocked", input(`{}`))
	}

	// One task runs and the other two wait in the pool's queue.
	expected := `
# HELP handoff_consumer_ack_pending_messages Messages delivered and not yet acknowledged: work in progress and messages that wait for a delayed redelivery.
# TYPE handoff_consumer_ack_pending_messages gauge
handoff_consumer_ack_pending_messages{consumer="executor-test",stream="HANDOFF_TASKS"} 1
# HELP handoff_consumer_pending_messages Messages that match the consumer's filter and were not yet delivered: the depth of its queue.
# TYPE handoff_consumer_pending_messages gauge
handoff_consumer_pending_messages{consumer="executor-test",stream="HANDOFF_TASKS"} 2
# HELP handoff_attempts_running Attempts whose handler runs now, by task type.
# TYPE handoff_attempts_running gauge
handoff_attempts_running{task_type="blocked"} 1
`
	names := []string{"handoff_consumer_ack_pending_messages", "handoff_consumer_pending_messages", "handoff_attempts_running"}
	require.Eventually(t, func() bool {
		return testutil.GatherAndCompare(reg, strings.NewReader(expected), names...) == nil
	}, waitTimeout, pollEvery)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), names...))
}

func TestMetricsSharedRegistry(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(nil)
	cfg.Metrics = reg
	echo := func(ctx context.Context, task *Task) (any, error) { return "ok", nil }

	tb.start(t, tb.bus, cfg, map[string]Handler{"echo.go": echo})
	cfg.Instance = "e2"
	tb.start(t, tb.connect(t), cfg, map[string]Handler{"echo.go": echo})

	for range 4 {
		waitTerminal(t, tb.bus, submit(t, tb.bus, "echo.go", input(`{}`)))
	}
	require.Eventually(t, func() bool {
		return sumCounter(t, reg, "handoff_tasks_finished_total") == 4
	}, waitTimeout, pollEvery, "two executors of one pool count into one registry")
}

// sumCounter returns the sum of every series of the counter name in reg.
func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
