package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/handoff-dev/handoff/pkg/metrics"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "things_total", Help: "Things.",
	}, []string{"kind"})
}

func TestRegisterSharesExisting(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := metrics.Register(reg, newCounter())
	require.NoError(t, err)
	second, err := metrics.Register(reg, newCounter())
	require.NoError(t, err)
	require.Same(t, first, second, "the second service counts into the first one's collector")

	second.WithLabelValues("a").Inc()
	require.Equal(t, 1.0, testutil.ToFloat64(first.WithLabelValues("a")))
}

func TestRegisterConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := metrics.Register(reg, newCounter())
	require.NoError(t, err)

	other := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "things_total", Help: "Other help.",
	}, []string{"kind"})
	_, err = metrics.Register(reg, other)
	require.Error(t, err, "a collector that describes the metric differently is an error")
}

func TestRegisterNil(t *testing.T) {
	c, err := metrics.Register(nil, newCounter())
	require.NoError(t, err)
	c.WithLabelValues("a").Inc()
	require.Equal(t, 1.0, testutil.ToFloat64(c.WithLabelValues("a")))
}

func TestConsumerCollector(t *testing.T) {
	ns := natstest.Start(t)
	b := ns.Bus(t)
	js := b.JetStream()
	ctx := context.Background()
	stream := b.Names().TasksStream()

	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       "work",
		FilterSubject: "handoff.task.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "handoff.task.acme.t1.submitted.echo", []byte("{}"))
	require.NoError(t, err)

	// The only message taken and handed back, then taken again, so it
	// counts as pending acknowledgement and as redelivered. The two
	// messages published after it wait in the queue.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	for msg := range batch.Messages() {
		require.NoError(t, msg.Nak())
	}
	require.Eventually(t, func() bool {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return false
		}
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err == nil && md.NumDelivered > 1 {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	for range 2 {
		_, err := js.Publish(ctx, "handoff.task.acme.t1.submitted.echo", []byte("{}"))
		require.NoError(t, err)
	}

	collector := metrics.NewConsumerCollector(js, 0,
		metrics.Consumer{Stream: stream, Name: "work"},
		metrics.Consumer{Stream: stream, Name: "missing"})
	expected := `
# HELP handoff_consumer_ack_pending_messages Messages delivered and not yet acknowledged: work in progress and messages that wait for a delayed redelivery.
# TYPE handoff_consumer_ack_pending_messages gauge
handoff_consumer_ack_pending_messages{consumer="work",stream="HANDOFF_TASKS"} 1
# HELP handoff_consumer_info_failures_total Scrapes whose consumer info request failed, so they reported no consumer state.
# TYPE handoff_consumer_info_failures_total counter
handoff_consumer_info_failures_total{consumer="missing",stream="HANDOFF_TASKS"} 1
handoff_consumer_info_failures_total{consumer="work",stream="HANDOFF_TASKS"} 0
# HELP handoff_consumer_pending_messages Messages that match the consumer's filter and were not yet delivered: the depth of its queue.
# TYPE handoff_consumer_pending_messages gauge
handoff_consumer_pending_messages{consumer="work",stream="HANDOFF_TASKS"} 2
# HELP handoff_consumer_redelivered_messages Messages not yet acknowledged that were delivered more than once.
# TYPE handoff_consumer_redelivered_messages gauge
handoff_consumer_redelivered_messages{consumer="work",stream="HANDOFF_TASKS"} 1
`
	require.NoError(t, testutil.CollectAndCompare(collector, strings.NewReader(expected)))
}

func TestConsumerCollectorsShareRegistry(t *testing.T) {
	ns := natstest.Start(t)
	b := ns.Bus(t)
	reg := prometheus.NewRegistry()
	stream := b.Names().TasksStream()

	_, err := metrics.Register(reg, metrics.NewConsumerCollector(b.JetStream(), 0, metrics.Consumer{Stream: stream, Name: "a"}))
	require.NoError(t, err)
	_, err = metrics.Register(reg, metrics.NewConsumerCollector(b.JetStream(), 0, metrics.Consumer{Stream: stream, Name: "b"}))
	require.NoError(t, err, "collectors of different consumers fit in one registry")
	_, err = metrics.Register(reg, metrics.NewConsumerCollector(b.JetStream(), 0, metrics.Consumer{Stream: stream, Name: "a"}))
	require.NoError(t, err, "a second collector of the same consumer is the first one")

	n, err := testutil.GatherAndCount(reg, "handoff_consumer_info_failures_total")
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

func TestProcessRegistry(t *testing.T) {
	reg := metrics.NewProcessRegistry()
	n, err := testutil.GatherAndCount(reg, "go_goroutines")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestHandlerServesText(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := metrics.Register(reg, newCounter())
	require.NoError(t, err)
	c.WithLabelValues("a").Inc()

	srv := httptest.NewServer(metrics.Handler(reg, zaptest.NewLogger(t)))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `handoff_things_total{kind="a"} 1`)
}
