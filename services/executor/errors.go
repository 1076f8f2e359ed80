package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/handoff-dev/handoff/events"
)

var (
	// ErrInvalidConfig is wrapped by every configuration error. The error
	// text names the field.
	ErrInvalidConfig = errors.New("invalid executor config")

	// ErrAttemptTimeout is the cause of a handler context cancelled because
	// the attempt ran longer than its timeout. The attempt fails with code
	// timeout and is retried while attempts remain.
	ErrAttemptTimeout = errors.New("attempt timed out")

	// ErrShutdown is the cause of a handler context cancelled because the
	// executor stopped and the drain timeout passed. No event is written:
	// the message goes back to the pool for another executor.
	ErrShutdown = errors.New("executor shutting down")

	// ErrAttemptSuperseded is the cause of a handler context cancelled
	// because another executor took the task over, so this attempt's
	// result would be refused.
	ErrAttemptSuperseded = errors.New("attempt superseded by another executor")

	// ErrTaskEnded is the cause of a handler context cancelled because the
	// task reached a terminal state while the attempt ran, for example
	// expired at its deadline.
	ErrTaskEnded = errors.New("task ended while the attempt ran")

	// ErrCancelRequested is the cause of a handler context cancelled
	// because a cancel was requested for the task. The task ends as
	// cancelled whatever the handler returns.
	ErrCancelRequested = errors.New("cancel requested")

	// ErrPauseRequested is the cause of a handler context cancelled
	// because a pause was requested for the task. The task is paused with
	// the handler's last checkpoint, unless the handler returns a result,
	// which makes it succeed.
	ErrPauseRequested = errors.New("pause requested")

	// ErrDeadlinePassed is the cause of a handler context cancelled
	// because the task's deadline passed while the attempt ran. The task
	// ends as expired unless the handler returns a result.
	ErrDeadlinePassed = errors.New("task deadline passed")
)

// handlerError is an attempt's failure with the error code it records and
// whether another attempt may succeed.
type handlerError struct {
	err        error
	code       string
	permanent  bool
	retryAfter time.Duration
}

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// Permanent marks err as a failure that no retry can fix: the task fails at
// once, whatever attempts remain. A nil err stands for an unexplained
// permanent failure.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &handlerError{err: err, permanent: true}
}

// RetryAfter marks err as a failure worth retrying after d rather than after
// the executor's backoff. d is capped at the retry policy's Max. When no
// attempts remain the task fails as usual.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = fmt.Errorf("retry requested after %s", d)
	}
	return &handlerError{err: err, retryAfter: max(d, 0)}
}

// failure returns an error that records code. Built-in handlers use it to
// tell a bad exit status from an unreachable upstream.
func failure(code string, permanent bool, err error) error {
	return &handlerError{err: err, code: code, permanent: permanent}
}

// taskError returns the TaskError an attempt's error records, and the delay
// the handler asked for before the next attempt (zero for the backoff).
func taskError(err error) (events.TaskError, time.Duration) {
	te := events.TaskError{Code: events.CodeHandlerError, Message: err.Error(), Retryable: true}
	var he *handlerError
	if errors.As(err, &he) {
		if he.code != "" {
			te.Code = he.code
		}
		te.Retryable = !he.permanent
		return te, he.retryAfter
	}
	return te, 0
}

// inputRequest is the error a handler returns to stop and ask for input;
// see [AskInput].
type inputRequest struct {
	prompt     string
	schema     json.RawMessage
	checkpoint json.RawMessage
	// err is set when the request itself is invalid, and fails the task.
	err error
}

func (r *inputRequest) Error() string {
	if r.err != nil {
		return r.err.Error()
	}
	return "input required: " + r.prompt
}

// AskInput returns the error that stops the attempt and asks for input:
// the task becomes input_required with prompt and schema, the JSON Schema
// that the answer must match (nil accepts any answer). checkpoint, encoded
// as JSON, is where the next run continues; nil keeps the last checkpoint.
// The run after the answer gets the checkpoint from [Task.LastCheckpoint]
// and the answer from [Task.Answer].
//
// An empty prompt, a schema that does not compile or a checkpoint that does
// not encode fails the task without another attempt, because no answer
// could be checked or used.
func AskInput(prompt string, schema json.RawMessage, checkpoint any) error {
	r := &inputRequest{prompt: prompt}
	if prompt == "" {
		r.err = errors.New("input request has no prompt")
		return r
	}
	if len(schema) > 0 {
		if _, err := compileSchema("input-request", "answer", schema); err != nil {
			r.err = fmt.Errorf("input request schema: %w", err)
			return r
		}
		r.schema = schema
	}
	if checkpoint != nil {
		b, err := json.Marshal(checkpoint)
		if err != nil {
			r.err = fmt.Errorf("encode input request checkpoint: %w", err)
			return r
		}
		r.checkpoint = b
	}
	return r
}
