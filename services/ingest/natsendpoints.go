package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"
)

// submit serves <namespace>.api.submit: the body and headers of POST
// /v1/tasks. A Content-Type is optional, and must be JSON when present.
func (n *natsService) submit(ctx context.Context, req micro.Request) (*natsReply, *Problem) {
	s := n.s
	h := requestHeader(req)
	caller, p := s.auth.authenticate(h)
	if p != nil {
		return nil, p
	}
	prefs := parsePrefer(h.Values("Prefer"), s.cfg.MaxWait)
	key, p := s.admitSubmission(caller, h)
	if p != nil {
		return nil, p
	}
	if p := checkNATSBody(h, req.Data(), int64(s.cfg.MaxBodyBytes)); p != nil {
		return nil, p
	}

	out, p := s.submit(ctx, submitCall{caller: caller, key: key, prefs: prefs, body: req.Data()})
	if p != nil {
		return nil, p
	}
	now := time.Now()
	retry := 0
	if !out.task.Terminal() {
		retry = retryAfterSeconds(out.task, now)
	}
	reply := taskReply(out.status(prefs), s.links.withLink(out.task, now), retry)
	if applied := prefs.applied(); applied != "" {
		reply.header.Set("Preference-Applied", applied)
	}
	if !out.created {
		reply.header.Set(HeaderIdempotentReplayed, "true")
	}
	return reply, nil
}

// get serves <namespace>.api.get: {"id": "...", "wait": "30s"}, where wait
// is optional and holds the reply until the task changes, as GET
// /v1/tasks/{id}?wait= does.
func (n *natsService) get(ctx context.Context, req micro.Request) (*natsReply, *Problem) {
	s := n.s
	caller, p := s.auth.authenticate(requestHeader(req))
	if p != nil {
		return nil, p
	}
	fields, p := s.decodeNATSObject(req.Data(), []string{"id", "wait"}, `{"id": "01JZ3K6Q4W8V0N2P5R7T9X1Y3B"}`)
	if p != nil {
		return nil, p
	}
	var id string
	var errs []ProblemError
	add := func(field, message string) { errs = append(errs, ProblemError{Field: field, Message: message}) }
	decodeTaskID(fields, &id, add)
	query := url.Values{}
	if raw := fields["wait"]; !isNull(raw) {
		query.Set("wait", scalarText(raw, "wait", add))
	}
	if p := fieldsProblem(errs); p != nil {
		return nil, p
	}
	if p := checkTaskID(id); p != nil {
		return nil, p
	}
	wait, p := parseWait(query, s.cfg.MaxWait)
	if p != nil {
		return nil, p
	}

	task, p := s.getTask(ctx, caller.tenant, id)
	if p != nil {
		return nil, p
	}
	if wait > 0 {
		task = s.awaitChange(ctx, task, wait, 0, false)
	}
	now := time.Now()
	retry := 0
	if !task.Terminal() {
		retry = retryAfterSeconds(task, now)
	}
	return taskReply(http.StatusOK, s.links.withLink(task, now), retry), nil
}

// list serves <namespace>.api.list: the query parameters of GET /v1/tasks
// as a JSON object, such as {"status": "failed", "limit": 10}. An empty
// body lists the first page without filters.
func (n *natsService) list(ctx context.Context, req micro.Request) (*natsReply, *Problem) {
	s := n.s
	caller, p := s.auth.authenticate(requestHeader(req))
	if p != nil {
		return nil, p
	}
	query := url.Values{}
	if len(bytes.TrimSpace(req.Data())) > 0 {
		fields, p := s.decodeNATSObject(req.Data(), listParams, "")
		if p != nil {
			return nil, p
		}
		var errs []ProblemError
		add := func(field, message string) { errs = append(errs, ProblemError{Field: field, Message: message}) }
		for name, raw := range fields {
			if !isNull(raw) {
				query.Set(name, scalarText(raw, name, add))
			}
		}
		if p := fieldsProblem(errs); p != nil {
			return nil, p
		}
	}
	q, p := parseListQuery(query)
	if p != nil {
		return nil, p
	}

	page, p := s.listPage(ctx, caller.tenant, q)
	if p != nil {
		return nil, p
	}
	return taskReply(http.StatusOK, page, 0), nil
}

// types serves <namespace>.api.types: the body of GET /v1/types. The
// request body is ignored.
func (n *natsService) types(_ context.Context, req micro.Request) (*natsReply, *Problem) {
	if _, p := n.s.auth.authenticate(requestHeader(req)); p != nil {
		return nil, p
	}
	return taskReply(http.StatusOK, n.s.typeList(), 0), nil
}

// act returns the endpoint of a lifecycle request: the body of POST
// /v1/tasks/{id}/<action> with the task's id in "id".
func (n *natsService) act(a action) natsEndpoint {
	return func(ctx context.Context, req micro.Request) (*natsReply, *Problem) {
		s := n.s
		h := requestHeader(req)
		caller, p := s.auth.authenticate(h)
		if p != nil {
			return nil, p
		}
		if p := checkNATSBody(h, req.Data(), s.actionBodyLimit(a.wantAnswer)); p != nil {
			return nil, p
		}
		example := `{"id": "01JZ3K6Q4W8V0N2P5R7T9X1Y3B", "reason": "no longer needed"}`
		if a.wantAnswer {
			example = `{"id": "01JZ3K6Q4W8V0N2P5R7T9X1Y3B", "answer": true}`
		}
		if len(bytes.TrimSpace(req.Data())) == 0 {
			return nil, emptyBody(example)
		}
		body, p := s.decodeActionBody(req.Data(), a.wantAnswer, true)
		if p != nil {
			return nil, p
		}

		task, p := s.act(ctx, caller.tenant, body.ID, a, body)
		if p != nil {
			return nil, p
		}
		retry := 0
		if !task.Terminal() {
			retry = retryAfterSeconds(task, time.Now())
		}
		return taskReply(http.StatusOK, task.View(), retry), nil
	}
}

// checkNATSBody checks the Content-Type of a NATS request, when it has
// one, and the size of its body.
func checkNATSBody(h http.Header, body []byte, limit int64) *Problem {
	if values := h.Values("Content-Type"); len(values) > 0 {
		if p := checkContentType(values); p != nil {
			return p
		}
	}
	if size := int64(len(body)); size > limit {
		return bodyTooLarge(size, limit)
	}
	return nil
}

// decodeNATSObject decodes the JSON object of a NATS request whose members
// are allowed. An empty body is a 400 problem that shows example, or, when
// example is empty, the empty object.
func (s *Server) decodeNATSObject(body []byte, allowed []string, example string) (map[string]json.RawMessage, *Problem) {
	if len(bytes.TrimSpace(body)) == 0 {
		if example != "" {
			return nil, emptyBody(example)
		}
		return map[string]json.RawMessage{}, nil
	}
	return s.decodeObject(body, allowed)
}

// emptyBody is the problem of a request without the body it needs.
func emptyBody(example string) *Problem {
	return newProblem(ProblemMalformedJSON, http.StatusBadRequest, "the request body is empty; send a JSON object such as "+example)
}

// scalarText returns a JSON string or number as the text of a query
// parameter, and an array of strings joined by commas, as the status
// filter takes them. Any other value is reported through add.
func scalarText(raw json.RawMessage, name string, add func(field, message string)) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, ",")
	}
	add(name, "must be a string or a number")
	return ""
}

// fieldsProblem returns the 400 problem of field errors, or nil for none.
func fieldsProblem(errs []ProblemError) *Problem {
	if len(errs) == 0 {
		return nil
	}
	p := newProblem(ProblemInvalidRequest, http.StatusBadRequest, fieldsDetail(errs))
	p.Errors = errs
	return p
}
