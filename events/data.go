package events

import (
	"encoding/json"
	"time"
)

// Submission is the data of a submitted event, and of a scheduled event,
// which also sets RunAt. Zero values mean the defaults documented on each
// field.
type Submission struct {
	// Input is the task's input, validated against its type's JSON Schema.
	Input json.RawMessage `json:"input"`

	// Timeout bounds each attempt. Zero means the task type's default, or
	// [DefaultTimeout] when the type sets none.
	Timeout Duration `json:"timeout,omitempty"`

	// MaxAttempts bounds the attempts, counting the first one. Zero means
	// [DefaultMaxAttempts].
	MaxAttempts int `json:"max_attempts,omitempty"`

	// Deadline is when an unfinished task ends as expired.
	Deadline *time.Time `json:"deadline,omitempty"`

	// TTL is how long the task's events are kept after it was created.
	// Zero means [DefaultTTL].
	TTL Duration `json:"ttl,omitempty"`

	// RunAt delays the task until that time. Only scheduled events set it.
	RunAt *time.Time `json:"run_at,omitempty"`

	// Webhook receives the task's terminal and input_required events.
	Webhook *Webhook `json:"webhook,omitempty"`

	// Metadata holds the submitter's own labels, returned with the task.
	Metadata map[string]string `json:"metadata,omitempty"`

	// RequestHash is the SHA-256 of the canonical submission, so that an
	// idempotent resubmission can be distinguished from a different one. Ingest
	// sets it only on a task submitted with an Idempotency-Key.
	RequestHash string `json:"request_hash,omitempty"`
}

// Webhook is the endpoint that receives a task's notifications.
type Webhook struct {
	URL string `json:"url"`
}

// Started is the data of a started event.
type Started struct {
	// Attempt counts the task's started events, from 1.
	Attempt int `json:"attempt"`
	// Executor names the executor instance that runs the attempt.
	Executor string `json:"executor"`
	// MessageSeq is the stream sequence of the message whose delivery
	// started the attempt, and Delivery is how many times that message
	// had been delivered then. They tell an executor that holds a stale
	// copy of the same message, which must leave it alone, from one that
	// got it again because the attempt's lease lapsed, which takes the
	// task over. Zero when the writer did not record them.
	MessageSeq uint64 `json:"message_seq,omitempty"`
	Delivery   uint64 `json:"delivery,omitempty"`
}

// Progress is the data of a progress event.
type Progress struct {
	// Percent is the share of the work done, from 0 to 100.
	Percent float64 `json:"percent"`
	// Message describes the current step for a person.
	Message string `json:"message,omitempty"`
	// Checkpoint is the handler's latest checkpoint, if it recorded one
	// since the last progress event. An attempt after a lost one resumes
	// from it.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// InputRequired is the data of an input_required event: the question the
// handler asks, the schema its answer must match, and where to continue.
type InputRequired struct {
	Prompt      string          `json:"prompt"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	Checkpoint  json.RawMessage `json:"checkpoint,omitempty"`
}

// Reason is the data of pause_requested, cancel_requested and cancelled
// events.
type Reason struct {
	Reason string `json:"reason,omitempty"`
}

// Paused is the data of a paused event.
type Paused struct {
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	Reason     string          `json:"reason,omitempty"`
}

// Resumed is the data of a resumed event. Input is the answer to an
// input_required event, and is empty when a paused task resumes.
type Resumed struct {
	Input  json.RawMessage `json:"input,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// Retrying is the data of a retrying event.
type Retrying struct {
	Attempt       int       `json:"attempt"`
	Error         TaskError `json:"error"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

// DeadlineScheduled is the data of a deadline_scheduled event. The event
// holds a message schedule that publishes the task's deadline event at
// Deadline, which equals the submission's deadline.
type DeadlineScheduled struct {
	Deadline time.Time `json:"deadline"`
}

// Succeeded is the data of a succeeded event. Exactly one of Result and
// ResultRef is set.
type Succeeded struct {
	Result    json.RawMessage `json:"result,omitempty"`
	ResultRef *ResultRef      `json:"result_ref,omitempty"`
}

// ResultRef points to a result stored outside the event because it is
// larger than the inline limit.
type ResultRef struct {
	// Object names the result in the results object store.
	Object    string `json:"object"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	// SHA256 is the hex digest of the stored bytes.
	SHA256 string `json:"sha256"`
}

// Failed is the data of a failed event.
type Failed struct {
	Error TaskError `json:"error"`
}

// Rejected is the data of a rejected event.
type Rejected struct {
	Error TaskError `json:"error"`
}

// Delivery is the data of delivered and delivery_failed events: one attempt
// to deliver one of the task's events to one endpoint.
type Delivery struct {
	EventID   string `json:"event_id"`
	EventKind Kind   `json:"event_kind"`
	Endpoint  string `json:"endpoint"`
	// SubscriptionID names the subscription the event was delivered for,
	// or is empty for the webhook given at submit.
	SubscriptionID string   `json:"subscription_id,omitempty"`
	Attempt        int      `json:"attempt"`
	StatusCode     int      `json:"status_code,omitempty"`
	Error          string   `json:"error,omitempty"`
	Duration       Duration `json:"duration"`
}

// TaskError describes why an attempt or a task failed.
type TaskError struct {
	// Code is a stable, machine-readable cause; see the Code constants.
	Code string `json:"code"`
	// Message is for a person and may change between versions.
	Message string `json:"message"`
	// Retryable reports whether another attempt might succeed.
	Retryable bool `json:"retryable,omitempty"`
	// Details lists individual problems, such as each schema violation.
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one problem inside a TaskError, located by a JSON pointer
// into the input or by a field name.
type ErrorDetail struct {
	Location string `json:"location"`
	Message  string `json:"message"`
}

// Error codes of [TaskError].
const (
	CodeInvalidInput      = "invalid_input"
	CodeInvalidEvent      = "invalid_event"
	CodeTimeout           = "timeout"
	CodeHandlerError      = "handler_error"
	CodeExitStatus        = "exit_status"
	CodePanic             = "panic"
	CodeInvalidOutput     = "invalid_output"
	CodeResultTooLarge    = "result_too_large"
	CodeAttemptLost       = "attempt_lost"
	CodeUnknownType       = "unknown_type"
	CodeUpstreamStatus    = "upstream_status"
	CodeUpstreamReachable = "upstream_unreachable"
	// CodeInterrupted marks a retrying event written because the executor
	// stopped while the attempt ran. The fold does not count it as a
	// failure, so a graceful shutdown uses up no attempt.
	CodeInterrupted = "interrupted"
	// CodeResultNotStored marks an attempt whose result was larger than
	// the inline limit and could not be stored in the results bucket. It
	// is retryable.
	CodeResultNotStored = "result_not_stored"
)
