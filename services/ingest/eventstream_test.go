package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

// sseEvent is one block of an event stream: an event, or a comment.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseStream reads an event stream as a browser's EventSource does, and
// keeps what it read for the contract check.
type sseStream struct {
	req    *http.Request
	resp   *http.Response
	reader *bufio.Reader
	raw    bytes.Buffer
	cancel context.CancelFunc
}

// openEvents opens GET /v1/tasks/{id}/events on the server at baseURL.
func openEvents(t testing.TB, client *http.Client, baseURL, id string, header ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/tasks/"+id+"/events", nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	s := &sseStream{req: req, resp: resp, cancel: cancel}
	s.reader = bufio.NewReader(io.TeeReader(resp.Body, &s.raw))
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next block, or false at the end of the stream.
func (s *sseStream) next(t testing.TB) (sseEvent, bool) {
	t.Helper()
	var ev sseEvent
	seen := false
	for {
		line, err := s.reader.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			require.False(t, seen, "the stream ended inside an event")
			return ev, false
		}
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if seen {
				return ev, true
			}
			continue
		}
		seen = true
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "":
			ev.comment = value
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			ev.data = value
		}
	}
}

// nextEvent returns the next event, skipping comments.
func (s *sseStream) nextEvent(t testing.TB) sseEvent {
	t.Helper()
	for {
		ev, ok := s.next(t)
		require.True(t, ok, "the stream ended early")
		if ev.comment == "" {
			return ev
		}
	}
}

// requireEnd reads to the end of the stream, which must hold no more
// events, and checks the whole response against the contract.
func (s *sseStream) requireEnd(t testing.TB) {
	t.Helper()
	for {
		ev, ok := s.next(t)
		if !ok {
			break
		}
		require.NotEmpty(t, ev.comment, "an event after the end: %+v", ev)
	}
	checkContract(t, s.req, &response{status: s.resp.StatusCode, header: s.resp.Header, body: s.raw.Bytes()})
}

// cloudEvent is the data of an SSE event.
type cloudEvent struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Tenant      string          `json:"tenant"`
	TaskType    string          `json:"tasktype"`
	Attempt     int             `json:"attempt"`
	Data        json.RawMessage `json:"data"`
}

func requireEvent(t testing.TB, ev sseEvent, kind events.Kind, taskID string) cloudEvent {
	t.Helper()
	require.Equal(t, string(kind), ev.event)
	seq, err := strconv.ParseUint(ev.id, 10, 64)
	require.NoError(t, err, "id %q is a stream sequence", ev.id)
	require.Positive(t, seq)
	var ce cloudEvent
	require.NoError(t, json.Unmarshal([]byte(ev.data), &ce), "data: %s", ev.data)
	require.Equal(t, "1.0", ce.SpecVersion)
	require.Equal(t, kind.Type(), ce.Type)
	require.Equal(t, taskID, ce.Subject)
	require.NotEmpty(t, ce.ID)
	return ce
}

func TestEventStreamHistoryThenLive(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo", "input": {"message": "hi"}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	s := openEvents(t, b.client, b.url, id)
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	require.Equal(t, ingest.ContentTypeEventStream, s.resp.Header.Get("Content-Type"))

	submitted := requireEvent(t, s.nextEvent(t), events.KindSubmitted, id)
	require.Equal(t, events.DefaultTenant, submitted.Tenant)
	require.Equal(t, "echo", submitted.TaskType)
	require.JSONEq(t, `{"message": "hi"}`, string(mustField(t, submitted.Data, "input")))
	started := requireEvent(t, s.nextEvent(t), events.KindStarted, id)
	require.Equal(t, 1, started.Attempt)

	// Live events follow as they are stored.
	b.appendEvent(t, id, events.KindProgress, 1, events.Progress{Percent: 50, Message: "half"})
	progress := s.nextEvent(t)
	requireEvent(t, progress, events.KindProgress, id)
	b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"ok": true}`)})
	done := s.nextEvent(t)
	requireEvent(t, done, events.KindSucceeded, id)

	task, err := b.bus.ReadTask(context.Background(), events.DefaultTenant, id)
	require.NoError(t, err)
	require.Equal(t, strconv.FormatUint(task.LastSeq, 10), done.id, "the SSE id is the stream sequence")

	// The stream closes after the end without waiting for delivery
	// records.
	s.requireEnd(t)
}

func TestEventStreamResume(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	s := openEvents(t, b.client, b.url, id)
	requireEvent(t, s.nextEvent(t), events.KindSubmitted, id)
	last := s.nextEvent(t)
	requireEvent(t, last, events.KindStarted, id)
	s.close()

	b.appendEvent(t, id, events.KindProgress, 1, events.Progress{Percent: 10})

	// Another instance on the same stream resumes after Last-Event-ID.
	other, err := ingest.New(context.Background(), ingest.Config{}, b.bus, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(other.Close)
	hs := httptest.NewServer(other.Handler())
	t.Cleanup(hs.Close)

	resumed := openEvents(t, hs.Client(), hs.URL, id, "Last-Event-ID", last.id)
	progress := resumed.nextEvent(t)
	requireEvent(t, progress, events.KindProgress, id)
	b.appendEvent(t, id, events.KindFailed, 1, events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "boom"}})
	requireEvent(t, resumed.nextEvent(t), events.KindFailed, id)
	resumed.requireEnd(t)
}

func TestEventStreamEndedTask(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	require.Equal(t, http.StatusOK, b.do(t, b.request(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", nil)).status)

	s := openEvents(t, b.client, b.url, id)
	requireEvent(t, s.nextEvent(t), events.KindSubmitted, id)
	last := s.nextEvent(t)
	requireEvent(t, last, events.KindCancelled, id)
	s.requireEnd(t)

	// Resuming after the end returns an empty stream at once.
	again := openEvents(t, b.client, b.url, id, "Last-Event-ID", last.id)
	again.requireEnd(t)
	require.Zero(t, b.consumers(t), "no stream waits for an ended task")
}

func TestEventStreamHeartbeat(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.Heartbeat = 20 * time.Millisecond })
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	s := openEvents(t, b.client, b.url, id)
	requireEvent(t, s.nextEvent(t), events.KindSubmitted, id)
	for range 2 {
		ev, ok := s.next(t)
		require.True(t, ok)
		require.Equal(t, "heartbeat", ev.comment)
	}
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	requireEvent(t, s.nextEvent(t), events.KindStarted, id)
}

func TestEventStreamEndsAtShutdown(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	s := openEvents(t, b.client, b.url, id)
	requireEvent(t, s.nextEvent(t), events.KindSubmitted, id)
	require.Eventually(t, func() bool { return b.consumers(t) == 1 }, 10*time.Second, 5*time.Millisecond)

	b.srv.Close()
	s.requireEnd(t)
	require.Eventually(t, func() bool { return b.consumers(t) == 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestEventStreamErrors(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	resp := b.get(t, "/v1/tasks/01J0000000000000000000000/events")
	require.Equal(t, http.StatusNotFound, resp.status)
	resp = b.get(t, "/v1/tasks/"+id+"/events", "Last-Event-ID", "first")
	require.Equal(t, http.StatusBadRequest, resp.status)
	require.Contains(t, resp.problem(t).Detail, "Last-Event-ID")
	resp = b.get(t, "/v1/tasks/bad.id/events")
	require.Equal(t, http.StatusBadRequest, resp.status)
	require.Equal(t, ingest.ProblemInvalidTaskID, resp.problem(t).Type)
}

// mustField returns one field of a JSON object.
func mustField(t testing.TB, object json.RawMessage, name string) json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(object, &fields))
	return fields[name]
}

func TestEventStreamHead(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	// The contract lists GET only, as for every GET route, so the response
	// is checked here.
	resp, err := b.send(b.request(t, http.MethodHead, "/v1/tasks/"+id+"/events", nil))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status, "HEAD returns at once, without following the task")
	require.Equal(t, ingest.ContentTypeEventStream, resp.header.Get("Content-Type"))
	require.Empty(t, resp.body)
}
