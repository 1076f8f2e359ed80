// Package faults holds Handoff's fault tests. They build the real binaries
// (nats-server, handoff, handoff-ingest, handoff-executor), run them as
// processes on loopback ports with temporary data directories, break them
// with real signals, and then check every task's history in the stream: each
// accepted task ends exactly once, and no compare-and-set event follows its
// terminal event.
//
// The package has no code outside its tests.
package faults
