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

// orderBatch bounds the pending jobs of one task and endpoint that
// firstInLine reads. A job behind more than that many waits.
const orderBatch = 32

// firstInLine reports whether the job at stream sequence seq on subject is
// the one to deliver first: no job of the subject, which holds the jobs
// of one task and endpoint, is for an earlier event. Jobs for the same
// event, such as a replay beside a retry, go in the order they were
// stored.
func (n *Notifier) firstInLine(ctx context.Context, subject string, j *job, seq uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	msgs, err := jetstreamext.GetBatch(ctx, n.bus.JetStream(), n.bus.Names().DeliveriesStream(), orderBatch,
		jetstreamext.GetBatchSubject(subject))
	if err != nil {
		return false, fmt.Errorf("read pending jobs on %s: %w", subject, err)
	}

	// A job on the subject is ahead when its event came first, or when it
	// is for the same event and was stored first.
	found := false
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("read pending jobs on %s: %w", subject, err)
		}
		if msg.Sequence == seq {
			found = true
			continue
		}
		var other job
		if json.Unmarshal(msg.Data, &other) != nil {
			// A job that does not decode is dropped when its turn comes
			// and holds up nothing.
			continue
		}
		if other.EventSeq < j.EventSeq || other.EventSeq == j.EventSeq && msg.Sequence < seq {
			return false, nil
		}
	}
	// Not among the first orderBatch jobs: others are ahead.
	return found, nil
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
