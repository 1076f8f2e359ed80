package bench

import (
	"sync"
	"time"
)

// rendezvous matches operations with their outcomes by id: an operation
// waits on the arrival of its id, which a consumer or a webhook receiver
// delivers. It is safe for concurrent use.
type rendezvous struct {
	mu       sync.Mutex
	arrivals map[string]*arrival
}

// arrival is the outcome of one operation.
type arrival struct {
	// done is closed when the outcome arrived; the fields below are set
	// before.
	done chan struct{}
	// at is when it arrived.
	at time.Time
	// outcome names what arrived, such as the kind of a terminal event.
	outcome string
	// err is a problem found with the arrival, such as a webhook whose
	// signature does not verify.
	err error
}

func newRendezvous() *rendezvous {
	return &rendezvous{arrivals: make(map[string]*arrival)}
}

// expect returns the arrival of id, registering it if needed. Call forget
// once done with it.
func (r *rendezvous) expect(id string) *arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.arrivals[id]
	if !ok {
		a = &arrival{done: make(chan struct{})}
		r.arrivals[id] = a
	}
	return a
}

// forget drops the arrival of id.
func (r *rendezvous) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.arrivals, id)
}

// arrive records the outcome of id at time at. With early set, an id that
// is not expected yet is registered, for outcomes that can come before the
// operation learns its id, such as a webhook that comes before the
// response to the submission. Without early such an id is ignored.
// Repeats are always ignored.
func (r *rendezvous) arrive(id string, at time.Time, outcome string, err error, early bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.arrivals[id]
	if !ok {
		if !early {
			return
		}
		a = &arrival{done: make(chan struct{})}
		r.arrivals[id] = a
	}
	select {
	case <-a.done:
		return
	default:
	}
	a.at, a.outcome, a.err = at, outcome, err
	close(a.done)
}
