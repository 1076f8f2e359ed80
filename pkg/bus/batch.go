package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/handoff-dev/handoff/events"
)

// AppendBatch stores evs, which must all belong to one task, as one atomic
// batch: the server stores every event or none. The first event carries
// the compare-and-set on opts.ExpectSeq, and the server checks it for the
// whole batch, so the events land together right after the expected one.
// Every event gets opts.TTL. It returns the stream sequence of the last
// event, the expected sequence of the task's next compare-and-set.
//
// A writer uses it to record two decisions that no other writer may come
// between, such as the submitted copy and the cancelled event of a task
// cancelled while it waits for its run_at. Schedules are not allowed in a
// batch. The tasks stream must allow atomic publishing, which
// [Bus.Provision] sets.
func (b *Bus) AppendBatch(ctx context.Context, evs []*events.Event, opts AppendOptions) (uint64, error) {
	if len(evs) == 0 {
		return 0, errors.New("append batch: no events")
	}
	first := evs[0]
	if opts.Schedule != nil {
		return 0, fmt.Errorf("append batch to task %s: events in a batch cannot hold a message schedule", first.TaskID)
	}

	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		if ev.Tenant != first.Tenant || ev.TaskID != first.TaskID {
			return 0, fmt.Errorf("append batch to task %s: event %d belongs to task %s/%s", first.TaskID, i, ev.Tenant, ev.TaskID)
		}
		msgs[i] = b.Message(ev, opts)
		if i > 0 {
			// The server checks the compare-and-set of the first event
			// for the whole batch. A later event would have to expect a
			// sequence that the batch has not stored yet.
			delete(msgs[i].Header, HeaderExpectedSubjSeq)
			delete(msgs[i].Header, HeaderExpectedSubjSeqSubj)
		}
	}

	ack, err := jetstreamext.PublishMsgBatch(ctx, b.js, msgs)
	if err != nil {
		return 0, appendError(first, opts, err)
	}
	return ack.Sequence, nil
}
