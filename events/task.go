package events

import (
	"encoding/json"
	"time"
)

// Task is the state of one task, folded from its events. It holds more than
// the API shows (checkpoint, answer, request hash); [Task.View] is the
// public part.
type Task struct {
	ID      string
	Tenant  string
	Type    string
	Status  Status
	Created time.Time
	Updated time.Time

	// Submission is the data of the task's submitted (or scheduled) event
	// with defaults applied.
	Submission Submission

	// Attempt counts the started events.
	Attempt int
	// Failures counts the attempts that ended in a retrying event or were
	// lost, because an executor took the task over from a running attempt.
	// A retrying event with the error code interrupted does not count: the
	// executor stopped, and the attempt did not fail.
	Failures int
	Executor string
	// AttemptMessageSeq and AttemptDelivery are the message and the
	// delivery that started the current attempt, from its started event,
	// or zero.
	AttemptMessageSeq uint64
	AttemptDelivery   uint64

	Progress   *Progress
	ProgressAt time.Time

	Result    json.RawMessage
	ResultRef *ResultRef
	Error     *TaskError

	// InputRequest is the open question while the status is input_required.
	InputRequest *InputRequired
	// Checkpoint is the latest checkpoint a handler recorded, from a
	// progress, input_required or paused event.
	Checkpoint json.RawMessage
	// Answer is the answer to the task's last input request: the input of
	// the last resumed event that had one. Later runs get it too, after a
	// pause or a retry.
	Answer json.RawMessage
	// Resumes counts the resumed events.
	Resumes int

	CancelRequested bool
	PauseRequested  bool
	// Reason is the reason given with the last pause, cancel, resume or
	// their requests.
	Reason string

	NextAttemptAt time.Time
	// DeadlinePassed is set by a deadline event.
	DeadlinePassed bool

	Deliveries       int
	DeliveryFailures int

	// LastSeq is the stream sequence of the last event folded, including
	// skipped ones: the expected sequence of the next compare-and-set.
	LastSeq uint64
	// Events counts the events applied.
	Events int
	// Skipped lists the events the fold did not apply, with the reason.
	Skipped []SkippedEvent
}

// SkippedEvent is an event that [Fold] ignored because it was illegal in
// the task's state or its data was invalid.
type SkippedEvent struct {
	Seq    uint64
	ID     string
	Kind   Kind
	Reason string
}

// Exists reports whether the task has at least one applied event.
func (t *Task) Exists() bool { return t.Status != StatusNew }

// Terminal reports whether the task has ended.
func (t *Task) Terminal() bool { return t.Status.Terminal() }

// MaxAttempts returns the submission's max_attempts or its default.
func (t *Task) MaxAttempts() int {
	if t.Submission.MaxAttempts > 0 {
		return t.Submission.MaxAttempts
	}
	return DefaultMaxAttempts
}

// ExpiresAt returns when the task's events expire: creation plus TTL.
func (t *Task) ExpiresAt() time.Time {
	ttl := t.Submission.TTL.Std()
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return t.Created.Add(ttl)
}

// TTLLeft returns the TTL that an event written at now must carry so that
// it expires together with the task's other events. NATS counts TTLs in
// whole seconds, so it rounds up: a later event may outlive the first by
// under a second, but never expires before it, which would show an older
// state of the task. It is never below [MinTTL], the shortest TTL NATS
// accepts.
func (t *Task) TTLLeft(now time.Time) time.Duration {
	left := t.ExpiresAt().Sub(now)
	if left < MinTTL {
		return MinTTL
	}
	whole := left.Truncate(time.Second)
	if whole < left {
		whole += time.Second
	}
	return whole
}
