package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// Soak settings. HANDOFF_SOAK_TASKS sets the number of tasks for a longer
// run; the submission rate stays the same, so the run takes longer too.
const (
	defaultSoakTasks = 2000
	soakRate         = 50 // tasks submitted per second
	soakSubmitters   = 8
	// soakKillEvery is the least time between two kills of the flapping
	// executor; a random second is added to each.
	soakKillEvery = 2 * time.Second
	// soakMaxAttempts is the max_attempts of the tasks that must succeed,
	// the highest allowed. A task of a few seconds loses nearly every
	// attempt that runs on the flapping executor, and a freshly restarted
	// executor takes many of the takeovers: runs of 2000 tasks saw up to 10
	// lost attempts of one task.
	soakMaxAttempts = events.MaxMaxAttempts
)

// soakKind is one kind of task in the soak's mix: how to submit it, and
// what its history must show once it ended.
type soakKind struct {
	name    string
	weight  int
	request func(i int) client.SubmitRequest
	// drive, when set, acts on the accepted task from its own goroutine.
	// It cancels the task, pauses and resumes it, or sends its answer.
	drive func(s *stack, id string) error
	check func(h *history) error
}

// driveTimeout bounds each wait of a driver for a task's status.
const driveTimeout = time.Minute

// soakKinds returns the mix of the soak. The weights add up to 20.
func soakKinds() []soakKind {
	return []soakKind{
		{
			name: "echo", weight: 5,
			request: func(i int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.echo", Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), MaxAttempts: soakMaxAttempts}
			},
			check: func(h *history) error {
				if err := wantStatus(h, events.StatusSucceeded); err != nil {
					return err
				}
				var sub events.Submission
				if err := h.event(events.KindSubmitted).DecodeData(&sub); err != nil {
					return err
				}
				if string(sub.Input) != string(h.task.Result) {
					return fmt.Errorf("result %s is not the input %s", h.task.Result, sub.Input)
				}
				return nil
			},
		},
		{
			name: "work", weight: 4,
			request: func(int) client.SubmitRequest {
				input := fmt.Sprintf(`{"seconds":%.2f}`, rand.Float64()/2)
				return client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(input), MaxAttempts: soakMaxAttempts}
			},
			check: func(h *history) error { return wantStatus(h, events.StatusSucceeded) },
		},
		{
			name: "sleep", weight: 1,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.sleep", Input: json.RawMessage(`{"seconds":1.5}`), MaxAttempts: soakMaxAttempts}
			},
			check: func(h *history) error { return wantStatus(h, events.StatusSucceeded) },
		},
		{
			name: "retried", weight: 2,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.flaky", Input: json.RawMessage(`{}`), MaxAttempts: soakMaxAttempts}
			},
			check: func(h *history) error {
				if err := wantStatus(h, events.StatusSucceeded); err != nil {
					return err
				}
				// Attempt 1 exits 75 or, on the flapping executor, is lost.
				if len(h.starts) < 2 {
					return fmt.Errorf("succeeded on attempt %d; attempt 1 always fails", len(h.starts))
				}
				return nil
			},
		},
		{
			name: "failing", weight: 2,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.fail", Input: json.RawMessage(`{}`), MaxAttempts: soakMaxAttempts}
			},
			check: func(h *history) error { return wantError(h, events.CodeExitStatus) },
		},
		{
			name: "cancelled", weight: 1,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":5}`), MaxAttempts: soakMaxAttempts}
			},
			drive: func(s *stack, id string) error {
				ctx, cancel := context.WithTimeout(context.Background(), driveTimeout)
				defer cancel()
				_, err := s.api.Cancel(ctx, id, "soak")
				return err
			},
			check: func(h *history) error { return wantStatus(h, events.StatusCancelled) },
		},
		{
			name: "paused", weight: 1,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":3}`), MaxAttempts: soakMaxAttempts}
			},
			drive: func(s *stack, id string) error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*driveTimeout)
				defer cancel()
				if err := s.awaitStatus(id, events.StatusRunning, driveTimeout); err != nil {
					return err
				}
				if _, err := s.api.Pause(ctx, id, "soak"); err != nil {
					return err
				}
				if err := s.awaitStatus(id, events.StatusPaused, driveTimeout); err != nil {
					return err
				}
				_, err := s.api.Resume(ctx, id, "")
				return err
			},
			check: func(h *history) error {
				if err := wantStatus(h, events.StatusSucceeded); err != nil {
					return err
				}
				if h.count(events.KindPaused) == 0 || h.count(events.KindResumed) == 0 {
					return fmt.Errorf("%d paused and %d resumed events, want at least one of each", h.count(events.KindPaused), h.count(events.KindResumed))
				}
				return nil
			},
		},
		{
			name: "answered", weight: 2,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.ask", Input: json.RawMessage(`{}`), MaxAttempts: soakMaxAttempts}
			},
			drive: func(s *stack, id string) error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*driveTimeout)
				defer cancel()
				if err := s.awaitStatus(id, events.StatusInputRequired, driveTimeout); err != nil {
					return err
				}
				_, err := s.api.Answer(ctx, id, json.RawMessage(`{"approved":true}`))
				return err
			},
			check: func(h *history) error {
				if err := wantStatus(h, events.StatusSucceeded); err != nil {
					return err
				}
				if h.count(events.KindInputRequired) == 0 || h.count(events.KindResumed) == 0 {
					return fmt.Errorf("%d input_required and %d resumed events, want at least one of each", h.count(events.KindInputRequired), h.count(events.KindResumed))
				}
				return nil
			},
		},
		{
			name: "delayed", weight: 1,
			request: func(int) client.SubmitRequest {
				runAt := time.Now().Add(time.Second + rand.N(3*time.Second)).UTC()
				return client.SubmitRequest{Type: "fault.echo", Input: json.RawMessage(`{"delayed":true}`), RunAt: &runAt, MaxAttempts: soakMaxAttempts}
			},
			check: func(h *history) error {
				if err := wantStatus(h, events.StatusSucceeded); err != nil {
					return err
				}
				runAt := h.task.Submission.RunAt
				if runAt == nil {
					return fmt.Errorf("the submission has no run_at")
				}
				// The schedule fires at run_at, to the stream's clock, which
				// is this machine's.
				if started := h.events[h.indexOfStarted(1)].Stored; started.Before(*runAt) {
					return fmt.Errorf("attempt 1 started at %s, before run_at %s", started.Format(time.RFC3339Nano), runAt.Format(time.RFC3339Nano))
				}
				return nil
			},
		},
		{
			name: "crashing", weight: 1,
			request: func(int) client.SubmitRequest {
				return client.SubmitRequest{Type: "fault.crash", Input: json.RawMessage(`{}`), MaxAttempts: 2}
			},
			// The last attempt may also be lost with the flapping executor.
			check: func(h *history) error { return wantStatus(h, events.StatusFailed) },
		},
	}
}

func wantStatus(h *history, want events.Status) error {
	if h.task.Status != want {
		return fmt.Errorf("status %s, want %s", h.task.Status, want)
	}
	return nil
}

func wantError(h *history, code string) error {
	if err := wantStatus(h, events.StatusFailed); err != nil {
		return err
	}
	if h.task.Error == nil || h.task.Error.Code != code {
		return fmt.Errorf("error %+v, want code %s", h.task.Error, code)
	}
	return nil
}

// soakTasks returns HANDOFF_SOAK_TASKS or the default.
func soakTasks(t *testing.T) int {
	t.Helper()
	v := os.Getenv("HANDOFF_SOAK_TASKS")
	if v == "" {
		return defaultSoakTasks
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "invalid HANDOFF_SOAK_TASKS %q", v)
	require.Positive(t, n, "invalid HANDOFF_SOAK_TASKS %q", v)
	return n
}

// TestSoak runs a mix of tasks through two executors while one of them is
// killed with SIGKILL every two to three seconds and restarted. Then it
// checks every task: it ended in the state its kind expects, with exactly
// one terminal event and no compare-and-set event after it.
func TestSoak(t *testing.T) {
	n := soakTasks(t)
	kinds := soakKinds()
	var cycle []int
	for k, kind := range kinds {
		for range kind.weight {
			cycle = append(cycle, k)
		}
	}

	s := newStack(t, execConfig{AckWait: 2 * time.Second, Concurrency: 16})
	s.startExecutor("exec-steady")
	sv := s.supervise("exec-flapping")
	s.waitConsuming(sv)
	s.startIngest()
	began := time.Now()

	stopKiller := make(chan struct{})
	killerDone := make(chan int)
	go func() {
		kills := 0
		defer func() { killerDone <- kills }()
		for {
			pause := time.NewTimer(soakKillEvery + rand.N(time.Second))
			select {
			case <-stopKiller:
				pause.Stop()
				return
			case <-pause.C:
			}
			if sv.kill() != "" {
				kills++
			}
		}
	}()
	stopKilling := sync.OnceValue(func() int {
		close(stopKiller)
		return <-killerDone
	})
	defer stopKilling()

	var mu sync.Mutex
	kindOf := make(map[string]int, n)
	driveErrs := map[string]error{}
	var drivers sync.WaitGroup
	submitted := time.Now()
	ids, rejected := s.submitPaced(n, soakRate, func(i int) client.SubmitRequest {
		return kinds[cycle[i%len(cycle)]].request(i)
	}, func(i int, id string) {
		k := cycle[i%len(cycle)]
		mu.Lock()
		kindOf[id] = k
		mu.Unlock()
		if kinds[k].drive == nil {
			return
		}
		drivers.Add(1)
		go func() {
			defer drivers.Done()
			if err := kinds[k].drive(s, id); err != nil {
				mu.Lock()
				driveErrs[id] = err
				mu.Unlock()
			}
		}()
	})
	submitTook := time.Since(submitted)
	require.Zero(t, rejected, "rejected submissions; ingest and NATS stay up in the soak")

	drivers.Wait()
	lost := s.unended(ids, 3*time.Minute)
	kills := stopKilling()
	took := time.Since(began)

	// Audit every task in the stream, not only those the submitter
	// learned about.
	stored := s.storedTasks()
	require.Len(t, stored, len(ids), "tasks in the stream")

	perKind := make([]kindStats, len(kinds))
	for k := range perKind {
		perKind[k].statuses = map[events.Status]int{}
	}
	duplicated, wrong, takenOver := 0, 0, 0
	var latencies []time.Duration
	var failures []string
	for _, id := range ids {
		if slices.Contains(lost, id) {
			continue
		}
		h := s.mustHistory(id)
		k := kindOf[id]
		perKind[k].add(h)
		if h.task.Failures > h.count(events.KindRetrying) {
			takenOver++
		}
		if h.terminals != 1 || h.afterTerminal != 0 {
			duplicated++
			failures = append(failures, h.String())
			continue
		}
		err := driveErrs[id]
		if err == nil {
			err = kinds[k].check(h)
		}
		if err == nil && len(h.problems) > 0 {
			err = fmt.Errorf("%s", strings.Join(h.problems, "; "))
		}
		if err != nil {
			wrong++
			failures = append(failures, fmt.Sprintf("%s: %v\n%s", kinds[k].name, err, h))
			continue
		}
		latencies = append(latencies, h.events[len(h.events)-1].Stored.Sub(h.events[0].Stored))
	}

	t.Logf("tasks=%d lost=%d duplicated=%d wrong=%d", len(ids), len(lost), duplicated, wrong)
	for k, kind := range kinds {
		t.Logf("kind=%s %s", kind.name, perKind[k])
	}
	slices.Sort(latencies)
	t.Logf("kills=%d restarts=%d taken_over=%d submit_took=%s took=%s end_latency_p50=%s p99=%s max=%s",
		kills, sv.restarts(), takenOver, submitTook.Round(time.Millisecond), took.Round(time.Millisecond),
		percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(latencies, 1))
	for i, f := range failures {
		if i == 5 {
			t.Logf("and %d more failures", len(failures)-i)
			break
		}
		t.Log(f)
	}
	require.Empty(t, lost, "tasks that did not end")
	require.Zero(t, duplicated, "tasks that ended more than once")
	require.Zero(t, wrong, "tasks that ended in the wrong state")
}

// submitPaced submits n tasks at rate per second from a few goroutines
// and returns the accepted ids and the number of rejected submissions.
// accepted is called for each accepted task, from the submitting
// goroutine.
func (s *stack) submitPaced(n, rate int, request func(i int) client.SubmitRequest, accepted func(i int, id string)) ([]string, int) {
	s.t.Helper()
	var mu sync.Mutex
	var ids []string
	rejected := 0

	next := make(chan int)
	var wg sync.WaitGroup
	for range soakSubmitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				id, err := s.submit(ctx, request(i))
				cancel()
				if err != nil {
					mu.Lock()
					rejected++
					if rejected <= 5 {
						s.t.Logf("submission %d rejected: %v", i, err)
					}
					mu.Unlock()
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				accepted(i, id)
			}
		}()
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range n {
		<-tick.C
		next <- i
	}
	tick.Stop()
	close(next)
	wg.Wait()
	return ids, rejected
}

// kindStats counts the outcomes of one kind of task.
type kindStats struct {
	tasks    int
	statuses map[events.Status]int
	// maxStarts and maxFailures are the most started events and the most
	// failed or lost attempts of one task.
	maxStarts   int
	maxFailures int
}

func (ks *kindStats) add(h *history) {
	ks.tasks++
	ks.statuses[h.task.Status]++
	ks.maxStarts = max(ks.maxStarts, len(h.starts))
	ks.maxFailures = max(ks.maxFailures, h.task.Failures)
}

func (ks kindStats) String() string {
	parts := []string{fmt.Sprintf("tasks=%d", ks.tasks)}
	for _, st := range events.Statuses {
		if ks.statuses[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", st, ks.statuses[st]))
		}
	}
	parts = append(parts, fmt.Sprintf("max_started=%d max_failures=%d", ks.maxStarts, ks.maxFailures))
	return strings.Join(parts, " ")
}

// percentile returns the p-th quantile of sorted durations, or 0 for
// none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i].Round(time.Millisecond)
}
