package faults

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// TestExecutorKilledMidTask kills an executor with SIGKILL while it runs
// tasks. Another executor must run each of them as the next attempt after
// the ack wait, and each must end once, as succeeded.
func TestExecutorKilledMidTask(t *testing.T) {
	const tasks = 12
	s := newStack(t, execConfig{AckWait: 2 * time.Second, Concurrency: tasks})
	victim := s.startExecutor("exec-victim")
	s.startIngest()

	// Only the victim runs while the tasks start, so it holds them all.
	var ids []string
	for range tasks {
		ids = append(ids, s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":4}`)}))
	}
	for _, id := range ids {
		started := s.waitStarted(id, 1, 30*time.Second)
		require.Equal(t, "exec-victim", started.Executor)
	}
	s.startExecutor("exec-survivor")

	killed := time.Now()
	victim.signal(t, syscall.SIGKILL)
	require.True(t, exitedBySignal(victim.waitExit(t, exitTimeout), syscall.SIGKILL))
	s.waitEnded(ids, 90*time.Second)

	var maxTakeover, sumTakeover time.Duration
	orphansFinished := 0
	for _, id := range ids {
		h := s.mustHistory(id)
		h.requireEndedOnce(t, events.StatusSucceeded)
		require.Len(t, h.starts, 2, "%s", h)
		require.Equal(t, "exec-victim", h.starts[0].Executor, "%s", h)
		require.Equal(t, "exec-survivor", h.starts[1].Executor, "%s", h)
		require.Equal(t, executorSource("exec-survivor"), h.event(events.KindSucceeded).Source, "%s", h)
		require.Equal(t, 1, h.task.Failures, "the lost attempt counts as a failure\n%s", h)

		for _, ev := range h.events {
			if ev.Source == executorSource("exec-victim") {
				require.True(t, ev.Stored.Before(h.events[len(h.events)-1].Stored), "%s", h)
			}
		}
		takeover := h.events[h.indexOfStarted(2)].Stored.Sub(killed)
		maxTakeover = max(maxTakeover, takeover)
		sumTakeover += takeover

		starts, ends := s.countExecutions(id)
		require.Equal(t, 2, starts, "task.sh runs of %s", id)
		if ends == 2 {
			orphansFinished++
		}
	}
	t.Logf("tasks=%d ack_wait=%s takeover_after_kill_max=%s takeover_after_kill_mean=%s",
		tasks, s.cfg.AckWait, maxTakeover.Round(time.Millisecond), (sumTakeover / tasks).Round(time.Millisecond))
	// Linux kills each exec handler with its executor (a parent-death
	// signal), so none of the victim's handlers runs to its end.
	require.Zero(t, orphansFinished, "handlers of the killed executor that still ran to their end")
}

// TestHandlerSlowerThanAckWait runs a handler for four times the ack wait
// while two executors serve the pool. The heartbeats must keep the
// message with its executor: one execution, one attempt.
func TestHandlerSlowerThanAckWait(t *testing.T) {
	s := newStack(t, execConfig{AckWait: time.Second})
	s.startExecutor("exec-a")
	s.startExecutor("exec-b")
	s.startIngest()

	began := time.Now()
	id := s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":4}`)})
	s.waitEnded([]string{id}, 60*time.Second)

	h := s.mustHistory(id)
	h.requireEndedOnce(t, events.StatusSucceeded)
	require.Len(t, h.starts, 1, "%s", h)
	starts, ends := s.countExecutions(id)
	require.Equal(t, 1, starts, "task.sh runs")
	require.Equal(t, 1, ends, "task.sh runs that ended")

	info, err := s.consumerInfo()
	require.NoError(t, err)
	require.Zero(t, info.NumRedelivered, "messages redelivered")
	require.Zero(t, info.NumAckPending, "messages not acknowledged")
	t.Logf("handler_seconds=4 ack_wait=%s attempts=%d executions=%d redelivered=%d took=%s",
		s.cfg.AckWait, len(h.starts), starts, info.NumRedelivered, time.Since(began).Round(time.Millisecond))
}
