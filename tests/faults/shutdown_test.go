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

// TestExecutorGracefulShutdown stops an executor with SIGTERM while it
// runs short and long handlers. It must stop taking work at once, let the
// short handlers finish within the drain timeout, and hand the long ones
// back for the other executor to run. Every task ends exactly once, and
// the interrupted attempt does not use up the task's only attempt.
func TestExecutorGracefulShutdown(t *testing.T) {
	const short, long, later = 4, 4, 4
	// An ack wait far above the drain timeout shows that the long tasks
	// are handed back at shutdown, not taken over after the ack wait.
	s := newStack(t, execConfig{AckWait: 20 * time.Second, DrainTimeout: 3 * time.Second, KillGrace: time.Second, Concurrency: short + long})
	leaving := s.startExecutor("exec-leaving")
	s.startIngest()

	var shortIDs, longIDs, laterIDs []string
	for range short {
		shortIDs = append(shortIDs, s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":1.5}`), MaxAttempts: 1}))
	}
	for range long {
		longIDs = append(longIDs, s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":6}`), MaxAttempts: 1}))
	}
	for _, id := range append(append([]string(nil), shortIDs...), longIDs...) {
		require.Equal(t, "exec-leaving", s.waitStarted(id, 1, 30*time.Second).Executor)
		s.waitExecution(id, 1, "start", 30*time.Second)
	}
	s.startExecutor("exec-staying")

	term := time.Now()
	leaving.signal(t, syscall.SIGTERM)
	for range later {
		laterIDs = append(laterIDs, s.mustSubmit(client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(`{"seconds":0.1}`), MaxAttempts: 1}))
	}
	require.NoError(t, leaving.waitExit(t, exitTimeout), "exit after SIGTERM")
	exited := time.Since(term)
	// Draining waits for drain_timeout, then kill_grace plus a second for
	// the cancelled handlers, then the outcome writes and the connection
	// drain.
	bound := s.cfg.DrainTimeout + s.cfg.KillGrace + 5*time.Second
	require.Less(t, exited, bound, "time from SIGTERM to exit")

	all := append(append(append([]string(nil), shortIDs...), longIDs...), laterIDs...)
	s.waitEnded(all, 60*time.Second)

	for _, id := range shortIDs {
		h := s.mustHistory(id)
		h.requireEndedOnce(t, events.StatusSucceeded)
		require.Len(t, h.starts, 1, "a short task finished during the drain\n%s", h)
		require.Equal(t, executorSource("exec-leaving"), h.event(events.KindSucceeded).Source, "%s", h)
	}
	var maxHandback time.Duration
	for _, id := range longIDs {
		h := s.mustHistory(id)
		h.requireEndedOnce(t, events.StatusSucceeded)
		require.Len(t, h.starts, 2, "%s", h)
		require.Equal(t, "exec-staying", h.starts[1].Executor, "%s", h)
		require.Equal(t, executorSource("exec-staying"), h.event(events.KindSucceeded).Source, "%s", h)
		require.Equal(t, 1, h.count(events.KindRetrying), "%s", h)
		var retry events.Retrying
		require.NoError(t, h.event(events.KindRetrying).DecodeData(&retry))
		require.Equal(t, events.CodeInterrupted, retry.Error.Code, "%s", h)
		require.Equal(t, executorSource("exec-leaving"), h.event(events.KindRetrying).Source, "%s", h)
		require.Zero(t, h.task.Failures, "the interrupted attempt counts as a failure\n%s", h)
		maxHandback = max(maxHandback, h.events[h.indexOfStarted(2)].Stored.Sub(term))
	}
	for _, id := range laterIDs {
		h := s.mustHistory(id)
		h.requireEndedOnce(t, events.StatusSucceeded)
		require.Len(t, h.starts, 1, "%s", h)
		require.Equal(t, "exec-staying", h.starts[0].Executor, "a task submitted after SIGTERM ran on the stopping executor\n%s", h)
	}
	t.Logf("drain_timeout=%s kill_grace=%s ack_wait=%s exit_after_sigterm=%s handback_started_after_sigterm_max=%s short=%d long=%d later=%d",
		s.cfg.DrainTimeout, s.cfg.KillGrace, s.cfg.AckWait, exited.Round(time.Millisecond), maxHandback.Round(time.Millisecond), short, long, later)
}
