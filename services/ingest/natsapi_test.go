package ingest_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

// natsReply is the response to a request of the NATS API.
type natsReply struct {
	msg *nats.Msg
	// status is Handoff-Status on success and the micro error code on
	// error.
	status int
}

// serveNATS serves the NATS request API of b's server until the test ends,
// and returns a connection of a client, once the API answers.
func (b *bundle) serveNATS(t testing.TB) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.srv.ServeNATS(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	nc := b.nats.Connect(t)
	require.Eventually(t, func() bool {
		_, err := nc.Request(b.bus.Names().APISubject(ingest.EndpointTypes), nil, time.Second)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the NATS API did not answer")
	return nc
}

// natsRequest sends body to an endpoint of the NATS API, with header names
// and values, and checks the response: a task view against task-view.json
// and a problem against the Problem schema and the request's subject.
func (b *bundle) natsRequest(t testing.TB, nc *nats.Conn, endpoint, body string, header ...string) *natsReply {
	t.Helper()
	msg := nats.NewMsg(b.bus.Names().APISubject(endpoint))
	msg.Data = []byte(body)
	for i := 0; i+1 < len(header); i += 2 {
		msg.Header.Add(header[i], header[i+1])
	}
	resp, err := nc.RequestMsg(msg, 30*time.Second)
	require.NoError(t, err, "request %s", msg.Subject)

	c, err := loadContract()
	require.NoError(t, err)
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		status, err := strconv.Atoi(code)
		require.NoError(t, err, "error code %q", code)
		require.Equal(t, ingest.ContentTypeProblem, resp.Header.Get("Content-Type"))
		var v any
		require.NoError(t, json.Unmarshal(resp.Data, &v), "body: %s", resp.Data)
		require.NoError(t, c.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()), "problem: %s", resp.Data)
		var p ingest.Problem
		require.NoError(t, json.Unmarshal(resp.Data, &p))
		require.Equal(t, status, p.Status, "problem status")
		require.Equal(t, msg.Subject, p.Instance, "problem instance")
		require.NotEmpty(t, p.Detail)
		require.Equal(t, p.Detail, resp.Header.Get(micro.ErrorHeader), "error description")
		return &natsReply{msg: resp, status: status}
	}

	status, err := strconv.Atoi(resp.Header.Get(ingest.HeaderStatus))
	require.NoError(t, err, "%s: %q", ingest.HeaderStatus, resp.Header.Get(ingest.HeaderStatus))
	require.Equal(t, ingest.ContentTypeJSON, resp.Header.Get("Content-Type"))
	switch endpoint {
	case ingest.EndpointTypes:
	case ingest.EndpointList:
		var page struct {
			Tasks []any `json:"tasks"`
		}
		require.NoError(t, json.Unmarshal(resp.Data, &page))
		for _, v := range page.Tasks {
			require.NoError(t, c.taskView.Validate(v), "listed view: %s", resp.Data)
		}
	default:
		var v any
		require.NoError(t, json.Unmarshal(resp.Data, &v), "body: %s", resp.Data)
		require.NoError(t, c.taskView.Validate(v), "view: %s", resp.Data)
	}
	return &natsReply{msg: resp, status: status}
}

func (r *natsReply) view(t testing.TB) events.View {
	t.Helper()
	require.Empty(t, r.msg.Header.Get(micro.ErrorCodeHeader), "error: %s", r.msg.Data)
	var v events.View
	require.NoError(t, json.Unmarshal(r.msg.Data, &v), "body: %s", r.msg.Data)
	return v
}

func (r *natsReply) problem(t testing.TB) ingest.Problem {
	t.Helper()
	require.NotEmpty(t, r.msg.Header.Get(micro.ErrorCodeHeader), "success: %s", r.msg.Data)
	var p ingest.Problem
	require.NoError(t, json.Unmarshal(r.msg.Data, &p), "body: %s", r.msg.Data)
	return p
}

func TestNATSSubmitAndGet(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)

	resp := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo", "input": {"message": "hi"}, "metadata": {"conversation": "c-42"}}`)
	require.Equal(t, http.StatusAccepted, resp.status)
	require.Equal(t, "1", resp.msg.Header.Get("Retry-After"))
	require.Empty(t, resp.msg.Header.Get(ingest.HeaderIdempotentReplayed))
	v := resp.view(t)
	require.Len(t, v.ID, 26, "a generated id is a ULID")
	require.Equal(t, events.StatusQueued, v.Status)
	require.Equal(t, events.DefaultTenant, v.Tenant)
	require.Equal(t, map[string]string{"conversation": "c-42"}, v.Metadata)
	require.Equal(t, []events.Kind{events.KindSubmitted}, b.kinds(t, v.ID))

	got := b.natsRequest(t, nc, ingest.EndpointGet, `{"id": "`+v.ID+`"}`)
	require.Equal(t, http.StatusOK, got.status)
	require.NotEmpty(t, got.msg.Header.Get("Retry-After"))
	gv := got.view(t)
	require.Equal(t, v.ID, gv.ID)
	require.Equal(t, v.Sequence, gv.Sequence)
	require.Equal(t, v.Metadata, gv.Metadata)

	// The same task over HTTP.
	require.Equal(t, v.ID, b.get(t, "/v1/tasks/"+v.ID).view(t).ID)
}

func TestNATSSubmitValidation(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)

	cases := []struct {
		name    string
		body    string
		header  []string
		status  int
		problem ingest.ProblemType
		fields  []string
	}{
		{"empty body", ``, nil, 400, ingest.ProblemMalformedJSON, nil},
		{"malformed JSON", `{"type": "echo",`, nil, 400, ingest.ProblemMalformedJSON, nil},
		{"unknown field", `{"type": "echo", "priority": 1}`, nil, 400, ingest.ProblemUnknownField, []string{"/priority"}},
		{"wrong JSON type", `{"type": "echo", "max_attempts": "three"}`, nil, 400, ingest.ProblemInvalidRequest, []string{"max_attempts"}},
		{"unknown type", `{"type": "no.such.type"}`, nil, 422, ingest.ProblemUnknownTaskType, []string{"type"}},
		{"input fails the schema", `{"type": "files.manifest", "input": {"dir": ""}}`, nil, 422, ingest.ProblemInvalidInput, []string{"/input/dir"}},
		{"invalid max_attempts", `{"type": "echo", "max_attempts": 0.5}`, nil, 400, ingest.ProblemInvalidRequest, []string{"max_attempts"}},
		{"input too large", `{"type": "echo", "input": {"message": "` + strings.Repeat("a", ingest.DefaultMaxInputBytes) + `"}}`, nil, 413, ingest.ProblemInputTooLarge, nil},
		{"body too large", `{"type": "echo", "metadata": {"x": "` + strings.Repeat("a", ingest.DefaultMaxInputBytes+64<<10) + `"}}`, nil, 413, ingest.ProblemBodyTooLarge, nil},
		{"not JSON content", `{"type": "echo"}`, []string{"Content-Type", "text/plain"}, 415, ingest.ProblemUnsupportedMediaType, nil},
		{"empty Idempotency-Key", `{"type": "echo"}`, []string{"Idempotency-Key", ""}, 400, ingest.ProblemInvalidIdempotencyKey, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.natsRequest(t, nc, ingest.EndpointSubmit, tc.body, tc.header...)
			require.Equal(t, tc.status, resp.status, "body: %s", resp.msg.Data)
			p := resp.problem(t)
			require.Equal(t, tc.problem, p.Type)
			if tc.fields != nil {
				require.Equal(t, tc.fields, fields(p))
			}
		})
	}
	require.Zero(t, b.storedEvents(t), "a rejected request stored an event")

	// A JSON content type is accepted when one is given.
	resp := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo"}`, "Content-Type", "application/json; charset=utf-8")
	require.Equal(t, http.StatusAccepted, resp.status)
}

func TestNATSSubmitIdempotencyKey(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)

	first := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo", "input": {"message": "once"}}`, "Idempotency-Key", "order-7")
	require.Equal(t, http.StatusAccepted, first.status)
	id := first.view(t).ID
	require.True(t, strings.HasPrefix(id, "idem_"), id)

	// Header names are case-insensitive, as over HTTP, and HTTP shares the
	// key's tasks.
	again := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"input": {"message": "once"}, "type": "echo"}`, "idempotency-key", "order-7")
	require.Equal(t, http.StatusOK, again.status)
	require.Equal(t, "true", again.msg.Header.Get(ingest.HeaderIdempotentReplayed))
	require.Equal(t, id, again.view(t).ID)
	overHTTP := b.submit(t, `{"type": "echo", "input": {"message": "once"}}`, "Idempotency-Key", "order-7")
	require.Equal(t, http.StatusOK, overHTTP.status)
	require.Equal(t, "true", overHTTP.header.Get(ingest.HeaderIdempotentReplayed))
	require.Equal(t, id, overHTTP.view(t).ID)

	other := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo", "input": {"message": "twice"}}`, "Idempotency-Key", "order-7")
	require.Equal(t, http.StatusUnprocessableEntity, other.status)
	require.Equal(t, ingest.ProblemIdempotencyKeyReused, other.problem(t).Type)
	require.Equal(t, []events.Kind{events.KindSubmitted}, b.kinds(t, id))
}

func TestNATSSubmitPreferWait(t *testing.T) {
	b := setup(t)
	startExecutor(t, b, "echo")
	nc := b.serveNATS(t)

	resp := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo", "input": {"message": "done"}}`, "Prefer", "wait=20")
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.msg.Data)
	require.Equal(t, "wait=20", resp.msg.Header.Get("Preference-Applied"))
	require.Empty(t, resp.msg.Header.Get("Retry-After"), "an ended task has no Retry-After")
	v := resp.view(t)
	require.Equal(t, events.StatusSucceeded, v.Status)
	require.JSONEq(t, `{"message": "done"}`, string(v.Result))
}

func TestNATSGetErrors(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)
	id := b.newTask(t, "")

	cases := []struct {
		name    string
		body    string
		status  int
		problem ingest.ProblemType
	}{
		{"empty body", ``, 400, ingest.ProblemMalformedJSON},
		{"not an object", `["` + id + `"]`, 400, ingest.ProblemInvalidRequest},
		{"missing id", `{}`, 400, ingest.ProblemInvalidRequest},
		{"id not a string", `{"id": 7}`, 400, ingest.ProblemInvalidRequest},
		{"invalid id", `{"id": "not.valid"}`, 400, ingest.ProblemInvalidTaskID},
		{"unknown field", `{"id": "` + id + `", "after": 3}`, 400, ingest.ProblemUnknownField},
		{"unknown id", `{"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ"}`, 404, ingest.ProblemNotFound},
		{"invalid wait", `{"id": "` + id + `", "wait": "soon"}`, 400, ingest.ProblemInvalidQuery},
		{"wait too long", `{"id": "` + id + `", "wait": 3600}`, 400, ingest.ProblemInvalidQuery},
		{"wait an object", `{"id": "` + id + `", "wait": {}}`, 400, ingest.ProblemInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.natsRequest(t, nc, ingest.EndpointGet, tc.body)
			require.Equal(t, tc.status, resp.status, "body: %s", resp.msg.Data)
			require.Equal(t, tc.problem, resp.problem(t).Type)
		})
	}
}

func TestNATSGetWaitsForChange(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)
	id := b.newTask(t, "")
	before := b.natsRequest(t, nc, ingest.EndpointGet, `{"id": "`+id+`"}`).view(t)

	type result struct {
		reply *natsReply
		took  time.Duration
	}
	got := make(chan result, 1)
	go func() {
		start := time.Now()
		msg := nats.NewMsg(b.bus.Names().APISubject(ingest.EndpointGet))
		msg.Data = []byte(`{"id": "` + id + `", "wait": "20s"}`)
		resp, err := nc.RequestMsg(msg, 30*time.Second)
		if err != nil {
			got <- result{}
			return
		}
		got <- result{reply: &natsReply{msg: resp}, took: time.Since(start)}
	}()

	// The wait holds until the next event, however long the test takes
	// to append it.
	require.Eventually(t, func() bool { return b.consumers(t) > 0 }, 10*time.Second, 10*time.Millisecond, "the wait started no watch")
	b.appendEvent(t, id, events.KindStarted, 1, started)
	r := <-got
	require.NotNil(t, r.reply, "the held request failed")
	v := r.reply.view(t)
	require.Equal(t, events.StatusRunning, v.Status)
	require.Greater(t, v.Sequence, before.Sequence)
	require.Less(t, r.took, 20*time.Second)
}

func TestNATSLifecycle(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)

	queued := b.newTask(t, "")
	resp := b.natsRequest(t, nc, ingest.EndpointPause, `{"id": "`+queued+`", "reason": "later"}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, events.StatusPaused, resp.view(t).Status)
	resp = b.natsRequest(t, nc, ingest.EndpointResume, `{"id": "`+queued+`"}`)
	require.Equal(t, events.StatusQueued, resp.view(t).Status)
	resp = b.natsRequest(t, nc, ingest.EndpointCancel, `{"id": "`+queued+`", "reason": "no longer needed"}`)
	require.Equal(t, http.StatusOK, resp.status)
	require.Empty(t, resp.msg.Header.Get("Retry-After"), "an ended task has no Retry-After")
	require.Equal(t, events.StatusCancelled, resp.view(t).Status)
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindPaused, events.KindResumed, events.KindCancelled}, b.kinds(t, queued))

	ended := b.natsRequest(t, nc, ingest.EndpointPause, `{"id": "`+queued+`"}`)
	require.Equal(t, http.StatusConflict, ended.status)
	p := ended.problem(t)
	require.Equal(t, ingest.ProblemInvalidState, p.Type)
	require.Equal(t, events.StatusCancelled, p.TaskStatus)

	waiting := b.taskIn(t, "input_required")
	wrong := b.natsRequest(t, nc, ingest.EndpointInput, `{"id": "`+waiting+`", "answer": {"grant": "yes"}}`)
	require.Equal(t, http.StatusUnprocessableEntity, wrong.status)
	require.Equal(t, ingest.ProblemInvalidAnswer, wrong.problem(t).Type)
	require.Equal(t, []string{"/answer/grant"}, fields(wrong.problem(t)))
	require.Contains(t, wrong.msg.Header.Get(micro.ErrorHeader), "/answer/grant: ", "the error header names the violation")
	answered := b.natsRequest(t, nc, ingest.EndpointInput, `{"id": "`+waiting+`", "answer": {"grant": true}}`)
	require.Equal(t, http.StatusOK, answered.status)
	require.Equal(t, events.StatusQueued, answered.view(t).Status)

	running := b.taskIn(t, "running")
	resp = b.natsRequest(t, nc, ingest.EndpointCancel, `{"id": "`+running+`"}`)
	v := resp.view(t)
	require.Equal(t, events.StatusRunning, v.Status)
	require.True(t, v.CancelRequested)
}

func TestNATSLifecycleErrors(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)
	id := b.newTask(t, "")

	cases := []struct {
		name     string
		endpoint string
		body     string
		header   []string
		status   int
		problem  ingest.ProblemType
	}{
		{"empty body", ingest.EndpointCancel, ``, nil, 400, ingest.ProblemMalformedJSON},
		{"missing id", ingest.EndpointCancel, `{"reason": "x"}`, nil, 400, ingest.ProblemInvalidRequest},
		{"invalid id", ingest.EndpointPause, `{"id": "a b"}`, nil, 400, ingest.ProblemInvalidTaskID},
		{"unknown id", ingest.EndpointResume, `{"id": "01JZZZZZZZZZZZZZZZZZZZZZZZ"}`, nil, 404, ingest.ProblemNotFound},
		{"unknown field", ingest.EndpointCancel, `{"id": "` + id + `", "answer": 1}`, nil, 400, ingest.ProblemUnknownField},
		{"reason too long", ingest.EndpointCancel, `{"id": "` + id + `", "reason": "` + strings.Repeat("r", ingest.MaxReasonBytes+1) + `"}`, nil, 400, ingest.ProblemInvalidRequest},
		{"body too large", ingest.EndpointCancel, `{"id": "` + id + `", "reason": "` + strings.Repeat("r", 17<<10) + `"}`, nil, 413, ingest.ProblemBodyTooLarge},
		{"not JSON content", ingest.EndpointCancel, `{"id": "` + id + `"}`, []string{"Content-Type", "text/plain"}, 415, ingest.ProblemUnsupportedMediaType},
		{"input without answer", ingest.EndpointInput, `{"id": "` + id + `"}`, nil, 400, ingest.ProblemInvalidRequest},
		{"input to a queued task", ingest.EndpointInput, `{"id": "` + id + `", "answer": true}`, nil, 409, ingest.ProblemInvalidState},
		{"resume a queued task", ingest.EndpointResume, `{"id": "` + id + `"}`, nil, 409, ingest.ProblemInvalidState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.natsRequest(t, nc, tc.endpoint, tc.body, tc.header...)
			require.Equal(t, tc.status, resp.status, "body: %s", resp.msg.Data)
			require.Equal(t, tc.problem, resp.problem(t).Type)
		})
	}
	require.Equal(t, []events.Kind{events.KindSubmitted}, b.kinds(t, id), "a rejected request stored an event")
}

func TestNATSTypes(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)

	resp := b.natsRequest(t, nc, ingest.EndpointTypes, "")
	require.Equal(t, http.StatusOK, resp.status)
	var list struct {
		Types []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
			MaxAttempts int             `json:"max_attempts"`
		} `json:"types"`
	}
	require.NoError(t, json.Unmarshal(resp.msg.Data, &list))
	require.Len(t, list.Types, 2)
	require.Equal(t, "echo", list.Types[0].Name)
	require.Equal(t, "returns its input", list.Types[0].Description)
	require.JSONEq(t, echoSchema, string(list.Types[0].InputSchema))
	require.Equal(t, "files.manifest", list.Types[1].Name)
	require.Equal(t, manifestMaxAttempts, list.Types[1].MaxAttempts)

	overHTTP := b.get(t, "/v1/types")
	require.JSONEq(t, string(overHTTP.body), string(resp.msg.Data), "NATS and HTTP list the same types")
}

func TestNATSList(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)
	var ids []string
	for range 3 {
		ids = append(ids, b.newTask(t, ""))
	}
	b.natsRequest(t, nc, ingest.EndpointCancel, `{"id": "`+ids[0]+`"}`)

	var page struct {
		Tasks      []events.View `json:"tasks"`
		NextCursor string        `json:"next_cursor"`
	}
	resp := b.natsRequest(t, nc, ingest.EndpointList, "")
	require.Equal(t, http.StatusOK, resp.status)
	require.NoError(t, json.Unmarshal(resp.msg.Data, &page))
	require.Len(t, page.Tasks, 3)
	require.Equal(t, ids[2], page.Tasks[0].ID, "newest first")

	resp = b.natsRequest(t, nc, ingest.EndpointList, `{"limit": 2}`)
	require.NoError(t, json.Unmarshal(resp.msg.Data, &page))
	require.Len(t, page.Tasks, 2)
	require.NotEmpty(t, page.NextCursor)
	resp = b.natsRequest(t, nc, ingest.EndpointList, `{"limit": "2", "cursor": "`+page.NextCursor+`"}`)
	page.NextCursor = ""
	require.NoError(t, json.Unmarshal(resp.msg.Data, &page))
	require.Len(t, page.Tasks, 1)
	require.Equal(t, ids[0], page.Tasks[0].ID)
	require.Empty(t, page.NextCursor)

	resp = b.natsRequest(t, nc, ingest.EndpointList, `{"status": ["cancelled", "failed"], "type": "echo"}`)
	require.NoError(t, json.Unmarshal(resp.msg.Data, &page))
	require.Len(t, page.Tasks, 1)
	require.Equal(t, ids[0], page.Tasks[0].ID)

	for body, field := range map[string]string{
		`{"status": "lost"}`:  "status",
		`{"limit": 0}`:        "limit",
		`{"limit": true}`:     "limit",
		`{"cursor": "abc"}`:   "cursor",
		`{"order": "oldest"}`: "/order",
	} {
		resp := b.natsRequest(t, nc, ingest.EndpointList, body)
		require.Equal(t, http.StatusBadRequest, resp.status, body)
		require.Equal(t, []string{field}, fields(resp.problem(t)), body)
	}
}

func TestNATSAuthTokens(t *testing.T) {
	acmeToken, acme := issueToken(t, "acme", "acme-ci")
	globexToken, globex := issueToken(t, "globex", "globex-ci")
	b, _ := setupTokens(t, []ingest.TokenEntry{acme, globex})
	nc := b.serveNATS(t)

	for _, endpoint := range ingest.NATSEndpoints {
		resp := b.natsRequest(t, nc, endpoint, `{"type": "echo"}`)
		require.Equal(t, http.StatusUnauthorized, resp.status, endpoint)
		require.Equal(t, ingest.ProblemUnauthorized, resp.problem(t).Type, endpoint)
	}
	resp := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo"}`, "Authorization", "Bearer handoff_not-a-token")
	require.Equal(t, http.StatusUnauthorized, resp.status)

	resp = b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo"}`, "authorization", "Bearer "+acmeToken)
	require.Equal(t, http.StatusAccepted, resp.status)
	v := resp.view(t)
	require.Equal(t, "acme", v.Tenant)

	// Another tenant's task does not exist for the caller.
	other := b.natsRequest(t, nc, ingest.EndpointGet, `{"id": "`+v.ID+`"}`, "Authorization", "Bearer "+globexToken)
	require.Equal(t, http.StatusNotFound, other.status)
	other = b.natsRequest(t, nc, ingest.EndpointCancel, `{"id": "`+v.ID+`"}`, "Authorization", "Bearer "+globexToken)
	require.Equal(t, http.StatusNotFound, other.status)
	own := b.natsRequest(t, nc, ingest.EndpointGet, `{"id": "`+v.ID+`"}`, "Authorization", "Bearer "+acmeToken)
	require.Equal(t, v.ID, own.view(t).ID)
}

func TestNATSRateLimit(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.RateLimit = 0.01; c.RateBurst = 1 })
	nc := b.serveNATS(t)

	require.Equal(t, http.StatusAccepted, b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo"}`).status)
	resp := b.natsRequest(t, nc, ingest.EndpointSubmit, `{"type": "echo"}`)
	require.Equal(t, http.StatusTooManyRequests, resp.status)
	require.Equal(t, ingest.ProblemRateLimited, resp.problem(t).Type)
	require.NotEmpty(t, resp.msg.Header.Get("Retry-After"))
}

func TestNATSServiceInfo(t *testing.T) {
	b := setup(t)
	nc := b.serveNATS(t)

	msg, err := nc.Request("$SRV.INFO."+ingest.NATSServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	var info micro.Info
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, ingest.NATSServiceName, info.Name)
	require.Equal(t, ingest.NATSServiceVersion, info.Version)
	require.Equal(t, "handoff", info.Metadata["namespace"])
	subjects := map[string]string{}
	for _, e := range info.Endpoints {
		subjects[e.Name] = e.Subject
	}
	require.Len(t, subjects, len(ingest.NATSEndpoints))
	for _, name := range ingest.NATSEndpoints {
		require.Equal(t, "handoff.api."+name, subjects[name])
	}
}

func TestServeRunsNATSAPI(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		b := setup(t, func(c *ingest.Config) { c.DisableNATSAPI = disabled })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.srv.Serve(ctx, ln) }()

		nc := b.nats.Connect(t)
		subject := b.bus.Names().APISubject(ingest.EndpointTypes)
		if disabled {
			// The HTTP API answers while no NATS responder exists.
			require.Eventually(t, func() bool {
				resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
				if err == nil {
					resp.Body.Close()
				}
				return err == nil
			}, 10*time.Second, 10*time.Millisecond)
			_, err := nc.Request(subject, nil, time.Second)
			require.ErrorIs(t, err, nats.ErrNoResponders)
		} else {
			require.Eventually(t, func() bool {
				_, err := nc.Request(subject, nil, time.Second)
				return err == nil
			}, 10*time.Second, 10*time.Millisecond)
		}

		cancel()
		require.NoError(t, <-done)
		_, err = nc.Request(subject, nil, time.Second)
		require.ErrorIs(t, err, nats.ErrNoResponders, "the API stops with Serve")
	}
}

func TestNATSShutdownEndsHeldRequests(t *testing.T) {
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.srv.ServeNATS(ctx) }()
	nc := b.nats.Connect(t)
	subject := b.bus.Names().APISubject(ingest.EndpointGet)
	id := b.newTask(t, "")
	require.Eventually(t, func() bool {
		_, err := nc.Request(subject, []byte(`{"id": "`+id+`"}`), time.Second)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)

	held := make(chan *nats.Msg, 1)
	go func() {
		msg, err := nc.Request(subject, []byte(`{"id": "`+id+`", "wait": "50s"}`), time.Minute)
		if err != nil {
			msg = nil
		}
		held <- msg
	}()
	require.Eventually(t, func() bool { return b.consumers(t) > 0 }, 10*time.Second, 10*time.Millisecond, "the wait started no watch")

	cancel()
	require.NoError(t, <-done)
	msg := <-held
	require.NotNil(t, msg, "the held request got no reply")
	require.Equal(t, "200", msg.Header.Get(ingest.HeaderStatus), "the held request gets the current view")
	_, err := nc.Request(subject, []byte(`{"id": "`+id+`"}`), time.Second)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}
