package events_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

// at returns the time of the event with stream sequence seq in a history.
func at(seq int) time.Time {
	return historyStart.Add(time.Duration(seq-1) * time.Second)
}

func TestViewByStatus(t *testing.T) {
	t.Parallel()

	// submittedView is the view of a task after its submitted event, the
	// base of most expected views below.
	submittedView := events.View{
		ID:          testTaskID,
		Type:        testTaskType,
		Tenant:      testTenant,
		Status:      events.StatusQueued,
		Created:     at(1),
		Updated:     at(1),
		MaxAttempts: 4,
		Timeout:     events.Duration(2 * time.Minute),
		ExpiresAt:   at(1).Add(48 * time.Hour),
		Webhook:     &events.Webhook{URL: "https://hooks.example.com/handoff"},
		Metadata:    map[string]string{"owner": "data-team"},
		Sequence:    1,
	}
	progress := &events.ProgressView{Percent: 42.5, Message: "listed 425 of 1000 objects", Updated: at(3)}

	tests := []struct {
		name  string
		steps []events.Kind
		want  func(v *events.View)
	}{
		{
			name:  "scheduled",
			steps: []events.Kind{events.KindScheduled},
			want: func(v *events.View) {
				*v = events.View{
					ID:          testTaskID,
					Type:        testTaskType,
					Tenant:      testTenant,
					Status:      events.StatusScheduled,
					Created:     at(1),
					Updated:     at(1),
					MaxAttempts: events.DefaultMaxAttempts,
					RunAt:       &scheduledRunAt,
					ExpiresAt:   at(1).Add(events.DefaultTTL),
					Sequence:    1,
				}
			},
		},
		{
			name:  "queued",
			steps: []events.Kind{events.KindSubmitted},
			want:  func(v *events.View) {},
		},
		{
			name:  "running with progress",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindProgress},
			want: func(v *events.View) {
				v.Status = events.StatusRunning
				v.Updated = at(3)
				v.Attempt = 1
				v.Progress = progress
				v.Sequence = 3
			},
		},
		{
			name:  "running with a cancel request",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindCancelRequested},
			want: func(v *events.View) {
				v.Status = events.StatusRunning
				v.Updated = at(3)
				v.Attempt = 1
				v.CancelRequested = true
				v.Reason = "no longer needed"
				v.Sequence = 3
			},
		},
		{
			name:  "running with a pause request",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindPauseRequested},
			want: func(v *events.View) {
				v.Status = events.StatusRunning
				v.Updated = at(3)
				v.Attempt = 1
				v.PauseRequested = true
				v.Reason = "maintenance window"
				v.Sequence = 3
			},
		},
		{
			name:  "retrying",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindProgress, events.KindRetrying},
			want: func(v *events.View) {
				v.Status = events.StatusRetrying
				v.Updated = at(4)
				v.Attempt = 1
				v.Progress = progress
				v.Error = &retryError
				v.NextAttemptAt = &nextAttemptAt
				v.Sequence = 4
			},
		},
		{
			name:  "input_required",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindInputRequired},
			want: func(v *events.View) {
				v.Status = events.StatusInputRequired
				v.Updated = at(3)
				v.Attempt = 1
				v.InputRequest = &events.InputRequest{Prompt: inputRequiredData.Prompt, InputSchema: inputRequiredData.InputSchema}
				v.Sequence = 3
			},
		},
		{
			name:  "queued after input",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindInputRequired, events.KindResumed},
			want: func(v *events.View) {
				v.Updated = at(4)
				v.Attempt = 1
				v.Sequence = 4
			},
		},
		{
			name:  "paused",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindPauseRequested, events.KindPaused},
			want: func(v *events.View) {
				v.Status = events.StatusPaused
				v.Updated = at(4)
				v.Attempt = 1
				v.Reason = "paused for maintenance"
				v.Sequence = 4
			},
		},
		{
			name:  "succeeded after progress",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindProgress, events.KindSucceeded},
			want: func(v *events.View) {
				v.Status = events.StatusSucceeded
				v.Updated = at(4)
				v.Attempt = 1
				v.Result = succeededData.Result
				v.Sequence = 4
			},
		},
		{
			name:  "failed after a retry",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindRetrying, events.KindFailed},
			want: func(v *events.View) {
				v.Status = events.StatusFailed
				v.Updated = at(4)
				v.Attempt = 1
				v.Error = &failedData.Error
				v.Sequence = 4
			},
		},
		{
			name:  "cancelled",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindProgress, events.KindCancelRequested, events.KindCancelled},
			want: func(v *events.View) {
				v.Status = events.StatusCancelled
				v.Updated = at(5)
				v.Attempt = 1
				v.Reason = "cancelled by the operator"
				v.Sequence = 5
			},
		},
		{
			name:  "cancelled after a retry",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindRetrying, events.KindCancelled},
			want: func(v *events.View) {
				v.Status = events.StatusCancelled
				v.Updated = at(4)
				v.Attempt = 1
				v.Error = &retryError
				v.Reason = "cancelled by the operator"
				v.Sequence = 4
			},
		},
		{
			name:  "rejected",
			steps: []events.Kind{events.KindSubmitted, events.KindRejected},
			want: func(v *events.View) {
				v.Status = events.StatusRejected
				v.Updated = at(2)
				v.Error = &rejectedData.Error
				v.Sequence = 2
			},
		},
		{
			name:  "expired",
			steps: []events.Kind{events.KindSubmitted, events.KindDeadline, events.KindExpired},
			want: func(v *events.View) {
				v.Status = events.StatusExpired
				v.Updated = at(3)
				v.Error = &events.TaskError{Code: events.CodeTimeout, Message: "the task's deadline passed before it finished"}
				v.Sequence = 3
			},
		},
		{
			name:  "delivered",
			steps: []events.Kind{events.KindSubmitted, events.KindStarted, events.KindSucceeded, events.KindDelivered},
			want: func(v *events.View) {
				v.Status = events.StatusSucceeded
				v.Updated = at(4)
				v.Attempt = 1
				v.Result = succeededData.Result
				v.Sequence = 4
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t)
			for _, kind := range tt.steps {
				h.addValid(kind)
			}
			task := h.fold()
			require.Empty(t, task.Skipped)

			want := submittedView
			tt.want(&want)
			require.Equal(t, want, task.View())
		})
	}
}

func TestViewHidesProgressAfterTerminal(t *testing.T) {
	t.Parallel()

	for _, end := range []events.Kind{events.KindSucceeded, events.KindFailed, events.KindCancelled, events.KindExpired} {
		h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindProgress).addValid(end)
		task := h.fold()
		require.Empty(t, task.Skipped, end)
		require.NotNil(t, task.Progress, "the task keeps its last progress")
		require.Nil(t, task.View().Progress, "the view of a %s task hides it", end)
	}
}

func TestViewDoesNotShareTimes(t *testing.T) {
	t.Parallel()

	task := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindRetrying).fold()
	v := task.View()
	*v.NextAttemptAt = v.NextAttemptAt.Add(time.Hour)
	require.Equal(t, nextAttemptAt, task.NextAttemptAt)
}

func TestViewJSON(t *testing.T) {
	t.Parallel()

	task := newHistory(t).
		addValid(events.KindSubmitted).
		addValid(events.KindStarted).
		addValid(events.KindProgress).
		addValid(events.KindRetrying).
		fold()
	b, err := json.Marshal(task.View())
	require.NoError(t, err)
	require.JSONEq(t, `{
		"id": "01JQ4TASK00000000000000000",
		"type": "files.manifest",
		"tenant": "acme",
		"status": "retrying",
		"created_at": "2025-03-14T12:00:00Z",
		"updated_at": "2025-03-14T12:00:03Z",
		"attempt": 1,
		"max_attempts": 4,
		"timeout": "2m0s",
		"expires_at": "2025-03-16T12:00:00Z",
		"progress": {"percent": 42.5, "message": "listed 425 of 1000 objects", "updated_at": "2025-03-14T12:00:02Z"},
		"error": {"code": "upstream_status", "message": "upstream returned 503", "retryable": true},
		"next_attempt_at": "2025-03-14T12:10:00Z",
		"webhook": {"url": "https://hooks.example.com/handoff"},
		"metadata": {"owner": "data-team"},
		"sequence": 4
	}`, string(b))
}
