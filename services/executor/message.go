package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// maxConflicts bounds the re-reads after compare-and-set conflicts while
// one message is handled. Past it the message is redelivered later.
const maxConflicts = 10

// handleMessage decides what one submitted, resumed or deadline message
// means for its task and acts on it. It reports whether it started an
// attempt, which releases the worker's slot when it ends.
func (e *Executor) handleMessage(msg jetstream.Msg) (started bool) {
	md, err := msg.Metadata()
	if err != nil {
		e.log.Warn("terminating a message without JetStream metadata", zap.String("subject", msg.Subject()), zap.Error(err))
		_ = msg.Term()
		return false
	}
	ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
	if err != nil {
		e.handleUndecodable(msg, md, err)
		return false
	}
	tt := e.served[ev.TaskType]
	if tt == nil {
		// Another instance of the pool serves more types and widened the
		// consumer's filter; give it the message.
		e.log.Warn("received a task type this instance does not serve; every instance of a pool must serve the same types",
			append(logging.Task(ev.Tenant, ev.TaskID, ev.TaskType), zap.String("pool", e.cfg.Pool))...)
		e.nak(msg, e.cfg.AckWait)
		return false
	}

	// The events written for this message continue its trace.
	traceCtx := tracing.ContextFromEvent(context.Background(), &ev)
	ctx, cancel := context.WithTimeout(traceCtx, ioTimeout)
	task, err := e.foldTask(ctx, msg, md, &ev)
	cancel()
	if errors.Is(err, bus.ErrTaskNotFound) {
		e.ack(msg)
		return false
	}
	if err != nil {
		e.log.Warn("reading task failed; retrying later", append(logging.Task(ev.Tenant, ev.TaskID, ev.TaskType), zap.Error(err))...)
		e.nak(msg, e.cfg.Retry.Initial)
		return false
	}
	// An attempt holds msg until it settles, which may be hours away, and
	// needs none of its decoded headers from here on.
	clear(msg.Headers())
	if !task.Exists() {
		// The submission itself was refused by the fold. The rejection
		// needs the task's identity, and its TTL counts from the message.
		task.ID, task.Tenant, task.Type, task.Created = ev.TaskID, ev.Tenant, ev.TaskType, md.Timestamp
	}
	return e.decide(traceCtx, msg, md, ev.Kind, tt, task)
}

// foldTask returns the task of ev. A submitted event delivered for the
// first time that was published expecting no earlier event of its task is
// the task's whole history when stored, so it is folded alone without a
// read. Later events are caught by the compare-and-set of the next write.
func (e *Executor) foldTask(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, ev *events.Event) (*events.Task, error) {
	if md.NumDelivered == 1 && ev.Kind == events.KindSubmitted {
		h := msg.Headers()
		if h.Get(bus.HeaderExpectedSubjSeq) == "0" && h.Get(bus.HeaderExpectedSubjSeqSubj) == e.bus.Names().TaskFilter(ev.Tenant, ev.TaskID) {
			task := &events.Task{}
			task.Fold(ev)
			return task, nil
		}
	}
	return e.read(ctx, ev.Tenant, ev.TaskID, md.Sequence.Stream)
}

// read reads and folds a task that has an event at stream sequence
// through, such as the message being handled. A read from a replica that
// has not stored that event yet is retried, and in the end fails with
// bus.ErrStaleRead, so that no decision rests on an older state.
func (e *Executor) read(ctx context.Context, tenant, taskID string, through uint64) (*events.Task, error) {
	e.reads.Add(1)
	return e.bus.ReadTaskThrough(ctx, tenant, taskID, through)
}

// handleUndecodable deals with a message that is not a valid Handoff
// CloudEvent. A submission on a valid subject ends its task as rejected,
// with the reason. Other kinds are acknowledged and ignored, as the fold
// ignores them. A message whose subject breaks the grammar is terminated.
func (e *Executor) handleUndecodable(msg jetstream.Msg, md *jetstream.MsgMetadata, decodeErr error) {
	subj, err := events.ParseSubject(msg.Subject())
	if err != nil {
		n := e.invalidSubjects.Add(1)
		e.log.Warn("terminating a message on an invalid subject", zap.String("subject", msg.Subject()), zap.Uint64("invalid_subjects", n), zap.Error(err))
		if err := msg.Term(); err != nil {
			e.log.Debug("term failed", zap.String("subject", msg.Subject()), zap.Error(err))
		}
		return
	}
	fields := logging.Task(subj.Tenant, subj.TaskID, subj.TaskType)
	if subj.Kind != events.KindSubmitted {
		e.log.Warn("ignoring an undecodable event", append(fields, zap.String(logging.KeyKind, string(subj.Kind)), zap.Uint64(logging.KeySeq, md.Sequence.Stream), zap.Error(decodeErr))...)
		e.ack(msg)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	for range maxConflicts {
		task, err := e.read(ctx, subj.Tenant, subj.TaskID, md.Sequence.Stream)
		if errors.Is(err, bus.ErrTaskNotFound) {
			e.ack(msg)
			return
		}
		if err != nil {
			e.log.Warn("reading task failed; retrying later", append(fields, zap.Error(err))...)
			e.nak(msg, e.cfg.Retry.Initial)
			return
		}
		if task.Exists() {
			e.log.Warn("ignoring an undecodable submission of an existing task", append(fields, zap.Uint64(logging.KeySeq, md.Sequence.Stream), zap.Error(decodeErr))...)
			e.ack(msg)
			return
		}

		task.ID, task.Tenant, task.Type, task.Created = subj.TaskID, subj.Tenant, subj.TaskType, md.Timestamp
		rejected := events.Rejected{Error: events.TaskError{
			Code:    events.CodeInvalidEvent,
			Message: "the submission is not a valid Handoff CloudEvent: " + decodeErr.Error(),
		}}
		err = e.write(ctx, task, events.KindRejected, rejected, 0)
		if bus.IsConflict(err) {
			continue
		}
		if err != nil {
			e.log.Warn("recording the rejection of an undecodable submission failed; retrying later", append(fields, zap.Error(err))...)
			e.nak(msg, e.cfg.Retry.Initial)
			return
		}
		e.log.Debug("rejected an undecodable submission", fields...)
		e.ack(msg)
		return
	}
	e.nak(msg, e.cfg.Retry.Initial)
}

// step is the action the executor takes on a message.
type step int

const (
	stepAck        step = iota // nothing to do; acknowledge
	stepRetryLater             // redeliver after delay
	stepWrite                  // write the event, then acknowledge
	stepStart                  // write started and run an attempt
	stepLeave                  // neither ack nor nak: another executor holds the message
)

// decision is the outcome of [plan].
type decision struct {
	step    step
	kind    events.Kind
	data    any
	attempt int
	delay   time.Duration
	// why is the reason for the decision, for debug logs.
	why string
}

// plan decides what a message of kind msgKind at stream sequence msgSeq,
// delivered for the delivered-th time, means for task at now. It reads
// nothing and writes nothing.
func plan(task *events.Task, msgKind events.Kind, msgSeq, delivered uint64, tt *taskType, now time.Time) decision {
	switch {
	case !task.Exists():
		if n := len(task.Skipped); n > 0 && msgKind == events.KindSubmitted {
			return decision{step: stepWrite, kind: events.KindRejected, why: "invalid submission",
				data: events.Rejected{Error: events.TaskError{
					Code:    events.CodeInvalidEvent,
					Message: "the submission is invalid: " + task.Skipped[n-1].Reason,
				}}}
		}
		return decision{step: stepAck, why: "no task"}
	case task.Terminal():
		return decision{step: stepAck, why: "task already " + string(task.Status)}
	case task.Status == events.StatusScheduled:
		// Ingest rejects a deadline before run_at, so only a message out
		// of order gets here. The submitted event that the task's
		// schedule publishes is handled, and expired if need be, in turn.
		return decision{step: stepAck, why: "task waits for its run_at"}
	case msgKind == events.KindDeadline || task.DeadlinePassed:
		return decision{step: stepWrite, kind: events.KindExpired, why: "deadline event"}
	case task.Submission.Deadline != nil && !now.Before(*task.Submission.Deadline):
		return decision{step: stepWrite, kind: events.KindExpired, why: "deadline passed"}
	}

	switch task.Status {
	case events.StatusQueued:
		if task.Attempt == 0 && tt.inputSchema != nil {
			if te := validateInput(tt.inputSchema, task.Submission.Input); te != nil {
				return decision{step: stepWrite, kind: events.KindRejected, data: events.Rejected{Error: *te}, why: "input fails the schema"}
			}
		}
		return decision{step: stepStart, attempt: task.Attempt + 1, why: "queued"}

	case events.StatusRetrying:
		if wait := task.NextAttemptAt.Sub(now); wait > 0 {
			return decision{step: stepRetryLater, delay: wait, why: "next attempt not due"}
		}
		return decision{step: stepStart, attempt: task.Attempt + 1, why: "retry due"}

	case events.StatusRunning:
		if task.AttemptMessageSeq == msgSeq && delivered <= task.AttemptDelivery {
			// This executor holds an earlier delivery of the message that
			// started the running attempt, for instance after a stall.
			// The server acknowledges by stream sequence, so an ack would
			// end the lease of the executor that holds the attempt.
			return decision{step: stepLeave, why: "stale copy of the message of an attempt running elsewhere"}
		}
		recorded := task.AttemptMessageSeq != 0
		if (recorded && task.AttemptMessageSeq != msgSeq) || (!recorded && delivered <= 1) {
			// Only a later delivery of the message that started the
			// attempt means that the attempt lost its lease. Another
			// message of the task, or a first delivery when the started
			// event did not record its message, leaves the attempt to
			// the executor that holds it.
			return decision{step: stepAck, why: "attempt running elsewhere"}
		}
		if task.CancelRequested {
			return decision{step: stepWrite, kind: events.KindCancelled, attempt: task.Attempt, data: events.Reason{Reason: task.Reason}, why: "lost attempt was asked to cancel"}
		}
		if task.PauseRequested {
			return decision{step: stepWrite, kind: events.KindPaused, attempt: task.Attempt, data: events.Paused{Checkpoint: task.Checkpoint, Reason: task.Reason}, why: "lost attempt was asked to pause"}
		}
		if task.Failures+1 < task.MaxAttempts() {
			return decision{step: stepStart, attempt: task.Attempt + 1, why: "takeover of a lost attempt"}
		}
		return decision{step: stepWrite, kind: events.KindFailed, attempt: task.Attempt, why: "lost the last attempt",
			data: events.Failed{Error: events.TaskError{
				Code: events.CodeAttemptLost,
				Message: fmt.Sprintf("attempt %d on executor %s was lost (the executor stopped or stalled past its ack wait) and no attempts remain",
					task.Attempt, task.Executor),
			}}}
	}
	return decision{step: stepAck, why: "task is " + string(task.Status)}
}

// decide plans and carries out the plan for msg, re-reading the task after
// each compare-and-set conflict. traceCtx holds the trace context of msg.
// It reports whether it started an attempt.
func (e *Executor) decide(traceCtx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, msgKind events.Kind, tt *taskType, task *events.Task) (started bool) {
	ctx, cancel := context.WithTimeout(traceCtx, ioTimeout)
	defer cancel()
	for range maxConflicts {
		d := plan(task, msgKind, md.Sequence.Stream, md.NumDelivered, tt, time.Now())

		var err error
		switch d.step {
		case stepLeave:
			e.debug("leaving the message to the executor that holds it", task, zap.String("decision", d.why))
			return false
		case stepAck:
			e.debug("acknowledging without action", task, zap.String("decision", d.why))
			e.ack(msg)
			return false
		case stepRetryLater:
			e.debug("redelivering later", task, zap.String("decision", d.why), zap.Duration("delay", d.delay))
			e.nak(msg, d.delay)
			return false
		case stepWrite:
			err = e.write(ctx, task, d.kind, d.data, d.attempt)
			if err == nil {
				e.debug("recorded", task, zap.String("decision", d.why), zap.String(logging.KeyKind, string(d.kind)))
				if d.kind.Terminal() {
					e.purgeSchedules(task)
				}
				e.ack(msg)
				return false
			}
		case stepStart:
			// The attempt is registered before its started event is
			// written, so a cancel or pause request that follows the
			// started event finds it.
			a := e.newAttempt(traceCtx, msg, tt, task)
			started := events.Started{Attempt: d.attempt, Executor: e.cfg.Instance, MessageSeq: md.Sequence.Stream, Delivery: md.NumDelivered}
			err = e.write(trace.ContextWithSpan(ctx, a.span), task, events.KindStarted, started, d.attempt)
			if err == nil {
				go e.runAttempt(a)
				return true
			}
			a.discard()
		}

		fields := append(logging.Task(task.Tenant, task.ID, task.Type), zap.String("decision", d.why))
		if !bus.IsConflict(err) {
			e.log.Warn("writing task event failed; retrying later", append(fields, zap.Error(err))...)
			e.nak(msg, e.cfg.Retry.Initial)
			return false
		}
		if task, err = e.read(ctx, task.Tenant, task.ID, md.Sequence.Stream); err != nil {
			if errors.Is(err, bus.ErrTaskNotFound) {
				e.ack(msg)
				return false
			}
			e.log.Warn("reading task failed; retrying later", append(fields, zap.Error(err))...)
			e.nak(msg, e.cfg.Retry.Initial)
			return false
		}
	}
	e.nak(msg, e.cfg.Retry.Initial)
	return false
}

// write appends an event of kind to task with the compare-and-set on the
// task's last sequence and the TTL that makes it expire with the task, and
// folds it into task on success. The event's trace context is the span
// context of ctx, if any.
func (e *Executor) write(ctx context.Context, task *events.Task, kind events.Kind, data any, attempt int) error {
	if err := task.Check(kind); err != nil {
		return err
	}
	ev, err := events.NewEvent(kind, task.Tenant, task.ID, task.Type, e.source, data)
	if err != nil {
		return err
	}
	ev.Attempt = attempt
	tracing.InjectEvent(ctx, &ev)
	now := time.Now()
	seq, err := e.bus.Append(ctx, &ev, bus.AppendOptions{ExpectSeq: task.LastSeq, TTL: task.TTLLeft(now)})
	if err != nil {
		return err
	}
	e.metrics.countWrite(&ev)
	ev.Seq = seq
	ev.Stored = now
	task.Fold(&ev)
	return nil
}

// purgeSchedules removes the message schedules of task, which just ended,
// when it has any. A failure only means that a schedule fires later, and
// the fold and plan ignore what it publishes after the end.
func (e *Executor) purgeSchedules(task *events.Task) {
	if task.Submission.Deadline == nil && task.Submission.RunAt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := e.bus.PurgeSchedules(ctx, task.Tenant, task.ID, task.Type); err != nil {
		e.log.Warn("removing the schedules of an ended task failed; they fire and are ignored", append(logging.Task(task.Tenant, task.ID, task.Type), zap.Error(err))...)
	}
}

// debug logs msg with the task's fields when debug logging is on, without
// building the fields otherwise.
func (e *Executor) debug(msg string, task *events.Task, fields ...zap.Field) {
	if ce := e.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(append(logging.Task(task.Tenant, task.ID, task.Type), fields...)...)
	}
}
