package notifier_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

// holdFirst returns a receiver that signals arrived on its first request
// and holds it until release is closed or the client gives up, and that
// responds 200 to every later request.
func holdFirst(t *testing.T) (rcv *receiver, arrived, release chan struct{}) {
	t.Helper()
	arrived, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	rcv = newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			once.Do(func() { close(arrived) })
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	return rcv, arrived, release
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("%s did not happen within %s", what, waitFor)
	}
}

func TestStoppedNotifierHandsJobOver(t *testing.T) {
	rcv, arrived, release := holdFirst(t)
	defer close(release)
	env := startNotifier(t, func(c *notifier.Config) { c.DrainTimeout = 50 * time.Millisecond })
	ev := publishSucceeded(t, env.bus, rcv.URL)

	// Stop the notifier while the receiver holds the request: after
	// DrainTimeout the attempt is cancelled and the job goes back.
	waitClosed(t, arrived, "the first request")
	env.stop(t)
	recs := waitRecords(t, env.bus, ev, 1)
	require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
	require.Contains(t, recs[0].data.Error, "attempt interrupted: the notifier shut down")
	require.Len(t, env.logs.FilterMessage("delivery interrupted by shutdown; returning the job").All(), 1)

	// A new notifier delivers the job, with the same webhook-id.
	next := runNotifier(t, env.bus, env.cfg)
	recs = waitRecords(t, next.bus, ev, 2)
	require.Equal(t, events.KindDelivered, recs[1].event.Kind)
	require.Equal(t, 2, recs[1].data.Attempt)
	waitSettled(t, env.bus, ev.Seq)

	reqs := rcv.requests()
	require.Len(t, reqs, 2)
	for _, req := range reqs {
		require.Equal(t, ev.ID, req.header.Get(webhook.HeaderID))
		verifyWithReference(t, env.secret, req)
	}
}

func TestCrashedNotifierJobResumed(t *testing.T) {
	rcv, arrived, release := holdFirst(t)
	// The shortest AckWait allowed: the attempt timeout plus 10s for the
	// reads and the record around it.
	env := startNotifier(t, func(c *notifier.Config) {
		c.Timeout = time.Second
		c.AckWait = 11 * time.Second
	})
	env.stop(t)

	// A notifier on its own connection crashes mid-delivery: its
	// connection closes, so it can neither record the attempt nor ack the
	// job.
	conn := env.srv.Connect(t)
	crashBus, err := bus.New(conn, "")
	require.NoError(t, err)
	crashed, err := notifier.New(env.cfg, crashBus, zap.NewNop())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- crashed.Run(context.Background()) }()

	ev := publishSucceeded(t, env.bus, rcv.URL)
	waitClosed(t, arrived, "the first request")
	conn.Close()
	close(release)
	select {
	case err := <-done:
		require.ErrorContains(t, err, "stopped")
	case <-time.After(waitFor):
		t.Fatal("the crashed notifier's Run did not return")
	}
	require.Empty(t, records(t, env.bus, ev))

	// After AckWait the job goes to a new notifier, which delivers it
	// with the same webhook-id.
	next := runNotifier(t, env.bus, env.cfg)
	var recs []record
	require.Eventually(t, func() bool {
		recs = records(t, next.bus, ev)
		return len(recs) == 1
	}, env.cfg.AckWait+waitFor, 50*time.Millisecond)
	require.Equal(t, events.KindDelivered, recs[0].event.Kind)
	require.Equal(t, 1, recs[0].data.Attempt, "the crashed attempt left no record")
	waitSettled(t, env.bus, ev.Seq)

	reqs := rcv.requests()
	require.Len(t, reqs, 2)
	for _, req := range reqs {
		require.Equal(t, ev.ID, req.header.Get(webhook.HeaderID))
		verifyWithReference(t, env.secret, req)
	}
}
