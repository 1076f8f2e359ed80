package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// finalWriteTries bounds the tries of an outcome write that fails for
// another reason than a conflict, such as a lost connection.
const finalWriteTries = 5

// storeTimeout bounds the upload of a Go handler's result to the results
// bucket.
const storeTimeout = 2 * time.Minute

// settle records the outcome of the attempt and acknowledges its message.
// It is the one place where an attempt's outcome becomes an event and an
// ack, a nak or, when the attempt lost its task, nothing.
func (a *attempt) settle(out outcome) {
	if sr, ok := out.result.(*storedResult); ok {
		a.stored = &sr.ref
	}
	cause := context.Cause(a.ctx)
	switch {
	case errors.Is(cause, ErrAttemptSuperseded):
		a.logger().Info("dropping the result of a superseded attempt")
		a.discardStoredResult(nil)
		return
	case errors.Is(cause, ErrTaskEnded):
		a.logger().Debug("task ended while the attempt ran")
		a.discardStoredResult(nil)
		a.e.ack(a.msg)
		return
	case out.err != nil && errors.Is(cause, ErrAttemptTimeout):
		out.err = failure(events.CodeTimeout, false, timeoutError(a.timeout, out.err))
	}
	var pe *panicError
	if errors.As(out.err, &pe) {
		a.logger().Warn("handler panicked", zap.Any("panic", pe.value), zap.ByteString("stack", pe.stack))
		out.err = failure(events.CodePanic, false, pe)
	}
	var ir *inputRequest
	if errors.As(out.err, &ir) && ir.err != nil {
		out.err = failure(events.CodeInvalidOutput, true, ir.err)
	}
	s := a.encodeResult(out)
	s.cause = cause

	// The outcome write must survive shutdown.
	ctx, cancel := context.WithTimeout(a.traced(), ioTimeout)
	defer cancel()
	failures := 0
	for conflicts := 0; conflicts < maxConflicts; {
		d := decideOutcome(a.task, s, a.report.latestCheckpoint(), a.e.cfg.Retry, time.Now())
		if cerr := a.task.Check(d.kind); cerr != nil {
			a.logger().Info("dropping the outcome: the task moved on", zap.String("outcome", string(d.kind)), zap.Error(cerr))
			a.discardStoredResult(a.task)
			a.e.ack(a.msg)
			return
		}
		if d.kind == events.KindRetrying {
			// The next attempt continues from the last written checkpoint.
			a.flushCheckpoint(ctx)
		}

		werr := a.e.write(ctx, a.task, d.kind, d.data, a.number)
		if werr == nil {
			a.outcome = d.kind
			a.logger().Debug("attempt settled", zap.String("outcome", string(d.kind)), zap.String("decision", d.why))
			if d.kind != events.KindSucceeded {
				a.discardStoredResult(nil)
			}
			if d.kind.Terminal() {
				a.e.purgeSchedules(a.task)
			}
			if d.step == stepRetryLater {
				a.e.nak(a.msg, d.delay)
			} else {
				a.e.ack(a.msg)
			}
			return
		}

		if !bus.IsConflict(werr) {
			failures++
			if failures >= finalWriteTries {
				a.logger().Warn("recording the outcome failed; the task is taken over after the ack wait", zap.Error(werr))
				return
			}
			sleep(ctx, time.Duration(failures)*100*time.Millisecond)
			continue
		}

		conflicts++
		fresh, rerr := a.e.read(ctx, a.task.Tenant, a.task.ID, a.task.LastSeq)
		switch {
		case errors.Is(rerr, bus.ErrTaskNotFound):
			a.discardStoredResult(nil)
			a.e.ack(a.msg)
			return
		case rerr != nil:
			a.logger().Warn("re-reading the task after a conflict failed; the task is taken over after the ack wait", zap.Error(rerr))
			return
		case fresh.Terminal():
			a.logger().Info("dropping the outcome: the task ended first", zap.String("status", string(fresh.Status)))
			a.discardStoredResult(fresh)
			a.e.ack(a.msg)
			return
		case fresh.Attempt != a.number:
			// Another executor took the task over and now holds the
			// message, so this one must neither ack nor nak it.
			a.logger().Info("dropping the result: another executor took the task over",
				zap.Int("current_attempt", fresh.Attempt), zap.String("current_executor", fresh.Executor))
			a.discardStoredResult(fresh)
			return
		}
		a.task = fresh
	}
	a.logger().Warn("recording the outcome kept conflicting; the task is taken over after the ack wait")
}

// settlement is the end of an attempt: its inline result, the reference
// of its stored result or the error that failed it, and the cause that
// ended the handler's context, if any.
type settlement struct {
	result json.RawMessage
	ref    *events.ResultRef
	err    error
	cause  error
}

// timeoutError returns the error of an attempt that timed out after d,
// with what the handler returned unless that is only the timeout itself.
func timeoutError(d time.Duration, err error) error {
	msg := fmt.Sprintf("attempt timed out after %s", d)
	detail := strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrAttemptTimeout.Error()), ": ")
	if detail != "" {
		msg += ": " + detail
	}
	return errors.New(msg)
}

// encodeResult returns the settlement of a handler's outcome: the result
// as JSON when it fits the inline limit, the reference of a result stored
// in the results bucket, or the error that fails the attempt instead. A
// result over the inline limit that the handler returned as a value is
// stored here.
func (a *attempt) encodeResult(out outcome) settlement {
	if out.err != nil {
		return settlement{err: out.err}
	}
	if a.stored != nil {
		return settlement{ref: a.stored}
	}
	b, err := events.EncodeData(out.result)
	if err != nil {
		return settlement{err: failure(events.CodeInvalidOutput, true, fmt.Errorf("encode result: %w", err))}
	}
	if len(b) <= a.e.cfg.ResultLimit {
		return settlement{result: b}
	}
	if int64(len(b)) > a.e.cfg.MaxResultBytes {
		return settlement{err: failure(events.CodeResultTooLarge, true, fmt.Errorf("result is %d bytes, more than the max_result_bytes of %d", len(b), a.e.cfg.MaxResultBytes))}
	}

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	obj := bus.ResultObject{Tenant: a.task.Tenant, TaskID: a.task.ID, Attempt: a.number}
	ref, err := a.e.bus.PutResult(ctx, obj, mediaTypeJSON, bytes.NewReader(b))
	if err != nil {
		return settlement{err: failure(events.CodeResultNotStored, false, fmt.Errorf("store the result of %d bytes: %w", len(b), err))}
	}
	a.stored = &ref
	return settlement{ref: &ref}
}

// discardStoredResult deletes the result that this attempt stored, if
// any, because no succeeded event refers to it. task is the latest state
// read, or nil. When task refers to the object, a write that seemed to fail
// was stored after all, and the object stays.
func (a *attempt) discardStoredResult(task *events.Task) {
	if a.stored == nil {
		return
	}
	if task != nil && task.ResultRef != nil && task.ResultRef.Object == a.stored.Object {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := a.e.bus.DeleteResult(ctx, a.stored.Object); err != nil {
		a.logger().Warn("deleting an unused result failed; the results bucket's TTL removes it", zap.String("object", a.stored.Object), zap.Error(err))
		return
	}
	a.logger().Debug("deleted an unused result", zap.String("object", a.stored.Object))
	a.stored = nil
}

// decideOutcome maps an attempt's settlement to the event that records it
// on task, now. checkpoint is the handler's latest, written or not. In
// order:
//   - a requested cancel wins over any outcome: cancelled;
//   - a result: succeeded;
//   - a passed deadline: expired;
//   - a request for input: input_required;
//   - a context ended by a pause request: paused, whatever the error;
//   - a context ended by shutdown: retrying with code interrupted and no
//     delay, or paused when a pause was requested;
//   - a retryable error while attempts remain: retrying, or paused when a
//     pause was requested;
//   - otherwise: failed.
func decideOutcome(task *events.Task, s settlement, checkpoint json.RawMessage, policy RetryPolicy, now time.Time) decision {
	paused := decision{step: stepWrite, kind: events.KindPaused, data: events.Paused{Checkpoint: checkpoint, Reason: task.Reason}}

	switch {
	case task.CancelRequested || errors.Is(s.cause, ErrCancelRequested):
		return decision{step: stepWrite, kind: events.KindCancelled, data: events.Reason{Reason: task.Reason}, why: "cancel requested"}
	case s.err == nil:
		return decision{step: stepWrite, kind: events.KindSucceeded, data: events.Succeeded{Result: s.result, ResultRef: s.ref}, why: "handler returned a result"}
	case errors.Is(s.cause, ErrDeadlinePassed) || task.DeadlinePassed || deadlinePassed(task, now):
		return decision{step: stepWrite, kind: events.KindExpired, why: "deadline passed"}
	}

	var ir *inputRequest
	if errors.As(s.err, &ir) {
		cp := ir.checkpoint
		if len(cp) == 0 {
			cp = checkpoint
		}
		return decision{step: stepWrite, kind: events.KindInputRequired, why: "handler asked for input",
			data: events.InputRequired{Prompt: ir.prompt, InputSchema: ir.schema, Checkpoint: cp}}
	}
	if errors.Is(s.cause, ErrPauseRequested) {
		paused.why = "pause requested"
		return paused
	}
	if errors.Is(s.cause, ErrShutdown) {
		if task.PauseRequested {
			paused.why = "executor stopped while a pause was requested"
			return paused
		}
		return decision{step: stepRetryLater, kind: events.KindRetrying, why: "executor stopped",
			data: events.Retrying{
				Attempt:       task.Attempt,
				Error:         events.TaskError{Code: events.CodeInterrupted, Message: "the executor stopped while the attempt ran", Retryable: true},
				NextAttemptAt: now.UTC(),
			}}
	}

	te, after := taskError(s.err)
	if te.Retryable && task.Failures+1 < task.MaxAttempts() {
		if task.PauseRequested {
			paused.why = "failed while a pause was requested"
			return paused
		}
		delay := policy.backoff(task.Failures + 1)
		if after > 0 {
			delay = min(after, policy.Max)
		}
		return decision{step: stepRetryLater, kind: events.KindRetrying, delay: delay, why: "retryable failure",
			data: events.Retrying{Attempt: task.Attempt, Error: te, NextAttemptAt: now.Add(delay).UTC()}}
	}
	return decision{step: stepWrite, kind: events.KindFailed, data: events.Failed{Error: te}, why: "failure"}
}

// deadlinePassed reports whether the task's deadline is not after now.
func deadlinePassed(task *events.Task, now time.Time) bool {
	return task.Submission.Deadline != nil && !now.Before(*task.Submission.Deadline)
}

// backoff returns the delay after the failures-th failure: Initial doubled
// for each earlier failure, capped at Max, of which a random half is
// jitter so that tasks that failed together do not retry together.
func (p RetryPolicy) backoff(failures int) time.Duration {
	d := p.Initial
	for i := 1; i < failures && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
