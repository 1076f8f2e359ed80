// Package events is Handoff's wire contract: the subject grammar, the event
// kinds and the JSON data each one carries, and the fold that turns a task's
// events into its current state.
//
// Every fact about a task is one CloudEvent stored in JetStream on a subject
//
//	<namespace>.task.<tenant>.<task_id>.<kind>.<task_type>
//
// and every reader (ingest, executor, notifier, the CLI) derives the task's
// state with [Fold]. The package has no I/O; pkg/bus encodes events on NATS.
package events
