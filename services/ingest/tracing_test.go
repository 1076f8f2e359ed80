package ingest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceParent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// setupTraced serves ingest with a tracer provider that records every span
// in the returned exporter.
func setupTraced(t *testing.T) (*bundle, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return setup(t, func(c *ingest.Config) { c.TracerProvider = tp }), exp
}

// firstEvent returns the first event of the task.
func (b *bundle) firstEvent(t *testing.T, id string) events.Event {
	t.Helper()
	te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, id, 0)
	require.NoError(t, err)
	require.NotEmpty(t, te.Events)
	return te.Events[0]
}

// attributes returns the attributes of a span as a map.
func attributes(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTraceContinuesCaller(t *testing.T) {
	b, exp := setupTraced(t)

	id := b.submit(t, `{"type": "echo"}`, "traceparent", callerTraceParent, "tracestate", "vendor=1").view(t).ID

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	span := spans[0]
	require.Equal(t, "POST /v1/tasks", span.Name)
	require.Equal(t, trace.SpanKindServer, span.SpanKind)
	require.Equal(t, callerTraceID, span.SpanContext.TraceID().String())
	require.Equal(t, callerSpanID, span.Parent.SpanID().String())
	require.True(t, span.Parent.IsRemote())
	attrs := attributes(span)
	require.Equal(t, id, attrs["handoff.task.id"].AsString())
	require.Equal(t, "echo", attrs["handoff.task.type"].AsString())
	require.Equal(t, "/v1/tasks", attrs["http.route"].AsString())
	require.Equal(t, int64(http.StatusAccepted), attrs["http.response.status_code"].AsInt64())

	ev := b.firstEvent(t, id)
	require.Equal(t, "00-"+callerTraceID+"-"+span.SpanContext.SpanID().String()+"-01", ev.TraceParent, "the event's parent is the request's span")
	require.Equal(t, "vendor=1", ev.TraceState)
}

func TestTraceStartsAtSubmit(t *testing.T) {
	b, exp := setupTraced(t)

	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	require.False(t, spans[0].Parent.IsValid(), "a request without traceparent starts a trace")
	sc := spans[0].SpanContext
	require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", b.firstEvent(t, id).TraceParent)
}

func TestTraceLifecycleRequest(t *testing.T) {
	b, exp := setupTraced(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	const cancelTraceParent = "00-11111111111111111111111111111111-2222222222222222-01"
	resp := b.do(t, b.request(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", []byte(`{}`), "Content-Type", "application/json", "traceparent", cancelTraceParent))
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)

	te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, id, 0)
	require.NoError(t, err)
	require.Len(t, te.Events, 2)
	cancelled := te.Events[1]
	require.Equal(t, events.KindCancelled, cancelled.Kind)

	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	require.Equal(t, "POST /v1/tasks/{id}/cancel", spans[1].Name)
	require.Equal(t, "00-11111111111111111111111111111111-"+spans[1].SpanContext.SpanID().String()+"-01", cancelled.TraceParent)
}

func TestTraceSkipsOperations(t *testing.T) {
	b, exp := setupTraced(t)
	b.get(t, "/healthz")
	b.get(t, "/metrics")
	require.Empty(t, exp.GetSpans(), "probes and scrapes make no spans")
}

func TestTraceNoopPassesCallerOn(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`, "traceparent", callerTraceParent).view(t).ID
	require.Equal(t, callerTraceParent, b.firstEvent(t, id).TraceParent, "without a tracer provider the caller's traceparent is stored as sent")

	id = b.submit(t, `{"type": "echo"}`).view(t).ID
	require.Empty(t, b.firstEvent(t, id).TraceParent)
}
