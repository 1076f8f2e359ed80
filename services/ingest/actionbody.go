package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/handoff-dev/handoff/events"
)

// Limits of the body of a cancel, pause, resume or input request.
const (
	// MaxReasonBytes bounds the reason of a cancel, pause or resume.
	MaxReasonBytes = 1024
	// reasonBodyBytes bounds the body of a cancel, pause or resume
	// request, which holds at most a reason.
	reasonBodyBytes = 16 << 10
)

// actionRequest is the body of POST /v1/tasks/{id}/cancel, /pause,
// /resume and /input. Every field is optional except the answer of an
// input request.
type actionRequest struct {
	// ID is the task's id, which a request over NATS carries in its body
	// and a request over HTTP in its path.
	ID     string
	Reason string
	// Answer is the compacted answer of an input request, or nil when the
	// body has none. JSON null is an answer.
	Answer json.RawMessage
}

// actionBodyLimit returns the bound of the body of a lifecycle request, in
// bytes: room for an answer when it has one, else for a reason.
func (s *Server) actionBodyLimit(wantAnswer bool) int64 {
	if wantAnswer {
		return int64(s.cfg.MaxBodyBytes)
	}
	return reasonBodyBytes
}

// readActionBody reads and decodes the body of a lifecycle request. A
// cancel, pause or resume request may have no body, or a JSON object with
// a reason. An input request needs a JSON object with an answer, and may
// have a reason too.
func (s *Server) readActionBody(w http.ResponseWriter, r *http.Request, wantAnswer bool) (*actionRequest, *Problem) {
	limit := s.actionBodyLimit(wantAnswer)
	if r.ContentLength > limit {
		return nil, bodyTooLarge(r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, bodyTooLarge(-1, limit)
	}
	if err != nil {
		return nil, newProblem(ProblemInvalidRequest, http.StatusBadRequest, fmt.Sprintf("reading the request body failed: %v", err))
	}

	if len(bytes.TrimSpace(body)) == 0 {
		if wantAnswer {
			return nil, newProblem(ProblemMalformedJSON, http.StatusBadRequest, "the request body is empty; send the answer as a JSON object such as {\"answer\": true}")
		}
		return &actionRequest{}, nil
	}
	if p := checkContentType(r.Header.Values("Content-Type")); p != nil {
		return nil, p
	}
	return s.decodeActionBody(body, wantAnswer, false)
}

// decodeActionBody decodes the JSON object of a lifecycle request: a
// reason, and an answer when wantAnswer is true. With withID the object
// also names the task in a required "id", as requests over NATS do.
func (s *Server) decodeActionBody(body []byte, wantAnswer, withID bool) (*actionRequest, *Problem) {
	allowed := []string{"reason"}
	if wantAnswer {
		allowed = []string{"answer", "reason"}
	}
	if withID {
		allowed = append([]string{"id"}, allowed...)
	}
	fields, p := s.decodeObject(body, allowed)
	if p != nil {
		return nil, p
	}

	req := &actionRequest{}
	var errs []ProblemError
	add := func(field, message string) {
		errs = append(errs, ProblemError{Field: field, Message: message})
	}
	if withID {
		decodeTaskID(fields, &req.ID, add)
	}
	decodeField(fields, "reason", &req.Reason, "must be a string", add)
	if n := len(req.Reason); n > MaxReasonBytes {
		add("reason", fmt.Sprintf("is %d bytes, longer than the maximum of %d", n, MaxReasonBytes))
	}
	if raw, ok := fields["answer"]; wantAnswer && ok {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			add("answer", "is not valid JSON")
		} else {
			req.Answer = buf.Bytes()
		}
	} else if wantAnswer {
		add("answer", "is required; send the answer to the task's input request, which may be any JSON value that matches its input_schema")
	}
	if len(errs) > 0 {
		p := newProblem(ProblemInvalidRequest, http.StatusBadRequest, fieldsDetail(errs))
		p.Errors = errs
		return nil, p
	}
	if withID {
		if p := checkTaskID(req.ID); p != nil {
			return nil, p
		}
	}
	if len(req.Answer) > s.cfg.MaxInputBytes {
		return nil, newProblem(ProblemInputTooLarge, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("answer is %d bytes without whitespace, larger than the limit of %d bytes", len(req.Answer), s.cfg.MaxInputBytes))
	}
	return req, nil
}

// decodeObject decodes a request body that must be one JSON object with
// no members other than allowed. It checks UTF-8 and the nesting depth
// before it decodes, and rejects repeated keys.
func (s *Server) decodeObject(body []byte, allowed []string) (map[string]json.RawMessage, *Problem) {
	if offset, ok := invalidUTF8(body); ok {
		return nil, newProblem(ProblemMalformedJSON, http.StatusBadRequest, fmt.Sprintf("the request body is not valid UTF-8 at byte offset %d", offset))
	}
	if offset, ok := tooDeep(body, s.cfg.MaxDepth); ok {
		return nil, newProblem(ProblemNestingTooDeep, http.StatusBadRequest, fmt.Sprintf("the request body nests arrays and objects deeper than the limit of %d levels, at byte offset %d", s.cfg.MaxDepth, offset))
	}
	var fields map[string]json.RawMessage
	if p := unmarshalObject(body, &fields); p != nil {
		return nil, p
	}
	if p := checkActionFields(fields, allowed); p != nil {
		return nil, p
	}
	return fields, nil
}

// decodeTaskID decodes the required "id" member of a request over NATS;
// [checkTaskID] checks its value.
func decodeTaskID(fields map[string]json.RawMessage, dst *string, add func(field, message string)) {
	if isNull(fields["id"]) {
		add("id", "is required; send the id of the task")
		return
	}
	if err := json.Unmarshal(fields["id"], dst); err != nil {
		add("id", "must be a string")
	}
}

// checkTaskID returns the 400 problem of an id that no task can have, as
// for an invalid id in a path.
func checkTaskID(id string) *Problem {
	if err := events.ValidateTaskID(id); err != nil {
		return invalidTaskID(err)
	}
	return nil
}

// checkActionFields rejects the members of a lifecycle request body other
// than allowed, naming all of them.
func checkActionFields(fields map[string]json.RawMessage, allowed []string) *Problem {
	var unknown []string
	for name := range fields {
		if !slices.Contains(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	quoted := make([]string, len(unknown))
	errs := make([]ProblemError, len(unknown))
	for i, name := range unknown {
		quoted[i] = fmt.Sprintf("%q", name)
		errs[i] = ProblemError{Pointer: jsonPointer([]string{name}), Message: "is not a field of this request"}
	}
	noun := "field"
	if len(unknown) > 1 {
		noun = "fields"
	}
	p := newProblem(ProblemUnknownField, http.StatusBadRequest, fmt.Sprintf("unknown %s %s; this request has the fields %s",
		noun, strings.Join(quoted, ", "), strings.Join(allowed, ", ")))
	p.Errors = errs
	return p
}
