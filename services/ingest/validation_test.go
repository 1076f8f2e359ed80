package ingest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/services/ingest"
)

// Limits of the validation tests, small enough to exceed cheaply.
const (
	testMaxInput = 1 << 10
	testMaxDepth = 8
)

func TestSubmitRejected(t *testing.T) {
	b := setup(t, func(c *ingest.Config) {
		c.MaxInputBytes = testMaxInput
		c.MaxDepth = testMaxDepth
	})
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	maxBody := testMaxInput + 64<<10

	tests := []struct {
		name        string
		body        string
		header      []string
		status      int
		problem     ingest.ProblemType
		detail      string
		fields      []string
		contentType string
	}{
		{
			name: "malformed JSON", body: `{"type": "echo",`,
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "at byte offset 16",
		},
		{
			name: "invalid character", body: `{"type": echo}`,
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "at byte offset 10",
		},
		{
			name: "data after the object", body: `{"type": "echo"} {}`,
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "byte offset",
		},
		{
			name: "empty body", body: ``,
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "body is empty",
		},
		{
			name: "not UTF-8", body: "{\"type\": \"echo\", \"input\": \"\xff\"}",
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "not valid UTF-8 at byte offset 27",
		},
		{
			name: "array body", body: `[{"type": "echo"}]`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest, detail: "must be a JSON object, not an array",
		},
		{
			name: "null body", body: `null`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest, detail: "not null",
		},
		{
			name: "unknown field", body: `{"type": "echo", "colour": "red"}`,
			status: http.StatusBadRequest, problem: ingest.ProblemUnknownField, detail: `unknown field "colour"`, fields: []string{"/colour"},
		},
		{
			name: "field names are case-sensitive", body: `{"Type": "echo"}`,
			status: http.StatusBadRequest, problem: ingest.ProblemUnknownField, detail: `"Type"`, fields: []string{"/Type"},
		},
		{
			name: "request_hash is not the client's", body: `{"type": "echo", "request_hash": "x"}`,
			status: http.StatusBadRequest, problem: ingest.ProblemUnknownField, fields: []string{"/request_hash"},
		},
		{
			name: "unknown webhook field", body: `{"type": "echo", "webhook": {"url": "https://a.example/h", "secret": "s"}}`,
			status: http.StatusBadRequest, problem: ingest.ProblemUnknownField, fields: []string{"/webhook/secret"},
		},
		{
			name: "missing type", body: `{"input": {}}`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest, detail: "type: is required", fields: []string{"type"},
		},
		{
			name: "empty type", body: `{"type": ""}`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest, detail: "type: is required", fields: []string{"type"},
		},
		{
			name: "type not a string", body: `{"type": 5}`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest, detail: "type: must be a string", fields: []string{"type"},
		},
		{
			name: "wrong JSON types", body: `{"type": "echo", "max_attempts": "3", "timeout": "soon", "deadline": "tomorrow", "webhook": "https://a.example", "metadata": {"a": 1}}`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest,
			fields: []string{"timeout", "max_attempts", "deadline", "webhook", "metadata"},
		},
		{
			name: "fractional max_attempts", body: `{"type": "echo", "max_attempts": 1.5}`,
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidRequest, detail: "max_attempts: must be an integer", fields: []string{"max_attempts"},
		},
		{
			name: "invalid type", body: `{"type": "Files Manifest"}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidSubmission, detail: `type: task type "Files Manifest" contains 'F'`, fields: []string{"type"},
		},
		{
			name: "unknown type", body: `{"type": "reports.quarterly"}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemUnknownTaskType, detail: "registered task types are echo, files.manifest", fields: []string{"type"},
		},
		{
			name: "input fails the schema", body: `{"type": "files.manifest", "input": {"pattern": 5, "max_files": 0, "depth": 2}}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidInput, detail: "input schema of task type files.manifest",
			fields: []string{"/input", "/input", "/input/max_files", "/input/pattern"},
		},
		{
			name: "input of the wrong type", body: `{"type": "files.manifest", "input": ["/srv"]}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidInput, fields: []string{"/input"},
		},
		{
			name: "fields out of range", body: `{"type": "echo", "max_attempts": 1000, "timeout": "1ms", "ttl": "0.5s", "deadline": "` + past + `", "webhook": {"url": "ftp://a.example/h"}}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidSubmission,
			fields: []string{"timeout", "max_attempts", "ttl", "deadline", "webhook.url"},
		},
		{
			name: "empty webhook url", body: `{"type": "echo", "webhook": {}}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidSubmission, fields: []string{"webhook.url"},
		},
		{
			name: "run_at and deadline after the retention", body: `{"type": "echo", "ttl": "1m", "run_at": "` + future + `", "deadline": "` + later + `"}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidSubmission, detail: "is not before the task's retention ends", fields: []string{"run_at", "deadline"},
		},
		{
			name: "run_at not before the deadline", body: `{"type": "echo", "run_at": "` + future + `", "deadline": "` + future + `"}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidSubmission, detail: "run_at: ", fields: []string{"run_at"},
		},
		{
			name: "run_at in the past", body: `{"type": "echo", "run_at": "` + past + `"}`,
			status: http.StatusUnprocessableEntity, problem: ingest.ProblemInvalidSubmission, detail: "is not in the future", fields: []string{"run_at"},
		},
		{
			name: "input too large", body: `{"type": "echo", "input": {"message": "` + strings.Repeat("a", testMaxInput) + `"}}`,
			status: http.StatusRequestEntityTooLarge, problem: ingest.ProblemInputTooLarge, detail: "limit of 1024 bytes",
		},
		{
			name: "body too large", body: `{"type": "echo", "metadata": {"a": "` + strings.Repeat("a", maxBody) + `"}}`,
			status: http.StatusRequestEntityTooLarge, problem: ingest.ProblemBodyTooLarge, detail: "limit of 66560 bytes",
		},
		{
			name: "nested too deeply", body: `{"type": "echo", "input": {"a": [[[[[[[1]]]]]]]}}`,
			status: http.StatusBadRequest, problem: ingest.ProblemNestingTooDeep, detail: "limit of 8 levels, at byte offset 38",
		},
		{
			name: "repeated input key", body: `{"type": "echo", "input": {"seconds": "x", "seconds": 1}}`,
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "repeats the key at /input/seconds",
		},
		{
			name: "repeated top-level key", body: `{"type": "echo", "type": "sleep"}`,
			status: http.StatusBadRequest, problem: ingest.ProblemMalformedJSON, detail: "repeats the key at /type",
		},
		{
			name: "brackets inside strings do not nest", body: `{"type": "echo", "input": {"message": "[[[[[[[[[[{{{{{{{{{{\"["}}`,
			status: http.StatusAccepted,
		},
		{
			name: "no Content-Type", body: `{"type": "echo"}`, contentType: "-",
			status: http.StatusUnsupportedMediaType, problem: ingest.ProblemUnsupportedMediaType, detail: "no Content-Type",
		},
		{
			name: "text Content-Type", body: `{"type": "echo"}`, contentType: "text/plain",
			status: http.StatusUnsupportedMediaType, problem: ingest.ProblemUnsupportedMediaType, detail: `"text/plain" is not supported`,
		},
		{
			name: "other charset", body: `{"type": "echo"}`, contentType: "application/json; charset=latin1",
			status: http.StatusUnsupportedMediaType, problem: ingest.ProblemUnsupportedMediaType, detail: "charset",
		},
		{
			name: "empty Idempotency-Key", body: `{"type": "echo"}`, header: []string{"Idempotency-Key", ""},
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidIdempotencyKey, detail: "empty",
		},
		{
			name: "long Idempotency-Key", body: `{"type": "echo"}`, header: []string{"Idempotency-Key", strings.Repeat("k", 256)},
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidIdempotencyKey, detail: "256 bytes",
		},
		{
			name: "non-ASCII Idempotency-Key", body: `{"type": "echo"}`, header: []string{"Idempotency-Key", "clé"},
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidIdempotencyKey, detail: "not printable ASCII",
		},
		{
			name: "two Idempotency-Keys", body: `{"type": "echo"}`, header: []string{"Idempotency-Key", "a", "Idempotency-Key", "b"},
			status: http.StatusBadRequest, problem: ingest.ProblemInvalidIdempotencyKey, detail: "more than one",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.storedEvents(t)
			header := tt.header
			switch tt.contentType {
			case "":
				header = append(header, "Content-Type", "application/json")
			case "-":
			default:
				header = append(header, "Content-Type", tt.contentType)
			}
			resp := b.do(t, b.request(t, http.MethodPost, "/v1/tasks", []byte(tt.body), header...))
			require.Equal(t, tt.status, resp.status, "body: %s", resp.body)
			if tt.status == http.StatusAccepted {
				require.Equal(t, before+1, b.storedEvents(t))
				return
			}

			p := resp.problem(t)
			require.Equal(t, tt.problem, p.Type)
			require.Equal(t, tt.problem.Title(), p.Title)
			require.Contains(t, p.Detail, tt.detail)
			if tt.fields != nil {
				require.Equal(t, tt.fields, fields(p))
			}
			require.Equal(t, before, b.storedEvents(t), "a rejected request stores nothing")
		})
	}
}

func TestSubmitSchemaViolationsListed(t *testing.T) {
	b := setup(t)

	resp := b.submit(t, `{"type": "files.manifest", "input": {"dir": "", "pattern": 5}}`)
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemInvalidInput, p.Type)
	require.Len(t, p.Errors, 2)
	require.Equal(t, "/input/dir", p.Errors[0].Pointer)
	require.Contains(t, p.Errors[0].Message, "minLength")
	require.Equal(t, "/input/pattern", p.Errors[1].Pointer)
	require.Contains(t, p.Errors[1].Message, "want string")
	require.Contains(t, p.Detail, "2 violations")
	require.Zero(t, b.storedEvents(t))
}

func TestSubmitSchemaWithRemoteReference(t *testing.T) {
	b := setup(t)
	register(t, b.bus, taskType("remote", `{"$ref": "https://schemas.example.com/input.json"}`))

	// The registration cannot make ingest fetch anything, so the schema
	// does not compile and the server reports its own failure.
	require.Eventually(t, func() bool {
		resp, err := b.send(b.request(t, http.MethodPost, "/v1/tasks", []byte(`{"type": "remote"}`), "Content-Type", "application/json"))
		return err == nil && resp.status == http.StatusInternalServerError
	}, 5*time.Second, 20*time.Millisecond)
	resp := b.submit(t, `{"type": "remote"}`)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemInternal, p.Type)
	require.Contains(t, p.Detail, "does not compile")
	require.Zero(t, b.storedEvents(t))
}
