package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/schemas"
	"github.com/handoff-dev/handoff/services/ingest"
)

// contract is the loaded API contract: openapi.yaml with a router, and the
// task view's JSON Schema compiled on its own.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	// taskView checks views with every draft 2020-12 keyword. kin-openapi
	// v0.153.0 cannot compile schemas that refer to other files with its
	// draft 2020-12 validator, so it falls back to its OpenAPI 3.0 one,
	// which ignores if/then/else, and the view's allOf rules need those.
	taskView *jsonschema.Schema
	// submission checks the data of stored submitted events.
	submission *jsonschema.Schema
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	// An event stream is checked as text: its events are checked by the
	// tests that read it.
	openapi3filter.RegisterBodyDecoder(ingest.ContentTypeEventStream, openapi3filter.PlainBodyDecoder)

	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	// Only the embedded files can be read, whatever a reference names.
	loader.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		return fs.ReadFile(schemas.FS, path.Base(u.Path))
	}
	doc, err := loader.LoadFromURI(&url.URL{Path: "openapi.yaml"})
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}

	compiler := jsonschema.NewCompiler()
	compiler.AssertFormat()
	names, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		b, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			return nil, err
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if err := compiler.AddResource("file:///schemas/"+name, v); err != nil {
			return nil, err
		}
	}
	taskView, err := compiler.Compile("file:///schemas/task-view.json")
	if err != nil {
		return nil, err
	}
	submission, err := compiler.Compile("file:///schemas/submission.json")
	if err != nil {
		return nil, err
	}
	return &contract{doc: doc, router: router, taskView: taskView, submission: submission}, nil
})

// checkContract checks a response against openapi.yaml: its status, headers
// and body. Every test request goes through it.
func checkContract(t testing.TB, req *http.Request, resp *response) {
	t.Helper()
	c, err := loadContract()
	require.NoError(t, err, "load the API contract")

	route, params, err := c.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		// The document cannot route what it does not describe, so check
		// the problem against its schema directly.
		require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, resp.status, "%s %s is not in the API contract; body: %s", req.Method, req.URL.Path, resp.body)
		if resp.status == http.StatusMethodNotAllowed {
			require.NotEmpty(t, resp.header.Get("Allow"), "405 without Allow")
		}
		checkProblemBody(t, c, req, resp)
		return
	}
	require.NoError(t, err, "route %s %s", req.Method, req.URL.Path)

	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.status,
		Header:                 resp.header,
		Body:                   io.NopCloser(bytes.NewReader(resp.body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), in), "%s %s returned %d: %s", req.Method, req.URL.Path, resp.status, resp.body)

	// kin-openapi skips 304, so check the headers it declares here.
	if resp.status == http.StatusNotModified {
		declared := route.Operation.Responses.Status(http.StatusNotModified)
		require.NotNil(t, declared, "304 is not declared for %s", route.Path)
		for name, h := range declared.Value.Headers {
			if h.Value.Required {
				require.NotEmpty(t, resp.header.Get(name), "304 lacks the required header %s", name)
			}
		}
		require.Empty(t, resp.body)
	}

	switch resp.header.Get("Content-Type") {
	case ingest.ContentTypeProblem:
		checkProblemBody(t, c, req, resp)
	case ingest.ContentTypeJSON:
		switch route.Operation.OperationID {
		case "submitTask", "getTask":
			var v any
			require.NoError(t, json.Unmarshal(resp.body, &v))
			require.NoError(t, c.taskView.Validate(v), "task view does not match task-view.json: %s", resp.body)
		case "listTasks":
			var page struct {
				Tasks []any `json:"tasks"`
			}
			require.NoError(t, json.Unmarshal(resp.body, &page))
			for _, v := range page.Tasks {
				require.NoError(t, c.taskView.Validate(v), "listed task view does not match task-view.json: %s", resp.body)
			}
		}
	}
}

// checkProblemBody checks a problem against the Problem schema and against
// the response it came with.
func checkProblemBody(t testing.TB, c *contract, req *http.Request, resp *response) {
	t.Helper()
	require.Equal(t, ingest.ContentTypeProblem, resp.header.Get("Content-Type"), "body: %s", resp.body)
	var v any
	require.NoError(t, json.Unmarshal(resp.body, &v))
	schema := c.doc.Components.Schemas["Problem"].Value
	require.NoError(t, schema.VisitJSON(v, openapi3.EnableJSONSchema2020()), "problem does not match the Problem schema: %s", resp.body)

	var p ingest.Problem
	require.NoError(t, json.Unmarshal(resp.body, &p))
	require.Equal(t, resp.status, p.Status, "problem status")
	require.Equal(t, req.URL.Path, p.Instance, "problem instance")
	require.NotEmpty(t, p.Title, "problem title")
	require.NotEmpty(t, p.Detail, "problem detail")
}

// recordingTB records failures instead of ending the test, so a test can
// check that checkContract rejects a response.
type recordingTB struct {
	testing.TB
	failed bool
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(string, ...any) { r.failed = true }

func (r *recordingTB) FailNow() {
	r.failed = true
	runtime.Goexit()
}

// contractRejects reports whether checkContract fails on resp.
func contractRejects(t *testing.T, req *http.Request, resp *response) bool {
	rec := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkContract(rec, req, resp)
	}()
	<-done
	return rec.failed
}

func TestContractCheckRejectsBadResponses(t *testing.T) {
	b := setup(t)
	req := b.request(t, http.MethodPost, "/v1/tasks", nil)
	good := b.submit(t, `{"type": "echo"}`)
	require.False(t, contractRejects(t, req, good), "the real response passes")

	edit := func(change func(r *response)) *response {
		r := &response{status: good.status, header: good.header.Clone(), body: bytes.Clone(good.body)}
		change(r)
		return r
	}
	setField := func(r *response, name string, value any) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(r.body, &m))
		m[name] = value
		body, err := json.Marshal(m)
		require.NoError(t, err)
		r.body = body
	}

	tests := map[string]*response{
		"missing Location":     edit(func(r *response) { r.header.Del("Location") }),
		"undocumented status":  edit(func(r *response) { r.status = http.StatusTeapot }),
		"unknown view field":   edit(func(r *response) { setField(r, "colour", "red") }),
		"invalid status":       edit(func(r *response) { setField(r, "status", "done") }),
		"succeeded, no result": edit(func(r *response) { setField(r, "status", "succeeded") }),
		"problem of 202": edit(func(r *response) {
			r.header.Set("Content-Type", ingest.ContentTypeProblem)
			r.body = []byte(`{"type": "urn:handoff:problem:internal", "title": "x", "status": 500, "detail": "x", "instance": "/v1/tasks"}`)
		}),
	}
	for name, resp := range tests {
		require.True(t, contractRejects(t, req, resp), name)
	}

	bad := b.request(t, http.MethodGet, "/nowhere", nil)
	wrongStatus := &response{status: http.StatusNotFound, header: http.Header{"Content-Type": {ingest.ContentTypeProblem}},
		body: []byte(`{"type": "urn:handoff:problem:not-found", "title": "Not found", "status": 400, "detail": "x", "instance": "/nowhere"}`)}
	require.True(t, contractRejects(t, bad, wrongStatus), "a problem's status must match the response")
}
