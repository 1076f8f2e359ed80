package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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

// ReadEvents returns every event of one task with batch direct gets: one
// request for up to 1024 events, starting after stream sequence after (0 for
// all). It returns ErrTaskNotFound when there are none.
func (b *Bus) ReadEvents(ctx context.Context, tenant, taskID string, after uint64) (*TaskEvents, error) {
	filter := b.names.TaskFilter(tenant, taskID)
	out := &TaskEvents{}
	start := after + 1
	for {
		more, err := b.readBatch(ctx, filter, start, out)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		start = out.LastSeq + 1
	}
	if out.LastSeq == 0 && after == 0 {
		return nil, fmt.Errorf("%w: %s/%s", ErrTaskNotFound, tenant, taskID)
	}
	return out, nil
}

// readBatch appends one batch to out and reports whether more messages
// match the filter after it.
func (b *Bus) readBatch(ctx context.Context, filter string, start uint64, out *TaskEvents) (bool, error) {
	// The batch iterator ends without an error when its deadline passes,
	// so every read has one, and a read that ends early is an error rather
	// than a shorter history.
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()

	msgs, err := jetstreamext.GetBatch(ctx, b.js, b.names.TasksStream(), readBatch,
		jetstreamext.GetBatchSubject(filter), jetstreamext.GetBatchSeq(start))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", filter, err)
	}

	n := 0
	pending := uint64(0)
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", filter, err)
		}
		n++
		out.LastSeq = msg.Sequence
		pending, _ = strconv.ParseUint(msg.Header.Get(headerNumPending), 10, 64)

		ev, err := Decode(msg.Subject, msg.Header, msg.Data, msg.Sequence, msg.Time)
		if err != nil {
			out.Invalid = append(out.Invalid, events.SkippedEvent{
				Seq: msg.Sequence, ID: msg.Header.Get(HeaderMsgID), Reason: err.Error(),
			})
			continue
		}
		out.Events = append(out.Events, ev)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("read %s: no complete answer: %w", filter, err)
	}
	if n == 0 {
		// Neither messages nor a 404: the answer was lost, for example to
		// a closed connection.
		return false, fmt.Errorf("read %s: no answer from the server", filter)
	}
	if n < readBatch && pending > 0 {
		return false, fmt.Errorf("read %s: the batch ended %d events early", filter, pending)
	}
	return n == readBatch && pending > 0, nil
}

// ReadTask reads one task's events and folds them. Messages that did not
// decode are listed in Task.Skipped, and Task.LastSeq covers them, so a
// compare-and-set based on the result is exact.
func (b *Bus) ReadTask(ctx context.Context, tenant, taskID string) (*events.Task, error) {
	return b.ReadTaskThrough(ctx, tenant, taskID, 0)
}
