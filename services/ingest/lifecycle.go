package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// maxTransitionTries bounds the reads and compare-and-set writes of one
// lifecycle request while other writers keep changing the task.
const maxTransitionTries = 10

// change is the event that a lifecycle request records on a task.
type change struct {
	kind events.Kind
	data any
}

// decideFunc decides what a lifecycle request means for task: the change
// to record, nil when the task already is where the request wants it, or
// a problem when its status does not allow the request. It reads nothing
// and writes nothing, so it can run again after a conflict.
type decideFunc func(task *events.Task, req *actionRequest) (*change, *Problem)

// action is a lifecycle request: its name, as in the path POST
// /v1/tasks/{id}/<name>, whether its body carries an answer, and how it
// decides.
type action struct {
	name       string
	wantAnswer bool
	decide     decideFunc
}

// actions returns the lifecycle requests of the API, by name.
func (s *Server) actions() map[string]action {
	return map[string]action{
		"cancel": {name: "cancel", decide: decideCancel},
		"pause":  {name: "pause", decide: decidePause},
		"resume": {name: "resume", decide: decideResume},
		"input":  {name: "input", wantAnswer: true, decide: s.decideInput},
	}
}

// handleAction returns the handler of a lifecycle request, POST
// /v1/tasks/{id}/<action>. It responds with the task's view after the
// change; see [Server.act].
func (s *Server) handleAction(a action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := events.ValidateTaskID(id); err != nil {
			writeProblem(w, r, invalidTaskID(err))
			return
		}
		tenant, p := s.tenantOf(r)
		if p != nil {
			writeProblem(w, r, p)
			return
		}
		req, p := s.readActionBody(w, r, a.wantAnswer)
		if p != nil {
			writeProblem(w, r, p)
			return
		}

		task, p := s.act(r.Context(), tenant, id, a, req)
		if p != nil {
			writeProblem(w, r, p)
			return
		}
		writeTaskView(w, task)
	}
}

// act reads the task, decides with a.decide, and records the change with
// a compare-and-set, reading and deciding again after a conflict. It
// returns the task after the change, or a problem that names the task's
// status when the status does not allow the request.
func (s *Server) act(ctx context.Context, tenant, id string, a action, req *actionRequest) (*events.Task, *Problem) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	fields := []zap.Field{zap.String(logging.KeyTenant, tenant), zap.String(logging.KeyTaskID, id), zap.String("action", a.name)}
	for range maxTransitionTries {
		task, err := s.readTask(ctx, tenant, id)
		if errors.Is(err, bus.ErrTaskNotFound) || (err == nil && !task.Exists()) {
			return nil, taskNotFound(id)
		}
		if err != nil {
			return nil, s.logFailure(storeProblem(err, "reading the task"), "reading a task failed", err, fields...)
		}
		fields = append(logging.Task(tenant, id, task.Type), zap.String("action", a.name))
		annotateTask(ctx, tenant, id, task.Type)

		c, p := a.decide(task, req)
		if p != nil {
			p.TaskStatus = task.Status
			return nil, p
		}
		if c == nil {
			s.log.Debug("lifecycle request changes nothing", append(fields, zap.String("status", string(task.Status)))...)
			return task, nil
		}

		err = s.record(ctx, task, c)
		if bus.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, s.logFailure(storeProblem(err, "recording the "+a.name), "recording a lifecycle request failed", err, append(fields, zap.String(logging.KeyKind, string(c.kind)))...)
		}
		s.log.Debug("lifecycle request recorded", append(fields, zap.String(logging.KeyKind, string(c.kind)), zap.Uint64(logging.KeySeq, task.LastSeq))...)
		return task, nil
	}
	s.log.Warn("lifecycle request kept conflicting with other writers", fields...)
	return nil, unavailable(fmt.Sprintf("task %s kept changing while the %s was being recorded; retry", id, a.name))
}

// writeTaskView responds 200 with the task's view, and a Retry-After while
// the task has not ended.
func writeTaskView(w http.ResponseWriter, task *events.Task) {
	if !task.Terminal() {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(task, time.Now())))
	}
	writeJSON(w, http.StatusOK, task.View())
}

// record appends the event of c to task with a compare-and-set on the
// task's last sequence and folds it into task. A cancel of a scheduled task
// appends, in one atomic batch, a submitted copy of the scheduled event
// before the cancelled event: the task keeps its submission once the
// scheduled event, which holds the run_at schedule, is removed. A change
// that ends the task removes its schedules.
func (s *Server) record(ctx context.Context, task *events.Task, c *change) error {
	ev, err := events.NewEvent(c.kind, task.Tenant, task.ID, task.Type, s.cfg.Source, c.data)
	if err != nil {
		return err
	}
	tracing.InjectEvent(ctx, &ev)
	evs := []*events.Event{&ev}
	if task.Status == events.StatusScheduled && c.kind == events.KindCancelled {
		copied, err := events.NewEvent(events.KindSubmitted, task.Tenant, task.ID, task.Type, s.cfg.Source, task.Submission)
		if err != nil {
			return err
		}
		// The copy keeps the creation time, as the copy that the
		// schedule publishes at run_at does.
		copied.Time = task.Created
		tracing.InjectEvent(ctx, &copied)
		evs = []*events.Event{&copied, &ev}
	}

	// Folding before the append proves that readers will accept the
	// events.
	next := *task
	for _, e := range evs {
		if err := next.Apply(e); err != nil {
			return fmt.Errorf("fold %s: %w", e.Kind, err)
		}
	}
	opts := bus.AppendOptions{ExpectSeq: task.LastSeq, TTL: task.TTLLeft(time.Now())}
	var seq uint64
	if len(evs) == 1 {
		seq, err = s.bus.Append(ctx, evs[0], opts)
	} else {
		seq, err = s.bus.AppendBatch(ctx, evs, opts)
	}
	if err != nil {
		return err
	}
	next.LastSeq = seq
	*task = next

	if task.Terminal() {
		s.countFinished(task)
		s.purgeSchedules(task)
	}
	return nil
}

// purgeSchedules removes the message schedules of task, which just ended,
// when it has any. A failure only means that a schedule fires later, and
// readers ignore what it publishes after the end.
func (s *Server) purgeSchedules(task *events.Task) {
	if task.Submission.Deadline == nil && task.Submission.RunAt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.bus.PurgeSchedules(ctx, task.Tenant, task.ID, task.Type); err != nil {
		s.log.Warn("removing the schedules of an ended task failed; they fire and are ignored", append(logging.Task(task.Tenant, task.ID, task.Type), zap.Error(err))...)
	}
}

// decideCancel returns cancelled for a task that is not running, and a
// cancel request for the executor of a running one.
func decideCancel(task *events.Task, req *actionRequest) (*change, *Problem) {
	c := &change{kind: events.KindCancelled, data: events.Reason{Reason: req.Reason}}
	if task.Status == events.StatusRunning {
		if task.CancelRequested {
			return nil, nil
		}
		c.kind = events.KindCancelRequested
	}
	if err := task.Check(c.kind); err != nil {
		return nil, stateProblem(task, "cancelled", "")
	}
	return c, nil
}

// decidePause returns paused for a queued or retrying task, and a pause
// request for the executor of a running one.
func decidePause(task *events.Task, req *actionRequest) (*change, *Problem) {
	if task.Status == events.StatusPaused || task.Status == events.StatusRunning && task.PauseRequested {
		return nil, nil
	}
	c := &change{kind: events.KindPaused, data: events.Paused{Reason: req.Reason}}
	if task.Status == events.StatusRunning {
		c = &change{kind: events.KindPauseRequested, data: events.Reason{Reason: req.Reason}}
	}
	if err := task.Check(c.kind); err != nil {
		return nil, stateProblem(task, "paused", "")
	}
	return c, nil
}

// decideResume returns resumed for a paused task.
func decideResume(task *events.Task, req *actionRequest) (*change, *Problem) {
	if task.Status == events.StatusInputRequired {
		return nil, stateProblem(task, "resumed", fmt.Sprintf("; answer its input request with POST /v1/tasks/%s/input, which resumes it", task.ID))
	}
	c := &change{kind: events.KindResumed, data: events.Resumed{Reason: req.Reason}}
	if err := task.Check(c.kind); err != nil {
		return nil, stateProblem(task, "resumed", "")
	}
	return c, nil
}

// decideInput returns resumed with the answer for a task that waits for
// input, once the answer matches the input request's schema.
func (s *Server) decideInput(task *events.Task, req *actionRequest) (*change, *Problem) {
	if task.Status != events.StatusInputRequired || task.InputRequest == nil {
		return nil, stateProblem(task, "answered", "; only a task whose status is input_required waits for an answer")
	}
	if p := s.checkAnswer(task, req.Answer); p != nil {
		return nil, p
	}
	c := &change{kind: events.KindResumed, data: events.Resumed{Input: req.Answer, Reason: req.Reason}}
	if err := task.Check(c.kind); err != nil {
		return nil, stateProblem(task, "answered", "")
	}
	return c, nil
}

// checkAnswer validates an answer against the input_schema of the task's
// input request and lists every violation, located by a JSON pointer into
// the request body.
func (s *Server) checkAnswer(task *events.Task, answer []byte) *Problem {
	raw := task.InputRequest.InputSchema
	if len(raw) == 0 {
		return nil
	}
	schema, err := compileInputSchema(task.Type, raw)
	if err != nil {
		s.log.Error("the input request of a task has a schema that does not compile", append(logging.Task(task.Tenant, task.ID, task.Type), zap.Error(err))...)
		return internal("the input_schema of the task's input request does not compile, so no answer can be checked")
	}
	errs, total := validateInput(schema, answer, "/answer")
	if total == 0 {
		return nil
	}
	detail := fmt.Sprintf("the answer does not match the input_schema of the task's input request (%s", violations(total))
	if total > len(errs) {
		detail += fmt.Sprintf(", of which the first %d are listed", len(errs))
	}
	// The violations go in the detail too, for clients that read only
	// the NATS error header.
	detail += "): " + fieldsDetail(errs)
	p := newProblem(ProblemInvalidAnswer, http.StatusUnprocessableEntity, detail)
	p.Errors = errs
	return p
}

// stateProblem returns the 409 problem of a request that the task's status
// does not allow. done is what the request would make of the task, such
// as "cancelled", and hint ends the detail.
func stateProblem(task *events.Task, done, hint string) *Problem {
	var detail string
	switch {
	case task.Terminal():
		detail = fmt.Sprintf("task %s has already ended as %s, so it cannot be %s", task.ID, task.Status, done)
	case task.Status == events.StatusRunning && task.CancelRequested:
		detail = fmt.Sprintf("task %s is running and a cancel was requested, so it cannot be %s", task.ID, done)
	default:
		detail = fmt.Sprintf("task %s is %s, so it cannot be %s", task.ID, task.Status, done)
	}
	return newProblem(ProblemInvalidState, http.StatusConflict, detail+hint)
}
