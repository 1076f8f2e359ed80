package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Waits of a job whose task has an earlier job pending for the same
// endpoint: orderMinDelay after the first wait, doubling up to
// orderMaxDelay. So a job behind one that waits hours for a retry is
// checked twice a minute at most.
const (
	orderMinDelay = 100 * time.Millisecond
	orderMaxDelay = 30 * time.Second
)

// firstInLine reports whether the job at stream sequence seq on subject,
// which holds the jobs of one task and endpoint, may be delivered now: it
// is the oldest job of the subject, or the oldest is for a later event.
// gone reports that the read found no job on the subject: another
// instance settled this one after a redelivery, or the replica that
// served the read has not stored it yet.
// The dispatcher stores a task's jobs in the order of its events, so the
// oldest job is for the earliest event. A replay can store jobs for older
// events later, and those go first.
//
// It reads only the oldest job, because a batch read of a subject scans
// the rest of the stream's block for more.
func (n *Notifier) firstInLine(ctx context.Context, subject string, j *job, seq uint64) (first, gone bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	msgs, err := jetstreamext.GetBatch(ctx, n.bus.JetStream(), n.bus.Names().DeliveriesStream(), 1,
		jetstreamext.GetBatchSubject(subject))
	if err != nil {
		return false, false, fmt.Errorf("read pending jobs on %s: %w", subject, err)
	}
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return false, true, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("read pending jobs on %s: %w", subject, err)
		}
		if msg.Sequence == seq {
			return true, false, nil
		}
		var oldest job
		if json.Unmarshal(msg.Data, &oldest) != nil {
			// A job that does not decode is dropped when its turn comes.
			return false, false, nil
		}
		return oldest.EventSeq > j.EventSeq, false, nil
	}
	return false, true, nil
}

// blockedDelay returns the wait of a job that waits for an earlier one,
// from the number of times JetStream delivered it.
func blockedDelay(delivered uint64) time.Duration {
	d := orderMinDelay
	for i := uint64(1); i < delivered && d < orderMaxDelay; i++ {
		d *= 2
	}
	return min(d, orderMaxDelay)
}
