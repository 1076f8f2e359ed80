package bus

import "errors"

var (
	// ErrConflict is returned by a compare-and-set append when another
	// event was stored on the task since the expected sequence. The writer
	// re-reads the task and decides again.
	ErrConflict = errors.New("task changed since it was read")

	// ErrTaskNotFound is returned when a task has no events: it never
	// existed, or its events expired.
	ErrTaskNotFound = errors.New("task not found")

	// ErrStaleRead is returned by [Bus.ReadEventsThrough] and
	// [Bus.ReadTaskThrough] when every read in their time bound missed an
	// event that the caller knows is stored. Read again later.
	ErrStaleRead = errors.New("read is behind the stream")

	// ErrInvalidEvent is returned when a NATS message is not a valid
	// Handoff CloudEvent. The error text names the problem.
	ErrInvalidEvent = errors.New("invalid event")

	// ErrServerTooOld is returned by [Connect] when the NATS server is
	// older than [MinServerVersion].
	ErrServerTooOld = errors.New("NATS server too old")

	// ErrNotProvisioned is returned by [Bus.Verify] when a stream or the
	// results bucket is missing or lacks a setting Handoff needs.
	ErrNotProvisioned = errors.New("streams not provisioned")

	// ErrResultNotFound is returned by [Bus.OpenResult] when the results
	// bucket holds no object of that name: it was never stored, was
	// deleted, or outlived the bucket's TTL.
	ErrResultNotFound = errors.New("result not found")
)
