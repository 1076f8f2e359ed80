package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
)

// Handler runs one attempt of a task. It returns the result, which is
// encoded as JSON, or an error. Errors are retried while attempts remain,
// unless wrapped with [Permanent], and [RetryAfter] sets the delay. ctx
// carries the attempt's timeout and is cancelled with a cause when the
// attempt must stop. context.Cause returns it: one of the Err variables
// of this package. A panic counts as a failed attempt.
type Handler func(ctx context.Context, t *Task) (any, error)

// Task is the part of a task that its handler gets. Its methods are safe
// for concurrent use.
type Task struct {
	ID     string
	Type   string
	Tenant string
	// Attempt counts the task's attempts, from 1.
	Attempt int
	// Input is the submission's input, valid against the type's schema.
	Input json.RawMessage

	report  *progressReport
	answer  json.RawMessage
	resumed bool
}

// Progress reports how far the attempt got. percent is clamped to 0..100;
// NaN is ignored. Progress events are written at most once a second per
// task, each with the latest values, so reports in between are merged.
func (t *Task) Progress(percent float64, message string) {
	if math.IsNaN(percent) {
		return
	}
	percent = min(max(percent, 0), 100)
	t.report.set(func(r *progressReport) {
		r.percent = percent
		r.message = message
	})
}

// Checkpoint records v, encoded as JSON, as the point from which a later
// attempt can resume. It is written with the next progress event, and
// schedules one if the handler reports no progress.
func (t *Task) Checkpoint(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	t.report.set(func(r *progressReport) {
		r.checkpoint = b
		r.lastCheckpoint = b
	})
	return nil
}

// LastCheckpoint returns the latest checkpoint: the one this attempt
// recorded, else the one an earlier attempt left, else nil.
func (t *Task) LastCheckpoint() json.RawMessage {
	return t.report.latestCheckpoint()
}

// Answer returns the answer to the task's last input request, or nil when
// it never asked for input. It stays set for the runs after the answer,
// including retries.
func (t *Task) Answer() json.RawMessage { return t.answer }

// Resumed reports whether this run continues earlier work of the task: it
// has a checkpoint or an answer from an earlier run, or the task was paused
// and resumed.
func (t *Task) Resumed() bool { return t.resumed }

// progressReport holds the progress a handler reported and not yet
// written. The attempt takes it when the throttle allows.
type progressReport struct {
	mu             sync.Mutex
	pending        bool
	percent        float64
	message        string
	checkpoint     json.RawMessage
	lastCheckpoint json.RawMessage
	// onReport, if set, is called after each report, without mu held.
	onReport func()
}

func newProgressReport(lastCheckpoint json.RawMessage) *progressReport {
	return &progressReport{lastCheckpoint: lastCheckpoint}
}

func (r *progressReport) set(update func(*progressReport)) {
	r.mu.Lock()
	update(r)
	r.pending = true
	r.mu.Unlock()
	if r.onReport != nil {
		r.onReport()
	}
}

// pendingCheckpoint reports whether a checkpoint waits to be written.
func (r *progressReport) pendingCheckpoint() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending && len(r.checkpoint) > 0
}

// latestCheckpoint returns the last checkpoint, written or not.
func (r *progressReport) latestCheckpoint() json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastCheckpoint
}

// restore makes progress that take returned pending again.
func (r *progressReport) restore(percent float64, message string, checkpoint json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = true
	r.percent, r.message, r.checkpoint = percent, message, checkpoint
}

// take returns the pending progress and clears it.
func (r *progressReport) take() (percent float64, message string, checkpoint json.RawMessage, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pending {
		return 0, "", nil, false
	}
	r.pending = false
	checkpoint, r.checkpoint = r.checkpoint, nil
	return r.percent, r.message, checkpoint, true
}
