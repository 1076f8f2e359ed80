package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// TestNATSRestart stops nats-server while tasks run and are submitted,
// and starts it again on the same port and store. Every service must
// reconnect on its own, and every accepted task (202) must end exactly
// once. Submissions during the outage may fail: they were not accepted.
func TestNATSRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) { testNATSRestart(t, sig) })
	}
}

func testNATSRestart(t *testing.T, sig syscall.Signal) {
	s := newStack(t, execConfig{AckWait: 2 * time.Second, Concurrency: 16})
	services := []*proc{s.startExecutor("exec-a"), s.startExecutor("exec-b")}
	s.startIngest()
	services = append(services, s.ingest)

	sub := startSubmitter(s, 4, func(i int) client.SubmitRequest {
		switch i % 4 {
		case 0:
			return client.SubmitRequest{Type: "fault.echo", Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), MaxAttempts: 10}
		case 1:
			return client.SubmitRequest{Type: "fault.flaky", Input: json.RawMessage(`{}`), MaxAttempts: 10}
		default:
			seconds := 0.5 + rand.Float64()*1.5
			return client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(fmt.Sprintf(`{"seconds":%.2f}`, seconds)), MaxAttempts: 10}
		}
	})
	defer sub.stop()

	sub.waitAccepted(t, 150, 60*time.Second)
	running := s.countRunning(sub.accepted())
	stopped := time.Now()
	s.stopNATS(sig)
	// The outage outlasts the ack wait, so the leases of the running
	// attempts lapse while the server is down.
	outage := time.NewTimer(3 * time.Second)
	<-outage.C
	s.startNATS()
	restarted := time.Now()
	before := len(sub.accepted())

	sub.waitAccepted(t, before+150, 90*time.Second)
	firstAccepted := sub.firstAcceptedAfter(restarted)
	sub.stop()

	accepted := sub.accepted()
	s.waitEnded(accepted, 3*time.Minute)
	drained := time.Since(restarted)
	for _, p := range services {
		require.True(t, p.running(), "%s exited instead of reconnecting", p.name)
	}

	stored := s.storedTasks()
	for _, id := range accepted {
		require.Contains(t, stored, id, "an accepted task is missing from the stream")
	}
	s.waitEnded(stored, time.Minute)

	retried, lostAttempts := 0, 0
	for _, id := range stored {
		h := s.mustHistory(id)
		h.requireEndedOnce(t, events.StatusSucceeded)
		if len(h.starts) > 1 {
			retried++
		}
		lostAttempts += h.task.Failures - h.count(events.KindRetrying)
	}
	t.Logf("signal=%s accepted=%d stored=%d rejected_submissions=%d running_at_stop=%d outage=%s first_accept_after_restart=%s all_ended_after_restart=%s",
		sig, len(accepted), len(stored), sub.failed(), running, restarted.Sub(stopped).Round(time.Millisecond),
		firstAccepted.Round(time.Millisecond), drained.Round(time.Millisecond))
	t.Logf("lost=0 duplicated=0 tasks_with_more_than_one_attempt=%d lost_attempts=%d", retried, lostAttempts)
}

// countRunning returns how many of the tasks are running.
func (s *stack) countRunning(ids []string) int {
	n := 0
	for _, id := range ids {
		if task, err := s.readTask(id); err == nil && task.Status == events.StatusRunning {
			n++
		}
	}
	return n
}

// submitter submits tasks from a few goroutines until stopped, and keeps
// the ids of the accepted ones.
type submitter struct {
	s    *stack
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu       sync.Mutex
	ids      []string
	times    []time.Time
	failures int
	changed  chan struct{}
}

// startSubmitter starts workers goroutines that submit request(i) for
// i = 0, 1, 2, ... until stop.
func startSubmitter(s *stack, workers int, request func(i int) client.SubmitRequest) *submitter {
	sub := &submitter{s: s, done: make(chan struct{}), changed: make(chan struct{})}
	var next int
	var nextMu sync.Mutex
	for range workers {
		sub.wg.Add(1)
		go func() {
			defer sub.wg.Done()
			for {
				select {
				case <-sub.done:
					return
				default:
				}
				nextMu.Lock()
				i := next
				next++
				nextMu.Unlock()

				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				id, err := s.submit(ctx, request(i))
				cancel()
				sub.record(id, err)
				if err != nil {
					// Pace the retries while the API fails.
					pause := time.NewTimer(50 * time.Millisecond)
					select {
					case <-pause.C:
					case <-sub.done:
						pause.Stop()
					}
				}
			}
		}()
	}
	return sub
}

func (sub *submitter) record(id string, err error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if err != nil {
		sub.failures++
		return
	}
	sub.ids = append(sub.ids, id)
	sub.times = append(sub.times, time.Now())
	close(sub.changed)
	sub.changed = make(chan struct{})
}

// stop stops the workers and waits for them. It is safe to call more
// than once.
func (sub *submitter) stop() {
	sub.once.Do(func() { close(sub.done) })
	sub.wg.Wait()
}

func (sub *submitter) accepted() []string {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return slices.Clone(sub.ids)
}

func (sub *submitter) failed() int {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.failures
}

// firstAcceptedAfter returns how long after t the first submission was
// accepted.
func (sub *submitter) firstAcceptedAfter(t time.Time) time.Duration {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, at := range sub.times {
		if at.After(t) {
			return at.Sub(t)
		}
	}
	return -1
}

// waitAccepted waits until n submissions in all were accepted.
func (sub *submitter) waitAccepted(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		sub.mu.Lock()
		have, changed := len(sub.ids), sub.changed
		sub.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("only %d of %d submissions accepted within %s (%d failed)", have, n, timeout, sub.failed())
		}
	}
}
