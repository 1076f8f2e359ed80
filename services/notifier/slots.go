package notifier

import (
	"sync"
	"time"
)

// Waits of a job whose endpoint is at its limit of attempts in flight.
const (
	// minBusyDelay is the shortest wait in the stream.
	minBusyDelay = 50 * time.Millisecond
	// slotWait bounds the wait in the worker for a slot of an endpoint
	// whose attempts are quick, before the job goes back to the stream.
	slotWait = 100 * time.Millisecond
	// slowAttempt is the age of an attempt in flight from which its
	// endpoint counts as slow, so jobs for it go back to the stream at
	// once rather than hold a worker.
	slowAttempt = time.Second
)

// endpointSlots bounds the attempts in flight per endpoint. A job that
// finds its endpoint at the limit waits in the worker up to slotWait if
// the endpoint responds quickly. Otherwise it waits in the stream for about
// as long as the endpoint's oldest attempt has been running: briefly for
// a fast endpoint under a burst, up to the attempt timeout for one that
// hangs.
type endpointSlots struct {
	limit   int
	maxWait time.Duration
	now     func() time.Time

	mu   sync.Mutex
	next uint64
	// loads maps an endpoint to its attempts in flight.
	loads map[string]*endpointLoad
}

// endpointLoad is the attempts in flight to one endpoint.
type endpointLoad struct {
	// started maps the token of each attempt to its start.
	started map[uint64]time.Time
	// released is closed, and replaced, when an attempt ends.
	released chan struct{}
}

func newEndpointSlots(limit int, maxWait time.Duration) *endpointSlots {
	return &endpointSlots{limit: limit, maxWait: maxWait, now: time.Now, loads: map[string]*endpointLoad{}}
}

// acquire takes a slot of endpoint and returns its token. When the
// endpoint has no free slot within the wait described on endpointSlots,
// ok is false and wait is how long the job should wait in the stream.
func (s *endpointSlots) acquire(endpoint string) (token uint64, wait time.Duration, ok bool) {
	// The wait in the worker runs on the real clock, ages on s.now.
	deadline := time.Now().Add(slotWait)
	for {
		s.mu.Lock()
		now := s.now()
		load := s.loads[endpoint]
		if load == nil {
			load = &endpointLoad{started: map[uint64]time.Time{}, released: make(chan struct{})}
			s.loads[endpoint] = load
		}
		if len(load.started) < s.limit {
			s.next++
			token = s.next
			load.started[token] = now
			s.mu.Unlock()
			return token, 0, true
		}

		oldest := now
		for _, t := range load.started {
			if t.Before(oldest) {
				oldest = t
			}
		}
		age := now.Sub(oldest)
		released := load.released
		s.mu.Unlock()

		left := time.Until(deadline)
		if age >= slowAttempt || left <= 0 {
			return 0, jitter(min(max(age, minBusyDelay), s.maxWait)), false
		}
		timer := time.NewTimer(left)
		select {
		case <-released:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// release frees the slot of endpoint with token.
func (s *endpointSlots) release(endpoint string, token uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	load := s.loads[endpoint]
	if load == nil {
		return
	}
	delete(load.started, token)
	close(load.released)
	load.released = make(chan struct{})
	if len(load.started) == 0 {
		delete(s.loads, endpoint)
	}
}
