package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/registry"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Input schemas of the task types every test registers.
const (
	echoSchema     = `{"type": "object", "properties": {"message": {"type": "string"}}, "additionalProperties": false}`
	manifestSchema = `{
		"type": "object",
		"properties": {
			"dir": {"type": "string", "minLength": 1},
			"pattern": {"type": "string"},
			"max_files": {"type": "integer", "minimum": 1}
		},
		"required": ["dir"],
		"additionalProperties": false
	}`
)

// Registered defaults of files.manifest.
const (
	manifestTimeout     = 2 * time.Minute
	manifestMaxAttempts = 5
)

// bundle is one ingest server on a fresh NATS server, with the echo and
// files.manifest task types registered.
type bundle struct {
	nats   *natstest.Server
	bus    *bus.Bus
	srv    *ingest.Server
	url    string
	client *http.Client
	logs   *observer.ObservedLogs
}

// setup starts NATS, registers the test task types, and serves an ingest
// server built from the config that opts change.
func setup(tb testing.TB, opts ...func(*ingest.Config)) *bundle {
	tb.Helper()
	ns := natstest.Start(tb)
	b := ns.Bus(tb)
	register(tb, b, registry.TaskType{Name: "echo", Description: "returns its input", InputSchema: json.RawMessage(echoSchema)})
	register(tb, b, registry.TaskType{
		Name:           "files.manifest",
		Description:    "hashes every file of a directory",
		InputSchema:    json.RawMessage(manifestSchema),
		DefaultTimeout: events.Duration(manifestTimeout),
		MaxAttempts:    manifestMaxAttempts,
	})

	var cfg ingest.Config
	for _, opt := range opts {
		opt(&cfg)
	}
	core, logs := observer.New(zap.DebugLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := ingest.New(ctx, cfg, b, zap.New(core))
	require.NoError(tb, err)
	tb.Cleanup(srv.Close)

	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(hs.Close)
	return &bundle{nats: ns, bus: b, srv: srv, url: hs.URL, client: hs.Client(), logs: logs}
}

func register(tb testing.TB, b *bus.Bus, tt registry.TaskType) {
	tb.Helper()
	tt.Pool, tt.Executor = "default", "test"
	require.NoError(tb, registry.Register(context.Background(), b, tt, time.Hour))
}

// response is an HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send sends a request and reads the response without checking it, for
// goroutines that cannot fail the test. Call checkContract on the result.
func (b *bundle) send(req *http.Request) (*response, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// do sends a request and checks the response against the API contract.
func (b *bundle) do(t testing.TB, req *http.Request) *response {
	t.Helper()
	resp, err := b.send(req)
	require.NoError(t, err)
	checkContract(t, req, resp)
	return resp
}

func (b *bundle) request(t testing.TB, method, path string, body []byte, header ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, b.url+path, r)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

// submit posts body as JSON to /v1/tasks. header lists extra header names
// and values.
func (b *bundle) submit(t testing.TB, body string, header ...string) *response {
	t.Helper()
	header = append([]string{"Content-Type", "application/json"}, header...)
	return b.do(t, b.request(t, http.MethodPost, "/v1/tasks", []byte(body), header...))
}

// get sends GET path.
func (b *bundle) get(t testing.TB, path string, header ...string) *response {
	t.Helper()
	return b.do(t, b.request(t, http.MethodGet, path, nil, header...))
}

// storedEvents counts the messages in the tasks stream.
func (b *bundle) storedEvents(t testing.TB) uint64 {
	t.Helper()
	ctx := context.Background()
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Names().TasksStream())
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

// appendEvent stores an event of kind on a task the way an executor does:
// a compare-and-set on the task's last sequence, with the task's TTL.
func (b *bundle) appendEvent(t testing.TB, taskID string, kind events.Kind, attempt int, data any) {
	t.Helper()
	ctx := context.Background()
	task, err := b.bus.ReadTask(ctx, events.DefaultTenant, taskID)
	require.NoError(t, err)
	ev, err := events.NewEvent(kind, task.Tenant, task.ID, task.Type, "/test/executor", data)
	require.NoError(t, err)
	ev.Attempt = attempt
	_, err = b.bus.Append(ctx, &ev, bus.AppendOptions{ExpectSeq: task.LastSeq, TTL: task.TTLLeft(time.Now())})
	require.NoError(t, err)
}

func (r *response) view(t testing.TB) events.View {
	t.Helper()
	require.Equal(t, ingest.ContentTypeJSON, r.header.Get("Content-Type"))
	var v events.View
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

func (r *response) problem(t testing.TB) ingest.Problem {
	t.Helper()
	require.Equal(t, ingest.ContentTypeProblem, r.header.Get("Content-Type"), "body: %s", r.body)
	var p ingest.Problem
	require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
	return p
}

// fields returns the field or pointer of each error of a problem.
func fields(p ingest.Problem) []string {
	var out []string
	for _, e := range p.Errors {
		if e.Field != "" {
			out = append(out, e.Field)
		} else {
			out = append(out, e.Pointer)
		}
	}
	return out
}

// seconds parses a Retry-After header.
func seconds(t testing.TB, h http.Header) int {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", h.Get("Retry-After"))
	return n
}

// taskType returns a registration of name with an optional input schema.
func taskType(name, inputSchema string) registry.TaskType {
	tt := registry.TaskType{Name: name}
	if inputSchema != "" {
		tt.InputSchema = json.RawMessage(inputSchema)
	}
	return tt
}

// storedMessage returns the message at seq in the tasks stream.
func (b *bundle) storedMessage(t testing.TB, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Names().TasksStream())
	require.NoError(t, err)
	msg, err := stream.GetMsg(ctx, seq)
	require.NoError(t, err)
	return msg
}

// silentNamespace is the namespace of setupSilent, whose tasks stream
// never replies.
const silentNamespace = "silent"

// setupSilent serves ingest on a namespace whose tasks stream was deleted.
// Subscribers that never reply take its subjects, so every read and append
// of a task waits until the request timeout, as when the NATS server is
// overloaded or cut off.
func setupSilent(tb testing.TB) *bundle {
	tb.Helper()
	ns := natstest.Start(tb)
	nc := ns.Connect(tb)
	b, err := bus.New(nc, silentNamespace)
	require.NoError(tb, err)
	ctx := context.Background()
	require.NoError(tb, b.Provision(ctx, bus.StreamOptions{}))
	require.NoError(tb, b.JetStream().DeleteStream(ctx, b.Names().TasksStream()))
	for _, subject := range []string{"$JS.API.DIRECT.GET." + b.Names().TasksStream(), b.Names().TasksSubjects()} {
		sub, err := nc.Subscribe(subject, func(*nats.Msg) {})
		require.NoError(tb, err)
		tb.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	register(tb, b, registry.TaskType{Name: "echo"})

	core, logs := observer.New(zap.DebugLevel)
	srv, err := ingest.New(ctx, ingest.Config{Namespace: silentNamespace, RequestTimeout: 300 * time.Millisecond}, b, zap.New(core))
	require.NoError(tb, err)
	tb.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(hs.Close)
	return &bundle{nats: ns, bus: b, srv: srv, url: hs.URL, client: hs.Client(), logs: logs}
}
