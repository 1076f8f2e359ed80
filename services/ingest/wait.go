package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// parseWait reads the wait query parameter of GET /v1/tasks/{id}: a Go
// duration such as "30s", or a whole number of seconds, from 0 to maxWait.
// An absent parameter means no wait.
func parseWait(query map[string][]string, maxWait time.Duration) (time.Duration, *Problem) {
	values, ok := query["wait"]
	if !ok {
		return 0, nil
	}
	invalid := func(message string) (time.Duration, *Problem) {
		errs := []ProblemError{{Field: "wait", Message: message}}
		p := newProblem(ProblemInvalidQuery, http.StatusBadRequest, fieldsDetail(errs))
		p.Errors = errs
		return 0, p
	}
	if len(values) > 1 {
		return invalid("is given more than once; give it once")
	}

	raw := values[0]
	var d time.Duration
	if secs, err := strconv.ParseUint(raw, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if d, err = time.ParseDuration(raw); err != nil {
		return invalid(fmt.Sprintf("%q is not a duration; use a Go duration such as \"30s\" or a number of seconds", excerpt(raw)))
	} else if d < 0 {
		return invalid(fmt.Sprintf("%s is negative; use a duration of 0 or more", excerpt(raw)))
	}
	if d > maxWait {
		return invalid(fmt.Sprintf("%s is longer than the maximum of %s", d, maxWait))
	}
	return d, nil
}

// excerpt shortens a value that a message repeats back.
func excerpt(s string) string {
	if len(s) <= maxEchoedValueBytes {
		return s
	}
	return s[:maxEchoedValueBytes] + "..."
}

// holdContext returns a context for holding a response up to d, which
// also ends when the server starts to shut down.
func (s *Server) holdContext(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, d)
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// waitForChange waits up to d for the task to get an event after
// sequence after, and returns the task read again then. It returns nil
// when no event came in time, the client went away or the server is
// shutting down.
func (s *Server) waitForChange(parent context.Context, tenant, id string, after uint64, d time.Duration) (*events.Task, error) {
	ctx, cancel := s.holdContext(parent, d)
	defer cancel()
	watch, err := s.watchTask(ctx, tenant, id, after)
	if err != nil {
		return nil, err
	}
	defer watch.stop()

	if _, err := watch.next(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}

	readCtx, cancelRead := context.WithTimeout(context.WithoutCancel(parent), s.cfg.RequestTimeout)
	defer cancelRead()
	return s.readTask(readCtx, tenant, id)
}

// waitForEnd folds the task's new events into task until it ends, d
// passes, parent is done (the client went away) or the server starts to
// shut down. A
// failed watch leaves task as it is, and is logged, because the caller
// responds with the task either way.
func (s *Server) waitForEnd(parent context.Context, task *events.Task, d time.Duration) {
	if task.Terminal() {
		return
	}
	ctx, cancel := s.holdContext(parent, d)
	defer cancel()
	watch, err := s.watchTask(ctx, task.Tenant, task.ID, task.LastSeq)
	if err != nil {
		s.logWaitFailure(task, err)
		return
	}
	defer watch.stop()

	for !task.Terminal() {
		we, err := watch.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.logWaitFailure(task, err)
			}
			return
		}
		if we.invalid != nil {
			task.Skipped = append(task.Skipped, events.SkippedEvent{Seq: we.seq, Reason: we.invalid.Error()})
			task.LastSeq = max(task.LastSeq, we.seq)
			continue
		}
		task.Fold(&we.event)
	}
}

func (s *Server) logWaitFailure(task *events.Task, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.log.Warn("waiting for a task to change failed; responding with its current view", append(logging.Task(task.Tenant, task.ID, task.Type), zap.Error(err))...)
}

// awaitChange holds a read of a task, such as GET /v1/tasks/{id}?wait=,
// for up to d. The client's view is the sequence seen when known is true,
// such as the one in If-None-Match, and task itself otherwise.
// awaitChange returns task at once when it has ended or differs from the
// client's view. Otherwise it returns the task read again after its next
// event, or task when none came in time.
func (s *Server) awaitChange(ctx context.Context, task *events.Task, d time.Duration, seen uint64, known bool) *events.Task {
	if task.Terminal() {
		return task
	}
	if known && seen != task.LastSeq {
		return task
	}
	changed, err := s.waitForChange(ctx, task.Tenant, task.ID, task.LastSeq, d)
	if err != nil {
		s.logWaitFailure(task, err)
		return task
	}
	if changed == nil || !changed.Exists() {
		return task
	}
	return changed
}

// etagSequence returns the stream sequence of the first entity tag in
// If-None-Match values that is one, such as "42" or W/"42".
func etagSequence(values []string) (uint64, bool) {
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
				continue
			}
			if seq, err := strconv.ParseUint(tag[1:len(tag)-1], 10, 64); err == nil {
				return seq, true
			}
		}
	}
	return 0, false
}
