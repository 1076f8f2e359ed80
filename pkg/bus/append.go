package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
)

// JetStream headers Handoff sets on appends.
const (
	HeaderMsgID               = jetstream.MsgIDHeader
	HeaderExpectedSubjSeq     = jetstream.ExpectedLastSubjSeqHeader
	HeaderExpectedSubjSeqSubj = jetstream.ExpectedLastSubjSeqSubjHeader
	HeaderTTL                 = jetstream.MsgTTLHeader
	HeaderSchedule            = jetstream.ScheduleHeader
	HeaderScheduleTarget      = jetstream.ScheduleTargetHeader
	HeaderScheduleTTL         = jetstream.ScheduleTTLHeader
)

// JetStream error codes that mean the compare-and-set lost: 10071 "wrong
// last sequence: N" and 10164 "wrong last sequence".
const (
	errCodeWrongLastSequence      jetstream.ErrorCode = 10071
	errCodeWrongLastSequenceConst jetstream.ErrorCode = 10164
)

// AppendOptions are the per-write settings of an append.
type AppendOptions struct {
	// ExpectSeq is the stream sequence of the last event the writer read
	// from the task; zero means the task must have no events. It is
	// ignored for kinds that do not use the compare-and-set.
	ExpectSeq uint64
	// TTL is the event's time to live, so that it expires together with
	// the task's other events; see [events.Task.TTLLeft]. Zero leaves the
	// stream's MaxAge in charge.
	TTL time.Duration
	// Schedule, when set, makes the event hold a message schedule; see
	// [Schedule]. Only kinds with an [events.Kind.ScheduleTarget] may hold
	// one.
	Schedule *Schedule
}

// Schedule is a NATS message schedule that an appended event holds. When
// it fires, the server stores a copy of the event on the subject of the
// same task with kind Target, and then removes the event that held the
// schedule. The copy keeps the event's CloudEvents headers and data, and
// the decoder gives it the target's kind; see [Decode].
type Schedule struct {
	// At is when the schedule fires. The header has whole seconds, so At
	// is rounded up to the next second and never fires early.
	At time.Time
	// Target is the kind of the published copy, which must be the
	// [events.Kind.ScheduleTarget] of the holding event's kind.
	Target events.Kind
	// TTL is the Nats-TTL of the published copy, so that it expires
	// together with the task's other events. Zero leaves the stream's
	// MaxAge in charge.
	TTL time.Duration
}

// scheduleAt returns the Nats-Schedule value of a one-time schedule at t.
func scheduleAt(t time.Time) string {
	at := t.UTC().Truncate(time.Second)
	if at.Before(t) {
		at = at.Add(time.Second)
	}
	return "@at " + at.Format(time.RFC3339)
}

// checkSchedule reports whether ev may hold opts.Schedule.
func checkSchedule(ev *events.Event, opts AppendOptions) error {
	if opts.Schedule == nil {
		return nil
	}
	target, ok := ev.Kind.ScheduleTarget()
	if !ok {
		return fmt.Errorf("append %s to task %s: a %s event cannot hold a message schedule; only scheduled and deadline_scheduled events can", ev.Kind, ev.TaskID, ev.Kind)
	}
	if opts.Schedule.Target != target {
		return fmt.Errorf("append %s to task %s: the schedule of a %s event must publish a %s event, not %q", ev.Kind, ev.TaskID, ev.Kind, target, opts.Schedule.Target)
	}
	if opts.Schedule.At.IsZero() {
		return fmt.Errorf("append %s to task %s: the schedule has no time", ev.Kind, ev.TaskID)
	}
	return nil
}

// Message returns ev encoded for an append with opts: the binary-mode
// CloudEvent plus Nats-Msg-Id, the compare-and-set headers for kinds that
// use them, Nats-TTL and the schedule headers. It does not check the
// schedule; the append functions do.
func (b *Bus) Message(ev *events.Event, opts AppendOptions) *nats.Msg {
	msg := Encode(b.names.Namespace, ev)
	msg.Header[HeaderMsgID] = []string{ev.ID}
	if ev.Kind.CompareAndSet() {
		msg.Header[HeaderExpectedSubjSeqSubj] = []string{b.names.TaskFilter(ev.Tenant, ev.TaskID)}
		msg.Header[HeaderExpectedSubjSeq] = []string{strconv.FormatUint(opts.ExpectSeq, 10)}
	}
	if opts.TTL > 0 {
		msg.Header[HeaderTTL] = []string{ttlSeconds(opts.TTL)}
	}
	if s := opts.Schedule; s != nil {
		target := ev.Subject(b.names.Namespace)
		target.Kind = s.Target
		msg.Header[HeaderSchedule] = []string{scheduleAt(s.At)}
		msg.Header[HeaderScheduleTarget] = []string{target.String()}
		if s.TTL > 0 {
			msg.Header[HeaderScheduleTTL] = []string{ttlSeconds(s.TTL)}
		}
	}
	return msg
}

// ttlSeconds formats a TTL in whole seconds, at least [events.MinTTL].
func ttlSeconds(ttl time.Duration) string {
	ttl = max(ttl, events.MinTTL)
	return strconv.FormatInt(int64(ttl/time.Second), 10)
}

// appendTries bounds the publishes of one event when the server's answer
// times out.
const appendTries = 3

// Append stores ev on its task and returns its stream sequence. Kinds that
// use the compare-and-set are stored only if the task's last event is still
// at opts.ExpectSeq; otherwise the error wraps ErrConflict.
//
// A publish whose answer times out is sent again with the same event id. The
// server checks the compare-and-set before its duplicate window, so when a
// repeat conflicts, Append looks for the event among the task's events and
// returns its sequence if an earlier try stored it.
func (b *Bus) Append(ctx context.Context, ev *events.Event, opts AppendOptions) (uint64, error) {
	if err := checkSchedule(ev, opts); err != nil {
		return 0, err
	}
	msg := b.Message(ev, opts)
	var err error
	for try := 1; try <= appendTries; try++ {
		var ack *jetstream.PubAck
		ack, err = b.js.PublishMsg(ctx, msg)
		if err == nil {
			return ack.Sequence, nil
		}
		if try > 1 && IsConflict(err) {
			if seq, found := b.findEvent(ctx, ev, opts.ExpectSeq); found {
				return seq, nil
			}
		}
		if !errors.Is(err, nats.ErrTimeout) || ctx.Err() != nil {
			break
		}
	}
	return 0, appendError(ev, opts, err)
}

// findEvent returns the sequence of ev if the task stored it after seq.
func (b *Bus) findEvent(ctx context.Context, ev *events.Event, after uint64) (uint64, bool) {
	te, err := b.ReadEvents(ctx, ev.Tenant, ev.TaskID, after)
	if err != nil {
		return 0, false
	}
	for i := range te.Events {
		if te.Events[i].ID == ev.ID {
			return te.Events[i].Seq, true
		}
	}
	return 0, false
}

// AppendAsync starts an append like [Bus.Append] without waiting for the
// server's answer, so a writer can have many appends in flight. Pass the
// returned future to [AppendResult].
func (b *Bus) AppendAsync(ev *events.Event, opts AppendOptions) (jetstream.PubAckFuture, error) {
	if err := checkSchedule(ev, opts); err != nil {
		return nil, err
	}
	f, err := b.js.PublishMsgAsync(b.Message(ev, opts))
	if err != nil {
		return nil, appendError(ev, opts, err)
	}
	return f, nil
}

// AppendResult waits for an asynchronous append and returns its sequence,
// with the same errors as [Bus.Append].
func AppendResult(ctx context.Context, ev *events.Event, opts AppendOptions, f jetstream.PubAckFuture) (uint64, error) {
	select {
	case ack := <-f.Ok():
		return ack.Sequence, nil
	case err := <-f.Err():
		return 0, appendError(ev, opts, err)
	case <-ctx.Done():
		return 0, fmt.Errorf("append %s to task %s: %w", ev.Kind, ev.TaskID, ctx.Err())
	}
}

func appendError(ev *events.Event, opts AppendOptions, err error) error {
	if IsConflict(err) {
		return fmt.Errorf("append %s to task %s expecting sequence %d: %w: %w", ev.Kind, ev.TaskID, opts.ExpectSeq, ErrConflict, err)
	}
	return fmt.Errorf("append %s to task %s: %w", ev.Kind, ev.TaskID, err)
}

// IsConflict reports whether err is a compare-and-set refusal from the
// server, or already wraps ErrConflict.
func IsConflict(err error) bool {
	if errors.Is(err, ErrConflict) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == errCodeWrongLastSequence || apiErr.ErrorCode == errCodeWrongLastSequenceConst
	}
	return false
}
