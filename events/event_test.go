package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestNewEvent(t *testing.T) {
	t.Parallel()

	before := time.Now()
	ev, err := events.NewEvent(events.KindStarted, testTenant, testTaskID, testTaskType, "/handoff/executor/a", events.Started{Attempt: 1, Executor: "a"})
	require.NoError(t, err)
	require.NoError(t, ev.Validate())

	require.Len(t, ev.ID, 26)
	require.NoError(t, events.ValidateTaskID(ev.ID), "an event id can also serve as a task id")
	require.Equal(t, events.KindStarted, ev.Kind)
	require.Equal(t, "/handoff/executor/a", ev.Source)
	require.JSONEq(t, `{"attempt":1,"executor":"a"}`, string(ev.Data))
	require.Equal(t, time.UTC, ev.Time.Location())
	require.False(t, ev.Time.Before(before.Truncate(time.Millisecond)))
	require.Zero(t, ev.Seq)

	want := events.Subject{Namespace: "handoff", Tenant: testTenant, TaskID: testTaskID, Kind: events.KindStarted, TaskType: testTaskType}
	require.Equal(t, want, ev.Subject("handoff"))

	other, err := events.NewEvent(events.KindStarted, testTenant, testTaskID, testTaskType, "/handoff/executor/a", nil)
	require.NoError(t, err)
	require.NotEqual(t, ev.ID, other.ID)
	require.Nil(t, other.Data)
}

func TestNewEventUnencodableData(t *testing.T) {
	t.Parallel()

	_, err := events.NewEvent(events.KindProgress, testTenant, testTaskID, testTaskType, "/handoff/test", make(chan int))
	require.ErrorContains(t, err, "encode progress data: ")
}

func TestEventValidate(t *testing.T) {
	t.Parallel()

	valid := newHistory(t).next(events.KindSubmitted, submittedData)
	require.NoError(t, valid.Validate())

	tests := []struct {
		name    string
		change  func(*events.Event)
		wantMsg string
	}{
		{"empty id", func(ev *events.Event) { ev.ID = "" }, "event id is empty"},
		{"long id", func(ev *events.Event) { ev.ID = strings.Repeat("i", 129) }, "event id is 129 bytes, longer than the maximum of 128"},
		{"id with dot", func(ev *events.Event) { ev.ID = "a.b" }, `event id "a.b" contains '.'`},
		{"id with space", func(ev *events.Event) { ev.ID = "a b" }, `event id "a b" contains ' '`},
		{"empty source", func(ev *events.Event) { ev.Source = "" }, "event source is empty"},
		{"unknown kind", func(ev *events.Event) { ev.Kind = "done" }, `unknown event kind: "done"`},
		{"bad tenant", func(ev *events.Event) { ev.Tenant = "A" }, `tenant "A" contains 'A'`},
		{"bad task id", func(ev *events.Event) { ev.TaskID = "" }, "task id is empty"},
		{"bad task type", func(ev *events.Event) { ev.TaskType = "a..b" }, "has an empty token"},
		{"negative attempt", func(ev *events.Event) { ev.Attempt = -1 }, "event attempt -1 is negative"},
		{"data not JSON", func(ev *events.Event) { ev.Data = json.RawMessage(`{`) }, "invalid event data: submitted data is not valid JSON"},
	}
	for _, tt := range tests {
		ev := valid
		tt.change(&ev)
		require.ErrorContains(t, ev.Validate(), tt.wantMsg, tt.name)
	}

	longest := valid
	longest.ID = strings.Repeat("~", 128)
	require.NoError(t, longest.Validate())
}

func TestEventDecodeData(t *testing.T) {
	t.Parallel()

	ev := newHistory(t).next(events.KindProgress, progressData)
	var got events.Progress
	require.NoError(t, ev.DecodeData(&got))
	require.Equal(t, progressData, got)

	ev.Data = nil
	err := ev.DecodeData(&got)
	require.ErrorIs(t, err, events.ErrInvalidData)
	require.ErrorContains(t, err, "progress event has no data")

	ev.Data = json.RawMessage(`{"percent":"x"}`)
	err = ev.DecodeData(&got)
	require.ErrorIs(t, err, events.ErrInvalidData)
	require.ErrorContains(t, err, "invalid event data: progress: json: ")
}
