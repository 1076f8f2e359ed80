package notifier

import (
	"sync"
	"time"
)

// minBusyDelay is the shortest wait of a job whose endpoint is busy.
const minBusyDelay = 50 * time.Millisecond

// endpointSlots bounds the attempts in flight per endpoint. A job that
// finds its endpoint at the limit waits in the stream for about as long as
// the endpoint's oldest attempt has been running: briefly for a fast
// endpoint, up to the attempt timeout for one that hangs.
type endpointSlots struct {
	limit   int
	maxWait time.Duration
	now     func() time.Time

	mu   sync.Mutex
	next uint64
	// started maps an endpoint to the start times of its attempts in
	// flight, by token.
	started map[string]map[uint64]time.Time
}

func newEndpointSlots(limit int, maxWait time.Duration) *endpointSlots {
	return &endpointSlots{limit: limit, maxWait: maxWait, now: time.Now, started: map[string]map[uint64]time.Time{}}
}

// acquire takes a slot of endpoint and returns its token. When the
// endpoint has no free slot, ok is false and wait is how long to wait
// before trying again.
func (s *endpointSlots) acquire(endpoint string) (token uint64, wait time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	inflight := s.started[endpoint]
	if len(inflight) >= s.limit {
		oldest := now
		for _, t := range inflight {
			if t.Before(oldest) {
				oldest = t
			}
		}
		return 0, jitter(min(max(now.Sub(oldest), minBusyDelay), s.maxWait)), false
	}
	if inflight == nil {
		inflight = map[uint64]time.Time{}
		s.started[endpoint] = inflight
	}
	s.next++
	inflight[s.next] = now
	return s.next, 0, true
}

// release frees the slot of endpoint with token.
func (s *endpointSlots) release(endpoint string, token uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.started[endpoint], token)
	if len(s.started[endpoint]) == 0 {
		delete(s.started, endpoint)
	}
}
