package executor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// progressInterval is the least time between two progress events of a
// task.
const progressInterval = time.Second

// attempt is one run of a handler for a task whose started event this
// executor wrote. The handler runs on a goroutine of its own. Progress
// writes, heartbeats and the abandoning of a handler that ignores its
// context run on timers and on the executor's heartbeat loop, so an
// attempt costs one goroutine. mu serialises what they write.
type attempt struct {
	e      *Executor
	msg    jetstream.Msg
	tt     *taskType
	number int
	// key is the attempt's entry in the executor's table of running
	// attempts.
	key string
	// log is built on first use, as most attempts log nothing.
	log *zap.Logger

	// task is the task's state, kept current by folding this attempt's
	// own writes and replaced by a fresh read after a conflict.
	task    *events.Task
	timeout time.Duration
	report  *progressReport

	// stopped is cancelled, with the cause, by an event that stops the
	// task, by a refused write and at shutdown. It exists from the moment
	// the attempt is registered, before its started event is written, so
	// that no stop event can come too early.
	stopped context.Context
	cancel  context.CancelCauseFunc
	// ctx is the handler's context: stopped, bounded by the attempt's
	// timeout and by the task's deadline.
	ctx context.Context

	// mu guards finished and the timers. It is held while progress or the
	// outcome is written and while a heartbeat is sent, so that no
	// heartbeat follows the ack or nak of the outcome.
	mu sync.Mutex
	// finished is set when the attempt's outcome is being recorded, or
	// when its started event was not written. After that the attempt
	// writes nothing more and sends no heartbeat.
	finished bool
	// progressTimer is the pending progress write, nil when none is.
	progressTimer *time.Timer
	// abandonTimer abandons the handler if it has not returned a grace
	// period after its context was cancelled.
	abandonTimer *time.Timer
	lastProgress time.Time

	began   time.Time
	running prometheus.Gauge

	// stored is the result this attempt put in the results bucket, until
	// it is deleted because no succeeded event refers to it.
	stored *events.ResultRef

	// span is the attempt's trace span, the parent of the events it
	// writes. outcome is the kind of the event that recorded the outcome,
	// or empty while none did.
	span    trace.Span
	outcome events.Kind
}

// outcome is a handler's return values.
type outcome struct {
	result any
	err    error
}

// newAttempt registers the next attempt of task before its started event
// is written, and starts its span under traceCtx. Call runAttempt once the
// write succeeded, or drop otherwise.
func (e *Executor) newAttempt(traceCtx context.Context, msg jetstream.Msg, tt *taskType, task *events.Task) *attempt {
	a := &attempt{e: e, msg: msg, tt: tt, number: task.Attempt + 1, key: taskKey(task.Tenant, task.ID), task: task}
	a.span = e.startAttemptSpan(traceCtx, task, a.number)
	// The handler's context carries the span, so a Go handler can start
	// spans under it and the http handler sends it on.
	a.stopped, a.cancel = context.WithCancelCause(trace.ContextWithSpan(e.workCtx, a.span))
	e.running.add(a)
	return a
}

// drop unregisters an attempt and ends its span: one whose started event
// was not written, or one that ended.
func (a *attempt) drop() {
	a.e.running.remove(a)
	a.cancel(nil)
	a.endSpan()
}

// discard drops an attempt whose started event was not written.
func (a *attempt) discard() {
	a.mu.Lock()
	a.finished = true
	a.mu.Unlock()
	a.drop()
}

// runAttempt runs the handler of a, whose started event was just
// written, and records the outcome. It runs on a new goroutine, which
// starts with a small stack, because this goroutine lives as long as the
// handler and its stack is most of an in-flight task's memory. The worker
// that took the message grew its stack while it read and wrote the task.
// Whichever records the outcome, the handler's return or its abandoning,
// releases the worker's slot.
func (e *Executor) runAttempt(a *attempt) {
	t, stop := a.prepare()
	defer stop()
	stopWatching := context.AfterFunc(a.ctx, a.armAbandon)
	out := callHandler(a.ctx, a.tt.handler, t)
	stopWatching()
	if a.finish(out, false) {
		e.release()
	}
}

// prepare sets up the attempt's context, progress report and metrics and
// returns the handler's view of the task, and the function that releases
// the context. It is a function of its own so that its frame is gone
// while the handler runs, which keeps the stack that the runtime shrinks
// small.
func (a *attempt) prepare() (*Task, context.CancelFunc) {
	e, task := a.e, a.task
	a.timeout = attemptTimeout(task, a.tt, e.cfg.DefaultTimeout)
	a.report = newProgressReport(task.Checkpoint)
	a.report.onReport = a.progressReported

	ctx, stop := context.WithTimeoutCause(a.stopped, a.timeout, ErrAttemptTimeout)
	if deadline := task.Submission.Deadline; deadline != nil {
		var stopAtDeadline context.CancelFunc
		ctx, stopAtDeadline = context.WithDeadlineCause(ctx, *deadline, ErrDeadlinePassed)
		stopTimeout := stop
		stop = func() {
			stopAtDeadline()
			stopTimeout()
		}
	}
	a.ctx = ctx

	t := &Task{
		ID:      task.ID,
		Type:    task.Type,
		Tenant:  task.Tenant,
		Attempt: task.Attempt,
		Input:   task.Submission.Input,
		report:  a.report,
		answer:  task.Answer,
		resumed: len(task.Checkpoint) > 0 || len(task.Answer) > 0 || task.Resumes > 0,
	}
	if ce := e.log.Check(zap.DebugLevel, "attempt started"); ce != nil {
		ce.Write(append(a.fields(), zap.Duration("timeout", a.timeout), zap.Bool("resumed", t.resumed))...)
	}
	a.began = time.Now()
	a.running = e.metrics.running.WithLabelValues(task.Type)
	a.running.Inc()
	return t, stop
}

// finish records the outcome of the attempt, unless it was recorded
// already, and reports whether it did. abandoned is true when the handler
// has not returned.
func (a *attempt) finish(out outcome, abandoned bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished {
		return false
	}
	a.finished = true
	if abandoned {
		a.logger().Warn("abandoning a handler that did not return after its context was cancelled",
			zap.NamedError("cause", out.err), zap.Duration("kill_grace", a.e.cfg.KillGrace))
	}
	if a.progressTimer != nil {
		a.progressTimer.Stop()
	}
	if a.abandonTimer != nil {
		a.abandonTimer.Stop()
	}
	a.running.Dec()
	a.settle(out)
	a.e.metrics.observeAttempt(a.task.Type, a.outcome, time.Since(a.began))
	a.drop()
	return true
}

// armAbandon starts the timer that abandons the handler: one that has not
// returned KillGrace (plus a second for an exec handler's own kill) after
// its context was cancelled.
func (a *attempt) armAbandon() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished {
		return
	}
	a.abandonTimer = time.AfterFunc(a.e.cfg.KillGrace+time.Second, a.abandon)
}

// abandon records the cause that cancelled the handler's context as the
// outcome and releases the worker's slot, leaving the handler to return
// whenever it does.
func (a *attempt) abandon() {
	if a.finish(outcome{err: context.Cause(a.ctx)}, true) {
		a.e.release()
	}
}

// logger returns the attempt's logger, with the task's fields.
func (a *attempt) logger() *zap.Logger {
	if a.log == nil {
		a.log = a.e.log.With(a.fields()...)
	}
	return a.log
}

func (a *attempt) fields() []zap.Field {
	return append(logging.Task(a.task.Tenant, a.task.ID, a.task.Type), zap.Int(logging.KeyAttempt, a.number))
}

// attemptTimeout is the submission's timeout, else the task type's, else
// the executor's default.
func attemptTimeout(task *events.Task, tt *taskType, fallback time.Duration) time.Duration {
	if d := task.Submission.Timeout.Std(); d > 0 {
		return d
	}
	if tt.timeout > 0 {
		return tt.timeout
	}
	return fallback
}

// callHandler runs h and turns a panic into a failed attempt.
func callHandler(ctx context.Context, h Handler, t *Task) (out outcome) {
	defer func() {
		if r := recover(); r != nil {
			out = outcome{err: &panicError{value: r, stack: debug.Stack()}}
		}
	}()
	result, err := h(ctx, t)
	return outcome{result: result, err: err}
}

// panicError is a handler's panic, recorded as a retryable failure.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", p.value) }

// heartbeat reports to the server that the attempt's message is in
// progress.
// An attempt busy writing progress or its outcome skips the beat rather
// than hold up the heartbeat loop.
func (a *attempt) heartbeat() {
	if !a.mu.TryLock() {
		return
	}
	defer a.mu.Unlock()
	if a.finished {
		return
	}
	if err := a.msg.InProgress(); err != nil {
		a.logger().Debug("heartbeat failed", zap.Error(err))
	}
}

// progressReported schedules the write of the progress the handler
// reported: at once, or a second after the last progress event. Reports
// that come while a write is scheduled are merged into it.
func (a *attempt) progressReported() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished || a.progressTimer != nil {
		return
	}
	wait := max(time.Until(a.lastProgress.Add(progressInterval)), 0)
	a.progressTimer = time.AfterFunc(wait, a.writeScheduledProgress)
}

func (a *attempt) writeScheduledProgress() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.progressTimer = nil
	if !a.finished {
		a.writeProgress()
	}
}

// writeProgress writes the latest progress the handler reported. The
// caller holds a.mu. A conflict means the task changed: the write is tried again if the
// attempt is still current, and the handler is cancelled otherwise.
func (a *attempt) writeProgress() {
	percent, message, checkpoint, ok := a.report.take()
	if !ok || a.ctx.Err() != nil {
		return
	}
	a.lastProgress = time.Now()
	data := events.Progress{Percent: percent, Message: message, Checkpoint: checkpoint}

	ctx, cancel := context.WithTimeout(a.traced(), ioTimeout)
	defer cancel()
	for range maxConflicts {
		err := a.e.write(ctx, a.task, events.KindProgress, data, a.number)
		if err == nil {
			return
		}
		if !bus.IsConflict(err) && !errors.Is(err, events.ErrIllegalTransition) {
			a.logger().Debug("writing progress failed", zap.Error(err))
			return
		}
		if !a.refresh(ctx) {
			return
		}
	}
}

// refresh re-reads the task and reports whether the attempt may go on. If
// not, it cancels the handler with the reason.
func (a *attempt) refresh(ctx context.Context) bool {
	fresh, err := a.e.read(ctx, a.task.Tenant, a.task.ID, a.task.LastSeq)
	switch {
	case errors.Is(err, bus.ErrTaskNotFound):
		a.cancel(ErrTaskEnded)
		return false
	case err != nil:
		a.logger().Debug("re-reading task failed", zap.Error(err))
		return false
	case fresh.Terminal():
		a.cancel(ErrTaskEnded)
		return false
	case fresh.Attempt != a.number || fresh.Status != events.StatusRunning:
		a.cancel(ErrAttemptSuperseded)
		return false
	}
	a.task = fresh
	if fresh.CancelRequested {
		a.cancel(ErrCancelRequested)
		return false
	}
	if fresh.PauseRequested {
		a.cancel(ErrPauseRequested)
		return false
	}
	return true
}

// flushCheckpoint writes a checkpoint that the handler recorded and the
// throttle held back, with the pending progress, so that the next attempt
// continues from it. A failed write leaves it pending.
func (a *attempt) flushCheckpoint(ctx context.Context) {
	if !a.report.pendingCheckpoint() {
		return
	}
	percent, message, checkpoint, ok := a.report.take()
	if !ok {
		return
	}
	data := events.Progress{Percent: percent, Message: message, Checkpoint: checkpoint}
	if err := a.e.write(ctx, a.task, events.KindProgress, data, a.number); err != nil {
		a.logger().Debug("writing the last checkpoint failed", zap.Error(err))
		a.report.restore(percent, message, checkpoint)
	}
}
