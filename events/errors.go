package events

import (
	"errors"
	"strings"
)

var (
	// ErrUnknownKind is returned for an event kind or CloudEvents type that
	// is not one of [Kinds].
	ErrUnknownKind = errors.New("unknown event kind")

	// ErrInvalidSubject is returned when a subject does not follow the
	// grammar <namespace>.task.<tenant>.<task_id>.<kind>.<task_type>.
	ErrInvalidSubject = errors.New("invalid subject")

	// ErrInvalidToken is returned when a tenant, task id, task type or
	// namespace contains characters its token does not allow.
	ErrInvalidToken = errors.New("invalid token")

	// ErrIllegalTransition is returned by [Task.Apply] and [Task.Check] when
	// an event of that kind may not follow the task's current state.
	ErrIllegalTransition = errors.New("illegal transition")

	// ErrInvalidData is returned when an event's data does not decode into
	// the type of its kind or breaks one of that type's rules.
	ErrInvalidData = errors.New("invalid event data")

	// ErrWrongTask is returned when an event given to [Task.Apply] belongs
	// to another task than the one being folded.
	ErrWrongTask = errors.New("event belongs to another task")
)

// TokenFault returns the message of an [ErrInvalidToken] error without
// the "invalid token: " prefix, such as `task id "a.b" contains '.'`, for
// messages that name the field themselves. Other errors are returned
// whole.
func TokenFault(err error) string {
	return strings.TrimPrefix(err.Error(), ErrInvalidToken.Error()+": ")
}
