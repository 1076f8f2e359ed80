package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

// history is one task's events as stored in the stream, with the counts
// the fault tests check. The fold ignores a second terminal event or a
// late write, so these counts come from the raw events.
type history struct {
	id     string
	events []events.Event
	// task is the fold of the events.
	task *events.Task
	// starts are the started events' data in stream order.
	starts []events.Started
	// terminals counts the terminal events stored.
	terminals int
	// afterTerminal counts the compare-and-set events stored after the
	// first terminal event.
	afterTerminal int
	// problems describes every other broken rule: attempts out of order,
	// an attempt that wrote after the next one started, events the fold
	// skipped, messages that did not decode.
	problems []string
}

// history reads a task's events and audits them.
func (s *stack) history(id string) (*history, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	te, err := s.bus.ReadEvents(ctx, events.DefaultTenant, id, 0)
	if err != nil {
		return nil, err
	}
	h := newHistory(id, te.Events)
	for _, inv := range te.Invalid {
		h.problems = append(h.problems, fmt.Sprintf("seq %d did not decode: %s", inv.Seq, inv.Reason))
	}
	return h, nil
}

// mustHistory is [stack.history] that fails the test on a read error.
func (s *stack) mustHistory(id string) *history {
	s.t.Helper()
	h, err := s.history(id)
	require.NoError(s.t, err, "read the events of task %s", id)
	return h
}

func newHistory(id string, evs []events.Event) *history {
	h := &history{id: id, events: evs, task: events.Fold(evs)}
	ended := false
	current := 0
	for _, ev := range evs {
		if ended && ev.Kind.CompareAndSet() {
			h.afterTerminal++
		}
		if ev.Kind.Terminal() {
			h.terminals++
			ended = true
		}

		if ev.Kind == events.KindStarted {
			var d events.Started
			if err := ev.DecodeData(&d); err != nil {
				h.problems = append(h.problems, fmt.Sprintf("seq %d: %v", ev.Seq, err))
				continue
			}
			if d.Attempt != current+1 {
				h.problems = append(h.problems, fmt.Sprintf("seq %d: started attempt %d after attempt %d", ev.Seq, d.Attempt, current))
			}
			current = d.Attempt
			h.starts = append(h.starts, d)
			continue
		}
		if ev.Attempt > 0 && ev.Attempt < current && ev.Kind.CompareAndSet() {
			h.problems = append(h.problems, fmt.Sprintf("seq %d: %s of attempt %d from %s was stored after attempt %d started",
				ev.Seq, ev.Kind, ev.Attempt, ev.Source, current))
		}
	}
	for _, sk := range h.task.Skipped {
		if !sk.Kind.CompareAndSet() {
			// A schedule may fire after the task ended, and the fold
			// ignores what it publishes.
			continue
		}
		h.problems = append(h.problems, fmt.Sprintf("seq %d: the fold skipped %s: %s", sk.Seq, sk.Kind, sk.Reason))
	}
	return h
}

// count returns how many events of kind the task has.
func (h *history) count(kind events.Kind) int {
	n := 0
	for _, ev := range h.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// event returns the first event of kind, or nil.
func (h *history) event(kind events.Kind) *events.Event {
	for i := range h.events {
		if h.events[i].Kind == kind {
			return &h.events[i]
		}
	}
	return nil
}

// String lists the events, one per line, for failure messages.
func (h *history) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s (%s):", h.id, h.task.Status)
	for _, ev := range h.events {
		fmt.Fprintf(&b, "\n  seq %-6d %-16s attempt %d  %s  %s", ev.Seq, ev.Kind, ev.Attempt, ev.Source, ev.Stored.Format("15:04:05.000"))
	}
	for _, p := range h.problems {
		fmt.Fprintf(&b, "\n  problem: %s", p)
	}
	return b.String()
}

// requireEndedOnce fails the test unless the task ended exactly once with
// status want and its history is clean.
func (h *history) requireEndedOnce(t *testing.T, want events.Status) {
	t.Helper()
	require.Equal(t, 1, h.terminals, "terminal events\n%s", h)
	require.Zero(t, h.afterTerminal, "compare-and-set events after the terminal one\n%s", h)
	require.Empty(t, h.problems, "%s", h)
	require.Equal(t, want, h.task.Status, "%s", h)
}

// executorSource is the CloudEvents source of an executor instance's
// events.
func executorSource(instance string) string { return "/handoff/executor/" + instance }

// indexOfStarted returns the index in events of the started event of
// attempt n, or -1.
func (h *history) indexOfStarted(n int) int {
	seen := 0
	for i, ev := range h.events {
		if ev.Kind == events.KindStarted {
			seen++
			if seen == n {
				return i
			}
		}
	}
	return -1
}
