package executor

import (
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
