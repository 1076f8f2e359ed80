// Package ingest is Handoff's HTTP API. It validates task submissions
// against the live task type registrations, stores each accepted task as a
// submitted event with a compare-and-set append, and serves reads by
// folding the task's events. It keeps no state of its own, so any number of
// instances can serve the same stream.
package ingest
