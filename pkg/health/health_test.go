package health_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/handoff-dev/handoff/pkg/health"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client sends each request on a new connection, so no idle connection
// outlives a test.
var client = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// serve starts a health server on a free loopback port and returns its
// base URL.
func serve(t *testing.T, ctx context.Context, h http.Handler) (*health.Server, string) {
	t.Helper()
	srv, err := health.Serve(ctx, "127.0.0.1:0", h, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv, "http://" + srv.Addr().String()
}

// get returns the status code and the decoded body of a GET of url.
func get(t *testing.T, url string) (int, health.Status) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body health.Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func TestLivenessIgnoresNATS(t *testing.T) {
	natsServer := natstest.Start(t)
	nc := natsServer.Connect(t)
	_, base := serve(t, context.Background(), health.NewMux(nc))

	code, body := get(t, base+health.LivenessPath)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, health.Status{Status: "ok"}, body)

	natsServer.Shutdown()
	require.Eventually(t, func() bool { return !nc.IsConnected() }, 10*time.Second, 10*time.Millisecond)
	code, body = get(t, base+health.LivenessPath)
	require.Equal(t, http.StatusOK, code, "a lost NATS connection is no reason to restart")
	require.Equal(t, "ok", body.Status)
}

func TestReadinessFollowsConnection(t *testing.T) {
	natsServer := natstest.Start(t)
	nc := natsServer.Connect(t)
	_, base := serve(t, context.Background(), health.NewMux(nc))

	code, body := get(t, base+health.ReadinessPath)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, health.Status{Status: "ready"}, body)

	natsServer.Shutdown()
	require.Eventually(t, func() bool {
		code, _ := get(t, base+health.ReadinessPath)
		return code == http.StatusServiceUnavailable
	}, 10*time.Second, 10*time.Millisecond)
	_, body = get(t, base+health.ReadinessPath)
	require.Equal(t, "unavailable", body.Status)
	require.Contains(t, body.Detail, "the NATS connection is")

	natsServer.Restart()
	require.Eventually(t, func() bool {
		code, _ := get(t, base+health.ReadinessPath)
		return code == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "readiness returns after NATS reconnects")
}

func TestReadinessClosedConnection(t *testing.T) {
	natsServer := natstest.Start(t)
	nc := natsServer.Connect(t)
	_, base := serve(t, context.Background(), health.NewMux(nc))

	nc.Close()
	code, body := get(t, base+health.ReadinessPath)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "the NATS connection is CLOSED", body.Detail)
}

func TestMuxMethodsAndPaths(t *testing.T) {
	natsServer := natstest.Start(t)
	_, base := serve(t, context.Background(), health.NewMux(natsServer.Connect(t)))

	resp, err := client.Head(base + health.LivenessPath)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "HEAD is served like GET")

	resp, err = client.Post(base+health.ReadinessPath, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	resp, err = client.Get(base + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestMuxTakesMoreHandlers(t *testing.T) {
	natsServer := natstest.Start(t)
	mux := health.NewMux(natsServer.Connect(t))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"metrics"}`))
	})
	_, base := serve(t, context.Background(), mux)

	code, body := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "metrics", body.Status)
	code, _ = get(t, base+health.LivenessPath)
	require.Equal(t, http.StatusOK, code)
}

func TestServeStopsWithContext(t *testing.T) {
	natsServer := natstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, base := serve(t, ctx, health.NewMux(natsServer.Connect(t)))
	code, _ := get(t, base+health.LivenessPath)
	require.Equal(t, http.StatusOK, code)

	cancel()
	require.NoError(t, srv.Close())
	_, err := client.Get(base + health.LivenessPath)
	require.Error(t, err, "the listener is closed")
	require.NoError(t, srv.Close(), "a second Close returns the same result")
}

func TestServeCloseWithoutCancel(t *testing.T) {
	natsServer := natstest.Start(t)
	srv, base := serve(t, context.Background(), health.NewMux(natsServer.Connect(t)))

	require.NoError(t, srv.Close())
	_, err := client.Get(base + health.LivenessPath)
	require.Error(t, err)
}

func TestServeBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	_, err = health.Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler(), zaptest.NewLogger(t))
	require.ErrorContains(t, err, "listen for health checks on "+ln.Addr().String())
}

func TestServeInvalidAddress(t *testing.T) {
	_, err := health.Serve(context.Background(), "127.0.0.1:http-health", http.NotFoundHandler(), zaptest.NewLogger(t))
	require.ErrorContains(t, err, "listen for health checks on 127.0.0.1:http-health")
}
