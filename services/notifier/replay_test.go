package notifier_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

func TestReplayDeliversAgainWithOriginalIDs(t *testing.T) {
	hook := newReceiver(t, status(http.StatusOK))
	subRcv := newReceiver(t, status(http.StatusOK))
	var sub *subscription.Created
	env, _ := startWithSubscriptions(t, func(store *subscription.Store) {
		sub = subscribe(t, store, subscription.Input{URL: subRcv.URL})
	})

	before := publishSucceeded(t, env.bus, hook.URL)
	waitSettled(t, env.bus, before.Seq)
	since := time.Now()
	ev := publishTask(t, env.bus, hook.URL+"/h?token=abc", events.KindFailed, events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "disk full"}})
	waitRecords(t, env.bus, ev, 2)
	waitSettled(t, env.bus, ev.Seq)
	require.Len(t, hook.requests(), 2)
	require.Len(t, subRcv.requests(), 2)
	ctx := context.Background()

	// A dry run counts and sends nothing.
	res, err := notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: since, DryRun: true}, zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, notifier.ReplayResult{Events: 1, Deliveries: 2}, res)

	// A replay limited to the submit webhook, named without its query,
	// sends the event there once more with its original id.
	res, err = notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: since, Endpoint: hook.URL + "/h"}, zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, notifier.ReplayResult{Events: 1, Deliveries: 1}, res)
	recs := waitRecords(t, env.bus, ev, 3)
	waitSettled(t, env.bus, ev.Seq)

	reqs := hook.requests()
	require.Len(t, reqs, 3)
	require.Equal(t, ev.ID, reqs[2].header.Get(webhook.HeaderID))
	require.Equal(t, string(reqs[1].body), string(reqs[2].body), "the replay sends the same body")
	require.Equal(t, "token=abc", reqs[2].query)
	verifyWithReference(t, env.secret, reqs[2])
	require.Len(t, subRcv.requests(), 2, "the subscription was not selected")
	require.Equal(t, events.KindDelivered, recs[2].event.Kind)
	require.Equal(t, 1, recs[2].data.Attempt, "a replay counts its attempts from 1")

	// A replay of every endpoint from before the first task sends both
	// tasks' events to both endpoints.
	res, err = notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: before.Stored.Add(-time.Millisecond)}, zap.NewNop())
	require.NoError(t, err)
	require.Equal(t, notifier.ReplayResult{Events: 2, Deliveries: 4}, res)
	waitRecords(t, env.bus, ev, 5)
	waitSettled(t, env.bus, ev.Seq)
	subReqs := subRcv.requests()
	require.Len(t, subReqs, 4)
	for _, req := range subReqs[2:] {
		verifyWithReference(t, sub.Secret, req)
	}
	require.ElementsMatch(t, []string{before.ID, ev.ID}, []string{subReqs[2].header.Get(webhook.HeaderID), subReqs[3].header.Get(webhook.HeaderID)})
}

func TestReplayOptions(t *testing.T) {
	env := startNotifier(t, nil)
	ctx := context.Background()

	_, err := notifier.Replay(ctx, env.bus, notifier.ReplayOptions{}, nil)
	require.ErrorContains(t, err, "Since is missing")
	_, err = notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: time.Now(), Tenant: "Acme"}, nil)
	require.ErrorIs(t, err, events.ErrInvalidToken)

	// Nothing stored since then: nothing to replay.
	res, err := notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: time.Now()}, nil)
	require.NoError(t, err)
	require.Zero(t, res)

	// Another tenant's events are left out.
	rcv := newReceiver(t, status(http.StatusOK))
	ev := publishSucceeded(t, env.bus, rcv.URL)
	res, err = notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: ev.Stored.Add(-time.Second), Tenant: "globex", DryRun: true}, nil)
	require.NoError(t, err)
	require.Zero(t, res)
	res, err = notifier.Replay(ctx, env.bus, notifier.ReplayOptions{Since: ev.Stored.Add(-time.Second), Tenant: tenant, DryRun: true}, nil)
	require.NoError(t, err)
	require.Equal(t, notifier.ReplayResult{Events: 1, Deliveries: 1}, res)
}
