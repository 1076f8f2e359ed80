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
}

// Message returns ev encoded for an append with opts: the binary-mode
// CloudEvent plus Nats-Msg-Id, the compare-and-set headers for kinds that
// use them, and Nats-TTL.
func (b *Bus) Message(ev *events.Event, opts AppendOptions) *nats.Msg {
	msg := Encode(b.names.Namespace, ev)
	msg.Header[HeaderMsgID] = []string{ev.ID}
	if ev.Kind.CompareAndSet() {
		msg.Header[HeaderExpectedSubjSeqSubj] = []string{b.names.TaskFilter(ev.Tenant, ev.TaskID)}
		msg.Header[HeaderExpectedSubjSeq] = []string{strconv.FormatUint(opts.ExpectSeq, 10)}
	}
	if opts.TTL > 0 {
		ttl := max(opts.TTL, events.MinTTL)
		msg.Header[HeaderTTL] = []string{strconv.FormatInt(int64(ttl/time.Second), 10)}
	}
	return msg
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
