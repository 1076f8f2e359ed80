package notifier_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/services/notifier"
)

// The harness writes every event with this trace context.
const (
	eventTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	eventSpanID      = "00f067aa0ba902b7"
	eventTraceParent = "00-" + eventTraceID + "-" + eventSpanID + "-01"
)

func TestTraceWebhookRequest(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	env := startNotifier(t, func(c *notifier.Config) { c.TracerProvider = tp })
	rcv := newReceiver(t, sequence(http.StatusServiceUnavailable, http.StatusNoContent))

	ev := publishSucceeded(t, env.bus, rcv.URL)
	recs := waitRecords(t, env.bus, ev, 2)

	var spans tracetest.SpanStubs
	require.Eventually(t, func() bool {
		spans = exp.GetSpans()
		return len(spans) == 2
	}, waitFor, tick)
	reqs := rcv.requests()
	require.Len(t, reqs, 2)
	for i, span := range spans {
		require.Equal(t, "deliver succeeded", span.Name)
		require.Equal(t, trace.SpanKindClient, span.SpanKind)
		require.Equal(t, eventTraceID, span.SpanContext.TraceID().String())
		require.Equal(t, eventSpanID, span.Parent.SpanID().String(), "the delivery continues the event's trace")

		want := "00-" + eventTraceID + "-" + span.SpanContext.SpanID().String() + "-01"
		require.Equal(t, want, reqs[i].header.Get("traceparent"), "request %d", i+1)
		require.Equal(t, want, recs[i].event.TraceParent, "the record of attempt %d is a child of its span", i+1)
	}
	require.Equal(t, "Error", spans[0].Status.Code.String(), "a failed attempt marks its span")
	require.Equal(t, "Unset", spans[1].Status.Code.String())
}

func TestTraceNoopSendsEventTrace(t *testing.T) {
	env := startNotifier(t, nil)
	rcv := newReceiver(t, status(http.StatusOK))

	ev := publishSucceeded(t, env.bus, rcv.URL)
	recs := waitRecords(t, env.bus, ev, 1)

	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, eventTraceParent, reqs[0].header.Get("traceparent"), "without a tracer provider the event's own traceparent is sent")
	require.Equal(t, eventTraceParent, recs[0].event.TraceParent)
}
