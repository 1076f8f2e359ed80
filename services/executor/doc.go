// Package executor runs task handlers for Handoff. An [Executor] pulls the
// submitted, resumed and deadline events of the task types it serves from
// the HANDOFF_TASKS stream, through a durable consumer shared by every
// instance of its pool. It folds each task's events to decide what to do.
// It records every step (started, progress, succeeded, retrying, failed,
// rejected, expired) as a compare-and-set append on the task.
//
// Handlers are exec programs, HTTP endpoints, the built-in sleep and echo,
// or Go functions registered with [Executor.Handle]. Task types are
// declared in a YAML file read by [LoadConfig].
package executor
