package notifier_test

import (
	"context"
	"encoding/json"
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
	bus    *bus.Bus
	secret string
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

// startNotifier starts NATS and a notifier with one fresh secret, loopback
// allowed and a 50ms backoff schedule of three retries. mutate may change
// the config before the notifier is built.
func startNotifier(t *testing.T, mutate func(*notifier.Config)) *testEnv {
	t.Helper()
	b := natstest.Start(t).Bus(t)
	secret, err := webhook.NewSecret()
	require.NoError(t, err)

	cfg := notifier.Config{
		Instance:      "test",
		Secrets:       []string{secret},
		AllowLoopback: true,
		Timeout:       5 * time.Second,
		Backoff:       []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	core, logs := observer.New(zap.DebugLevel)
	n, err := notifier.New(cfg, b, zap.New(core))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	env := &testEnv{bus: b, secret: secret, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { env.done <- n.Run(ctx) }()
	t.Cleanup(func() { env.stop(t) })

	// Run has created the consumer once it shows up on the server.
	require.Eventually(t, func() bool {
		_, err := b.JetStream().Consumer(context.Background(), b.Names().TasksStream(), notifier.ConsumerName)
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

// publishTask appends the events of a task that runs and ends with an
// event of kind end, as ingest and an executor would: submitted (with
// webhookURL, unless empty), started, then the end event. It returns the
// end event with its stream sequence.
func publishTask(t *testing.T, b *bus.Bus, webhookURL string, end events.Kind, data any) events.Event {
	t.Helper()
	ctx := context.Background()
	taskID := events.NewID()
	opts := bus.AppendOptions{TTL: time.Hour}

	sub := events.Submission{Input: json.RawMessage(`{"dir":"/data"}`), TTL: events.Duration(time.Hour)}
	if webhookURL != "" {
		sub.Webhook = &events.Webhook{URL: webhookURL}
	}
	submitted, err := events.NewEvent(events.KindSubmitted, tenant, taskID, taskType, "/handoff/ingest", sub)
	require.NoError(t, err)
	opts.ExpectSeq, err = b.Append(ctx, &submitted, opts)
	require.NoError(t, err)

	started, err := events.NewEvent(events.KindStarted, tenant, taskID, taskType, "/handoff/executor/e1", events.Started{Attempt: 1, Executor: "e1"})
	require.NoError(t, err)
	started.Attempt = 1
	opts.ExpectSeq, err = b.Append(ctx, &started, opts)
	require.NoError(t, err)

	last, err := events.NewEvent(end, tenant, taskID, taskType, "/handoff/executor/e1", data)
	require.NoError(t, err)
	last.Attempt = 1
	last.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	last.Seq, err = b.Append(ctx, &last, opts)
	require.NoError(t, err)
	return last
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

// waitSettled waits until the notifier's consumer has acked or terminated
// every event up to stream sequence seq and holds none for a retry.
func waitSettled(t *testing.T, b *bus.Bus, seq uint64) {
	t.Helper()
	var info *jetstream.ConsumerInfo
	require.Eventually(t, func() bool {
		cons, err := b.JetStream().Consumer(context.Background(), b.Names().TasksStream(), notifier.ConsumerName)
		if err != nil {
			return false
		}
		info, err = cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream >= seq && info.NumAckPending == 0 && info.NumPending == 0
	}, waitFor, tick, "waiting for the consumer to settle sequence %d: %+v", seq, info)
}
