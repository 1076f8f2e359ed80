package notifier_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

// BenchmarkDeliveryBurst measures deliveries to one local receiver that
// responds 204 at once. Each of b.N tasks is submitted and started before
// the timer starts. The timed part appends all their succeeded events at
// once and waits until the receiver has every one, so the latencies
// include the wait in the queue.
func BenchmarkDeliveryBurst(b *testing.B) {
	benchmarkDelivery(b, 0)
}

// BenchmarkDeliveryPaced is BenchmarkDeliveryBurst with one succeeded
// event appended every 5ms (200 per second), a load that the notifier
// keeps up with, so the latencies show one delivery's path.
func BenchmarkDeliveryPaced(b *testing.B) {
	benchmarkDelivery(b, 5*time.Millisecond)
}

// benchmarkDelivery appends b.N succeeded events, one every interval, and
// reports deliveries per second and the 50th and 99th percentile of the
// time from an event's append to its receipt by the receiver.
func benchmarkDelivery(b *testing.B, interval time.Duration) {
	rcv := newBenchReceiver(b, b.N)
	bs := benchBus(b)
	secret, err := webhook.NewSecret()
	require.NoError(b, err)
	n, err := notifier.New(notifier.Config{Instance: "bench", Secrets: []string{secret}, AllowLoopback: true}, bs, zap.NewNop())
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		require.NoError(b, <-done)
	})

	ends := make([]events.Event, b.N)
	seqs := make([]uint64, b.N)
	for i := range b.N {
		ends[i], seqs[i] = startedTask(b, bs, rcv.URL)
	}

	appended := make([]time.Time, b.N)
	results := make([]func() error, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if interval > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		}
		appended[i] = time.Now()
		opts := bus.AppendOptions{ExpectSeq: seqs[i], TTL: time.Hour}
		f, err := bs.AppendAsync(&ends[i], opts)
		require.NoError(b, err)
		ev := &ends[i]
		results[i] = func() error {
			_, err := bus.AppendResult(context.Background(), ev, opts, f)
			return err
		}
	}
	for _, result := range results {
		require.NoError(b, result())
	}
	received := rcv.wait(b, time.Minute+time.Duration(b.N)*time.Millisecond)
	elapsed := time.Since(start)
	b.StopTimer()

	latencies := make([]time.Duration, b.N)
	for i := range ends {
		latencies[i] = received[ends[i].ID].Sub(appended[i])
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(latencies[b.N/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[b.N*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(latencies[b.N*90/100].Microseconds())/1000, "p90-ms")
	b.ReportMetric(float64(latencies[b.N*95/100].Microseconds())/1000, "p95-ms")
}

// benchReceiver records when each webhook-id first arrived.
type benchReceiver struct {
	*httptest.Server
	want int

	mu       sync.Mutex
	received map[string]time.Time
	all      chan struct{}
}

func newBenchReceiver(b *testing.B, want int) *benchReceiver {
	rcv := &benchReceiver{want: want, received: make(map[string]time.Time, want), all: make(chan struct{})}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		id := r.Header.Get(webhook.HeaderID)
		rcv.mu.Lock()
		if _, ok := rcv.received[id]; !ok {
			rcv.received[id] = at
			if len(rcv.received) == rcv.want {
				close(rcv.all)
			}
		}
		rcv.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(rcv.Close)
	return rcv
}

// wait returns the receipt times once every event arrived.
func (rcv *benchReceiver) wait(b *testing.B, timeout time.Duration) map[string]time.Time {
	select {
	case <-rcv.all:
	case <-time.After(timeout):
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		b.Fatalf("the receiver got %d of %d events", len(rcv.received), rcv.want)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return maps.Clone(rcv.received)
}

// benchBus starts NATS, provisions the streams and returns a bus on a
// connection configured as handoff-notifier configures its own.
func benchBus(b *testing.B) *bus.Bus {
	srv := natstest.Start(b)
	srv.Bus(b)
	bs, err := bus.New(srv.Connect(b, nats.SyncQueueLen(4096)), "")
	require.NoError(b, err)
	return bs
}

// startedTask submits a task with webhookURL and starts it. It returns
// the task's succeeded event, not yet appended, and the expected sequence
// of its append.
func startedTask(b *testing.B, bs *bus.Bus, webhookURL string) (events.Event, uint64) {
	b.Helper()
	ctx := context.Background()
	id := events.NewID()
	opts := bus.AppendOptions{TTL: time.Hour}
	sub := events.Submission{Input: json.RawMessage(`{}`), TTL: events.Duration(time.Hour), Webhook: &events.Webhook{URL: webhookURL}}
	submitted, err := events.NewEvent(events.KindSubmitted, tenant, id, taskType, "/handoff/ingest", sub)
	require.NoError(b, err)
	opts.ExpectSeq, err = bs.Append(ctx, &submitted, opts)
	require.NoError(b, err)
	started, err := events.NewEvent(events.KindStarted, tenant, id, taskType, "/handoff/executor/e1", events.Started{Attempt: 1, Executor: "e1"})
	require.NoError(b, err)
	started.Attempt = 1
	seq, err := bs.Append(ctx, &started, opts)
	require.NoError(b, err)

	end, err := events.NewEvent(events.KindSucceeded, tenant, id, taskType, "/handoff/executor/e1", events.Succeeded{Result: json.RawMessage(`{"ok":true}`)})
	require.NoError(b, err)
	end.Attempt = 1
	return end, seq
}
