package events_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

// The task that the fold tests build histories for.
const (
	testTenant   = "acme"
	testTaskID   = "01JQ4TASK00000000000000000"
	testTaskType = "files.manifest"
)

// historyStart is the time of a history's first event. Each later event is
// one second after the one before it.
var historyStart = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// history builds the events of one task in stream order, with sequences
// from 1 and one second between events.
type history struct {
	t   testing.TB
	evs []events.Event
}

func newHistory(t testing.TB) *history {
	return &history{t: t}
}

// next returns the event that would follow the history, without adding it.
// data may be nil for no data, a json.RawMessage used as it is, or a value
// to encode.
func (h *history) next(kind events.Kind, data any) events.Event {
	h.t.Helper()

	seq := uint64(len(h.evs) + 1)
	ev := events.Event{
		ID:       fmt.Sprintf("01JQ4EVENT%016d", seq),
		Source:   "/handoff/test",
		Kind:     kind,
		TaskID:   testTaskID,
		Tenant:   testTenant,
		TaskType: testTaskType,
		Time:     historyStart.Add(time.Duration(seq-1) * time.Second),
		Seq:      seq,
	}
	switch d := data.(type) {
	case nil:
	case json.RawMessage:
		ev.Data = d
	default:
		b, err := json.Marshal(d)
		require.NoError(h.t, err)
		ev.Data = b
	}
	require.NoError(h.t, ev.Validate())
	return ev
}

// add appends an event of kind with data, as next builds it.
func (h *history) add(kind events.Kind, data any) *history {
	h.t.Helper()
	h.evs = append(h.evs, h.next(kind, data))
	return h
}

// addValid appends an event of kind with valid data for the task that the
// history folds to so far.
func (h *history) addValid(kind events.Kind) *history {
	h.t.Helper()
	return h.add(kind, validData(kind, h.fold()))
}

// fold folds a copy of the history's events.
func (h *history) fold() *events.Task {
	return events.Fold(h.events())
}

// events returns a copy of the history's events.
func (h *history) events() []events.Event {
	return append([]events.Event(nil), h.evs...)
}

// Data of the valid events that addValid writes.
var (
	scheduledRunAt = historyStart.Add(time.Hour)
	nextAttemptAt  = historyStart.Add(10 * time.Minute)

	scheduledData = events.Submission{
		Input: json.RawMessage(`{"bucket":"reports"}`),
		RunAt: &scheduledRunAt,
	}
	// scheduledStored is scheduledData as a fold stores it, with defaults.
	scheduledStored = events.Submission{
		Input:       json.RawMessage(`{"bucket":"reports"}`),
		MaxAttempts: 3,
		TTL:         events.Duration(7 * 24 * time.Hour),
		RunAt:       &scheduledRunAt,
	}
	submittedData = events.Submission{
		Input:       json.RawMessage(`{"bucket":"reports","prefix":"2025/"}`),
		Timeout:     events.Duration(2 * time.Minute),
		MaxAttempts: 4,
		TTL:         events.Duration(48 * time.Hour),
		Webhook:     &events.Webhook{URL: "https://hooks.example.com/handoff"},
		Metadata:    map[string]string{"owner": "data-team"},
		RequestHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	progressData = events.Progress{
		Percent:    42.5,
		Message:    "listed 425 of 1000 objects",
		Checkpoint: json.RawMessage(`{"offset":425}`),
	}
	inputRequiredData = events.InputRequired{
		Prompt:      "Grant read access to the bucket reports?",
		InputSchema: json.RawMessage(`{"type":"boolean"}`),
		Checkpoint:  json.RawMessage(`{"offset":500}`),
	}
	pauseRequestedData    = events.Reason{Reason: "maintenance window"}
	pausedData            = events.Paused{Checkpoint: json.RawMessage(`{"offset":600}`), Reason: "paused for maintenance"}
	resumedData           = events.Resumed{Input: json.RawMessage(`true`)}
	cancelRequestedData   = events.Reason{Reason: "no longer needed"}
	deadlineScheduledData = events.DeadlineScheduled{Deadline: historyStart.Add(24 * time.Hour)}
	retryError            = events.TaskError{Code: events.CodeUpstreamStatus, Message: "upstream returned 503", Retryable: true}
	succeededData         = events.Succeeded{Result: json.RawMessage(`{"objects":1000}`)}
	failedData            = events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "bucket reports not found"}}
	cancelledData         = events.Reason{Reason: "cancelled by the operator"}
	rejectedData          = events.Rejected{Error: events.TaskError{
		Code:    events.CodeInvalidInput,
		Message: "input does not match the schema of files.manifest",
		Details: []events.ErrorDetail{{Location: "/bucket", Message: "must be a string"}},
	}}
	deliveredData = events.Delivery{
		EventID:    "01JQ4EVENT0000000000000003",
		EventKind:  events.KindSucceeded,
		Endpoint:   "https://hooks.example.com/handoff",
		Attempt:    1,
		StatusCode: 204,
		Duration:   events.Duration(120 * time.Millisecond),
	}
	deliveryFailedData = events.Delivery{
		EventID:    "01JQ4EVENT0000000000000003",
		EventKind:  events.KindSucceeded,
		Endpoint:   "https://hooks.example.com/handoff",
		Attempt:    2,
		StatusCode: 500,
		Error:      "receiver returned 500 Internal Server Error",
		Duration:   events.Duration(2 * time.Second),
	}
)

// validData returns data of kind that is valid for task, or nil for the
// kinds that carry none.
func validData(kind events.Kind, task *events.Task) any {
	switch kind {
	case events.KindScheduled:
		return scheduledData
	case events.KindSubmitted:
		return submittedData
	case events.KindStarted:
		return events.Started{Attempt: task.Attempt + 1, Executor: fmt.Sprintf("executor-%d", task.Attempt+1)}
	case events.KindProgress:
		return progressData
	case events.KindInputRequired:
		return inputRequiredData
	case events.KindPauseRequested:
		return pauseRequestedData
	case events.KindPaused:
		return pausedData
	case events.KindResumed:
		return resumedData
	case events.KindCancelRequested:
		return cancelRequestedData
	case events.KindRetrying:
		return events.Retrying{Attempt: task.Attempt, Error: retryError, NextAttemptAt: nextAttemptAt}
	case events.KindDeadlineScheduled:
		return deadlineScheduledData
	case events.KindSucceeded:
		return succeededData
	case events.KindFailed:
		return failedData
	case events.KindCancelled:
		return cancelledData
	case events.KindRejected:
		return rejectedData
	case events.KindDelivered:
		return deliveredData
	case events.KindDeliveryFailed:
		return deliveryFailedData
	}
	return nil
}
