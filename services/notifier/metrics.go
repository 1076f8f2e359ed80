package notifier

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/metrics"
)

// Outcomes of a delivery attempt, the values of the outcome label.
const (
	// outcomeDelivered: the receiver responded with 2xx.
	outcomeDelivered = "delivered"
	// outcomeRetrying: the attempt failed and a retry is scheduled.
	outcomeRetrying = "retrying"
	// outcomeExhausted: the attempt failed in a way a retry may fix, but
	// no retries remain.
	outcomeExhausted = "exhausted"
	// outcomeFailed: the attempt failed in a way no retry fixes, such as a
	// 4xx response or an address that the guard rejects.
	outcomeFailed = "failed"
	// outcomeInterrupted: the notifier shut down during the attempt, which
	// another instance makes again.
	outcomeInterrupted = "interrupted"
)

// deliveryDurationBuckets are the bounds of the delivery duration
// histogram, in seconds. They reach the default attempt timeout of 15s.
var deliveryDurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60}

// notifierMetrics are the metrics of a notifier. No label holds a
// tenant, a task id or an endpoint, whose values are unbounded.
type notifierMetrics struct {
	deliveries *prometheus.CounterVec
	durations  *prometheus.HistogramVec
}

// newNotifierMetrics registers the notifier's metrics with reg, or finds
// them there when another notifier of the process registered them first,
// with the state of its two consumers.
func newNotifierMetrics(reg prometheus.Registerer, n *Notifier) (*notifierMetrics, error) {
	deliveries, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace,
		Name:      "webhook_deliveries_total",
		Help:      "Webhook delivery attempts, by the kind of the event delivered and the outcome of the attempt.",
	}, []string{"kind", "outcome"}))
	if err != nil {
		return nil, fmt.Errorf("register notifier metrics: %w", err)
	}
	durations, err := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metrics.Namespace,
		Name:      "webhook_delivery_duration_seconds",
		Help:      "Time from the start of a webhook request to the end of its response or its failure, by outcome.",
		Buckets:   deliveryDurationBuckets,
	}, []string{"outcome"}))
	if err != nil {
		return nil, fmt.Errorf("register notifier metrics: %w", err)
	}

	names := n.bus.Names()
	consumers := metrics.NewConsumerCollector(n.bus.JetStream(), 0,
		metrics.Consumer{Stream: names.TasksStream(), Name: ConsumerName},
		metrics.Consumer{Stream: names.DeliveriesStream(), Name: DeliveryConsumerName})
	if _, err := metrics.Register(reg, consumers); err != nil {
		return nil, fmt.Errorf("register consumer metrics: %w", err)
	}
	return &notifierMetrics{deliveries: deliveries, durations: durations}, nil
}

// observeDelivery counts one attempt to deliver an event of kind.
func (m *notifierMetrics) observeDelivery(kind events.Kind, outcome string, d time.Duration) {
	m.deliveries.WithLabelValues(string(kind), outcome).Inc()
	m.durations.WithLabelValues(outcome).Observe(d.Seconds())
}
