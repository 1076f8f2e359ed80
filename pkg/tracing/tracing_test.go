package tracing_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	callerTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
)

func newProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

func TestEventRoundTrip(t *testing.T) {
	tp, exp := newProvider(t)
	tracer := tracing.Tracer(tp, "test")

	in := events.Event{TraceParent: callerTraceParent, TraceState: "vendor=1"}
	ctx := tracing.ContextFromEvent(context.Background(), &in)
	parent := trace.SpanContextFromContext(ctx)
	require.True(t, parent.IsRemote())
	require.Equal(t, callerTraceID, parent.TraceID().String())

	ctx, span := tracer.Start(ctx, "attempt", trace.WithAttributes(attribute.String(tracing.KeyTaskID, "t1")))
	out := events.Event{TraceParent: "stale", TraceState: "stale=1"}
	tracing.InjectEvent(ctx, &out)
	span.End()

	sc := span.SpanContext()
	require.Equal(t, "00-"+callerTraceID+"-"+sc.SpanID().String()+"-01", out.TraceParent)
	require.Equal(t, "vendor=1", out.TraceState, "the tracestate of the parent travels on")

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	require.Equal(t, callerSpanID, spans[0].Parent.SpanID().String())
	require.Equal(t, "github.com/handoff-dev/handoff/test", spans[0].InstrumentationScope.Name)
}

func TestInjectEventWithoutSpan(t *testing.T) {
	ev := events.Event{TraceParent: callerTraceParent}
	tracing.InjectEvent(context.Background(), &ev)
	require.Equal(t, callerTraceParent, ev.TraceParent, "a context without a span leaves the event alone")

	var empty events.Event
	tracing.InjectEvent(context.Background(), &empty)
	require.Empty(t, empty.TraceParent)
	require.Empty(t, empty.TraceState)
}

func TestContextFromInvalidEvent(t *testing.T) {
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		ev := events.Event{TraceParent: tp}
		ctx := tracing.ContextFromEvent(context.Background(), &ev)
		require.False(t, trace.SpanContextFromContext(ctx).IsValid(), "traceparent %q", tp)
	}
}

func TestNoopProviderPassesParentOn(t *testing.T) {
	tracer := tracing.Tracer(nil, "test")
	in := events.Event{TraceParent: callerTraceParent}
	ctx, span := tracer.Start(tracing.ContextFromEvent(context.Background(), &in), "attempt")
	defer span.End()
	require.False(t, span.IsRecording())

	var out events.Event
	tracing.InjectEvent(ctx, &out)
	require.Equal(t, callerTraceParent, out.TraceParent)

	ctx, span = tracer.Start(context.Background(), "root")
	defer span.End()
	tracing.InjectEvent(ctx, &out)
	require.Equal(t, callerTraceParent, out.TraceParent, "the no-op provider starts no trace of its own")
}

func TestHeaderRoundTrip(t *testing.T) {
	tp, _ := newProvider(t)
	in := http.Header{}
	in.Set("Traceparent", callerTraceParent)
	ctx, span := tracing.Tracer(tp, "test").Start(tracing.ContextFromHeader(context.Background(), in), "request")
	defer span.End()

	out := http.Header{}
	tracing.InjectHeader(ctx, out)
	require.Equal(t, "00-"+callerTraceID+"-"+span.SpanContext().SpanID().String()+"-01", out.Get("traceparent"))

	empty := http.Header{}
	tracing.InjectHeader(context.Background(), empty)
	require.Empty(t, empty)
}
