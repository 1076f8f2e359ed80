package executor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceParent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// submitTraced publishes a submission of taskType whose event carries
// traceParent, and returns the task id.
func submitTraced(t *testing.T, b *bus.Bus, taskType, traceParent string, sub events.Submission) string {
	t.Helper()
	id := events.NewID()
	ev, err := events.NewEvent(events.KindSubmitted, testTenant, id, taskType, "/test", sub)
	require.NoError(t, err)
	ev.TraceParent = traceParent
	_, err = b.Append(context.Background(), &ev, bus.AppendOptions{TTL: time.Hour})
	require.NoError(t, err)
	return id
}

// tracedConfig returns a test config whose tracer provider records every
// span in the returned exporter.
func tracedConfig(t *testing.T) (Config, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := testConfig(nil)
	cfg.TracerProvider = tp
	return cfg, exp
}

// spanAttributes returns the attributes of a span as a map.
func spanAttributes(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTraceAttemptContinuesSubmit(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg, exp := tracedConfig(t)

	handlerSpan := make(chan trace.SpanContext, 1)
	h := func(ctx context.Context, task *Task) (any, error) {
		handlerSpan <- trace.SpanContextFromContext(ctx)
		task.Progress(50, "half")
		return "done", nil
	}
	tb.start(t, tb.bus, cfg, map[string]Handler{"traced": h})

	id := submitTraced(t, tb.bus, "traced", callerTraceParent, input(`{}`))
	waitTerminal(t, tb.bus, id)

	var spans tracetest.SpanStubs
	require.Eventually(t, func() bool {
		spans = exp.GetSpans()
		return len(spans) == 1
	}, waitTimeout, pollEvery)
	span := spans[0]
	require.Equal(t, "attempt traced", span.Name)
	require.Equal(t, callerTraceID, span.SpanContext.TraceID().String())
	require.Equal(t, callerSpanID, span.Parent.SpanID().String(), "the attempt is a child of the submit")
	attrs := spanAttributes(span)
	require.Equal(t, id, attrs["handoff.task.id"].AsString())
	require.Equal(t, int64(1), attrs["handoff.attempt"].AsInt64())
	require.Equal(t, "succeeded", attrs["handoff.outcome"].AsString())
	require.Equal(t, span.SpanContext.SpanID(), (<-handlerSpan).SpanID(), "the handler's context carries the attempt's span")

	want := "00-" + callerTraceID + "-" + span.SpanContext.SpanID().String() + "-01"
	for _, ev := range history(t, tb.bus, id)[1:] {
		require.Equal(t, want, ev.TraceParent, "%s event", ev.Kind)
	}
}

func TestTraceSpanPerAttempt(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg, exp := tracedConfig(t)
	tb.start(t, tb.bus, cfg, map[string]Handler{"broken": func(ctx context.Context, task *Task) (any, error) { return nil, errBoom }})

	id := submitTraced(t, tb.bus, "broken", callerTraceParent, events.Submission{Input: []byte(`{}`), MaxAttempts: 2})
	require.Equal(t, events.StatusFailed, waitTerminal(t, tb.bus, id).Status)

	var spans tracetest.SpanStubs
	require.Eventually(t, func() bool {
		spans = exp.GetSpans()
		return len(spans) == 2
	}, waitTimeout, pollEvery)
	for i, outcome := range []string{"retrying", "failed"} {
		require.Equal(t, callerTraceID, spans[i].SpanContext.TraceID().String())
		require.Equal(t, outcome, spanAttributes(spans[i])["handoff.outcome"].AsString())
	}
	require.Equal(t, "Error", spans[1].Status.Code.String(), "a failed task marks its last attempt as an error")
}

func TestTraceHTTPHandler(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg, exp := tracedConfig(t)
	got := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok": true}`))
	}))
	t.Cleanup(upstream.Close)
	cfg.Types = map[string]TypeConfig{"legacy": {Handler: HandlerHTTP, URL: upstream.URL}}
	tb.start(t, tb.bus, cfg, nil)

	id := submitTraced(t, tb.bus, "legacy", callerTraceParent, input(`{}`))
	require.Equal(t, events.StatusSucceeded, waitTerminal(t, tb.bus, id).Status)

	var spans tracetest.SpanStubs
	require.Eventually(t, func() bool {
		spans = exp.GetSpans()
		return len(spans) == 1
	}, waitTimeout, pollEvery)
	require.Equal(t, "00-"+callerTraceID+"-"+spans[0].SpanContext.SpanID().String()+"-01", <-got)
}

func TestTraceNoopPassesSubmitOn(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"plain": func(ctx context.Context, task *Task) (any, error) { return "ok", nil }})

	id := submitTraced(t, tb.bus, "plain", callerTraceParent, input(`{}`))
	waitTerminal(t, tb.bus, id)
	for _, ev := range history(t, tb.bus, id) {
		require.Equal(t, callerTraceParent, ev.TraceParent, "without a tracer provider the %s event carries the submit's traceparent", ev.Kind)
	}

	id = submit(t, tb.bus, "plain", input(`{}`))
	waitTerminal(t, tb.bus, id)
	for _, ev := range history(t, tb.bus, id) {
		require.Empty(t, ev.TraceParent)
	}
}
