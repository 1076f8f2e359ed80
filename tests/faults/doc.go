// Package faults holds Handoff's fault tests. They build the real binaries
// (nats-server, handoff, handoff-ingest, handoff-executor) and run them as
// processes on loopback ports with temporary data directories. They break
// them with real signals, then check every task's history in the stream.
// Each accepted task must end exactly once, and no compare-and-set event may
// follow its terminal event.
//
// The package has no code outside its tests.
package faults
