package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultConsumerInfoTimeout bounds the consumer info requests of one
// scrape of a [ConsumerCollector].
const DefaultConsumerInfoTimeout = 2 * time.Second

// Consumer names a durable JetStream consumer.
type Consumer struct {
	Stream string
	Name   string
}

// ConsumerCollector reports the state of durable JetStream consumers from
// one consumer info request each per scrape:
//
//   - handoff_consumer_pending_messages: messages of the consumer's filter
//     not yet delivered, the depth of its queue (NumPending);
//   - handoff_consumer_ack_pending_messages: messages delivered and not yet
//     acknowledged, which includes the work in progress and the messages
//     that wait for a delayed redelivery (NumAckPending);
//   - handoff_consumer_redelivered_messages: of those, the ones delivered
//     more than once (NumRedelivered);
//   - handoff_consumer_info_failures_total: scrapes whose info request
//     failed or timed out, which report none of the gauges above.
//
// Each carries the labels stream and consumer. Every instance that shares
// a consumer reports the same values, so aggregate with max, not sum.
type ConsumerCollector struct {
	js        jetstream.JetStream
	timeout   time.Duration
	consumers []consumerDescs
}

type consumerDescs struct {
	Consumer
	pending    *prometheus.Desc
	ackPending *prometheus.Desc
	redeliver  *prometheus.Desc
	failures   *prometheus.Desc
	failed     atomic.Uint64
}

// NewConsumerCollector returns a collector of consumers, which reads them
// through js. A timeout of zero means DefaultConsumerInfoTimeout.
func NewConsumerCollector(js jetstream.JetStream, timeout time.Duration, consumers ...Consumer) *ConsumerCollector {
	if timeout <= 0 {
		timeout = DefaultConsumerInfoTimeout
	}
	c := &ConsumerCollector{js: js, timeout: timeout, consumers: make([]consumerDescs, len(consumers))}
	for i, cons := range consumers {
		labels := prometheus.Labels{"stream": cons.Stream, "consumer": cons.Name}
		c.consumers[i] = consumerDescs{
			Consumer: cons,
			pending: prometheus.NewDesc(Namespace+"_consumer_pending_messages",
				"Messages that match the consumer's filter and were not yet delivered: the depth of its queue.", nil, labels),
			ackPending: prometheus.NewDesc(Namespace+"_consumer_ack_pending_messages",
				"Messages delivered and not yet acknowledged: work in progress and messages that wait for a delayed redelivery.", nil, labels),
			redeliver: prometheus.NewDesc(Namespace+"_consumer_redelivered_messages",
				"Messages not yet acknowledged that were delivered more than once.", nil, labels),
			failures: prometheus.NewDesc(Namespace+"_consumer_info_failures_total",
				"Scrapes whose consumer info request failed, so they reported no consumer state.", nil, labels),
		}
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *ConsumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for i := range c.consumers {
		d := &c.consumers[i]
		ch <- d.pending
		ch <- d.ackPending
		ch <- d.redeliver
		ch <- d.failures
	}
}

// Collect implements prometheus.Collector. It requests the info of every
// consumer, all within the collector's timeout.
func (c *ConsumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for i := range c.consumers {
		d := &c.consumers[i]
		info, err := c.info(ctx, d.Consumer)
		if err != nil {
			d.failed.Add(1)
		} else {
			ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, float64(info.NumPending))
			ch <- prometheus.MustNewConstMetric(d.ackPending, prometheus.GaugeValue, float64(info.NumAckPending))
			ch <- prometheus.MustNewConstMetric(d.redeliver, prometheus.GaugeValue, float64(info.NumRedelivered))
		}
		ch <- prometheus.MustNewConstMetric(d.failures, prometheus.CounterValue, float64(d.failed.Load()))
	}
}

func (c *ConsumerCollector) info(ctx context.Context, cons Consumer) (*jetstream.ConsumerInfo, error) {
	consumer, err := c.js.Consumer(ctx, cons.Stream, cons.Name)
	if err != nil {
		return nil, err
	}
	return consumer.CachedInfo(), nil
}
