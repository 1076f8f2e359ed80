package ingest

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/pkg/tracing"
)

// tracerComponent names the server's tracer after this module.
const tracerComponent = "services/ingest"

// router finds the pattern that serves a request, as http.ServeMux does.
type router interface {
	Handler(r *http.Request) (h http.Handler, pattern string)
}

// instrument counts every request by the route pattern that mux matches,
// and runs each API request, those under /v1/, in a server span. The span
// continues the caller's traceparent header when it has one, so the task
// events that the request writes carry the caller's trace.
func (s *Server) instrument(mux router, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := routeLabel(mux, r)
		method := methodLabel(r.Method)
		rec := &statusRecorder{ResponseWriter: w}

		var span trace.Span
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			ctx := tracing.ContextFromHeader(r.Context(), r.Header)
			ctx, span = s.tracer.Start(ctx, method+" "+route,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route)))
			r = r.WithContext(ctx)
		}

		defer func() {
			code := rec.status
			if code == 0 {
				// net/http responds 200 for a handler that wrote nothing.
				code = http.StatusOK
			}
			s.metrics.observeRequest(route, method, code, time.Since(start))
			if span != nil {
				span.SetAttributes(semconv.HTTPResponseStatusCode(code))
				if code >= http.StatusInternalServerError {
					span.SetStatus(codes.Error, http.StatusText(code))
				}
				span.End()
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeLabel returns the path of the pattern that serves r, such as
// /v1/tasks/{id}, so that the label has one value per route whatever the
// ids in the path. Requests that no pattern serves, such as those that
// the mux redirects to a clean path, get otherLabel.
func routeLabel(mux router, r *http.Request) string {
	_, pattern := mux.Handler(r)
	if pattern == "" {
		return otherLabel
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// annotateTask adds the task's identity to the request's span, so the
// trace of a request can be found by task id.
func annotateTask(ctx context.Context, tenant, taskID, taskType string) {
	trace.SpanFromContext(ctx).SetAttributes(
		attribute.String(tracing.KeyTenant, tenant),
		attribute.String(tracing.KeyTaskID, taskID),
		attribute.String(tracing.KeyTaskType, taskType))
}
