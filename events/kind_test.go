package events_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestKindProperties(t *testing.T) {
	t.Parallel()

	// The expected properties are written out here rather than derived from
	// the package, so that a change to a kind's meaning fails this test.
	tests := []struct {
		kind     events.Kind
		terminal bool
		delivery bool
		cas      bool
	}{
		{events.KindScheduled, false, false, true},
		{events.KindSubmitted, false, false, true},
		{events.KindStarted, false, false, true},
		{events.KindProgress, false, false, true},
		{events.KindInputRequired, false, false, true},
		{events.KindPauseRequested, false, false, true},
		{events.KindPaused, false, false, true},
		{events.KindResumed, false, false, true},
		{events.KindCancelRequested, false, false, true},
		{events.KindRetrying, false, false, true},
		{events.KindDeadlineScheduled, false, false, true},
		{events.KindDeadline, false, false, false},
		{events.KindSucceeded, true, false, true},
		{events.KindFailed, true, false, true},
		{events.KindCancelled, true, false, true},
		{events.KindRejected, true, false, true},
		{events.KindExpired, true, false, true},
		{events.KindDelivered, false, true, false},
		{events.KindDeliveryFailed, false, true, false},
	}

	listed := make([]events.Kind, len(tests))
	for i, tt := range tests {
		listed[i] = tt.kind
	}
	require.Equal(t, events.Kinds, listed, "the table must list every kind in lifecycle order")

	var terminal []events.Kind
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			require.True(t, tt.kind.Valid())
			require.Equal(t, tt.terminal, tt.kind.Terminal(), "Terminal")
			require.Equal(t, tt.delivery, tt.kind.Delivery(), "Delivery")
			require.Equal(t, tt.cas, tt.kind.CompareAndSet(), "CompareAndSet")
			require.Equal(t, "dev.handoff.task."+string(tt.kind), tt.kind.Type())

			parsed, err := events.ParseKind(string(tt.kind))
			require.NoError(t, err)
			require.Equal(t, tt.kind, parsed)

			fromType, err := events.KindOfType(tt.kind.Type())
			require.NoError(t, err)
			require.Equal(t, tt.kind, fromType)
		})
		if tt.terminal {
			terminal = append(terminal, tt.kind)
		}
	}
	require.Equal(t, events.TerminalKinds, terminal)
}

func TestParseKindInvalid(t *testing.T) {
	t.Parallel()

	for _, s := range []string{"", "Submitted", "SUBMITTED", "submitted ", "finished", "dev.handoff.task.submitted", "deadline\x00"} {
		kind, err := events.ParseKind(s)
		require.ErrorIs(t, err, events.ErrUnknownKind, "%q", s)
		require.ErrorContains(t, err, "unknown event kind: ", "%q", s)
		require.Empty(t, kind)
		require.False(t, events.Kind(s).Valid(), "%q", s)
	}
}

func TestKindOfTypeInvalid(t *testing.T) {
	t.Parallel()

	tests := []struct {
		ceType  string
		wantMsg string
	}{
		{"", `CloudEvents type "" does not start with "dev.handoff.task."`},
		{"dev.handoff.task.", `CloudEvents type "dev.handoff.task." does not start with "dev.handoff.task."`},
		{"dev.handoff.task", `does not start with`},
		{"com.example.task.submitted", `does not start with`},
		{"Dev.handoff.task.submitted", `does not start with`},
		{"dev.handoff.task.finished", `unknown event kind: "finished"`},
		{"dev.handoff.task.submitted.extra", `unknown event kind: "submitted.extra"`},
	}
	for _, tt := range tests {
		kind, err := events.KindOfType(tt.ceType)
		require.ErrorIs(t, err, events.ErrUnknownKind, tt.ceType)
		require.ErrorContains(t, err, tt.wantMsg, tt.ceType)
		require.Empty(t, kind)
	}
}

func TestStatusProperties(t *testing.T) {
	t.Parallel()

	terminal := map[events.Status]bool{
		events.StatusScheduled:     false,
		events.StatusQueued:        false,
		events.StatusRunning:       false,
		events.StatusInputRequired: false,
		events.StatusPaused:        false,
		events.StatusRetrying:      false,
		events.StatusSucceeded:     true,
		events.StatusFailed:        true,
		events.StatusCancelled:     true,
		events.StatusRejected:      true,
		events.StatusExpired:       true,
	}
	require.Len(t, events.Statuses, len(terminal))
	for _, s := range events.Statuses {
		want, ok := terminal[s]
		require.True(t, ok, "status %q is not in the test table", s)
		require.True(t, s.Valid(), s)
		require.Equal(t, want, s.Terminal(), s)
	}

	require.False(t, events.StatusNew.Valid())
	require.False(t, events.StatusNew.Terminal())
	require.False(t, events.Status("done").Valid())
}

func TestKindScheduleTarget(t *testing.T) {
	t.Parallel()

	targets := map[events.Kind]events.Kind{
		events.KindScheduled:         events.KindSubmitted,
		events.KindDeadlineScheduled: events.KindDeadline,
	}
	for _, kind := range events.Kinds {
		target, ok := kind.ScheduleTarget()
		want, holder := targets[kind]
		require.Equal(t, holder, ok, kind)
		require.Equal(t, want, target, kind)
		if holder {
			require.True(t, kind.CompareAndSet(), "the event that holds a schedule is a compare-and-set write: %s", kind)
		}
	}
}
