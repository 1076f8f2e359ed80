package client

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// watchInactiveThreshold is how long the server keeps the ordered consumer
// of a watch after the client stops pulling, such as when its connection
// is cut.
const watchInactiveThreshold = time.Minute

// watchDeleteTimeout bounds the deletion of a watch's consumer.
const watchDeleteTimeout = 2 * time.Second

// Watch follows the task's events straight from the tasks stream with an
// ordered consumer on the task's subjects: the events stored so far, then
// each new one as it is stored, in stream order, with Seq set to the
// stream sequence. Messages that do not decode are skipped, as over HTTP.
// The channel is closed once the task has ended and the events stored by
// then are delivered, when ctx is done, or when the consumer fails.
//
// Watch first reads the task through the request API, so a task that does
// not exist, or another tenant's, is an error of Watch itself. The
// consumer then needs the NATS permissions of a JetStream consumer on the
// tasks stream; the request API does not check them.
func (c *NATSClient) Watch(ctx context.Context, id string) (<-chan events.Event, error) {
	v, _, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(chan events.Event)
	err = c.follow(ctx, v.Tenant, id, func(ev *events.Event, _ *events.Task) bool {
		select {
		case out <- *ev:
			return true
		case <-ctx.Done():
			return false
		}
	}, func() { close(out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Wait waits until the task ends or ctx is done, and calls onChange, if
// not nil, with the current view and then every view whose sequence moved.
// It follows the task's events as [NATSClient.Watch] does and folds them,
// so maxInterval, the hold of each poll over HTTP, is ignored. The
// returned view of an ended task is read again through the request API,
// so it carries what only the server adds, such as a link to a stored
// result. When ctx ends the wait, Wait returns the last view with ctx's
// error.
func (c *NATSClient) Wait(ctx context.Context, id string, _ time.Duration, onChange func(*events.View)) (*events.View, error) {
	first, _, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if onChange != nil {
		onChange(first)
	}
	if first.Status.Terminal() {
		return first, nil
	}

	last := first
	ended := make(chan struct{})
	followCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = c.follow(followCtx, first.Tenant, id, func(ev *events.Event, task *events.Task) bool {
		if task.LastSeq <= last.Sequence || !task.Exists() {
			return true
		}
		v := task.View()
		last = &v
		if onChange != nil {
			onChange(last)
		}
		return true
	}, func() { close(ended) })
	if err != nil {
		return nil, err
	}

	select {
	case <-ended:
	case <-ctx.Done():
		cancel()
		<-ended
		return last, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return last, err
	}
	if !last.Status.Terminal() {
		return last, fmt.Errorf("wait for task %s: the watch of its events ended before the task", id)
	}
	final, _, err := c.Get(ctx, id)
	if err != nil {
		return last, err
	}
	return final, nil
}

// follow starts an ordered consumer on the task's subjects from the
// start, and calls handle in its own goroutine with each event and the
// task folded up to it, until handle returns false, ctx is done, or the
// task has ended and the consumer has caught up. Then it calls done.
// Messages that do not decode are skipped, but the task's LastSeq counts
// them.
func (c *NATSClient) follow(ctx context.Context, tenant, id string, handle func(*events.Event, *events.Task) bool, done func()) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("watch task %s: %w", id, err)
	}
	cons, err := js.OrderedConsumer(ctx, c.names.TasksStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{c.names.TaskFilter(tenant, id)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: watchInactiveThreshold,
	})
	if err != nil {
		return fmt.Errorf("watch task %s: %w", id, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("watch task %s: %w", id, err)
	}

	stopOnCancel := context.AfterFunc(ctx, msgs.Stop)
	go func() {
		defer done()
		defer c.deleteConsumer(js, cons)
		defer stopOnCancel()
		defer msgs.Stop()
		task := &events.Task{}
		for {
			msg, err := msgs.Next()
			if err != nil {
				// Stopped, or a failure the ordered consumer could not
				// recover from.
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			seq := md.Sequence.Stream
			ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), seq, md.Timestamp)
			if err != nil {
				task.LastSeq = max(task.LastSeq, seq)
				continue
			}
			task.Fold(&ev)
			if !handle(&ev, task) {
				return
			}
			if task.Terminal() && md.NumPending == 0 {
				return
			}
		}
	}()
	return nil
}

// deleteConsumer deletes the consumer of a watch that ended, which the
// server would otherwise keep for watchInactiveThreshold. A failure only
// leaves it to that threshold.
func (c *NATSClient) deleteConsumer(js jetstream.JetStream, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchDeleteTimeout)
	defer cancel()
	_ = js.DeleteConsumer(ctx, c.names.TasksStream(), info.Name)
}
