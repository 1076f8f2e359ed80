// Package otlp builds the tracer provider of a Handoff binary that sends
// its spans to an OpenTelemetry collector with OTLP over HTTP. It is a
// package of its own so that only the binaries link the exporter.
package otlp

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TracesPath is the path that [NewTracerProvider] adds to an endpoint URL
// without one: the OTLP/HTTP path of traces.
const TracesPath = "/v1/traces"

// NewTracerProvider returns a tracer provider that batches the spans of
// service and sends them to endpoint, an http or https URL such as
// http://otel-collector:4318. A URL without a path gets TracesPath. The
// provider samples what the parent sampled and every trace that starts in
// the process. Call its Shutdown at exit, which sends the spans still
// buffered.
func NewTracerProvider(ctx context.Context, endpoint, service string) (*sdktrace.TracerProvider, error) {
	u, err := EndpointURL(endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u))
	if err != nil {
		return nil, fmt.Errorf("create the OTLP trace exporter for %s: %w", u, err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// EndpointURL checks endpoint and returns it with TracesPath when it has
// no path.
func EndpointURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("invalid OTLP endpoint %q: use an http or https URL such as http://otel-collector:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	return u.String(), nil
}
