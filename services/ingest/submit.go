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
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// maxListedTypes bounds the registered types an unknown-type problem names.
const maxListedTypes = 20

// HeaderIdempotentReplayed marks the response to a submission whose
// Idempotency-Key named an existing task: the task was not created by this
// request. The same header name is common in other APIs.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// submitCall is a submission as both transports pass it to
// [Server.submit], after the checks that come before the body is read.
type submitCall struct {
	caller *principal
	// key is the Idempotency-Key, or "" for none.
	key   string
	prefs preferences
	body  []byte
}

// submitOutcome is the task of an accepted submission.
type submitOutcome struct {
	task *events.Task
	// created is false when the Idempotency-Key named an existing task.
	created bool
}

// status returns the HTTP status of the response: 202 for a new task, or
// 200 with a final view, for a task that ended within the wait of Prefer:
// wait and for an idempotent repeat.
func (o *submitOutcome) status(prefs preferences) int {
	if !o.created || prefs.wait > 0 && o.task.Terminal() {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// handleSubmit serves POST /v1/tasks. It validates the request, stores the
// task's submitted event and returns the task view folded from that event,
// so the response reflects the write without reading it back.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	caller, p := s.principalOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	prefs := parsePrefer(r.Header.Values("Prefer"), s.cfg.MaxWait)
	w.Header().Set("Vary", "Prefer")
	key, p := s.admitSubmission(caller, r.Header)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	body, p := s.readSubmitBody(w, r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	out, p := s.submit(r.Context(), submitCall{caller: caller, key: key, prefs: prefs, body: body})
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	h := w.Header()
	h.Set("Location", taskPath(out.task.ID))
	prefs.setHeaders(h)
	if !out.created {
		h.Set(HeaderIdempotentReplayed, "true")
	}
	if !out.task.Terminal() {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(out.task, time.Now())))
	}
	writeJSON(w, out.status(prefs), s.links.withLink(out.task, time.Now()))
}

// admitSubmission runs the checks of a submission that come before its
// body is read: the caller's rate limit, then the Idempotency-Key of
// header h, which it returns.
func (s *Server) admitSubmission(caller *principal, h http.Header) (string, *Problem) {
	if p := s.allowSubmission(caller, time.Now()); p != nil {
		return "", p
	}
	return idempotencyKey(h)
}

// submit validates a submission, stores the task's first event and
// returns the task folded from it. With Prefer: wait it waits for the task
// to end, within call.prefs.wait. A repeat of an Idempotency-Key returns
// the existing task instead, or a 422 problem when the first request with
// the key was a different one. ctx is the request's context: the reads and
// writes have Config.RequestTimeout within it.
func (s *Server) submit(ctx context.Context, call submitCall) (*submitOutcome, *Problem) {
	tenant := call.caller.tenant
	req, p := decodeSubmitBody(call.body, s.cfg.MaxInputBytes, s.cfg.MaxDepth)
	if p != nil {
		return nil, p
	}
	if p := checkRequest(req); p != nil {
		return nil, p
	}

	storeCtx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()

	id := events.NewID()
	var hash string
	if call.key != "" {
		// The hash distinguishes a repeat of the request from another
		// request with the same key, so only a keyed task needs it. It covers the
		// request as sent, before the type's registered defaults are
		// applied, so a registration that changes its defaults does not
		// turn a retry into a conflict.
		var err error
		if hash, err = req.Submission.Hash(req.Type); err != nil {
			return nil, s.logFailure(internal("hashing the submission failed"), "hashing a submission failed", err, zap.String(logging.KeyTaskType, req.Type))
		}

		// The existing task is looked up before the request is validated
		// again, so a repeat returns it even after the type's registration
		// ended or the requested deadline passed.
		id = keyedTaskID(tenant, call.key)
		existing, err := s.readTask(storeCtx, tenant, id)
		if err == nil {
			return s.repeat(ctx, existing, hash, call.prefs)
		}
		if !errors.Is(err, bus.ErrTaskNotFound) {
			return nil, s.logFailure(storeProblem(err, "reading the task of this Idempotency-Key"), "reading a keyed task failed", err, logging.Task(tenant, id, req.Type)...)
		}
	}

	sub, p := s.prepareSubmission(req, time.Now())
	if p != nil {
		return nil, p
	}
	sub.RequestHash = hash

	task, ev, p := s.newSubmittedEvent(tenant, id, req.Type, sub)
	if p != nil {
		return nil, p
	}
	annotateTask(ctx, tenant, id, req.Type)
	tracing.InjectEvent(ctx, &ev)

	// Expecting sequence 0 stores the event only if the task has no events
	// yet, which makes a keyed id idempotent for as long as the task is
	// kept, not only within the stream's duplicate window. A delayed
	// task's scheduled event holds the schedule that publishes its
	// submitted event at run_at.
	opts := bus.AppendOptions{ExpectSeq: 0, TTL: sub.TTL.Std()}
	if sub.RunAt != nil {
		opts.Schedule = &bus.Schedule{At: *sub.RunAt, Target: events.KindSubmitted, TTL: task.TTLLeft(*sub.RunAt)}
	}
	seq, err := s.bus.Append(storeCtx, &ev, opts)
	if errors.Is(err, bus.ErrConflict) && call.key != "" {
		// A concurrent request with the same key stored its task first.
		existing, rerr := s.readTask(storeCtx, tenant, id)
		if rerr == nil {
			return s.repeat(ctx, existing, hash, call.prefs)
		}
		err = rerr
	}
	if err != nil {
		return nil, s.logFailure(storeProblem(err, "storing the task"), "appending a submitted event failed", err, logging.Task(tenant, id, req.Type)...)
	}
	task.LastSeq = seq
	s.countSubmitted(req.Type)
	if sub.Deadline != nil {
		s.scheduleDeadline(storeCtx, task)
	}

	s.log.Debug("task submitted", append(logging.Task(tenant, id, req.Type), zap.Uint64(logging.KeySeq, task.LastSeq))...)

	// With Prefer: wait, a task that ends in time is answered with its
	// final view, as if the request had been synchronous.
	if call.prefs.wait > 0 {
		s.waitForEnd(ctx, task, call.prefs.wait)
	}
	return &submitOutcome{task: task, created: true}, nil
}

// checkRequest rejects a task type that breaks the subject grammar.
func checkRequest(req *submitRequest) *Problem {
	if err := events.ValidateTaskType(req.Type); err != nil {
		message := events.TokenFault(err)
		p := newProblem(ProblemInvalidSubmission, http.StatusUnprocessableEntity, "type: "+message)
		p.Errors = []ProblemError{{Field: "type", Message: message}}
		return p
	}
	return nil
}

// repeat answers a submission whose Idempotency-Key already names a
// task: the task's current view when the request is the same as the first
// one, a 422 problem otherwise. With Prefer: wait, the view is the task's
// final one if it ends within the wait.
func (s *Server) repeat(ctx context.Context, task *events.Task, hash string, prefs preferences) (*submitOutcome, *Problem) {
	if task.Submission.RequestHash != hash {
		return nil, newProblem(ProblemIdempotencyKeyReused, http.StatusUnprocessableEntity,
			fmt.Sprintf("this Idempotency-Key was first used for a different request, which created task %s; use a new key for a new task", task.ID))
	}

	annotateTask(ctx, task.Tenant, task.ID, task.Type)
	s.log.Debug("idempotent repeat of a submission", append(logging.Task(task.Tenant, task.ID, task.Type), zap.Uint64(logging.KeySeq, task.LastSeq))...)
	if prefs.wait > 0 {
		s.waitForEnd(ctx, task, prefs.wait)
	}
	return &submitOutcome{task: task}, nil
}

// prepareSubmission checks the submission against the clock, the task
// type's registration and its input schema, and returns it with defaults
// applied: timeout and max_attempts from the registration, then Handoff's
// own, and a ttl capped at Config.MaxTTL.
func (s *Server) prepareSubmission(req *submitRequest, now time.Time) (events.Submission, *Problem) {
	sub := req.Submission
	tt, registered := s.types.Get(req.Type)
	if !registered && !s.cfg.AllowUnregisteredTypes {
		return sub, s.unknownType(req.Type)
	}

	if err := sub.Validate(now); err != nil {
		var fieldErrs events.FieldErrors
		if !errors.As(err, &fieldErrs) {
			fieldErrs = events.FieldErrors{{Field: "request", Message: err.Error()}}
		}
		errs := make([]ProblemError, len(fieldErrs))
		for i, fe := range fieldErrs {
			errs[i] = ProblemError{Field: fe.Field, Message: fe.Message}
		}
		p := newProblem(ProblemInvalidSubmission, http.StatusUnprocessableEntity, fieldsDetail(errs))
		p.Errors = errs
		return sub, p
	}
	if p := s.checkWebhookURL(sub.Webhook); p != nil {
		return sub, p
	}

	if registered {
		schema, err := s.schemas.get(tt)
		if err != nil {
			s.log.Error("task type has an input schema that does not compile", zap.String(logging.KeyTaskType, tt.Name), zap.String("executor", tt.Executor), zap.Error(err))
			return sub, internal(fmt.Sprintf("the input schema registered for task type %s does not compile", tt.Name))
		}
		if schema != nil {
			if errs, total := validateInput(schema, sub.Input, "/input"); total > 0 {
				detail := fmt.Sprintf("input does not match the input schema of task type %s (%s", tt.Name, violations(total))
				if total > len(errs) {
					detail += fmt.Sprintf(", of which the first %d are listed", len(errs))
				}
				detail += "): " + fieldsDetail(errs)
				p := newProblem(ProblemInvalidInput, http.StatusUnprocessableEntity, detail)
				p.Errors = errs
				return sub, p
			}
		}
		if sub.Timeout == 0 {
			sub.Timeout = tt.DefaultTimeout
		}
		if sub.MaxAttempts == 0 {
			sub.MaxAttempts = tt.MaxAttempts
		}
	}

	sub = sub.WithDefaults()
	if sub.TTL.Std() > s.cfg.MaxTTL {
		sub.TTL = events.Duration(s.cfg.MaxTTL)
	}
	if p := checkRetention(sub, now); p != nil {
		return sub, p
	}
	return sub, nil
}

// checkRetention rejects a deadline or run_at at or after the end of the
// task's retention, created_at plus ttl: the task's events would be gone by
// then.
func checkRetention(sub events.Submission, now time.Time) *Problem {
	ends := now.Add(sub.TTL.Std())
	var errs []ProblemError
	for _, f := range []struct {
		name string
		at   *time.Time
	}{{"run_at", sub.RunAt}, {"deadline", sub.Deadline}} {
		if f.at != nil && !f.at.Before(ends) {
			errs = append(errs, ProblemError{Field: f.name, Message: fmt.Sprintf("%s is not before the task's retention ends at %s (now plus ttl %s); raise ttl or move %s earlier",
				f.at.Format(time.RFC3339), ends.Format(time.RFC3339), sub.TTL, f.name)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	p := newProblem(ProblemInvalidSubmission, http.StatusUnprocessableEntity, fieldsDetail(errs))
	p.Errors = errs
	return p
}

func (s *Server) unknownType(taskType string) *Problem {
	var names []string
	for _, tt := range s.types.List() {
		names = append(names, tt.Name)
	}
	known := "no task types are registered"
	switch {
	case len(names) > maxListedTypes:
		known = fmt.Sprintf("registered task types include %s", strings.Join(names[:maxListedTypes], ", "))
	case len(names) > 0:
		known = fmt.Sprintf("registered task types are %s", strings.Join(names, ", "))
	}
	if len(names) > 0 {
		known += " (GET /v1/types describes them)"
	}
	p := newProblem(ProblemUnknownTaskType, http.StatusUnprocessableEntity,
		fmt.Sprintf("task type %q is not registered by any live executor; %s", taskType, known))
	p.Errors = []ProblemError{{Field: "type", Message: "is not registered by any live executor"}}
	return p
}

// newSubmittedEvent returns the first event of a new task, submitted or,
// with run_at, scheduled, and the task folded from it. Folding before the
// append proves that readers will accept the event.
func (s *Server) newSubmittedEvent(tenant, id, taskType string, sub events.Submission) (*events.Task, events.Event, *Problem) {
	kind := events.KindSubmitted
	if sub.RunAt != nil {
		kind = events.KindScheduled
	}
	ev, err := events.NewEvent(kind, tenant, id, taskType, s.cfg.Source, nil)
	if err != nil {
		s.log.Error("creating a submitted event failed", append(logging.Task(tenant, id, taskType), zap.Error(err))...)
		return nil, ev, internal("creating the task's event failed")
	}
	ev.Data, err = events.EncodeData(sub)
	if err != nil {
		s.log.Error("encoding a submission failed", append(logging.Task(tenant, id, taskType), zap.Error(err))...)
		return nil, ev, internal("encoding the task's event failed")
	}
	if len(ev.Data) > s.maxEventData {
		return nil, ev, newProblem(ProblemInputTooLarge, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the encoded task is %d bytes, larger than the %d bytes that the NATS server accepts in one event; send a smaller input", len(ev.Data), s.maxEventData))
	}

	task := &events.Task{}
	if err := task.Apply(&ev); err != nil {
		// The request passed validation, so the registration's defaults
		// are what the fold rejects.
		s.log.Error("the fold rejects a submitted event", append(logging.Task(tenant, id, taskType), zap.Error(err))...)
		return nil, ev, internal(fmt.Sprintf("the task could not be recorded; the registration of task type %s may have defaults out of range", taskType))
	}

	// The published schema is stricter than the Go checks in places, such
	// as the characters of a webhook URL's host, and the events that
	// ingest writes must match it. It does not constrain the input, which
	// the type's schema checked, so the input is left out of this check:
	// decoding it again cost a fifth of a submission's time.
	shape := sub
	shape.Input = nil
	data, err := events.EncodeData(shape)
	if err != nil {
		s.log.Error("encoding a submission failed", append(logging.Task(tenant, id, taskType), zap.Error(err))...)
		return nil, ev, internal("encoding the task's event failed")
	}
	if errs, total := validateInput(s.submissionSchema, data, ""); total > 0 {
		p := newProblem(ProblemInvalidSubmission, http.StatusUnprocessableEntity, "the submission does not match submission.json: "+fieldsDetail(errs))
		p.Errors = errs
		return nil, ev, p
	}
	return task, ev, nil
}

func taskPath(id string) string { return "/v1/tasks/" + id }
