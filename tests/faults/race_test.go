package faults

import (
	"encoding/json"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// TestRedeliveryRace makes two executors hold the same message: one is
// stopped with SIGSTOP past the ack wait, so the server redelivers its
// message to the other, and is then continued with SIGCONT. Exactly one
// started event may win each attempt, and the stopped executor's late
// writes must be refused by the compare-and-set.
func TestRedeliveryRace(t *testing.T) {
	t.Run("late result refused", testLateResultRefused)
	t.Run("late started refused", testLateStartedRefused)
}

// testLateResultRefused stops the executor of a running attempt. The other
// executor takes the task over as attempt 2; the stopped one's handler
// finishes meanwhile, and its result, written after SIGCONT, is refused.
func testLateResultRefused(t *testing.T) {
	s := newStack(t, execConfig{AckWait: 2 * time.Second, Concurrency: 1})
	execs := map[string]*proc{
		"exec-a": s.startExecutor("exec-a"),
		"exec-b": s.startExecutor("exec-b"),
	}
	s.startIngest()

	id := s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":3}`)})
	first := s.waitStarted(id, 1, 30*time.Second)
	// The handler must run before the stop, so that it finishes before
	// the takeover's handler, which starts at least the ack wait later.
	s.waitExecution(id, 1, "start", 30*time.Second)
	stalled := execs[first.Executor]
	stalled.signal(t, syscall.SIGSTOP)
	stoppedAt := time.Now()
	t.Cleanup(func() { _ = stalled.cmd.Process.Signal(syscall.SIGCONT) })

	second := s.waitStarted(id, 2, 30*time.Second)
	require.NotEqual(t, first.Executor, second.Executor, "the takeover ran on the stopped executor")
	takeover := time.Since(stoppedAt)
	mark := stalled.mark()
	stalled.signal(t, syscall.SIGCONT)

	dropped := regexp.MustCompile(`another executor took the task over.*"task_id":"` + id + `"`)
	stalled.waitLineAfter(t, mark, dropped, 30*time.Second)
	s.waitEnded([]string{id}, 30*time.Second)

	h := s.mustHistory(id)
	h.requireEndedOnce(t, events.StatusSucceeded)
	require.Len(t, h.starts, 2, "%s", h)
	require.Equal(t, executorSource(second.Executor), h.event(events.KindSucceeded).Source, "%s", h)
	starts, ends := s.countExecutions(id)
	require.Equal(t, 2, starts, "task.sh runs")
	require.Equal(t, 2, ends, "task.sh runs that ended; the stopped executor's handler finished too")
	t.Logf("ack_wait=%s takeover_after_stop=%s attempts=%d executions=%d results_stored=1 results_refused=1",
		s.cfg.AckWait, takeover.Round(time.Millisecond), len(h.starts), starts)
}

// testLateStartedRefused stops an executor after the server delivered a
// submitted message to it but before the executor wrote started. The
// other executor gets the redelivery and starts attempt 1. The stopped
// one, continued, tries to start attempt 1 too, and is refused. Then the
// winner is killed: the task must still end, taken over after the ack
// wait, so the refused executor must not have given up the message. The
// server acknowledges by stream sequence, whatever the delivery, so an ack
// of the stale copy would end the winner's lease.
func testLateStartedRefused(t *testing.T) {
	s := newStack(t, execConfig{AckWait: time.Second, Concurrency: 1, LogLevel: "debug"})
	stalled := s.startExecutor("exec-stalled")
	s.startIngest()
	t.Cleanup(func() { _ = stalled.cmd.Process.Signal(syscall.SIGCONT) })

	// The executor always has a pull request waiting, renewed every
	// second. A task submitted right after SIGSTOP is delivered to it
	// unless that request expired first; then the try is repeated.
	var id string
	for try := 1; ; try++ {
		require.LessOrEqual(t, try, 10, "no submission reached the stopped executor in 10 tries")
		stalled.signal(t, syscall.SIGSTOP)
		id = s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":6}`)})
		if s.deliveredWithin(id, 2*time.Second) {
			t.Logf("try %d: the stopped executor holds the submitted message", try)
			break
		}
		stalled.signal(t, syscall.SIGCONT)
		s.waitEnded([]string{id}, 30*time.Second)
	}

	winner := s.startExecutor("exec-winner")
	first := s.waitStarted(id, 1, 30*time.Second)
	require.Equal(t, "exec-winner", first.Executor)

	mark := stalled.mark()
	stalled.signal(t, syscall.SIGCONT)
	handled := regexp.MustCompile(`"task_id":"` + id + `"`)
	stalled.waitLineAfter(t, mark, handled, 30*time.Second)
	info, err := s.consumerInfo()
	require.NoError(t, err)
	require.EqualValues(t, 1, info.NumAckPending, "the winner's delivery is no longer pending: something acknowledged it")

	winner.signal(t, syscall.SIGKILL)
	require.True(t, exitedBySignal(winner.waitExit(t, exitTimeout), syscall.SIGKILL))
	s.waitEnded([]string{id}, 30*time.Second)

	h := s.mustHistory(id)
	h.requireEndedOnce(t, events.StatusSucceeded)
	require.Len(t, h.starts, 2, "%s", h)
	require.Equal(t, "exec-winner", h.starts[0].Executor, "%s", h)
	require.Equal(t, "exec-stalled", h.starts[1].Executor, "%s", h)
	t.Logf("attempts=%d started_events_for_attempt_1=1", len(h.starts))
}

// deliveredWithin reports whether the executors' consumer delivered the
// task's submitted message within timeout.
func (s *stack) deliveredWithin(id string, timeout time.Duration) bool {
	s.t.Helper()
	h := s.mustHistory(id)
	sub := h.event(events.KindSubmitted)
	require.NotNil(s.t, sub, "%s", h)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		info, err := s.consumerInfo()
		if err == nil && info.Delivered.Stream >= sub.Seq {
			return true
		}
		tick := time.NewTimer(20 * time.Millisecond)
		<-tick.C
	}
	return false
}
