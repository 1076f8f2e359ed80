package events

// Status is where a task stands, derived from its events by [Fold].
type Status string

// Task statuses. The kinds that lead to each one are listed in the
// transition table of [Task.Check].
const (
	// StatusNew is the status of a task with no events yet. Views never
	// show it.
	StatusNew           Status = ""
	StatusScheduled     Status = "scheduled"
	StatusQueued        Status = "queued"
	StatusRunning       Status = "running"
	StatusInputRequired Status = "input_required"
	StatusPaused        Status = "paused"
	StatusRetrying      Status = "retrying"
	StatusSucceeded     Status = "succeeded"
	StatusFailed        Status = "failed"
	StatusCancelled     Status = "cancelled"
	StatusRejected      Status = "rejected"
	StatusExpired       Status = "expired"
)

// Statuses lists every status a view can show.
var Statuses = []Status{
	StatusScheduled, StatusQueued, StatusRunning, StatusInputRequired, StatusPaused,
	StatusRetrying, StatusSucceeded, StatusFailed, StatusCancelled, StatusRejected, StatusExpired,
}

// Terminal reports whether s is final: no event but delivery records may
// follow it.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusRejected, StatusExpired:
		return true
	}
	return false
}

// Valid reports whether s is one of [Statuses].
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}
