package observability

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The trace context of the agent that submits the task.
const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceParent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// spanNamed returns the one span called name.
func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q", name)
	return found[0]
}

func TestTraceSpansWholePath(t *testing.T) {
	s := startStack(t, stackOptions{})
	rcv := newReceiver(t, http.StatusOK)

	id := s.submit(t, map[string]any{
		"type":    "echo",
		"input":   map[string]any{"message": "hello"},
		"webhook": map[string]any{"url": rcv.URL + "/hook"},
	}, "traceparent", callerTraceParent)

	// The delivery span ends after the attempt is recorded, a moment
	// after the receiver got the request.
	var spans tracetest.SpanStubs
	require.Eventually(t, func() bool {
		spans = s.exporter.GetSpans()
		return len(rcv.received()) == 1 && len(spans) == 3
	}, waitFor, tick, "one request and three spans")

	t.Logf("trace of task %s:", id)
	for _, span := range spans {
		t.Logf("  %-28s %-9s trace %s span %s parent %s", span.Name, span.SpanKind, span.SpanContext.TraceID(), span.SpanContext.SpanID(), span.Parent.SpanID())
	}
	header := rcv.received()[0].Get("traceparent")
	t.Logf("  webhook request traceparent: %s", header)

	for _, span := range spans {
		require.Equal(t, callerTraceID, span.SpanContext.TraceID().String(), "span %s is in the caller's trace", span.Name)
	}
	submit := spanNamed(t, spans, "POST /v1/tasks")
	attempt := spanNamed(t, spans, "attempt echo")
	delivery := spanNamed(t, spans, "deliver succeeded")

	require.Equal(t, trace.SpanKindServer, submit.SpanKind)
	require.Equal(t, callerSpanID, submit.Parent.SpanID().String(), "ingest continues the caller's span")
	require.Equal(t, submit.SpanContext.SpanID(), attempt.Parent.SpanID(), "the attempt continues the submit")
	require.Equal(t, attempt.SpanContext.SpanID(), delivery.Parent.SpanID(), "the delivery continues the attempt")
	require.Equal(t, "00-"+callerTraceID+"-"+delivery.SpanContext.SpanID().String()+"-01", header, "the receiver continues the delivery")
}
