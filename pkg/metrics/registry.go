package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// NewProcessRegistry returns a registry for the metrics of a whole
// process, such as a service binary: it holds the Go runtime metrics
// (go_*) and, where the operating system provides them, the process's CPU,
// memory and file descriptors (process_*).
func NewProcessRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler returns the handler of GET /metrics, which serves the metrics of
// g in the Prometheus text format or, when the request's Accept header
// asks for it, in OpenMetrics. A collector that fails is logged to log
// and left out, and the other metrics are still served.
func Handler(g prometheus.Gatherer, log *zap.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(log.Named("metrics")),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}
