package ingest

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// scheduleDeadline appends the deadline_scheduled event of a task just
// created with a deadline. The event holds the schedule that publishes the
// task's deadline event when the deadline passes; the executor then ends
// the task as expired. It re-reads the task after a conflict, as an
// executor may have started the task already, and folds the event into
// task.
//
// A failure is logged and leaves the task without the schedule: the
// executor still expires it when it next handles the task, and a running
// attempt's context ends at the deadline anyway.
func (s *Server) scheduleDeadline(ctx context.Context, task *events.Task) {
	deadline := *task.Submission.Deadline
	fields := logging.Task(task.Tenant, task.ID, task.Type)
	current := task
	for range maxTransitionTries {
		if current.Terminal() {
			return
		}
		ev, err := events.NewEvent(events.KindDeadlineScheduled, current.Tenant, current.ID, current.Type, s.cfg.Source, events.DeadlineScheduled{Deadline: deadline})
		if err != nil {
			s.log.Error("creating a deadline_scheduled event failed", append(fields, zap.Error(err))...)
			return
		}
		seq, err := s.bus.Append(ctx, &ev, bus.AppendOptions{
			ExpectSeq: current.LastSeq,
			TTL:       current.TTLLeft(time.Now()),
			Schedule:  &bus.Schedule{At: deadline, Target: events.KindDeadline, TTL: current.TTLLeft(deadline)},
		})
		if err == nil {
			if current == task {
				ev.Seq = seq
				task.Fold(&ev)
			}
			return
		}
		if !bus.IsConflict(err) {
			s.log.Warn("storing the deadline schedule failed; the executor enforces the deadline when it handles the task", append(fields, zap.Error(err))...)
			return
		}
		if current, err = s.readTask(ctx, task.Tenant, task.ID); err != nil {
			s.log.Warn("re-reading a task to store its deadline schedule failed", append(fields, zap.Error(err))...)
			return
		}
	}
	s.log.Warn("storing the deadline schedule kept conflicting with other writers", fields...)
}
