package otlp

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// ShutdownTimeout bounds the flush of the spans still buffered when a
// binary stops.
const ShutdownTimeout = 5 * time.Second

// Setup returns the tracer provider of a binary's --otlp-endpoint flag
// and a function that flushes and stops it at exit. An empty endpoint
// returns a nil provider, which the services take as the no-op one, and a
// stop function that does nothing. A failed flush is logged to log.
func Setup(ctx context.Context, endpoint, service string, log *zap.Logger) (trace.TracerProvider, func(), error) {
	if endpoint == "" {
		return nil, func() {}, nil
	}
	tp, err := NewTracerProvider(ctx, endpoint, service)
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("sending the last spans to the OTLP endpoint failed", zap.Error(err))
		}
	}
	return tp, stop, nil
}
