package events

import "fmt"

// Kind is the kind of a task event. It is the fourth token of the event's
// subject and the last part of its CloudEvents type, dev.handoff.task.<kind>.
type Kind string

// The event kinds. The status each one leads to is documented on [Status].
const (
	KindScheduled         Kind = "scheduled"
	KindSubmitted         Kind = "submitted"
	KindStarted           Kind = "started"
	KindProgress          Kind = "progress"
	KindInputRequired     Kind = "input_required"
	KindPauseRequested    Kind = "pause_requested"
	KindPaused            Kind = "paused"
	KindResumed           Kind = "resumed"
	KindCancelRequested   Kind = "cancel_requested"
	KindRetrying          Kind = "retrying"
	KindDeadlineScheduled Kind = "deadline_scheduled"
	KindDeadline          Kind = "deadline"
	KindSucceeded         Kind = "succeeded"
	KindFailed            Kind = "failed"
	KindCancelled         Kind = "cancelled"
	KindRejected          Kind = "rejected"
	KindExpired           Kind = "expired"
	KindDelivered         Kind = "delivered"
	KindDeliveryFailed    Kind = "delivery_failed"
)

// TypePrefix starts the CloudEvents type of every task event.
const TypePrefix = "dev.handoff.task."

// Kinds lists every kind in lifecycle order.
var Kinds = []Kind{
	KindScheduled, KindSubmitted, KindStarted, KindProgress, KindInputRequired,
	KindPauseRequested, KindPaused, KindResumed, KindCancelRequested,
	KindRetrying, KindDeadlineScheduled, KindDeadline, KindSucceeded, KindFailed,
	KindCancelled, KindRejected, KindExpired, KindDelivered, KindDeliveryFailed,
}

// TerminalKinds lists the kinds that end a task.
var TerminalKinds = []Kind{KindSucceeded, KindFailed, KindCancelled, KindRejected, KindExpired}

// ParseKind returns the kind named s, or ErrUnknownKind.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !k.Valid() {
		return "", fmt.Errorf("%w: %q", ErrUnknownKind, s)
	}
	return k, nil
}

// KindOfType returns the kind of the CloudEvents type ceType, which must be
// dev.handoff.task.<kind>.
func KindOfType(ceType string) (Kind, error) {
	if len(ceType) <= len(TypePrefix) || ceType[:len(TypePrefix)] != TypePrefix {
		return "", fmt.Errorf("%w: CloudEvents type %q does not start with %q", ErrUnknownKind, ceType, TypePrefix)
	}
	return ParseKind(ceType[len(TypePrefix):])
}

// Valid reports whether k is one of the kinds in [Kinds].
func (k Kind) Valid() bool {
	switch k {
	case KindScheduled, KindSubmitted, KindStarted, KindProgress, KindInputRequired,
		KindPauseRequested, KindPaused, KindResumed, KindCancelRequested,
		KindRetrying, KindDeadlineScheduled, KindDeadline, KindSucceeded, KindFailed,
		KindCancelled, KindRejected, KindExpired, KindDelivered, KindDeliveryFailed:
		return true
	}
	return false
}

// Type returns the CloudEvents type of k, dev.handoff.task.<kind>.
func (k Kind) Type() string { return TypePrefix + string(k) }

// Terminal reports whether an event of kind k ends its task.
func (k Kind) Terminal() bool {
	switch k {
	case KindSucceeded, KindFailed, KindCancelled, KindRejected, KindExpired:
		return true
	}
	return false
}

// Delivery reports whether k records a webhook delivery attempt. Delivery
// records are the only events a terminal task still accepts.
func (k Kind) Delivery() bool { return k == KindDelivered || k == KindDeliveryFailed }

// CompareAndSet reports whether writers append events of kind k with the
// per-task compare-and-set headers. The exceptions are the events the server
// publishes from a message schedule (a delayed submitted, a deadline) and
// the notifier's delivery records, which may follow a terminal event.
func (k Kind) CompareAndSet() bool {
	return k != KindDeadline && !k.Delivery()
}

// ScheduleTarget returns the kind that an event of kind k becomes when the
// message schedule it holds fires: a scheduled event publishes the task's
// submitted event at run_at, and a deadline_scheduled event publishes its
// deadline event at the deadline. ok is false for the kinds that hold no
// schedule.
func (k Kind) ScheduleTarget() (target Kind, ok bool) {
	switch k {
	case KindScheduled:
		return KindSubmitted, true
	case KindDeadlineScheduled:
		return KindDeadline, true
	}
	return "", false
}
