package notifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

// waitFor bounds every wait of these tests.
const waitFor = 10 * time.Second

// tick is the polling interval of require.Eventually.
const tick = 10 * time.Millisecond

const (
	tenant   = "acme"
	taskType = "files.manifest"
)

// testEnv is a NATS server with the streams provisioned and a notifier
// that runs until the test ends.
type testEnv struct {
	srv    *natstest.Server
	bus    *bus.Bus
	secret string
	cfg    notifier.Config
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

// testConfig is the notifier config of these tests: one fresh secret,
// loopback allowed and a 50ms backoff schedule of three retries.
func testConfig(t *testing.T) notifier.Config {
	t.Helper()
	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	return notifier.Config{
		Instance:      "test",
		Secrets:       []string{secret},
		AllowLoopback: true,
		Timeout:       5 * time.Second,
		Backoff:       []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
	}
}

// startNotifier starts NATS and a notifier with the testConfig. mutate may
// change the config before the notifier is built.
func startNotifier(t *testing.T, mutate func(*notifier.Config)) *testEnv {
	t.Helper()
	srv := natstest.Start(t)
	b := srv.Bus(t)
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	env := runNotifier(t, b, cfg)
	env.srv = srv
	return env
}

// runNotifier runs a notifier with cfg on b until the test ends.
func runNotifier(t *testing.T, b *bus.Bus, cfg notifier.Config) *testEnv {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	n, err := notifier.New(cfg, b, zap.New(core))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	env := &testEnv{bus: b, secret: cfg.Secrets[0], cfg: cfg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { env.done <- n.Run(ctx) }()
	t.Cleanup(func() { env.stop(t) })
	t.Cleanup(func() {
		if t.Failed() {
			for _, entry := range logs.All() {
				t.Log(entry.Level, entry.Message, entry.ContextMap())
			}
		}
	})

	// Run has created the consumers once they show up on the server.
	require.Eventually(t, func() bool {
		_, err := b.JetStream().Consumer(context.Background(), b.Names().DeliveriesStream(), notifier.DeliveryConsumerName)
		return err == nil
	}, waitFor, tick)
	return env
}

// stop cancels Run and checks that it returns nil. Calling it again does
// nothing.
func (e *testEnv) stop(t *testing.T) {
	t.Helper()
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatalf("notifier did not stop within %s", waitFor)
	}
}

// request is one request a receiver got.
type request struct {
	method string
	path   string
	query  string
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a webhook receiver on 127.0.0.1 that records every request
// and responds with respond, which gets the request's number from 1.
type receiver struct {
	*httptest.Server
	respond func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []request
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rcv := &receiver{respond: respond}
	rcv.Server = httptest.NewServer(http.HandlerFunc(rcv.serve))
	t.Cleanup(rcv.Close)
	require.True(t, strings.HasPrefix(rcv.URL, "http://127.0.0.1:"), rcv.URL)
	return rcv
}

func (rcv *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rcv.mu.Lock()
	rcv.reqs = append(rcv.reqs, request{
		method: r.Method, path: r.URL.Path, query: r.URL.RawQuery,
		header: r.Header.Clone(), body: body, at: time.Now(),
	})
	n := len(rcv.reqs)
	rcv.mu.Unlock()
	rcv.respond(n, w, r)
}

func (rcv *receiver) requests() []request {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]request(nil), rcv.reqs...)
}

// status responds to every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// sequence responds to request n with codes[n-1], and with the last code after.
func sequence(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes))-1])
	}
}

// taskWriter appends the events of one task as ingest and an executor
// would, each with the compare-and-set.
type taskWriter struct {
	t        *testing.T
	b        *bus.Bus
	id       string
	taskType string
	opts     bus.AppendOptions
	// attempt counts the started events.
	attempt int
}

// newTask submits a task of taskType with webhookURL, unless empty, and
// returns its writer.
func newTask(t *testing.T, b *bus.Bus, taskType, webhookURL string) *taskWriter {
	t.Helper()
	w := &taskWriter{t: t, b: b, id: events.NewID(), taskType: taskType, opts: bus.AppendOptions{TTL: time.Hour}}
	sub := events.Submission{Input: json.RawMessage(`{"dir":"/data"}`), TTL: events.Duration(time.Hour)}
	if webhookURL != "" {
		sub.Webhook = &events.Webhook{URL: webhookURL}
	}
	w.append(events.KindSubmitted, sub, "/handoff/ingest")
	return w
}

// append stores an event of kind with data and returns it with its
// stream sequence.
func (w *taskWriter) append(kind events.Kind, data any, source string) events.Event {
	w.t.Helper()
	ev, err := events.NewEvent(kind, tenant, w.id, w.taskType, source, data)
	require.NoError(w.t, err)
	if kind != events.KindSubmitted && kind != events.KindResumed {
		ev.Attempt = w.attempt
	}
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev.Seq, err = w.b.Append(context.Background(), &ev, w.opts)
	for errors.Is(err, bus.ErrConflict) {
		// The notifier recorded a delivery since: read the task again,
		// as a real writer would.
		task, readErr := w.b.ReadTask(context.Background(), tenant, w.id)
		require.NoError(w.t, readErr)
		require.NoError(w.t, task.Check(kind))
		w.opts.ExpectSeq = task.LastSeq
		ev.Seq, err = w.b.Append(context.Background(), &ev, w.opts)
	}
	require.NoError(w.t, err)
	w.opts.ExpectSeq = ev.Seq
	return ev
}

// run appends started, then kind with data, as the executor e1 would.
func (w *taskWriter) run(kind events.Kind, data any) events.Event {
	w.t.Helper()
	w.attempt++
	w.append(events.KindStarted, events.Started{Attempt: w.attempt, Executor: "e1"}, "/handoff/executor/e1")
	return w.append(kind, data, "/handoff/executor/e1")
}

// publishTask appends the events of a task that runs and ends with an
// event of kind end: submitted (with webhookURL, unless empty), started,
// then the end event. It returns the end event with its stream sequence.
func publishTask(t *testing.T, b *bus.Bus, webhookURL string, end events.Kind, data any) events.Event {
	t.Helper()
	return newTask(t, b, taskType, webhookURL).run(end, data)
}

// publishSucceeded publishes a task that succeeds with a small result.
func publishSucceeded(t *testing.T, b *bus.Bus, webhookURL string) events.Event {
	t.Helper()
	return publishTask(t, b, webhookURL, events.KindSucceeded, events.Succeeded{Result: json.RawMessage(`{"files":3}`)})
}

// record is one delivered or delivery_failed event of a task.
type record struct {
	event events.Event
	data  events.Delivery
}

// records returns the delivery records of the task of ev.
func records(t *testing.T, b *bus.Bus, ev events.Event) []record {
	t.Helper()
	te, err := b.ReadEvents(context.Background(), ev.Tenant, ev.TaskID, 0)
	require.NoError(t, err)
	var out []record
	for _, e := range te.Events {
		if !e.Kind.Delivery() {
			continue
		}
		var d events.Delivery
		require.NoError(t, e.DecodeData(&d))
		out = append(out, record{event: e, data: d})
	}
	return out
}

// waitRecords waits until the task of ev has n delivery records and
// returns them.
func waitRecords(t *testing.T, b *bus.Bus, ev events.Event, n int) []record {
	t.Helper()
	var got []record
	require.Eventually(t, func() bool {
		got = records(t, b, ev)
		return len(got) >= n
	}, waitFor, tick, "waiting for %d delivery records", n)
	require.Len(t, got, n)
	return got
}

// waitSettled waits until the dispatch consumer has acked or terminated
// every event up to stream sequence seq, and every delivery job is
// settled: none waits in the deliveries stream, none is held for a retry.
func waitSettled(t *testing.T, b *bus.Bus, seq uint64) {
	t.Helper()
	ctx := context.Background()
	var dispatch, deliveries *jetstream.ConsumerInfo
	var jobs uint64
	require.Eventually(t, func() bool {
		cons, err := b.JetStream().Consumer(ctx, b.Names().TasksStream(), notifier.ConsumerName)
		if err != nil {
			return false
		}
		if dispatch, err = cons.Info(ctx); err != nil {
			return false
		}
		cons, err = b.JetStream().Consumer(ctx, b.Names().DeliveriesStream(), notifier.DeliveryConsumerName)
		if err != nil {
			return false
		}
		if deliveries, err = cons.Info(ctx); err != nil {
			return false
		}
		stream, err := b.JetStream().Stream(ctx, b.Names().DeliveriesStream())
		if err != nil {
			return false
		}
		jobs = stream.CachedInfo().State.Msgs
		return dispatch.AckFloor.Stream >= seq && dispatch.NumAckPending == 0 && dispatch.NumPending == 0 &&
			deliveries.NumAckPending == 0 && deliveries.NumPending == 0 && jobs == 0
	}, waitFor, tick, "waiting for the notifier to settle sequence %d: dispatch %+v, deliveries %+v, %d jobs stored", seq, dispatch, deliveries, jobs)
}
