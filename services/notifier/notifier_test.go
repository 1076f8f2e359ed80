package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

// verifyWithReference checks a request's signature with the Standard
// Webhooks reference library.
func verifyWithReference(t *testing.T, secret string, req request) {
	t.Helper()
	ref, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, ref.Verify(req.body, req.header))
}

func TestDeliverSucceededTask(t *testing.T) {
	rcv := newReceiver(t, status(http.StatusNoContent))
	env := startNotifier(t, nil)
	ev := publishSucceeded(t, env.bus, rcv.URL+"/hooks/handoff?token=s3cr3t")

	recs := waitRecords(t, env.bus, ev, 1)
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	req := reqs[0]

	// The request line and headers.
	require.Equal(t, http.MethodPost, req.method)
	require.Equal(t, "/hooks/handoff", req.path)
	require.Equal(t, "token=s3cr3t", req.query)
	require.Equal(t, "application/cloudevents+json", req.header.Get("Content-Type"))
	require.Equal(t, "Handoff-Notifier", req.header.Get("User-Agent"))
	require.Equal(t, ev.ID, req.header.Get(webhook.HeaderID))
	ts, err := strconv.ParseInt(req.header.Get(webhook.HeaderTimestamp), 10, 64)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), time.Unix(ts, 0), waitFor)
	require.True(t, strings.HasPrefix(req.header.Get(webhook.HeaderSignature), "v1,"))
	verifyWithReference(t, env.secret, req)

	// The body is the event as a structured-mode CloudEvent.
	var body map[string]any
	require.NoError(t, json.Unmarshal(req.body, &body))
	require.Equal(t, "1.0", body["specversion"])
	require.Equal(t, ev.ID, body["id"])
	require.Equal(t, "/handoff/executor/e1", body["source"])
	require.Equal(t, "dev.handoff.task.succeeded", body["type"])
	require.Equal(t, ev.TaskID, body["subject"])
	require.Equal(t, "application/json", body["datacontenttype"])
	require.Equal(t, tenant, body["tenant"])
	require.Equal(t, taskType, body["tasktype"])
	require.EqualValues(t, 1, body["attempt"])
	require.Equal(t, ev.TraceParent, body["traceparent"])
	at, err := time.Parse(time.RFC3339Nano, body["time"].(string))
	require.NoError(t, err)
	require.True(t, ev.Time.Equal(at), "time %s, want %s", at, ev.Time)
	data, err := json.Marshal(body["data"])
	require.NoError(t, err)
	require.JSONEq(t, `{"result":{"files":3}}`, string(data))

	// The attempt is on the task, with the endpoint minus its query.
	rec := recs[0]
	require.Equal(t, events.KindDelivered, rec.event.Kind)
	require.Equal(t, "/handoff/notifier/test", rec.event.Source)
	require.Equal(t, ev.ID, rec.data.EventID)
	require.Equal(t, events.KindSucceeded, rec.data.EventKind)
	require.Equal(t, rcv.URL+"/hooks/handoff", rec.data.Endpoint)
	require.Equal(t, 1, rec.data.Attempt)
	require.Equal(t, http.StatusNoContent, rec.data.StatusCode)
	require.Empty(t, rec.data.Error)
	require.Positive(t, rec.data.Duration.Std())

	task, err := env.bus.ReadTask(context.Background(), ev.Tenant, ev.TaskID)
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 1, task.Deliveries)
	require.Empty(t, task.Skipped)

	waitSettled(t, env.bus, ev.Seq)
	require.Len(t, rcv.requests(), 1)

	// Neither the secret nor the URL's token reaches the log.
	env.stop(t)
	for _, entry := range env.logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		require.NotContains(t, line, "s3cr3t")
		require.NotContains(t, line, strings.TrimPrefix(env.secret, webhook.SecretPrefix))
	}
	started := env.logs.FilterMessage("notifier started").All()
	require.Len(t, started, 1)
	require.EqualValues(t, 1, started[0].ContextMap()["secrets"])
}

func TestRetryUntilDelivered(t *testing.T) {
	rcv := newReceiver(t, sequence(http.StatusInternalServerError, http.StatusInternalServerError, http.StatusOK))
	env := startNotifier(t, nil)
	ev := publishSucceeded(t, env.bus, rcv.URL)

	recs := waitRecords(t, env.bus, ev, 3)
	reqs := rcv.requests()
	require.Len(t, reqs, 3)
	for i, req := range reqs {
		require.Equal(t, ev.ID, req.header.Get(webhook.HeaderID), "request %d", i+1)
		verifyWithReference(t, env.secret, req)
		require.Equal(t, string(reqs[0].body), string(req.body), "request %d", i+1)
	}

	wantKinds := []events.Kind{events.KindDeliveryFailed, events.KindDeliveryFailed, events.KindDelivered}
	wantStatus := []int{500, 500, 200}
	for i, rec := range recs {
		require.Equal(t, wantKinds[i], rec.event.Kind, "record %d", i+1)
		require.Equal(t, i+1, rec.data.Attempt, "record %d", i+1)
		require.Equal(t, wantStatus[i], rec.data.StatusCode, "record %d", i+1)
	}
	require.Equal(t, "receiver returned HTTP 500 Internal Server Error", recs[0].data.Error)
	require.Empty(t, recs[2].data.Error)

	task, err := env.bus.ReadTask(context.Background(), ev.Tenant, ev.TaskID)
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 1, task.Deliveries)
	require.Equal(t, 2, task.DeliveryFailures)

	waitSettled(t, env.bus, ev.Seq)
	require.Len(t, env.logs.FilterMessage("delivery failed; retrying").All(), 2)
}

func TestRetryAfterHonoured(t *testing.T) {
	rcv := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	env := startNotifier(t, func(c *notifier.Config) { c.Backoff = []time.Duration{10 * time.Millisecond} })
	ev := publishSucceeded(t, env.bus, rcv.URL)

	recs := waitRecords(t, env.bus, ev, 2)
	require.Equal(t, http.StatusTooManyRequests, recs[0].data.StatusCode)
	require.Equal(t, events.KindDelivered, recs[1].event.Kind)

	reqs := rcv.requests()
	require.Len(t, reqs, 2)
	gap := reqs[1].at.Sub(reqs[0].at)
	require.GreaterOrEqual(t, gap, time.Second, "the second attempt came %s after the first", gap)
}

func TestClientErrorNotRetried(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusGone} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rcv := newReceiver(t, status(code))
			env := startNotifier(t, nil)
			ev := publishSucceeded(t, env.bus, rcv.URL)

			recs := waitRecords(t, env.bus, ev, 1)
			require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
			require.Equal(t, code, recs[0].data.StatusCode)

			// Settled with nothing held for a retry: the event was given up.
			waitSettled(t, env.bus, ev.Seq)
			require.Len(t, rcv.requests(), 1)
			require.Len(t, records(t, env.bus, ev), 1)
			giveUps := env.logs.FilterMessage("delivery failed; giving up, a retry would not help").All()
			require.Len(t, giveUps, 1)
			require.Equal(t, zapcore.WarnLevel, giveUps[0].Level)
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	elsewhere := newReceiver(t, status(http.StatusOK))
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/hook", http.StatusFound)
	})
	env := startNotifier(t, nil)
	ev := publishSucceeded(t, env.bus, rcv.URL+"/hook")

	recs := waitRecords(t, env.bus, ev, 1)
	require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
	require.Equal(t, http.StatusFound, recs[0].data.StatusCode)
	require.Contains(t, recs[0].data.Error, "redirects are not followed")

	waitSettled(t, env.bus, ev.Seq)
	require.Len(t, rcv.requests(), 1)
	require.Empty(t, elsewhere.requests())
}

func TestHangingReceiverTimedOut(t *testing.T) {
	rcv := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			// Hang until the notifier gives up on the request.
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	const timeout = 300 * time.Millisecond
	env := startNotifier(t, func(c *notifier.Config) { c.Timeout = timeout })
	ev := publishSucceeded(t, env.bus, rcv.URL)

	recs := waitRecords(t, env.bus, ev, 2)
	failed := recs[0].data
	require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
	require.Zero(t, failed.StatusCode)
	require.Contains(t, failed.Error, "timed out: no response within 300ms")
	require.GreaterOrEqual(t, failed.Duration.Std(), timeout)
	require.Less(t, failed.Duration.Std(), waitFor)
	require.NotContains(t, failed.Error, rcv.URL, "errors must not quote the URL")
	require.Equal(t, events.KindDelivered, recs[1].event.Kind)
}

func TestGiveUpAfterLastRetry(t *testing.T) {
	rcv := newReceiver(t, status(http.StatusServiceUnavailable))
	env := startNotifier(t, func(c *notifier.Config) {
		c.Backoff = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}
	})
	ev := publishSucceeded(t, env.bus, rcv.URL)

	recs := waitRecords(t, env.bus, ev, 3)
	for i, rec := range recs {
		require.Equal(t, events.KindDeliveryFailed, rec.event.Kind, "record %d", i+1)
		require.Equal(t, i+1, rec.data.Attempt, "record %d", i+1)
	}

	waitSettled(t, env.bus, ev.Seq)
	require.Len(t, rcv.requests(), 3)
	giveUps := env.logs.FilterMessage("delivery failed; giving up after the last retry").All()
	require.Len(t, giveUps, 1)
	require.Equal(t, zapcore.WarnLevel, giveUps[0].Level)
	require.EqualValues(t, 3, giveUps[0].ContextMap()["attempt"])
}

func TestTaskWithoutWebhookAcked(t *testing.T) {
	env := startNotifier(t, nil)
	ev := publishSucceeded(t, env.bus, "")

	waitSettled(t, env.bus, ev.Seq)
	require.Empty(t, records(t, env.bus, ev))
	require.Len(t, env.logs.FilterMessage("skip event without webhook or matching subscription").All(), 1)
}

func TestRotationSignsWithEverySecret(t *testing.T) {
	second, err := webhook.NewSecret()
	require.NoError(t, err)
	rcv := newReceiver(t, status(http.StatusOK))
	env := startNotifier(t, func(c *notifier.Config) { c.Secrets = append(c.Secrets, second) })
	ev := publishSucceeded(t, env.bus, rcv.URL)

	waitRecords(t, env.bus, ev, 1)
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	sigs := strings.Fields(reqs[0].header.Get(webhook.HeaderSignature))
	require.Len(t, sigs, 2)
	for _, sig := range sigs {
		require.True(t, strings.HasPrefix(sig, "v1,"), sig)
	}
	verifyWithReference(t, env.secret, reqs[0])
	verifyWithReference(t, second, reqs[0])
}

func TestPreviousSecretSignsUntilRotationEnds(t *testing.T) {
	previous, err := webhook.NewSecret()
	require.NoError(t, err)
	rcv := newReceiver(t, status(http.StatusOK))
	env := startNotifier(t, func(c *notifier.Config) {
		c.PreviousSecrets = []string{previous}
		c.RotationEnds = time.Now().Add(time.Hour)
	})
	ev := publishSucceeded(t, env.bus, rcv.URL)

	waitRecords(t, env.bus, ev, 1)
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Len(t, strings.Fields(reqs[0].header.Get(webhook.HeaderSignature)), 2)
	verifyWithReference(t, env.secret, reqs[0])
	verifyWithReference(t, previous, reqs[0])
	started := env.logs.FilterMessage("notifier started").All()
	require.Len(t, started, 1)
	require.EqualValues(t, 1, started[0].ContextMap()["previous_secrets"])

	// Once the overlap has ended, only the current secret signs.
	over := newReceiver(t, status(http.StatusOK))
	cfg := env.cfg
	cfg.RotationEnds = time.Now().Add(-time.Second)
	env.stop(t)
	next := runNotifier(t, env.bus, cfg)
	ev = publishSucceeded(t, next.bus, over.URL)
	waitRecords(t, next.bus, ev, 1)
	reqs = over.requests()
	require.Len(t, reqs, 1)
	require.Len(t, strings.Fields(reqs[0].header.Get(webhook.HeaderSignature)), 1)
	verifyWithReference(t, env.secret, reqs[0])
	old, err := standardwebhooks.NewWebhook(previous)
	require.NoError(t, err)
	require.Error(t, old.Verify(reqs[0].body, reqs[0].header))
}

func TestInputRequiredDelivered(t *testing.T) {
	rcv := newReceiver(t, status(http.StatusOK))
	env := startNotifier(t, nil)
	ev := publishTask(t, env.bus, rcv.URL, events.KindInputRequired, events.InputRequired{Prompt: "Grant read access to /data?"})

	recs := waitRecords(t, env.bus, ev, 1)
	require.Equal(t, events.KindInputRequired, recs[0].data.EventKind)

	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	var body map[string]any
	require.NoError(t, json.Unmarshal(reqs[0].body, &body))
	require.Equal(t, "dev.handoff.task.input_required", body["type"])
	require.Equal(t, "Grant read access to /data?", body["data"].(map[string]any)["prompt"])
}

func TestRejectedAddressNotContacted(t *testing.T) {
	// The receiver is on loopback, which this notifier does not allow, so
	// the dialer rejects the address before connecting.
	rcv := newReceiver(t, status(http.StatusOK))
	env := startNotifier(t, func(c *notifier.Config) { c.AllowLoopback = false })
	ev := publishSucceeded(t, env.bus, rcv.URL)

	recs := waitRecords(t, env.bus, ev, 1)
	require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
	require.Zero(t, recs[0].data.StatusCode)
	require.Contains(t, recs[0].data.Error, "webhook address rejected: 127.0.0.1 is a loopback address")

	waitSettled(t, env.bus, ev.Seq)
	require.Empty(t, rcv.requests())
}

func TestManyTasksDelivered(t *testing.T) {
	rcv := newReceiver(t, status(http.StatusOK))
	env := startNotifier(t, func(c *notifier.Config) { c.Concurrency = 4 })

	const tasks = 40
	seen := map[string]bool{}
	var last events.Event
	for range tasks {
		last = publishSucceeded(t, env.bus, rcv.URL)
	}
	waitSettled(t, env.bus, last.Seq)

	reqs := rcv.requests()
	require.Len(t, reqs, tasks)
	for _, req := range reqs {
		id := req.header.Get(webhook.HeaderID)
		require.False(t, seen[id], "event %s delivered twice", id)
		seen[id] = true
	}
}

func TestShutdownFinishesDeliveryInFlight(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		<-release
		w.WriteHeader(http.StatusOK)
	})
	env := startNotifier(t, nil)
	ev := publishSucceeded(t, env.bus, rcv.URL)

	select {
	case <-arrived:
	case <-time.After(waitFor):
		t.Fatal("the receiver got no request")
	}
	env.cancel()
	env.cancel = nil

	// Run waits for the delivery in flight.
	select {
	case err := <-env.done:
		t.Fatalf("Run returned %v while a delivery was in flight", err)
	default:
	}
	close(release)
	select {
	case err := <-env.done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("Run did not return after the delivery ended")
	}

	recs := records(t, env.bus, ev)
	require.Len(t, recs, 1)
	require.Equal(t, events.KindDelivered, recs[0].event.Kind)
	waitSettled(t, env.bus, ev.Seq)
}

func TestRunStopsWhenConsumerDeleted(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	n, err := notifier.New(notifier.Config{Secrets: []string{secret}}, b, zap.NewNop())
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- n.Run(context.Background()) }()

	// The server notifies waiting pull requests when their consumer is deleted.
	require.Eventually(t, func() bool {
		cons, err := b.JetStream().Consumer(context.Background(), b.Names().TasksStream(), notifier.ConsumerName)
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	}, waitFor, tick)
	require.NoError(t, b.JetStream().DeleteConsumer(context.Background(), b.Names().TasksStream(), notifier.ConsumerName))

	select {
	case err := <-done:
		require.ErrorContains(t, err, "consumer notifier stopped")
	case <-time.After(waitFor):
		t.Fatal("Run did not return after its consumer was deleted")
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	b := natstest.Start(t).Bus(t)

	_, err := notifier.New(notifier.Config{}, b, nil)
	require.ErrorIs(t, err, notifier.ErrInvalidConfig)
	require.ErrorContains(t, err, "Secrets is empty")

	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	_, err = notifier.New(notifier.Config{Secrets: []string{secret}, Namespace: "other"}, b, nil)
	require.ErrorIs(t, err, notifier.ErrInvalidConfig)
	require.ErrorContains(t, err, `Namespace "other" differs from the bus namespace "handoff"`)

	n, err := notifier.New(notifier.Config{Secrets: []string{secret}}, b, nil)
	require.NoError(t, err)
	cfg := n.ConsumerConfig()
	require.Equal(t, notifier.ConsumerName, cfg.Durable)
	require.ElementsMatch(t, []string{
		"handoff.task.*.*.succeeded.>", "handoff.task.*.*.failed.>", "handoff.task.*.*.cancelled.>",
		"handoff.task.*.*.rejected.>", "handoff.task.*.*.expired.>", "handoff.task.*.*.input_required.>",
	}, cfg.FilterSubjects)
}

func TestRunCancelledBeforeStartReturnsNil(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	n, err := notifier.New(notifier.Config{Secrets: []string{secret}}, b, zap.NewNop())
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, n.Run(ctx))
	require.ErrorContains(t, n.Run(context.Background()), "Run called more than once")
}

func TestScheduledTaskCancelledDelivered(t *testing.T) {
	// A task cancelled before its run_at has no submitted event: the
	// notifier finds its webhook in the scheduled event.
	rcv := newReceiver(t, status(http.StatusOK))
	env := startNotifier(t, nil)
	w := &taskWriter{t: t, b: env.bus, id: events.NewID(), taskType: taskType, opts: bus.AppendOptions{TTL: time.Hour}}
	runAt := time.Now().Add(time.Hour)
	w.append(events.KindScheduled, events.Submission{
		Input:   json.RawMessage(`{"dir":"/data"}`),
		TTL:     events.Duration(time.Hour),
		RunAt:   &runAt,
		Webhook: &events.Webhook{URL: rcv.URL + "/hooks"},
	}, "/handoff/ingest")
	ev := w.append(events.KindCancelled, events.Reason{Reason: "not needed"}, "/handoff/ingest")

	recs := waitRecords(t, env.bus, ev, 1)
	require.Equal(t, events.KindDelivered, recs[0].event.Kind)
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, ev.ID, reqs[0].header.Get(webhook.HeaderID))
}
