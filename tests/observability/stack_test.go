package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/health"
	"github.com/handoff-dev/handoff/pkg/metrics"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/executor"
	"github.com/handoff-dev/handoff/services/ingest"
	"github.com/handoff-dev/handoff/services/notifier"
)

// Timing of the tests' waits.
const (
	waitFor = 30 * time.Second
	tick    = 20 * time.Millisecond
)

// pool is the executor pool of the stack, so its consumer is
// executor-obs.
const pool = "obs"

// stackOptions change the stack a test starts.
type stackOptions struct {
	// handlers are Go task types the executor serves beside echo.
	handlers map[string]executor.Handler
	// token, when set, turns on bearer token authentication with this one
	// token, for tenant acme.
	token string
}

// stack is ingest, an executor and a notifier, each with its own NATS
// connection, metrics registry and logger, and one tracer provider that
// records every span of the three in exporter. Logs at every level go to
// logs, each entry named after its service.
type stack struct {
	ingestURL   string
	executorURL string
	notifierURL string
	secret      string
	client      *http.Client
	token       string
	exporter    *tracetest.InMemoryExporter
	logs        *observer.ObservedLogs
}

// startStack starts the three services and waits until ingest accepts
// the executor's task types. They stop when the test ends: ingest first,
// then the executor and the notifier.
func startStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	ns := natstest.Start(t)
	ns.Bus(t)
	connect := func() *bus.Bus {
		b, err := bus.New(ns.Connect(t), "")
		require.NoError(t, err)
		return b
	}

	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	t.Cleanup(func() {
		if t.Failed() {
			for _, entry := range logs.All() {
				t.Log(entry.LoggerName, entry.Level, entry.Message, entry.ContextMap())
			}
		}
	})

	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	s := &stack{
		secret:   secret,
		client:   &http.Client{Timeout: waitFor, Transport: &http.Transport{DisableKeepAlives: true}},
		token:    opts.token,
		exporter: exporter,
		logs:     logs,
	}

	// The notifier, then the executor, start first, as in handoff dev.
	notifierReg := prometheus.NewRegistry()
	n, err := notifier.New(notifier.Config{
		Instance:       "n1",
		Secrets:        []string{secret},
		AllowLoopback:  true,
		Timeout:        5 * time.Second,
		Backoff:        []time.Duration{50 * time.Millisecond, 50 * time.Millisecond},
		Metrics:        notifierReg,
		TracerProvider: tp,
	}, connect(), log.Named("notifier"))
	require.NoError(t, err)
	s.notifierURL = serveMetrics(t, notifierReg, log)
	runService(t, "notifier", n.Run)

	executorReg := prometheus.NewRegistry()
	ex, err := executor.New(executor.Config{
		Pool:           pool,
		Instance:       "x1",
		Concurrency:    8,
		AckWait:        5 * time.Second,
		KillGrace:      200 * time.Millisecond,
		DrainTimeout:   5 * time.Second,
		Retry:          executor.RetryPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Types:          map[string]executor.TypeConfig{"echo": {Handler: executor.HandlerEcho}},
		Metrics:        executorReg,
		TracerProvider: tp,
	}, connect(), log.Named("executor"))
	require.NoError(t, err)
	for name, h := range opts.handlers {
		ex.Handle(name, h, executor.TypeOptions{Description: "test handler " + name})
	}
	s.executorURL = serveMetrics(t, executorReg, log)
	runService(t, "executor", ex.Run)

	cfg := ingest.Config{AllowLoopback: true, Metrics: prometheus.NewRegistry(), TracerProvider: tp}
	if opts.token != "" {
		cfg.Auth = ingest.AuthTokens
		cfg.TokensFile = writeTokens(t, opts.token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	srv, err := ingest.New(ctx, cfg, connect(), log.Named("ingest"))
	require.NoError(t, err)
	api := httptest.NewServer(srv.Handler())
	// Cleanups run last in first out, so the API stops before the
	// executor and the notifier.
	t.Cleanup(srv.Close)
	t.Cleanup(api.Close)
	s.ingestURL = api.URL

	want := len(opts.handlers) + 1
	require.Eventually(t, func() bool {
		resp := s.do(t, http.MethodGet, "/v1/types", nil)
		var page struct {
			Types []json.RawMessage `json:"types"`
		}
		return resp.StatusCode == http.StatusOK && json.Unmarshal(resp.body, &page) == nil && len(page.Types) == want
	}, waitFor, tick, "the executor's task types were not registered")
	// The spans of the requests above belong to no test.
	exporter.Reset()
	return s
}

// runService runs a service until the test ends, and checks that it stops
// cleanly.
func runService(t *testing.T, name string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "%s stopped with an error", name)
		case <-time.After(waitFor):
			t.Errorf("%s did not stop within %s", name, waitFor)
		}
	})
}

// serveMetrics serves reg at /metrics on a loopback port, as the binaries
// do on --health-addr, and returns the URL.
func serveMetrics(t *testing.T, reg *prometheus.Registry, log *zap.Logger) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg, log))
	srv, err := health.Serve(context.Background(), "127.0.0.1:0", mux, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + srv.Addr().String() + "/metrics"
}

// writeTokens writes a tokens file in which token acts for tenant acme.
func writeTokens(t *testing.T, token string) string {
	t.Helper()
	entry := ingest.TokenEntry{Tenant: "acme", Name: "observability-test", TokenSHA256: ingest.HashToken(token)}
	line, err := json.Marshal(entry)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	require.NoError(t, os.WriteFile(path, append(line, '\n'), 0o600))
	return path
}

// response is an HTTP response with its body read.
type response struct {
	*http.Response
	body []byte
}

// do sends a request to the API with the stack's token, if any, and the
// headers given as name and value pairs.
func (s *stack) do(t *testing.T, method, path string, body any, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.ingestURL+path, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Response: resp, body: b}
}

// submit submits a task and returns its id.
func (s *stack) submit(t *testing.T, body map[string]any, header ...string) string {
	t.Helper()
	resp := s.do(t, http.MethodPost, "/v1/tasks", body, header...)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "body: %s", resp.body)
	var view struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &view))
	return view.ID
}

// waitStatus waits until the task has status.
func (s *stack) waitStatus(t *testing.T, id, status string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp := s.do(t, http.MethodGet, "/v1/tasks/"+id, nil)
		var view struct {
			Status string `json:"status"`
		}
		return resp.StatusCode == http.StatusOK && json.Unmarshal(resp.body, &view) == nil && view.Status == status
	}, waitFor, tick, "task %s never reached %s", id, status)
}

// scrape returns the metrics served at url, parsed.
func (s *stack) scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := s.client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// value returns the value of the series of family with the labels, given
// as name and value pairs, or -1 when there is none. It reads counters,
// gauges and the sample count of histograms.
func value(families map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	f := families[family]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, labels []string) bool {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}

// receiver is a webhook receiver on 127.0.0.1 that records each request
// and responds with the next of its status codes, then with the last one.
type receiver struct {
	*httptest.Server
	codes []int

	mu      sync.Mutex
	headers []http.Header
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	t.Helper()
	rcv := &receiver{codes: codes}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rcv.mu.Lock()
		rcv.headers = append(rcv.headers, r.Header.Clone())
		code := rcv.codes[min(len(rcv.headers), len(rcv.codes))-1]
		rcv.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

// received returns the headers of the requests so far.
func (rcv *receiver) received() []http.Header {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]http.Header(nil), rcv.headers...)
}
