package executor

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// tracerComponent names the executor's tracer after this module.
const tracerComponent = "services/executor"

// startAttemptSpan starts the span of attempt number of task. ctx holds
// the trace context of the message that led to the attempt, usually the
// submitted event, so the span continues the trace of the submit. The
// span is the parent of the events the attempt writes, from its started
// event on.
func (e *Executor) startAttemptSpan(ctx context.Context, task *events.Task, number int) trace.Span {
	_, span := e.tracer.Start(ctx, "attempt "+task.Type,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String(tracing.KeyTenant, task.Tenant),
			attribute.String(tracing.KeyTaskID, task.ID),
			attribute.String(tracing.KeyTaskType, task.Type),
			attribute.Int(tracing.KeyAttempt, number),
			attribute.String("handoff.executor", e.cfg.Instance)))
	return span
}

// traced returns a context without deadline that carries the attempt's
// span, for the reads and writes of the attempt.
func (a *attempt) traced() context.Context {
	return trace.ContextWithSpan(context.Background(), a.span)
}

// endSpan records the outcome of the attempt on its span and ends it. An
// attempt that failed the task marks the span as an error.
func (a *attempt) endSpan() {
	outcome := string(a.outcome)
	if outcome == "" {
		outcome = outcomeDropped
	}
	a.span.SetAttributes(attribute.String(tracing.KeyOutcome, outcome))
	if a.outcome == events.KindFailed {
		a.span.SetStatus(codes.Error, outcome)
	}
	a.span.End()
}
