package executor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

const (
	testTenant  = "acme"
	waitTimeout = 30 * time.Second
	pollEvery   = 20 * time.Millisecond
)

// testBundle is one test's NATS server and bus.
type testBundle struct {
	srv *natstest.Server
	bus *bus.Bus
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	srv := natstest.Start(t)
	return &testBundle{srv: srv, bus: srv.Bus(t)}
}

// connect returns a bus on a connection of its own. It does not provision
// the streams again: nats-server 2.15.3 has a data race between a stream
// update and a consumer creation.
func (tb *testBundle) connect(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.New(tb.srv.Connect(t), "")
	require.NoError(t, err)
	return b
}

// testConfig returns a config with small timings for tests.
func testConfig(types map[string]TypeConfig) Config {
	return Config{
		Pool:         "test",
		Instance:     "e1",
		Concurrency:  8,
		AckWait:      5 * time.Second,
		KillGrace:    200 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
		Retry:        RetryPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Types:        types,
	}
}

// running is an executor started by a test.
type running struct {
	e    *Executor
	logs *observer.ObservedLogs
	stop func() error
}

// start runs an executor on b until the test ends or stop is called.
// handlers are registered with Handle before Run.
func (tb *testBundle) start(t *testing.T, b *bus.Bus, cfg Config, handlers map[string]Handler) *running {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(zapcore.NewTee(zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)).Core(), core))
	e, err := New(cfg, b, log)
	require.NoError(t, err)
	for name, h := range handlers {
		e.Handle(name, h, TypeOptions{Description: "test handler " + name})
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if stopped {
			return runErr
		}
		stopped = true
		cancel()
		select {
		case runErr = <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %s after its context was cancelled", waitTimeout)
		}
		return runErr
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	return &running{e: e, logs: logs, stop: stop}
}

// submit publishes a submission of taskType as ingest does and returns the
// task id.
func submit(t *testing.T, b *bus.Bus, taskType string, sub events.Submission) string {
	t.Helper()
	id := events.NewID()
	ev, err := events.NewEvent(events.KindSubmitted, testTenant, id, taskType, "/test", sub)
	require.NoError(t, err)
	_, err = b.Append(context.Background(), &ev, bus.AppendOptions{TTL: time.Hour})
	require.NoError(t, err)
	return id
}

func input(s string) events.Submission {
	return events.Submission{Input: json.RawMessage(s)}
}

// waitStatus waits until the task has status want and returns it.
func waitStatus(t *testing.T, b *bus.Bus, id string, want events.Status) *events.Task {
	t.Helper()
	var task *events.Task
	require.Eventually(t, func() bool {
		var err error
		task, err = b.ReadTask(context.Background(), testTenant, id)
		return err == nil && task.Status == want
	}, waitTimeout, pollEvery, "task %s never reached %s", id, want)
	return task
}

// waitTerminal waits until the task ends and returns it.
func waitTerminal(t *testing.T, b *bus.Bus, id string) *events.Task {
	t.Helper()
	var task *events.Task
	require.Eventually(t, func() bool {
		var err error
		task, err = b.ReadTask(context.Background(), testTenant, id)
		return err == nil && task.Terminal()
	}, waitTimeout, pollEvery, "task %s never ended", id)
	return task
}

// history returns the task's events.
func history(t *testing.T, b *bus.Bus, id string) []events.Event {
	t.Helper()
	te, err := b.ReadEvents(context.Background(), testTenant, id, 0)
	require.NoError(t, err)
	return te.Events
}

// kindsOf returns the kinds of evs, leaving out progress events.
func kindsOf(evs []events.Event) []events.Kind {
	var out []events.Kind
	for _, ev := range evs {
		if ev.Kind != events.KindProgress {
			out = append(out, ev.Kind)
		}
	}
	return out
}

// eventsOf returns the events of kind.
func eventsOf(evs []events.Event, kind events.Kind) []events.Event {
	var out []events.Event
	for _, ev := range evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// writeScript writes an executable shell script into dir and returns its
// path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755))
	return path
}

func execType(command ...string) TypeConfig {
	return TypeConfig{Handler: HandlerExec, Command: command}
}

func zapNop() *zap.Logger { return zap.NewNop() }

var errBoom = errors.New("boom")
