package faults

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// TestPoisonTask submits a task whose handler fails the same hard way on
// every attempt, then tasks behind it. The poison task must end failed
// after max_attempts with its input still readable in its history, and
// the tasks behind it must succeed. The executor runs one handler at a
// time, so the poison task holds the only slot during each of its
// attempts.
func TestPoisonTask(t *testing.T) {
	cases := []struct {
		name string
		mode string
		// supervised restarts the executor whenever it exits.
		supervised bool
		code       string
		message    string
	}{
		{name: "handler killed by a signal", mode: "crash", code: events.CodeExitStatus, message: "signal: killed"},
		{name: "handler panics", mode: "panic", code: events.CodeExitStatus, message: "panic: runtime error"},
		{name: "handler kills its executor", mode: "kill-executor", supervised: true, code: events.CodeAttemptLost, message: "was lost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const behind = 10
			const maxAttempts = 3
			s := newStack(t, execConfig{AckWait: time.Second, Concurrency: 1})
			var sv *supervisor
			if tc.supervised {
				sv = s.supervise("exec")
				s.waitConsuming(sv)
			} else {
				s.startExecutor("exec")
			}
			s.startIngest()

			input := json.RawMessage(fmt.Sprintf(`{"poison":%q,"note":"kept in the history"}`, tc.mode))
			began := time.Now()
			poison := s.mustSubmit(client.SubmitRequest{Type: "fault." + tc.mode, Input: input, MaxAttempts: maxAttempts})
			var behindIDs []string
			for i := range behind {
				behindIDs = append(behindIDs, s.mustSubmit(client.SubmitRequest{
					Type: "fault.echo", Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), MaxAttempts: maxAttempts,
				}))
			}

			s.waitEnded(behindIDs, 60*time.Second)
			behindDone := time.Since(began)
			s.waitEnded([]string{poison}, 60*time.Second)
			poisonDone := time.Since(began)

			h := s.mustHistory(poison)
			h.requireEndedOnce(t, events.StatusFailed)
			require.Len(t, h.starts, maxAttempts, "%s", h)
			require.NotNil(t, h.task.Error, "%s", h)
			require.Equal(t, tc.code, h.task.Error.Code, "%s", h)
			require.Contains(t, h.task.Error.Message, tc.message, "%s", h)

			// The input stays in the history, so the failure can be
			// looked into.
			var sub events.Submission
			require.NoError(t, h.event(events.KindSubmitted).DecodeData(&sub))
			require.JSONEq(t, string(input), string(sub.Input))
			view, _, err := s.api.Get(t.Context(), poison)
			require.NoError(t, err)
			require.Equal(t, events.StatusFailed, view.Status)

			starts, _ := s.countExecutions(poison)
			require.Equal(t, maxAttempts, starts, "task.sh runs of the poison task")
			for _, id := range behindIDs {
				s.mustHistory(id).requireEndedOnce(t, events.StatusSucceeded)
			}

			restarts := 0
			if sv != nil {
				restarts = sv.restarts()
				require.GreaterOrEqual(t, restarts, maxAttempts, "executor restarts")
				seen := map[string]bool{}
				for _, st := range h.starts {
					require.False(t, seen[st.Executor], "two attempts on one executor process\n%s", h)
					seen[st.Executor] = true
				}
			}
			t.Logf("mode=%s attempts=%d error_code=%s behind=%d behind_all_ended_after=%s poison_ended_after=%s executor_restarts=%d",
				tc.mode, len(h.starts), h.task.Error.Code, behind, behindDone.Round(time.Millisecond), poisonDone.Round(time.Millisecond), restarts)
		})
	}
}

// waitConsuming waits until the supervisor's first executor consumes.
func (s *stack) waitConsuming(sv *supervisor) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		sv.mu.Lock()
		defer sv.mu.Unlock()
		return len(sv.startedAt) > 0
	}, startTimeout, 20*time.Millisecond, "the supervised executor did not start")
}
