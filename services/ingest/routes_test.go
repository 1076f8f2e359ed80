package ingest_test

import (
	"context"
	"io/fs"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/schemas"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestHealthz(t *testing.T) {
	b := setup(t)

	resp := b.get(t, "/healthz")
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, `{"status": "ok"}`, string(resp.body))

	// Liveness does not depend on NATS.
	b.bus.Conn().Close()
	resp = b.get(t, "/healthz")
	require.Equal(t, http.StatusOK, resp.status)
}

func TestReadyz(t *testing.T) {
	b := setup(t)

	resp := b.get(t, "/readyz")
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.JSONEq(t, `{"status": "ready"}`, string(resp.body))

	b.bus.Conn().Close()
	resp = b.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemUnavailable, p.Type)
	require.Contains(t, p.Detail, "the NATS connection is CLOSED")
	require.Positive(t, seconds(t, resp.header))
}

func TestReadyzMissingStream(t *testing.T) {
	b := setup(t)
	require.NoError(t, b.bus.JetStream().DeleteStream(context.Background(), b.bus.Names().TasksStream()))

	resp := b.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	require.Contains(t, resp.problem(t).Detail, "HANDOFF_TASKS does not exist")
}

func TestStoreClosed(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	b.bus.Conn().Close()

	resp := b.get(t, "/v1/tasks/"+id)
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "body: %s", resp.body)
	require.Equal(t, ingest.ProblemUnavailable, resp.problem(t).Type)

	resp = b.submit(t, `{"type": "echo"}`)
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "body: %s", resp.body)
	require.Positive(t, seconds(t, resp.header))
}

// A store that never replies must not read as a task that does not exist.
func TestStoreSilent(t *testing.T) {
	b := setupSilent(t)

	resp := b.get(t, "/v1/tasks/01J0000000000000000000000")
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "body: %s", resp.body)
	require.Equal(t, ingest.ProblemUnavailable, resp.problem(t).Type)

	resp = b.submit(t, `{"type": "echo"}`)
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "body: %s", resp.body)
	require.Positive(t, seconds(t, resp.header))

	resp = b.submit(t, `{"type": "echo"}`, "Idempotency-Key", "k")
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "body: %s", resp.body)
}

func TestOpenAPIServed(t *testing.T) {
	b := setup(t)
	want, err := fs.ReadFile(schemas.FS, "openapi.yaml")
	require.NoError(t, err)

	resp := b.get(t, "/openapi.yaml")
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "application/yaml", resp.header.Get("Content-Type"))
	require.Equal(t, string(want), string(resp.body))
}

func TestJSONSchemasServed(t *testing.T) {
	b := setup(t)
	names, err := fs.Glob(schemas.FS, "*.json")
	require.NoError(t, err)
	require.Contains(t, names, "task-view.json")

	for _, name := range names {
		want, err := fs.ReadFile(schemas.FS, name)
		require.NoError(t, err)
		resp := b.get(t, "/"+name)
		require.Equal(t, http.StatusOK, resp.status, "GET /%s", name)
		require.Equal(t, "application/schema+json", resp.header.Get("Content-Type"))
		require.Equal(t, string(want), string(resp.body))
	}

	resp := b.get(t, "/missing.json")
	require.Equal(t, http.StatusNotFound, resp.status)
}

func TestUnknownRoute(t *testing.T) {
	b := setup(t)

	for _, path := range []string{"/", "/v2/tasks", "/v1/tasks/", "/v1/tasks/01J0000000000000000000000/history"} {
		resp := b.get(t, path)
		require.Equal(t, http.StatusNotFound, resp.status, "GET %s", path)
		require.Equal(t, ingest.ProblemNotFound, resp.problem(t).Type)
	}
}

func TestWrongMethod(t *testing.T) {
	b := setup(t)

	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPut, "/v1/tasks", "POST, GET, HEAD"},
		{http.MethodDelete, "/v1/tasks", "POST, GET, HEAD"},
		{http.MethodPut, "/v1/subscriptions/sub_1", "GET, HEAD, DELETE"},
		{http.MethodGet, "/v1/subscriptions/sub_1/rotate", "POST"},
		{http.MethodPost, "/v1/tasks/01J0000000000000000000000", "GET, HEAD"},
		{http.MethodPut, "/healthz", "GET, HEAD"},
		{http.MethodPost, "/openapi.yaml", "GET, HEAD"},
	}
	for _, tt := range tests {
		resp := b.do(t, b.request(t, tt.method, tt.path, nil))
		require.Equal(t, http.StatusMethodNotAllowed, resp.status, "%s %s", tt.method, tt.path)
		require.Equal(t, tt.allow, resp.header.Get("Allow"))
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemMethodNotAllowed, p.Type)
		require.Contains(t, p.Detail, tt.method)
	}
}
