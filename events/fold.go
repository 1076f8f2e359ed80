package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

var zeroTime time.Time

// transitions lists, for each status, the kinds that may follow it. The
// flags of a running task narrow the list further in [Task.Check].
//
// A deadline_scheduled event is legal in every status but the terminal
// ones and changes none. It is legal before the task's first event too,
// because the schedule of a delayed task publishes the submitted event
// after the deadline_scheduled event that followed the scheduled one, and
// the server then removes the scheduled event.
var transitions = map[Status][]Kind{
	StatusNew:       {KindScheduled, KindSubmitted, KindRejected, KindDeadlineScheduled},
	StatusScheduled: {KindSubmitted, KindCancelled, KindRejected, KindDeadlineScheduled, KindDeadline, KindExpired},
	StatusQueued: {
		KindStarted, KindPaused, KindCancelled, KindRejected, KindFailed,
		KindDeadlineScheduled, KindDeadline, KindExpired,
	},
	// A started event while running is a takeover: the running attempt was
	// lost, and its message went to another executor.
	StatusRunning: {
		KindStarted, KindProgress, KindInputRequired, KindPauseRequested, KindPaused,
		KindCancelRequested, KindCancelled, KindRetrying, KindSucceeded, KindFailed,
		KindDeadlineScheduled, KindDeadline, KindExpired,
	},
	StatusRetrying:      {KindStarted, KindPaused, KindCancelled, KindFailed, KindDeadlineScheduled, KindDeadline, KindExpired},
	StatusInputRequired: {KindResumed, KindCancelled, KindDeadlineScheduled, KindDeadline, KindExpired},
	StatusPaused:        {KindResumed, KindCancelled, KindDeadlineScheduled, KindDeadline, KindExpired},
}

// Kinds a running task still accepts once a cancel was requested: the
// handler must end as cancelled, whatever it returns.
var afterCancelRequest = []Kind{KindCancelled, KindDeadlineScheduled, KindDeadline, KindExpired}

// Kinds a running task still accepts once a pause was requested. A handler
// that finishes before it can pause still succeeds or fails, and a failed
// attempt pauses instead of retrying.
var afterPauseRequest = []Kind{
	KindProgress, KindInputRequired, KindPaused, KindCancelRequested, KindCancelled,
	KindSucceeded, KindFailed, KindDeadlineScheduled, KindDeadline, KindExpired,
}

// Check reports whether an event of kind may follow the task's current
// state, and returns an error wrapping ErrIllegalTransition that names the
// status if not. Writers call it before a compare-and-set; ingest turns its
// error into 409 Conflict.
func (t *Task) Check(kind Kind) error {
	if kind.Delivery() {
		if t.Status == StatusNew {
			return fmt.Errorf("%w: %s before the task was submitted", ErrIllegalTransition, kind)
		}
		return nil
	}
	if t.Status.Terminal() {
		return fmt.Errorf("%w: %s after the task ended as %s", ErrIllegalTransition, kind, t.Status)
	}
	if !containsKind(transitions[t.Status], kind) {
		return fmt.Errorf("%w: %s while the task is %s", ErrIllegalTransition, kind, statusText(t.Status))
	}
	if t.Status == StatusRunning {
		if t.CancelRequested && !containsKind(afterCancelRequest, kind) {
			return fmt.Errorf("%w: %s after a cancel was requested", ErrIllegalTransition, kind)
		}
		if t.PauseRequested && !containsKind(afterPauseRequest, kind) {
			return fmt.Errorf("%w: %s after a pause was requested", ErrIllegalTransition, kind)
		}
	}
	return nil
}

// Fold returns the state of a task from its events in stream order. Events
// that are illegal in the state reached so far, or whose data is invalid,
// are recorded in Task.Skipped and otherwise ignored, so one bad write
// cannot make a task unreadable.
func Fold(evs []Event) *Task {
	t := &Task{}
	for i := range evs {
		t.Fold(&evs[i])
	}
	return t
}

// Fold applies ev to t like [Fold] does: an event that [Task.Apply] rejects
// is recorded in Skipped. The sequence is tracked either way.
func (t *Task) Fold(ev *Event) {
	if err := t.Apply(ev); err != nil {
		t.Skipped = append(t.Skipped, SkippedEvent{Seq: ev.Seq, ID: ev.ID, Kind: ev.Kind, Reason: err.Error()})
	}
	if ev.Seq > t.LastSeq {
		t.LastSeq = ev.Seq
	}
}

// Apply checks that ev may follow the task's current state and that its
// data is valid for its kind, and if so updates the task. On error the task
// is unchanged.
func (t *Task) Apply(ev *Event) error {
	if t.Status != StatusNew && (ev.TaskID != t.ID || ev.Tenant != t.Tenant || ev.TaskType != t.Type) {
		return fmt.Errorf("%w: event %s is for task %s/%s of type %s, not %s/%s of type %s",
			ErrWrongTask, ev.ID, ev.Tenant, ev.TaskID, ev.TaskType, t.Tenant, t.ID, t.Type)
	}
	if err := t.Check(ev.Kind); err != nil {
		return err
	}

	next := *t
	if err := next.apply(ev); err != nil {
		return err
	}
	next.Events++
	next.Updated = eventTime(ev)
	*t = next
	return nil
}

func (t *Task) apply(ev *Event) error {
	switch ev.Kind {
	case KindScheduled, KindSubmitted:
		return t.applySubmission(ev)

	case KindStarted:
		var d Started
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.Attempt != t.Attempt+1 {
			return fmt.Errorf("%w: started attempt %d, expected %d", ErrInvalidData, d.Attempt, t.Attempt+1)
		}
		if t.Status == StatusRunning {
			t.Failures++
		}
		t.Status = StatusRunning
		t.Attempt = d.Attempt
		t.Executor = d.Executor
		t.AttemptMessageSeq = d.MessageSeq
		t.AttemptDelivery = d.Delivery
		t.Progress = nil
		t.NextAttemptAt = zeroTime
		t.InputRequest = nil
		t.Error = nil
		return nil

	case KindProgress:
		var d Progress
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.Percent < 0 || d.Percent > 100 || math.IsNaN(d.Percent) {
			return fmt.Errorf("%w: progress percent %v is outside 0 to 100", ErrInvalidData, d.Percent)
		}
		if len(d.Checkpoint) > 0 {
			t.Checkpoint = d.Checkpoint
			d.Checkpoint = nil
		}
		t.Progress = &d
		t.ProgressAt = eventTime(ev)
		return nil

	case KindInputRequired:
		var d InputRequired
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.Prompt == "" {
			return fmt.Errorf("%w: input_required has no prompt", ErrInvalidData)
		}
		t.Status = StatusInputRequired
		t.InputRequest = &d
		if len(d.Checkpoint) > 0 {
			t.Checkpoint = d.Checkpoint
		}
		t.PauseRequested = false
		return nil

	case KindPauseRequested, KindCancelRequested:
		var d Reason
		if len(ev.Data) > 0 {
			if err := ev.DecodeData(&d); err != nil {
				return err
			}
		}
		if ev.Kind == KindPauseRequested {
			t.PauseRequested = true
		} else {
			t.CancelRequested = true
		}
		t.Reason = d.Reason
		return nil

	case KindPaused:
		var d Paused
		if len(ev.Data) > 0 {
			if err := ev.DecodeData(&d); err != nil {
				return err
			}
		}
		t.Status = StatusPaused
		if len(d.Checkpoint) > 0 {
			t.Checkpoint = d.Checkpoint
		}
		if d.Reason != "" {
			t.Reason = d.Reason
		}
		t.PauseRequested = false
		t.NextAttemptAt = zeroTime
		return nil

	case KindResumed:
		var d Resumed
		if len(ev.Data) > 0 {
			if err := ev.DecodeData(&d); err != nil {
				return err
			}
		}
		if t.Status == StatusInputRequired && len(d.Input) == 0 {
			return fmt.Errorf("%w: resumed from input_required carries no input", ErrInvalidData)
		}
		t.Status = StatusQueued
		t.Resumes++
		if len(d.Input) > 0 {
			t.Answer = d.Input
		}
		t.InputRequest = nil
		if d.Reason != "" {
			t.Reason = d.Reason
		}
		return nil

	case KindRetrying:
		var d Retrying
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.Attempt != t.Attempt {
			return fmt.Errorf("%w: retrying names attempt %d, the current attempt is %d", ErrInvalidData, d.Attempt, t.Attempt)
		}
		if d.Error.Code == "" {
			return fmt.Errorf("%w: retrying error has no code", ErrInvalidData)
		}
		if d.NextAttemptAt.IsZero() {
			return fmt.Errorf("%w: retrying has no next_attempt_at", ErrInvalidData)
		}
		t.Status = StatusRetrying
		if d.Error.Code != CodeInterrupted {
			t.Failures++
		}
		t.Error = &d.Error
		t.NextAttemptAt = d.NextAttemptAt
		return nil

	case KindDeadlineScheduled:
		var d DeadlineScheduled
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.Deadline.IsZero() {
			return fmt.Errorf("%w: deadline_scheduled has no deadline", ErrInvalidData)
		}
		return nil

	case KindDeadline:
		t.DeadlinePassed = true
		return nil

	case KindSucceeded:
		var d Succeeded
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if (len(d.Result) == 0) == (d.ResultRef == nil) {
			return fmt.Errorf("%w: succeeded must carry exactly one of result and result_ref", ErrInvalidData)
		}
		t.end(StatusSucceeded)
		t.Result = d.Result
		t.ResultRef = d.ResultRef
		t.Error = nil
		return nil

	case KindFailed, KindRejected:
		var d Failed
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.Error.Code == "" {
			return fmt.Errorf("%w: %s error has no code", ErrInvalidData, ev.Kind)
		}
		if ev.Kind == KindFailed {
			t.end(StatusFailed)
		} else {
			t.end(StatusRejected)
			if t.ID == "" {
				t.adopt(ev)
			}
		}
		t.Error = &d.Error
		return nil

	case KindCancelled:
		var d Reason
		if len(ev.Data) > 0 {
			if err := ev.DecodeData(&d); err != nil {
				return err
			}
		}
		// A cancel that a request preceded keeps the request's reason
		// when it gives none. Any other reason, such as a pause's, is not
		// the cancel's.
		if d.Reason != "" || !t.CancelRequested {
			t.Reason = d.Reason
		}
		t.end(StatusCancelled)
		return nil

	case KindExpired:
		t.end(StatusExpired)
		t.Error = &TaskError{Code: CodeTimeout, Message: "the task's deadline passed before it finished"}
		return nil

	case KindDelivered, KindDeliveryFailed:
		var d Delivery
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		if d.EventID == "" || d.Endpoint == "" || d.Attempt < 1 {
			return fmt.Errorf("%w: %s needs event_id, endpoint and an attempt of at least 1", ErrInvalidData, ev.Kind)
		}
		if ev.Kind == KindDelivered {
			t.Deliveries++
		} else {
			t.DeliveryFailures++
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownKind, ev.Kind)
}

func (t *Task) applySubmission(ev *Event) error {
	// Unknown fields are refused as they are over HTTP: a misspelt
	// "max_attemps" published straight to NATS must not pass as a default.
	if len(ev.Data) == 0 {
		return fmt.Errorf("%w: %s event has no data", ErrInvalidData, ev.Kind)
	}
	var d Submission
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidData, ev.Kind, err)
	}
	if errs := d.validateStored(); errs != nil {
		return fmt.Errorf("%w: %w", ErrInvalidData, errs)
	}
	if ev.Kind == KindScheduled && d.RunAt == nil {
		return fmt.Errorf("%w: scheduled event has no run_at", ErrInvalidData)
	}

	if t.Status == StatusNew {
		t.adopt(ev)
	}
	t.Submission = d.WithDefaults()
	if ev.Kind == KindScheduled {
		t.Status = StatusScheduled
	} else {
		t.Status = StatusQueued
	}
	return nil
}

// adopt takes the task's identity from its first event.
func (t *Task) adopt(ev *Event) {
	t.ID = ev.TaskID
	t.Tenant = ev.Tenant
	t.Type = ev.TaskType
	t.Created = creationTime(ev)
}

func (t *Task) end(s Status) {
	t.Status = s
	t.CancelRequested = false
	t.PauseRequested = false
	t.InputRequest = nil
	t.NextAttemptAt = zeroTime
}

// validateStored checks the parts of a stored submission that do not depend
// on the clock: a deadline or run_at may have passed by the time a reader
// folds the event.
func (s *Submission) validateStored() error {
	c := *s
	c.Deadline, c.RunAt = nil, nil
	err := c.Validate(zeroTime)
	var fe FieldErrors
	if errors.As(err, &fe) {
		return fe
	}
	return err
}

func eventTime(ev *Event) time.Time {
	if !ev.Stored.IsZero() {
		return ev.Stored
	}
	return ev.Time
}

// creationTime returns when the task of its first event was created: the
// event's CloudEvents time, unless that is missing or later than the
// stream's timestamp. The stream's timestamp would not do, because the
// submitted event that a schedule publishes at run_at carries the time of
// the scheduled event it replaces, and the task was created then.
func creationTime(ev *Event) time.Time {
	if ev.Time.IsZero() || (!ev.Stored.IsZero() && ev.Time.After(ev.Stored)) {
		return eventTime(ev)
	}
	return ev.Time
}

func containsKind(list []Kind, k Kind) bool {
	for _, v := range list {
		if v == k {
			return true
		}
	}
	return false
}

func statusText(s Status) string {
	if s == StatusNew {
		return "not yet submitted"
	}
	return string(s)
}
