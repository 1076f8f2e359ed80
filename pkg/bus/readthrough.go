package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// Pauses between the reads of [Bus.ReadEventsThrough]: the first is
// staleReadPause, each next one twice as long up to staleReadMaxPause,
// for staleReadWait in all.
const (
	staleReadPause    = 5 * time.Millisecond
	staleReadMaxPause = 200 * time.Millisecond
	staleReadWait     = 2 * time.Second
)

// ReadEventsThrough is [Bus.ReadEvents] for a caller that knows the task
// has an event at stream sequence through, such as the message it
// handles or the event it wrote last: it returns only a read that
// reaches through.
//
// A stream with replicas serves reads from any replica (allow_direct),
// and a follower applies new events a little after the leader stored
// them. A follower that restarted answers reads once it is nearly caught
// up, which can leave it seconds behind. So a read right after an event
// was stored may miss it, or miss the whole task. ReadEventsThrough reads
// again with short pauses, for up to 2s, and then returns an error that
// wraps [ErrStaleRead]. That includes a task whose events expired: a
// caller that must tell it apart checks the task's expiry itself. A
// through of 0 reads once, as ReadEvents does.
func (b *Bus) ReadEventsThrough(ctx context.Context, tenant, taskID string, after, through uint64) (*TaskEvents, error) {
	pause := staleReadPause
	deadline := time.Now().Add(staleReadWait)
	for {
		te, err := b.readEvents(ctx, tenant, taskID, after, through == 0)
		if err != nil && (through == 0 || !errors.Is(err, ErrTaskNotFound)) {
			return nil, err
		}
		if err == nil && te.LastSeq >= through {
			return te, nil
		}

		if time.Now().Add(pause).After(deadline) {
			return nil, fmt.Errorf("%w: read %s/%s for %s without reaching stream sequence %d", ErrStaleRead, tenant, taskID, staleReadWait, through)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("read %s/%s through stream sequence %d: %w", tenant, taskID, through, ctx.Err())
		}
		pause = min(2*pause, staleReadMaxPause)
	}
}

// ReadTaskThrough is [Bus.ReadTask] that reaches stream sequence through,
// as [Bus.ReadEventsThrough] explains.
func (b *Bus) ReadTaskThrough(ctx context.Context, tenant, taskID string, through uint64) (*events.Task, error) {
	te, err := b.ReadEventsThrough(ctx, tenant, taskID, 0, through)
	if err != nil {
		return nil, err
	}
	t := events.Fold(te.Events)
	t.Skipped = append(t.Skipped, te.Invalid...)
	t.LastSeq = max(t.LastSeq, te.LastSeq)
	return t, nil
}
