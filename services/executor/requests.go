package executor

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// stopKinds are the events that stop a running attempt at once, with the
// cause its handler's context gets.
var stopKinds = map[events.Kind]error{
	events.KindCancelRequested: ErrCancelRequested,
	events.KindPauseRequested:  ErrPauseRequested,
	events.KindExpired:         ErrTaskEnded,
}

// runningAttempts is the table of the attempts this executor runs, by
// task, so that an event that stops a task reaches its handler at once.
type runningAttempts struct {
	mu     sync.Mutex
	byTask map[string]*attempt
}

func newRunningAttempts() *runningAttempts {
	return &runningAttempts{byTask: map[string]*attempt{}}
}

func taskKey(tenant, taskID string) string { return tenant + "/" + taskID }

// add records a as the task's running attempt.
func (r *runningAttempts) add(a *attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byTask[a.key] = a
}

// remove deletes a from the table, unless another attempt of the task
// replaced it.
func (r *runningAttempts) remove(a *attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byTask[a.key] == a {
		delete(r.byTask, a.key)
	}
}

// snapshot returns the attempts in the table.
func (r *runningAttempts) snapshot() []*attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]*attempt, 0, len(r.byTask))
	for _, a := range r.byTask {
		all = append(all, a)
	}
	return all
}

// stop cancels the running attempt of a task with cause and reports
// whether there was one.
func (r *runningAttempts) stop(tenant, taskID string, cause error) bool {
	r.mu.Lock()
	a := r.byTask[taskKey(tenant, taskID)]
	r.mu.Unlock()
	if a == nil {
		return false
	}
	a.cancel(cause)
	return true
}

// watchStops starts an ordered consumer of the cancel_requested,
// pause_requested and expired events of the served task types, from now
// on, and stops the matching running attempts. An ordered consumer gets
// only stored events, unlike a core subscription, which also receives a
// compare-and-set write that the stream rejected. After a lost connection
// it resumes after the last event it received, so no request is missed.
// Call the returned function to stop it.
func (e *Executor) watchStops(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()

	names := make([]string, 0, len(e.served))
	for name := range e.served {
		names = append(names, name)
	}
	slices.Sort(names)
	var filters []string
	for _, name := range names {
		for _, kind := range []events.Kind{events.KindCancelRequested, events.KindPauseRequested, events.KindExpired} {
			filters = append(filters, e.bus.Names().KindFilter(kind, name))
		}
	}

	// Starting after the stream's current last sequence, rather than with
	// the deliver-new policy, lets the consumer resume at that sequence
	// even when the connection is lost before the first event.
	stream, err := e.bus.JetStream().Stream(ctx, e.bus.Names().TasksStream())
	if err != nil {
		return nil, fmt.Errorf("watch cancel and pause requests: %w", err)
	}
	cons, err := e.bus.JetStream().OrderedConsumer(ctx, e.bus.Names().TasksStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    stream.CachedInfo().State.LastSeq + 1,
		// The subject names the kind and the task, which is all a stop
		// needs.
		HeadersOnly: true,
	})
	if err != nil {
		return nil, fmt.Errorf("watch cancel and pause requests: %w", err)
	}
	cc, err := cons.Consume(e.handleStop, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		e.log.Warn("watching cancel and pause requests", zap.Error(err))
	}))
	if err != nil {
		return nil, fmt.Errorf("watch cancel and pause requests: %w", err)
	}
	return cc.Stop, nil
}

// handleStop stops the running attempt of the task an event names.
func (e *Executor) handleStop(msg jetstream.Msg) {
	subj, err := events.ParseSubject(msg.Subject())
	if err != nil {
		return
	}
	cause, ok := stopKinds[subj.Kind]
	if !ok {
		return
	}
	if e.running.stop(subj.Tenant, subj.TaskID, cause) {
		e.log.Debug("stopping a running attempt", append(logging.Task(subj.Tenant, subj.TaskID, subj.TaskType), zap.String(logging.KeyKind, string(subj.Kind)))...)
	}
}
