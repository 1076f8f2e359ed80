package events

import (
	"encoding/json"
	"time"
)

// View is a task as the API shows it: GET /v1/tasks/{id} returns one, and
// the JSON Schema schemas/task-view.json describes it.
type View struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Tenant  string    `json:"tenant"`
	Status  Status    `json:"status"`
	Created time.Time `json:"created_at"`
	Updated time.Time `json:"updated_at"`

	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	Timeout     Duration   `json:"timeout,omitempty"`
	Deadline    *time.Time `json:"deadline,omitempty"`
	RunAt       *time.Time `json:"run_at,omitempty"`
	ExpiresAt   time.Time  `json:"expires_at"`

	Progress     *ProgressView   `json:"progress,omitempty"`
	Result       json.RawMessage `json:"result,omitempty"`
	ResultRef    *ResultLink     `json:"result_ref,omitempty"`
	Error        *TaskError      `json:"error,omitempty"`
	InputRequest *InputRequest   `json:"input_request,omitempty"`

	NextAttemptAt   *time.Time `json:"next_attempt_at,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	PauseRequested  bool       `json:"pause_requested,omitempty"`
	Reason          string     `json:"reason,omitempty"`

	Webhook  *Webhook          `json:"webhook,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`

	// Sequence is the stream sequence of the task's last event. It is the
	// view's ETag and the Last-Event-ID of its event stream.
	Sequence uint64 `json:"sequence"`
}

// ProgressView is the latest progress of a running task.
type ProgressView struct {
	Percent float64   `json:"percent"`
	Message string    `json:"message,omitempty"`
	Updated time.Time `json:"updated_at"`
}

// ResultLink is a stored result as the view shows it: the reference from
// the succeeded event, and a signed link to download it. The fold leaves
// URL and ExpiresAt empty, because only the HTTP API holds the key that
// signs links, and the API fills them in for every view it returns.
type ResultLink struct {
	ResultRef
	// URL is a signed link to the result, relative to the API's base
	// URL, that works without credentials until ExpiresAt.
	URL       string     `json:"url,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// InputRequest is the question of a task waiting for input.
type InputRequest struct {
	Prompt      string          `json:"prompt"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// View returns the public view of t.
func (t *Task) View() View {
	v := View{
		ID:              t.ID,
		Type:            t.Type,
		Tenant:          t.Tenant,
		Status:          t.Status,
		Created:         t.Created,
		Updated:         t.Updated,
		Attempt:         t.Attempt,
		MaxAttempts:     t.MaxAttempts(),
		Timeout:         t.Submission.Timeout,
		Deadline:        t.Submission.Deadline,
		RunAt:           t.Submission.RunAt,
		ExpiresAt:       t.ExpiresAt(),
		Result:          t.Result,
		Error:           t.Error,
		CancelRequested: t.CancelRequested,
		PauseRequested:  t.PauseRequested,
		Reason:          t.Reason,
		Webhook:         t.Submission.Webhook,
		Metadata:        t.Submission.Metadata,
		Sequence:        t.LastSeq,
	}
	if t.Progress != nil && !t.Status.Terminal() {
		v.Progress = &ProgressView{Percent: t.Progress.Percent, Message: t.Progress.Message, Updated: t.ProgressAt}
	}
	if t.ResultRef != nil {
		v.ResultRef = &ResultLink{ResultRef: *t.ResultRef}
	}
	if t.InputRequest != nil {
		v.InputRequest = &InputRequest{Prompt: t.InputRequest.Prompt, InputSchema: t.InputRequest.InputSchema}
	}
	if !t.NextAttemptAt.IsZero() {
		at := t.NextAttemptAt
		v.NextAttemptAt = &at
	}
	return v
}
