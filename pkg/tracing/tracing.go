// Package tracing carries W3C trace context between Handoff's services.
// A trace starts at a submit, or continues the caller's traceparent. It
// travels on the CloudEvents traceparent and tracestate extensions of the
// task's events from ingest to the executor's attempts and to the
// notifier, which sends it on the traceparent header of the webhook
// request.
//
// Every service takes an OpenTelemetry [trace.TracerProvider] in its
// config. None means the no-op provider: no span is recorded or exported,
// but a context that holds a remote parent keeps it, so a traceparent that
// arrives on a request or an event is passed on unchanged.
package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/handoff-dev/handoff/events"
)

// ScopePrefix is the start of the instrumentation scope name of every
// Handoff tracer. The component's module path follows it.
const ScopePrefix = "github.com/handoff-dev/handoff/"

// Attribute keys that Handoff sets on its spans. Task input, results and
// secrets never go on a span.
const (
	KeyTaskID   = "handoff.task.id"
	KeyTaskType = "handoff.task.type"
	KeyTenant   = "handoff.tenant"
	KeyAttempt  = "handoff.attempt"
	KeyOutcome  = "handoff.outcome"
	KeyEventID  = "handoff.event.id"
)

// propagator reads and writes the W3C traceparent and tracestate fields
// only: Handoff carries no baggage.
var propagator = propagation.TraceContext{}

// Tracer returns the tracer named ScopePrefix+component from tp, such as
// "github.com/handoff-dev/handoff/services/ingest". A nil tp means the
// no-op provider.
func Tracer(tp trace.TracerProvider, component string) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(ScopePrefix + component)
}

// ContextFromEvent returns ctx with the trace context of ev as the remote
// parent of the spans started from it. When ev carries no valid
// traceparent it returns ctx unchanged.
func ContextFromEvent(ctx context.Context, ev *events.Event) context.Context {
	return propagator.Extract(ctx, eventCarrier{ev})
}

// InjectEvent sets the traceparent and tracestate of ev to the span
// context of ctx. When ctx holds no valid span context it leaves them
// unchanged.
func InjectEvent(ctx context.Context, ev *events.Event) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	ev.TraceParent, ev.TraceState = "", ""
	propagator.Inject(ctx, eventCarrier{ev})
}

// ContextFromHeader returns ctx with the trace context of the traceparent
// and tracestate headers of h as the remote parent. When h carries no
// valid traceparent it returns ctx unchanged.
func ContextFromHeader(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// InjectHeader sets the traceparent and tracestate headers of h to the span
// context of ctx. When ctx holds no valid span context it sets nothing.
func InjectHeader(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// eventCarrier exposes an event's trace context attributes to the
// propagator, under the names of the CloudEvents distributed tracing
// extension.
type eventCarrier struct{ ev *events.Event }

func (c eventCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.ev.TraceParent
	case "tracestate":
		return c.ev.TraceState
	}
	return ""
}

func (c eventCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.ev.TraceParent = value
	case "tracestate":
		c.ev.TraceState = value
	}
}

func (c eventCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }
