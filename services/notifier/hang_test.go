package notifier_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

func TestHangingReceiverDoesNotDelayOthers(t *testing.T) {
	// The hanging receiver holds the first request of each event until
	// the notifier gives up on it, and responds 200 to the next.
	const timeout = time.Second
	var hanging atomic.Int64
	var mu sync.Mutex
	seen := map[string]bool{}
	slow := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(webhook.HeaderID)
		mu.Lock()
		first := !seen[id]
		seen[id] = true
		mu.Unlock()
		if first {
			hanging.Add(1)
			<-r.Context().Done()
			hanging.Add(-1)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	fast := newReceiver(t, status(http.StatusOK))

	// Two workers, one per endpoint at most: the hanging receiver can hold
	// one, never both.
	env := startNotifier(t, func(c *notifier.Config) {
		c.Timeout = timeout
		c.Concurrency = 2
		c.EndpointConcurrency = 1
	})
	var slowEvents []events.Event
	for range 3 {
		slowEvents = append(slowEvents, publishSucceeded(t, env.bus, slow.URL))
	}
	require.Eventually(t, func() bool { return hanging.Load() == 1 }, waitFor, tick)

	// While the first request hangs, another endpoint gets its event.
	published := time.Now()
	fastEvent := publishSucceeded(t, env.bus, fast.URL)
	waitRecords(t, env.bus, fastEvent, 1)
	reqs := fast.requests()
	require.Len(t, reqs, 1)
	require.Less(t, reqs[0].at.Sub(published), timeout, "the fast receiver waited for the hanging one")
	require.Equal(t, int64(1), hanging.Load(), "the slow receiver's first request still hangs")
	require.Len(t, slow.requests(), 1, "one attempt at a time reaches the hanging endpoint")

	// The hanging attempts time out and are retried.
	for _, ev := range slowEvents {
		recs := waitRecords(t, env.bus, ev, 2)
		require.Equal(t, events.KindDeliveryFailed, recs[0].event.Kind)
		require.Contains(t, recs[0].data.Error, "timed out: no response within 1s")
		require.GreaterOrEqual(t, recs[0].data.Duration.Std(), timeout)
		require.Equal(t, events.KindDelivered, recs[1].event.Kind)
	}
	waitSettled(t, env.bus, fastEvent.Seq)
}
