package ingest_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestGetTask(t *testing.T) {
	b := setup(t)
	posted := b.submit(t, `{"type": "echo", "input": {"message": "hi"}, "metadata": {"k": "v"}}`)
	require.Equal(t, http.StatusAccepted, posted.status)
	id := posted.view(t).ID

	resp := b.get(t, "/v1/tasks/"+id)
	require.Equal(t, http.StatusOK, resp.status)
	v := resp.view(t)
	require.Equal(t, id, v.ID)
	require.Equal(t, events.StatusQueued, v.Status)
	require.Equal(t, map[string]string{"k": "v"}, v.Metadata)
	require.Equal(t, `"`+strconv.FormatUint(v.Sequence, 10)+`"`, resp.header.Get("ETag"))
	require.Equal(t, "no-cache", resp.header.Get("Cache-Control"))
	require.Equal(t, 1, seconds(t, resp.header), "a young task is polled every second")
}

func TestGetTaskConditional(t *testing.T) {
	b := setup(t)
	posted := b.submit(t, `{"type": "echo"}`)
	id := posted.view(t).ID
	first := b.get(t, "/v1/tasks/"+id)
	etag := first.header.Get("ETag")

	notModified := b.get(t, "/v1/tasks/"+id, "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, notModified.status)
	require.Equal(t, etag, notModified.header.Get("ETag"))
	require.Equal(t, "no-cache", notModified.header.Get("Cache-Control"))
	require.NotEmpty(t, notModified.header.Get("Retry-After"))
	require.Empty(t, notModified.body)

	for _, header := range []string{`"0", ` + etag, "W/" + etag, "*"} {
		resp := b.get(t, "/v1/tasks/"+id, "If-None-Match", header)
		require.Equal(t, http.StatusNotModified, resp.status, "If-None-Match: %s", header)
	}

	// Every event changes the ETag.
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	b.appendEvent(t, id, events.KindProgress, 1, events.Progress{Percent: 40, Message: "halfway there"})
	changed := b.get(t, "/v1/tasks/"+id, "If-None-Match", etag)
	require.Equal(t, http.StatusOK, changed.status)
	require.NotEqual(t, etag, changed.header.Get("ETag"))
	v := changed.view(t)
	require.Equal(t, events.StatusRunning, v.Status)
	require.Equal(t, 40.0, v.Progress.Percent)
	require.Equal(t, `"`+strconv.FormatUint(v.Sequence, 10)+`"`, changed.header.Get("ETag"))
}

func TestGetTaskTerminal(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	b.appendEvent(t, id, events.KindFailed, 1, events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "disk full"}})

	resp := b.get(t, "/v1/tasks/"+id)
	require.Equal(t, http.StatusOK, resp.status)
	v := resp.view(t)
	require.Equal(t, events.StatusFailed, v.Status)
	require.Equal(t, events.CodeHandlerError, v.Error.Code)
	require.Empty(t, resp.header.Get("Retry-After"), "a finished task needs no polling")
	require.NotEmpty(t, resp.header.Get("ETag"))
}

func TestGetTaskSucceededWithResult(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo", "input": {"message": "hi"}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"message": "hi"}`)})

	resp := b.get(t, "/v1/tasks/"+id)
	require.Equal(t, http.StatusOK, resp.status)
	v := resp.view(t)
	require.Equal(t, events.StatusSucceeded, v.Status)
	require.JSONEq(t, `{"message": "hi"}`, string(v.Result))
}

func TestGetTaskNotFound(t *testing.T) {
	b := setup(t)

	resp := b.get(t, "/v1/tasks/01J0000000000000000000000")
	require.Equal(t, http.StatusNotFound, resp.status)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemNotFound, p.Type)
	require.Contains(t, p.Detail, "01J0000000000000000000000")
}

func TestGetTaskInvalidID(t *testing.T) {
	b := setup(t)

	for _, id := range []string{"has.dot", "has%20space", "caf%C3%A9"} {
		resp := b.get(t, "/v1/tasks/"+id)
		require.Equal(t, http.StatusBadRequest, resp.status, "id %s", id)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidTaskID, p.Type)
		require.Contains(t, p.Detail, "task id")
	}
}
