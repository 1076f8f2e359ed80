package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

const (
	// watchInactiveThreshold is how long the server keeps the consumer of
	// a watch after its last pull: a backstop for a watch whose deletion
	// failed, such as one cut off with its connection.
	watchInactiveThreshold = time.Minute

	// watchPrefetch bounds the events that a watch buffers ahead of its
	// reader.
	watchPrefetch = 64

	// watchDeleteTimeout bounds the deletion of a watch's consumer.
	watchDeleteTimeout = 2 * time.Second
)

// taskWatch reads the events that the tasks stream stores on one task's
// subjects after a given sequence, in stream order, as they are stored.
// It reads from the stream rather than from the subjects, so it also
// receives the events that message schedules store. It starts from a
// sequence, so no event stored between an earlier read and the start of
// the watch is missed.
//
// NOTE: each watch is an ordered consumer, which costs the server one
// ephemeral consumer for as long as the watch runs.
type taskWatch struct {
	s    *Server
	cons jetstream.Consumer
	msgs jetstream.MessagesContext
	log  []zap.Field
}

// watchedEvent is one message of a watch: the decoded event, or, for a
// message that does not decode, only its sequence and the reason.
type watchedEvent struct {
	event   events.Event
	seq     uint64
	invalid error
}

// watchTask starts a watch of the task's events stored after sequence
// after. Call stop when done.
func (s *Server) watchTask(ctx context.Context, tenant, id string, after uint64) (*taskWatch, error) {
	names := s.bus.Names()
	cons, err := s.bus.JetStream().OrderedConsumer(ctx, names.TasksStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{names.TaskFilter(tenant, id)},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		InactiveThreshold: watchInactiveThreshold,
	})
	if err != nil {
		return nil, fmt.Errorf("watch task %s: %w", id, err)
	}
	w := &taskWatch{s: s, cons: cons, log: []zap.Field{zap.String(logging.KeyTenant, tenant), zap.String(logging.KeyTaskID, id)}}

	w.msgs, err = cons.Messages(jetstream.PullMaxMessages(watchPrefetch), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		w.deleteConsumer()
		return nil, fmt.Errorf("watch task %s: %w", id, err)
	}
	return w, nil
}

// next returns the next event, waiting until one is stored or ctx is done.
// The error wraps ctx's error when ctx ended the wait.
func (w *taskWatch) next(ctx context.Context) (watchedEvent, error) {
	msg, err := w.msgs.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return watchedEvent{}, ctxErr
		}
		return watchedEvent{}, fmt.Errorf("watch a task: %w", err)
	}
	md, err := msg.Metadata()
	if err != nil {
		return watchedEvent{}, fmt.Errorf("watch a task: %w", err)
	}
	ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
	if err != nil {
		return watchedEvent{seq: md.Sequence.Stream, invalid: err}, nil
	}
	return watchedEvent{event: ev, seq: md.Sequence.Stream}, nil
}

// stop ends the watch and deletes its consumer.
func (w *taskWatch) stop() {
	w.msgs.Stop()
	w.deleteConsumer()
}

func (w *taskWatch) deleteConsumer() {
	info := w.cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchDeleteTimeout)
	defer cancel()
	err := w.s.bus.JetStream().DeleteConsumer(ctx, w.s.bus.Names().TasksStream(), info.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		// The server deletes it after watchInactiveThreshold anyway.
		w.s.log.Debug("deleting the consumer of a task watch failed", append(w.log, zap.Error(err))...)
	}
}
