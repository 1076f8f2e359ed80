package notifier_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/notifier"
)

func TestMetricsCountDeliveries(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := startNotifier(t, func(c *notifier.Config) {
		c.Metrics = reg
		c.Backoff = c.Backoff[:1]
	})
	flaky := newReceiver(t, sequence(http.StatusServiceUnavailable, http.StatusOK))
	rejecting := newReceiver(t, status(http.StatusBadRequest))
	down := newReceiver(t, status(http.StatusBadGateway))

	ev := publishSucceeded(t, env.bus, flaky.URL)
	waitRecords(t, env.bus, ev, 2)
	ev = publishTask(t, env.bus, rejecting.URL, events.KindFailed, events.Failed{Error: events.TaskError{Code: "handler_error", Message: "boom"}})
	waitRecords(t, env.bus, ev, 1)
	ev = publishSucceeded(t, env.bus, down.URL)
	waitRecords(t, env.bus, ev, 2)
	waitSettled(t, env.bus, ev.Seq)

	expected := `
# HELP handoff_webhook_deliveries_total Webhook delivery attempts, by the kind of the event delivered and the outcome of the attempt.
# TYPE handoff_webhook_deliveries_total counter
handoff_webhook_deliveries_total{kind="failed",outcome="failed"} 1
handoff_webhook_deliveries_total{kind="succeeded",outcome="delivered"} 1
handoff_webhook_deliveries_total{kind="succeeded",outcome="exhausted"} 1
handoff_webhook_deliveries_total{kind="succeeded",outcome="retrying"} 2
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "handoff_webhook_deliveries_total"))
	n, err := testutil.GatherAndCount(reg, "handoff_webhook_delivery_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 4, n, "one histogram per outcome")

	consumers := `
# HELP handoff_consumer_pending_messages Messages that match the consumer's filter and were not yet delivered: the depth of its queue.
# TYPE handoff_consumer_pending_messages gauge
handoff_consumer_pending_messages{consumer="notifier",stream="HANDOFF_TASKS"} 0
handoff_consumer_pending_messages{consumer="notifier-deliveries",stream="HANDOFF_DELIVERIES"} 0
# HELP handoff_consumer_ack_pending_messages Messages delivered and not yet acknowledged: work in progress and messages that wait for a delayed redelivery.
# TYPE handoff_consumer_ack_pending_messages gauge
handoff_consumer_ack_pending_messages{consumer="notifier",stream="HANDOFF_TASKS"} 0
handoff_consumer_ack_pending_messages{consumer="notifier-deliveries",stream="HANDOFF_DELIVERIES"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(consumers), "handoff_consumer_pending_messages", "handoff_consumer_ack_pending_messages"))
}

func TestMetricsRetryWaitsInQueue(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := startNotifier(t, func(c *notifier.Config) {
		c.Metrics = reg
		c.Backoff = []time.Duration{time.Hour}
	})
	down := newReceiver(t, status(http.StatusServiceUnavailable))

	ev := publishSucceeded(t, env.bus, down.URL)
	waitRecords(t, env.bus, ev, 1)

	expected := `
# HELP handoff_consumer_ack_pending_messages Messages delivered and not yet acknowledged: work in progress and messages that wait for a delayed redelivery.
# TYPE handoff_consumer_ack_pending_messages gauge
handoff_consumer_ack_pending_messages{consumer="notifier",stream="HANDOFF_TASKS"} 0
handoff_consumer_ack_pending_messages{consumer="notifier-deliveries",stream="HANDOFF_DELIVERIES"} 1
`
	require.Eventually(t, func() bool {
		return testutil.GatherAndCompare(reg, strings.NewReader(expected), "handoff_consumer_ack_pending_messages") == nil
	}, waitFor, tick, "the job that waits for its retry is pending acknowledgement")
}
