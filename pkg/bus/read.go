package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/handoff-dev/handoff/events"
)

// readBatch is how many events one batch request returns. A task with more
// events takes one more request per batch.
const readBatch = 1024

// readTimeout bounds one batch request when the caller's context allows
// longer.
const readTimeout = 10 * time.Second

// headerNumPending counts the messages after this one that match a batch
// request.
const headerNumPending = "Nats-Num-Pending"

// TaskEvents is everything stored on one task's subjects.
type TaskEvents struct {
	// Events are the decodable events in stream order.
	Events []events.Event
	// Invalid lists the messages that did not decode, with the reason.
	Invalid []events.SkippedEvent
	// LastSeq is the stream sequence of the task's last message, decodable
	// or not: the expected sequence of the next compare-and-set.
	LastSeq uint64
}

// ReadEvents returns every event of one task stored after stream sequence
// after (0 for all). It returns ErrTaskNotFound when a read of all finds
// none.
//
// A read never lets the server search past the task's last event, because
// a search for the next match of a wildcard filter that finds none scans
// every message block after the task (nats-server 2.15.3): about 4 ms per
// read for a task near the start of a stream of 80,000 events, where the
// reads below take about 0.12 ms wherever the task is. A read of all first
// asks for one event in a batch request, which the server answers with the
// count of the task's events from its subject index, then reads exactly
// that many. A read after a sequence first asks for the last event of each
// of the task's subjects, whose highest sequence bounds the read.
func (b *Bus) ReadEvents(ctx context.Context, tenant, taskID string, after uint64) (*TaskEvents, error) {
	return b.readEvents(ctx, tenant, taskID, after, true)
}

// readEvents is ReadEvents; confirm asks the stream leader before it
// reports a task missing, which ReadEventsThrough, rereading on its own,
// does not need.
func (b *Bus) readEvents(ctx context.Context, tenant, taskID string, after uint64, confirm bool) (*TaskEvents, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	filter := b.names.TaskFilter(tenant, taskID)
	out := &TaskEvents{}

	if after == 0 {
		pending, found, err := b.readFirst(ctx, filter, out)
		if err != nil {
			return nil, err
		}
		if !found && confirm {
			return b.confirmMissing(ctx, tenant, taskID)
		}
		if !found {
			return nil, fmt.Errorf("%w: %s/%s", ErrTaskNotFound, tenant, taskID)
		}
		if err := b.readCount(ctx, filter, pending, out); err != nil {
			return nil, err
		}
		return out, nil
	}

	last, err := b.lastSeq(ctx, filter)
	if err != nil {
		return nil, err
	}
	out.LastSeq = after
	for out.LastSeq < last {
		found, err := b.readNext(ctx, filter, out.LastSeq+1, out)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("read %s: the event at sequence %d is gone", filter, last)
		}
	}
	// With nothing new, LastSeq is still the task's last event, as its
	// doc says, which may be at or before after.
	out.LastSeq = last
	return out, nil
}

// singleReads bounds the events read one request each; a longer history is
// read in batch requests of the known count.
const singleReads = 32

// readFirst reads the task's first event with a batch request of one and
// returns how many events follow it.
func (b *Bus) readFirst(ctx context.Context, filter string, out *TaskEvents) (uint64, bool, error) {
	msgs, err := jetstreamext.GetBatch(ctx, b.js, b.names.TasksStream(), 1, jetstreamext.GetBatchSubject(filter))
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", filter, err)
	}
	n := 0
	pending := uint64(0)
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("read %s: %w", filter, err)
		}
		n++
		pending, _ = strconv.ParseUint(msg.Header.Get(headerNumPending), 10, 64)
		out.add(msg.Subject, msg.Header, msg.Data, msg.Sequence, msg.Time)
	}
	if err := answered(ctx, filter, n); err != nil {
		return 0, false, err
	}
	return pending, true, nil
}

// readCount reads the next count events after out.LastSeq.
func (b *Bus) readCount(ctx context.Context, filter string, count uint64, out *TaskEvents) error {
	if count <= singleReads {
		for ; count > 0; count-- {
			found, err := b.readNext(ctx, filter, out.LastSeq+1, out)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("read %s: %d events fewer than counted", filter, count)
			}
		}
		return nil
	}

	for count > 0 {
		batch := min(count, readBatch)
		msgs, err := jetstreamext.GetBatch(ctx, b.js, b.names.TasksStream(), int(batch),
			jetstreamext.GetBatchSubject(filter), jetstreamext.GetBatchSeq(out.LastSeq+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", filter, err)
		}
		n := uint64(0)
		for msg, err := range msgs {
			if err != nil {
				return fmt.Errorf("read %s: %w", filter, err)
			}
			n++
			out.add(msg.Subject, msg.Header, msg.Data, msg.Sequence, msg.Time)
		}
		if err := answered(ctx, filter, int(n)); err != nil {
			return err
		}
		if n < batch {
			return fmt.Errorf("read %s: the batch ended %d events early", filter, batch-n)
		}
		count -= n
	}
	return nil
}

// answered turns a read that ended without messages or an error into one:
// the batch iterator ends quietly at its deadline or on a closed
// connection.
func answered(ctx context.Context, filter string, n int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("read %s: no complete answer: %w", filter, err)
	}
	if n == 0 {
		return fmt.Errorf("read %s: no answer from the server", filter)
	}
	return nil
}

// add decodes one stored message into out.
func (out *TaskEvents) add(subject string, h nats.Header, data []byte, seq uint64, stored time.Time) {
	out.LastSeq = seq
	ev, err := Decode(subject, h, data, seq, stored)
	if err != nil {
		out.Invalid = append(out.Invalid, events.SkippedEvent{Seq: seq, ID: h.Get(HeaderMsgID), Reason: err.Error()})
		return
	}
	out.Events = append(out.Events, ev)
}

// ReadTask reads one task's events and folds them. Messages that did not
// decode are listed in Task.Skipped, and Task.LastSeq covers them, so a
// compare-and-set based on the result is exact.
func (b *Bus) ReadTask(ctx context.Context, tenant, taskID string) (*events.Task, error) {
	return b.ReadTaskThrough(ctx, tenant, taskID, 0)
}
