// Package metrics holds what Handoff's services share for their Prometheus
// metrics: the name prefix, registration that lets services of one process
// share a registry, and a collector of JetStream consumer state.
//
// Services register their metrics with a prometheus.Registerer that the
// caller passes in, never with the global default registry, so tests can
// run several services side by side. docs/operations.md lists every metric.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the first part of every Handoff metric name.
const Namespace = "handoff"

// Register registers c with reg and returns it. When reg already holds a
// collector that describes the same metrics, such as the counter of
// finished tasks that ingest and the executor share in handoff dev,
// Register returns that collector instead, so both services count into
// it. A nil reg returns c unregistered: it counts, and nothing exposes it.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}
