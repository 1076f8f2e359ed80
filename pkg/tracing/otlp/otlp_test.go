package otlp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/handoff-dev/handoff/pkg/tracing/otlp"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":             "http://collector:4318/v1/traces",
		"http://collector:4318/":            "http://collector:4318/v1/traces",
		"https://collector.example/otlp/v1": "https://collector.example/otlp/v1",
	} {
		got, err := otlp.EndpointURL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got)
	}
	for _, in := range []string{"collector:4318", "grpc://collector:4317", "http://", "://"} {
		_, err := otlp.EndpointURL(in)
		require.ErrorContains(t, err, "invalid OTLP endpoint", in)
	}
}

func TestProviderExportsToCollector(t *testing.T) {
	received := make(chan string, 1)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case received <- r.URL.Path:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)

	tp, err := otlp.NewTracerProvider(context.Background(), collector.URL, "handoff-test")
	require.NoError(t, err)
	_, span := tp.Tracer("test").Start(context.Background(), "span")
	span.End()
	require.NoError(t, tp.Shutdown(context.Background()), "shutdown sends the buffered spans")

	require.Equal(t, otlp.TracesPath, <-received)
}

func TestSetupWithoutEndpoint(t *testing.T) {
	tp, stop, err := otlp.Setup(context.Background(), "", "handoff-test", zaptest.NewLogger(t))
	require.NoError(t, err)
	require.Nil(t, tp, "no endpoint, no provider")
	stop()
}

func TestSetupInvalidEndpoint(t *testing.T) {
	_, _, err := otlp.Setup(context.Background(), "collector:4318", "handoff-test", zaptest.NewLogger(t))
	require.ErrorContains(t, err, "invalid OTLP endpoint")
}
