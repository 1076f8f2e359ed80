package notifier_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// newStore returns a subscription store on b that accepts loopback URLs.
func newStore(t *testing.T, b *bus.Bus) *subscription.Store {
	t.Helper()
	s, err := subscription.NewStore(b, subscription.Options{Guard: webhook.Guard{AllowLoopback: true}})
	require.NoError(t, err)
	return s
}

// subscribe creates a subscription of the test tenant.
func subscribe(t *testing.T, s *subscription.Store, in subscription.Input) *subscription.Created {
	t.Helper()
	created, err := s.Create(context.Background(), tenant, in)
	require.NoError(t, err)
	return created
}

// startWithSubscriptions starts NATS, creates the subscriptions that
// create makes, and then starts a notifier, which loads them before it
// takes any event.
func startWithSubscriptions(t *testing.T, create func(*subscription.Store)) (*testEnv, *subscription.Store) {
	t.Helper()
	b := natstest.Start(t).Bus(t)
	store := newStore(t, b)
	create(store)
	return runNotifier(t, b, testConfig(t)), store
}

func TestSubscriptionsReceiveMatchingEvents(t *testing.T) {
	hook := newReceiver(t, status(http.StatusOK))
	files := newReceiver(t, status(http.StatusNoContent))
	failures := newReceiver(t, status(http.StatusOK))
	var filesSub *subscription.Created
	env, _ := startWithSubscriptions(t, func(store *subscription.Store) {
		filesSub = subscribe(t, store, subscription.Input{URL: files.URL + "/files?k=v", Kinds: []events.Kind{events.KindSucceeded}, TaskTypePrefix: "files"})
		subscribe(t, store, subscription.Input{URL: failures.URL, Kinds: []events.Kind{events.KindFailed}})
	})

	ev := publishSucceeded(t, env.bus, hook.URL)
	other := newTask(t, env.bus, "reports.daily", "").run(events.KindSucceeded, events.Succeeded{Result: json.RawMessage(`1`)})

	recs := waitRecords(t, env.bus, ev, 2)
	waitSettled(t, env.bus, other.Seq)

	// The submit webhook is signed with the notifier's secret, the
	// subscription with its own.
	require.Len(t, hook.requests(), 1)
	verifyWithReference(t, env.secret, hook.requests()[0])
	reqs := files.requests()
	require.Len(t, reqs, 1, "the files subscription gets the files task only")
	require.Equal(t, ev.ID, reqs[0].header.Get(webhook.HeaderID))
	require.Equal(t, "/files", reqs[0].path)
	require.Equal(t, "k=v", reqs[0].query)
	verifyWithReference(t, filesSub.Secret, reqs[0])
	ref, err := standardwebhooks.NewWebhook(env.secret)
	require.NoError(t, err)
	require.Error(t, ref.Verify(reqs[0].body, reqs[0].header), "the notifier's secret must not sign subscription requests")
	require.Empty(t, failures.requests(), "the failures subscription selects no succeeded event")
	require.Empty(t, records(t, env.bus, other), "the task without webhook matches no subscription")

	// Each delivery is on the task, the subscription's with its id.
	bySub := map[string]record{}
	for _, rec := range recs {
		require.Equal(t, events.KindDelivered, rec.event.Kind)
		bySub[rec.data.SubscriptionID] = rec
	}
	require.Equal(t, hook.URL, bySub[""].data.Endpoint)
	require.Equal(t, files.URL+"/files", bySub[filesSub.ID].data.Endpoint)
	require.Equal(t, http.StatusNoContent, bySub[filesSub.ID].data.StatusCode)
	require.Equal(t, 1, bySub[filesSub.ID].data.Attempt)

	// No log line shows a secret.
	for _, entry := range env.logs.All() {
		line := entry.Message + " " + strings.Join(fieldValues(entry.ContextMap()), " ")
		require.NotContains(t, line, strings.TrimPrefix(filesSub.Secret, webhook.SecretPrefix))
	}
}

func TestGoneDisablesSubscription(t *testing.T) {
	gone := newReceiver(t, status(http.StatusGone))
	var sub *subscription.Created
	env, store := startWithSubscriptions(t, func(store *subscription.Store) {
		sub = subscribe(t, store, subscription.Input{URL: gone.URL})
	})

	ev := publishSucceeded(t, env.bus, "")
	recs := waitRecords(t, env.bus, ev, 1)
	require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
	require.Equal(t, http.StatusGone, recs[0].data.StatusCode)
	require.Equal(t, sub.ID, recs[0].data.SubscriptionID)
	waitSettled(t, env.bus, ev.Seq)

	got, err := store.Get(context.Background(), tenant, sub.ID)
	require.NoError(t, err)
	require.Equal(t, subscription.StatusDisabled, got.Status)
	require.Equal(t, "the endpoint responded 410 Gone", got.DisabledReason)
	require.Len(t, env.logs.FilterMessage("subscription disabled: the endpoint responded 410 Gone").All(), 1)

	// Later events are not sent to it, and the 410 was not retried.
	later := publishSucceeded(t, env.bus, "")
	waitSettled(t, env.bus, later.Seq)
	require.Len(t, gone.requests(), 1)
	require.Empty(t, records(t, env.bus, later))
}

func TestDeletedSubscriptionJobsDropped(t *testing.T) {
	// The receiver fails, so the job waits for a retry when the
	// subscription is deleted.
	rcv := newReceiver(t, status(http.StatusServiceUnavailable))
	var sub *subscription.Created
	env, store := startWithSubscriptions(t, func(store *subscription.Store) {
		sub = subscribe(t, store, subscription.Input{URL: rcv.URL})
	})

	ev := publishSucceeded(t, env.bus, "")
	waitRecords(t, env.bus, ev, 1)
	require.NoError(t, store.Delete(context.Background(), tenant, sub.ID))
	waitSettled(t, env.bus, ev.Seq)

	// At most the attempt in flight during the deletion follows.
	require.LessOrEqual(t, len(rcv.requests()), 2)
	require.LessOrEqual(t, len(records(t, env.bus, ev)), 2)
}

func TestSubscriptionSecretRotation(t *testing.T) {
	rcv := newReceiver(t, status(http.StatusOK))
	var sub, rotated *subscription.Created
	env, _ := startWithSubscriptions(t, func(store *subscription.Store) {
		sub = subscribe(t, store, subscription.Input{URL: rcv.URL})
		var err error
		rotated, err = store.RotateSecret(context.Background(), tenant, sub.ID, time.Hour)
		require.NoError(t, err)
	})

	ev := publishSucceeded(t, env.bus, "")
	waitRecords(t, env.bus, ev, 1)
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Len(t, strings.Fields(reqs[0].header.Get(webhook.HeaderSignature)), 2)
	verifyWithReference(t, sub.Secret, reqs[0])
	verifyWithReference(t, rotated.Secret, reqs[0])
}

// fieldValues formats the values of a log entry's fields.
func fieldValues(fields map[string]any) []string {
	out := make([]string, 0, len(fields))
	for k, v := range fields {
		b, _ := json.Marshal(v)
		out = append(out, k+"="+string(b))
	}
	return out
}
