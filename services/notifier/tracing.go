package notifier

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// tracerComponent names the notifier's tracer after this module.
const tracerComponent = "services/notifier"

// startDelivery starts the span of one attempt to deliver ev to ep. The
// span continues the trace of ev, usually from the span of the executor's
// attempt that wrote it. It is the parent of the webhook request and of
// the attempt's record. Its attributes name the endpoint by origin only,
// because paths and queries may contain tokens.
func (n *Notifier) startDelivery(ev *events.Event, ep Endpoint, attempt int) (context.Context, trace.Span) {
	ctx := tracing.ContextFromEvent(n.work, ev)
	attrs := []attribute.KeyValue{
		attribute.String(tracing.KeyTenant, ev.Tenant),
		attribute.String(tracing.KeyTaskID, ev.TaskID),
		attribute.String(tracing.KeyTaskType, ev.TaskType),
		attribute.String(tracing.KeyEventID, ev.ID),
		attribute.Int(tracing.KeyAttempt, attempt),
		attribute.String("handoff.endpoint", ep.Origin()),
		semconv.HTTPRequestMethodKey.String("POST"),
	}
	if ep.SubscriptionID != "" {
		attrs = append(attrs, attribute.String("handoff.subscription.id", ep.SubscriptionID))
	}
	return n.tracer.Start(ctx, "deliver "+string(ev.Kind), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endDelivery records the result of the attempt on its span and ends it.
// An attempt that did not deliver marks the span as an error.
func endDelivery(span trace.Span, res attemptResult, outcome string) {
	span.SetAttributes(attribute.String(tracing.KeyOutcome, outcome))
	if res.StatusCode != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(res.StatusCode))
	}
	if outcome != outcomeDelivered {
		span.SetStatus(codes.Error, describe(res))
	}
	span.End()
}
