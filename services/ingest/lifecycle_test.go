package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/client"
	"github.com/handoff-dev/handoff/services/ingest"
)

// scheduleWait bounds the wait for a message schedule that fires one to two
// seconds after it was stored.
const scheduleWait = 15 * time.Second

// post sends POST path with body as JSON; an empty body is sent without
// Content-Type.
func (b *bundle) post(t testing.TB, path, body string, header ...string) *response {
	t.Helper()
	if body == "" {
		return b.do(t, b.request(t, http.MethodPost, path, nil, header...))
	}
	header = append([]string{"Content-Type", "application/json"}, header...)
	return b.do(t, b.request(t, http.MethodPost, path, []byte(body), header...))
}

// newTask submits an echo task and returns its id.
func (b *bundle) newTask(t testing.TB, extra string) string {
	t.Helper()
	resp := b.submit(t, `{"type": "echo"`+extra+`}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	return resp.view(t).ID
}

// kinds returns the kinds of the task's stored events.
func (b *bundle) kinds(t testing.TB, id string) []events.Kind {
	t.Helper()
	te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, id, 0)
	require.NoError(t, err)
	var out []events.Kind
	for _, ev := range te.Events {
		out = append(out, ev.Kind)
	}
	return out
}

var (
	started      = events.Started{Attempt: 1, Executor: "e1"}
	retryingData = events.Retrying{Attempt: 1, Error: events.TaskError{Code: events.CodeHandlerError, Message: "boom", Retryable: true}, NextAttemptAt: time.Now().Add(time.Hour)}
	askGrant     = events.InputRequired{
		Prompt:      "Grant read access to the bucket?",
		InputSchema: json.RawMessage(`{"type": "object", "properties": {"grant": {"type": "boolean"}, "note": {"type": "string", "maxLength": 5}}, "required": ["grant"], "additionalProperties": false}`),
		Checkpoint:  json.RawMessage(`{"listed": 40}`),
	}
)

// taskIn returns a new task brought to state by writing the events an
// executor would.
func (b *bundle) taskIn(t testing.TB, state string) string {
	t.Helper()
	if state == "scheduled" {
		return b.newTask(t, `, "run_at": "`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"`)
	}
	id := b.newTask(t, "")
	switch state {
	case "queued":
	case "running":
		b.appendEvent(t, id, events.KindStarted, 1, started)
	case "retrying":
		b.appendEvent(t, id, events.KindStarted, 1, started)
		b.appendEvent(t, id, events.KindRetrying, 1, retryingData)
	case "paused":
		b.appendEvent(t, id, events.KindStarted, 1, started)
		b.appendEvent(t, id, events.KindPauseRequested, 0, nil)
		b.appendEvent(t, id, events.KindPaused, 1, events.Paused{Checkpoint: json.RawMessage(`{"offset": 7}`)})
	case "input_required":
		b.appendEvent(t, id, events.KindStarted, 1, started)
		b.appendEvent(t, id, events.KindInputRequired, 1, askGrant)
	case "succeeded":
		b.appendEvent(t, id, events.KindStarted, 1, started)
		b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`1`)})
	case "cancelled":
		b.appendEvent(t, id, events.KindCancelled, 0, nil)
	default:
		t.Fatalf("unknown state %s", state)
	}
	v := b.get(t, "/v1/tasks/"+id).view(t)
	require.Equal(t, events.Status(state), v.Status)
	return id
}

func TestCancelWaitingTaskAtOnce(t *testing.T) {
	b := setup(t)
	for _, state := range []string{"scheduled", "queued", "retrying", "paused", "input_required"} {
		id := b.taskIn(t, state)
		before := b.get(t, "/v1/tasks/"+id).view(t)

		resp := b.post(t, "/v1/tasks/"+id+"/cancel", `{"reason": "plans changed"}`)
		require.Equal(t, http.StatusOK, resp.status, "%s: %s", state, resp.body)
		v := resp.view(t)
		require.Equal(t, events.StatusCancelled, v.Status, state)
		require.Equal(t, "plans changed", v.Reason, state)
		require.Nil(t, v.InputRequest, state)
		require.Empty(t, resp.header.Get("Retry-After"), state)
		require.Equal(t, before.Created, v.Created, state)

		// The answer folds the events it wrote with their own times, and
		// a read folds them with the stream's, a little later.
		got := b.get(t, "/v1/tasks/"+id).view(t)
		require.False(t, got.Updated.Before(v.Updated), state)
		got.Updated = v.Updated
		require.Equal(t, v, got, "%s: the answer is the stored view", state)
	}
}

func TestCancelScheduledTaskNeverRuns(t *testing.T) {
	b := setup(t)
	runAt := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	deadline := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	resp := b.submit(t, `{"type": "echo", "run_at": "`+runAt+`", "deadline": "`+deadline+`", "metadata": {"k": "v"}}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	scheduled := resp.view(t)
	require.Equal(t, events.StatusScheduled, scheduled.Status)
	require.Equal(t, []events.Kind{events.KindScheduled, events.KindDeadlineScheduled}, b.kinds(t, scheduled.ID))

	// A second task with the same schedules shows when the first one's
	// would have fired.
	witness := b.submit(t, `{"type": "echo", "run_at": "`+runAt+`", "deadline": "`+deadline+`"}`).view(t)

	cancelled := b.post(t, "/v1/tasks/"+scheduled.ID+"/cancel", "").view(t)
	require.Equal(t, events.StatusCancelled, cancelled.Status)
	require.Equal(t, scheduled.Created, cancelled.Created)
	require.Equal(t, scheduled.RunAt, cancelled.RunAt)
	require.Equal(t, scheduled.ExpiresAt, cancelled.ExpiresAt)
	require.Equal(t, map[string]string{"k": "v"}, cancelled.Metadata)

	require.Eventually(t, func() bool {
		task, err := b.bus.ReadTask(context.Background(), events.DefaultTenant, witness.ID)
		return err == nil && task.DeadlinePassed
	}, scheduleWait, 20*time.Millisecond, "the witness task's schedules never fired")

	// The schedules were removed with the events that held them, and the
	// task keeps its submission in the copy written with the cancel.
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindCancelled}, b.kinds(t, scheduled.ID))
	after := b.get(t, "/v1/tasks/"+scheduled.ID).view(t)
	after.Updated = cancelled.Updated
	require.Equal(t, cancelled, after)
}

func TestCancelRunningTaskRequestsCancel(t *testing.T) {
	b := setup(t)
	id := b.taskIn(t, "running")

	resp := b.post(t, "/v1/tasks/"+id+"/cancel", `{"reason": "stop"}`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	v := resp.view(t)
	require.Equal(t, events.StatusRunning, v.Status)
	require.True(t, v.CancelRequested)
	require.Equal(t, "stop", v.Reason)
	require.Positive(t, seconds(t, resp.header))

	// A second cancel changes nothing.
	again := b.post(t, "/v1/tasks/"+id+"/cancel", "")
	require.Equal(t, http.StatusOK, again.status)
	require.Equal(t, v.Sequence, again.view(t).Sequence)
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindCancelRequested}, b.kinds(t, id))

	// The executor records the end, and a cancel that lands before the
	// handler's success made the success impossible.
	task, err := b.bus.ReadTask(context.Background(), events.DefaultTenant, id)
	require.NoError(t, err)
	require.ErrorIs(t, task.Check(events.KindSucceeded), events.ErrIllegalTransition)
	b.appendEvent(t, id, events.KindCancelled, 1, events.Reason{Reason: "stop"})
	require.Equal(t, events.StatusCancelled, b.get(t, "/v1/tasks/"+id).view(t).Status)
}

func TestCancelEndedTaskConflicts(t *testing.T) {
	b := setup(t)
	for _, state := range []string{"succeeded", "cancelled"} {
		id := b.taskIn(t, state)
		resp := b.post(t, "/v1/tasks/"+id+"/cancel", "")
		require.Equal(t, http.StatusConflict, resp.status, state)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidState, p.Type, state)
		require.Equal(t, events.Status(state), p.TaskStatus, state)
		require.Contains(t, p.Detail, "has already ended as "+state, state)
	}
}

func TestPauseQueuedAndRunning(t *testing.T) {
	b := setup(t)

	queued := b.taskIn(t, "queued")
	v := b.post(t, "/v1/tasks/"+queued+"/pause", `{"reason": "wait for the grant"}`).view(t)
	require.Equal(t, events.StatusPaused, v.Status)
	require.Equal(t, "wait for the grant", v.Reason)
	again := b.post(t, "/v1/tasks/"+queued+"/pause", "")
	require.Equal(t, http.StatusOK, again.status)
	require.Equal(t, v.Sequence, again.view(t).Sequence, "pausing a paused task changes nothing")

	retrying := b.taskIn(t, "retrying")
	require.Equal(t, events.StatusPaused, b.post(t, "/v1/tasks/"+retrying+"/pause", "").view(t).Status)

	running := b.taskIn(t, "running")
	v = b.post(t, "/v1/tasks/"+running+"/pause", "").view(t)
	require.Equal(t, events.StatusRunning, v.Status)
	require.True(t, v.PauseRequested)
	require.Equal(t, v.Sequence, b.post(t, "/v1/tasks/"+running+"/pause", "").view(t).Sequence)

	// The executor pauses the attempt with its checkpoint, and a resume
	// queues it again.
	b.appendEvent(t, running, events.KindPaused, 1, events.Paused{Checkpoint: json.RawMessage(`{"offset": 3}`)})
	v = b.post(t, "/v1/tasks/"+running+"/resume", `{"reason": "granted"}`).view(t)
	require.Equal(t, events.StatusQueued, v.Status)
	require.Equal(t, "granted", v.Reason)
	task, err := b.bus.ReadTask(context.Background(), events.DefaultTenant, running)
	require.NoError(t, err)
	require.JSONEq(t, `{"offset": 3}`, string(task.Checkpoint))
	require.Equal(t, 1, task.Resumes)
}

func TestPauseConflicts(t *testing.T) {
	b := setup(t)

	cancelling := b.taskIn(t, "running")
	b.post(t, "/v1/tasks/"+cancelling+"/cancel", "")
	tests := []struct {
		name    string
		id      string
		status  events.Status
		wantMsg string
	}{
		{"scheduled", b.taskIn(t, "scheduled"), events.StatusScheduled, "is scheduled, so it cannot be paused"},
		{"input_required", b.taskIn(t, "input_required"), events.StatusInputRequired, "is input_required, so it cannot be paused"},
		{"cancel requested", cancelling, events.StatusRunning, "a cancel was requested, so it cannot be paused"},
		{"ended", b.taskIn(t, "succeeded"), events.StatusSucceeded, "has already ended as succeeded"},
	}
	for _, tt := range tests {
		resp := b.post(t, "/v1/tasks/"+tt.id+"/pause", "")
		require.Equal(t, http.StatusConflict, resp.status, tt.name)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidState, p.Type, tt.name)
		require.Equal(t, tt.status, p.TaskStatus, tt.name)
		require.Contains(t, p.Detail, tt.wantMsg, tt.name)
	}
}

func TestResumeConflicts(t *testing.T) {
	b := setup(t)

	waiting := b.taskIn(t, "input_required")
	resp := b.post(t, "/v1/tasks/"+waiting+"/resume", "")
	require.Equal(t, http.StatusConflict, resp.status)
	p := resp.problem(t)
	require.Contains(t, p.Detail, "POST /v1/tasks/"+waiting+"/input")
	require.Equal(t, events.StatusInputRequired, p.TaskStatus)

	for _, state := range []string{"queued", "running", "succeeded"} {
		resp := b.post(t, "/v1/tasks/"+b.taskIn(t, state)+"/resume", "")
		require.Equal(t, http.StatusConflict, resp.status, state)
		require.Equal(t, events.Status(state), resp.problem(t).TaskStatus, state)
	}
}

func TestInputAnswersWaitingTask(t *testing.T) {
	b := setup(t)
	id := b.taskIn(t, "input_required")
	v := b.get(t, "/v1/tasks/"+id).view(t)
	require.Equal(t, askGrant.Prompt, v.InputRequest.Prompt)
	require.JSONEq(t, string(askGrant.InputSchema), string(v.InputRequest.InputSchema))

	bad := b.post(t, "/v1/tasks/"+id+"/input", `{"answer": {"grant": "yes", "note": "too long", "extra": 1}}`)
	require.Equal(t, http.StatusUnprocessableEntity, bad.status, "body: %s", bad.body)
	p := bad.problem(t)
	require.Equal(t, ingest.ProblemInvalidAnswer, p.Type)
	require.Contains(t, p.Detail, "3 violations")
	require.Equal(t, []string{"/answer", "/answer/grant", "/answer/note"}, fields(p))
	missing := b.post(t, "/v1/tasks/"+id+"/input", `{"answer": {}}`)
	require.Equal(t, http.StatusUnprocessableEntity, missing.status)
	require.Equal(t, []string{"/answer"}, fields(missing.problem(t)))
	require.Equal(t, events.StatusInputRequired, b.get(t, "/v1/tasks/"+id).view(t).Status, "a rejected answer changes nothing")

	resp := b.post(t, "/v1/tasks/"+id+"/input", `{"answer": {"grant": true}, "reason": "approved"}`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	v = resp.view(t)
	require.Equal(t, events.StatusQueued, v.Status)
	require.Nil(t, v.InputRequest)
	require.Equal(t, "approved", v.Reason)
	task, err := b.bus.ReadTask(context.Background(), events.DefaultTenant, id)
	require.NoError(t, err)
	require.JSONEq(t, `{"grant": true}`, string(task.Answer))
	require.JSONEq(t, `{"listed": 40}`, string(task.Checkpoint))

	// The task waits no more.
	again := b.post(t, "/v1/tasks/"+id+"/input", `{"answer": {"grant": true}}`)
	require.Equal(t, http.StatusConflict, again.status)
	p = again.problem(t)
	require.Equal(t, events.StatusQueued, p.TaskStatus)
	require.Contains(t, p.Detail, "is queued, so it cannot be answered")
}

func TestInputWithoutSchemaTakesAnyAnswer(t *testing.T) {
	b := setup(t)
	id := b.newTask(t, "")
	b.appendEvent(t, id, events.KindStarted, 1, started)
	b.appendEvent(t, id, events.KindInputRequired, 1, events.InputRequired{Prompt: "Anything to add?"})

	v := b.post(t, "/v1/tasks/"+id+"/input", `{"answer": null}`).view(t)
	require.Equal(t, events.StatusQueued, v.Status)
	task, err := b.bus.ReadTask(context.Background(), events.DefaultTenant, id)
	require.NoError(t, err)
	require.Equal(t, json.RawMessage(`null`), task.Answer, "null is an answer")
}

func TestLifecycleRequestBodies(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.MaxInputBytes = testMaxInput })
	id := b.taskIn(t, "running")
	waiting := b.taskIn(t, "input_required")

	tests := []struct {
		name        string
		path        string
		body        string
		contentType string
		status      int
		problem     ingest.ProblemType
		wantMsg     string
	}{
		{"unknown field", "/v1/tasks/" + id + "/cancel", `{"reason": "x", "force": true}`, "", http.StatusBadRequest, ingest.ProblemUnknownField, `unknown field "force"`},
		{"unknown fields", "/v1/tasks/" + id + "/cancel", `{"why": "x", "force": true}`, "", http.StatusBadRequest, ingest.ProblemUnknownField, `unknown fields "force", "why"`},
		{"answer on cancel", "/v1/tasks/" + id + "/cancel", `{"answer": 1}`, "", http.StatusBadRequest, ingest.ProblemUnknownField, "this request has the fields reason"},
		{"reason not a string", "/v1/tasks/" + id + "/pause", `{"reason": 5}`, "", http.StatusBadRequest, ingest.ProblemInvalidRequest, "reason: must be a string"},
		{"reason too long", "/v1/tasks/" + id + "/pause", `{"reason": "` + strings.Repeat("r", ingest.MaxReasonBytes+1) + `"}`, "", http.StatusBadRequest, ingest.ProblemInvalidRequest, "longer than the maximum of 1024"},
		{"not an object", "/v1/tasks/" + id + "/cancel", `["stop"]`, "", http.StatusBadRequest, ingest.ProblemInvalidRequest, "must be a JSON object"},
		{"malformed", "/v1/tasks/" + id + "/cancel", `{"reason":`, "", http.StatusBadRequest, ingest.ProblemMalformedJSON, "not valid JSON"},
		{"text", "/v1/tasks/" + id + "/cancel", `stop`, "text/plain", http.StatusUnsupportedMediaType, ingest.ProblemUnsupportedMediaType, `"text/plain" is not supported`},
		{"body too large", "/v1/tasks/" + id + "/cancel", `{"reason": "` + strings.Repeat("r", 20<<10) + `"}`, "", http.StatusRequestEntityTooLarge, ingest.ProblemBodyTooLarge, "limit of 16384 bytes"},
		{"input without answer", "/v1/tasks/" + waiting + "/input", `{"reason": "x"}`, "", http.StatusBadRequest, ingest.ProblemInvalidRequest, "answer: is required"},
		{"input with empty body", "/v1/tasks/" + waiting + "/input", ``, "", http.StatusBadRequest, ingest.ProblemMalformedJSON, "the request body is empty"},
		{"answer too large", "/v1/tasks/" + waiting + "/input", `{"answer": "` + strings.Repeat("a", testMaxInput) + `"}`, "", http.StatusRequestEntityTooLarge, ingest.ProblemInputTooLarge, "answer is"},
		{"invalid task id", "/v1/tasks/bad.id/cancel", ``, "", http.StatusBadRequest, ingest.ProblemInvalidTaskID, `invalid task id "bad.id" contains '.'`},
		{"unknown task", "/v1/tasks/01JQ4NOSUCHTASK0000000000/resume", ``, "", http.StatusNotFound, ingest.ProblemNotFound, "does not exist"},
	}
	for _, tt := range tests {
		header := []string{}
		if tt.body != "" {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			header = []string{"Content-Type", ct}
		}
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		resp := b.do(t, b.request(t, http.MethodPost, tt.path, body, header...))
		require.Equal(t, tt.status, resp.status, "%s: %s", tt.name, resp.body)
		p := resp.problem(t)
		require.Equal(t, tt.problem, p.Type, tt.name)
		require.Contains(t, p.Detail, tt.wantMsg, tt.name)
	}
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted}, b.kinds(t, id), "no rejected request stored anything")

	// The other methods are not allowed.
	resp := b.do(t, b.request(t, http.MethodGet, "/v1/tasks/"+id+"/cancel", nil))
	require.Equal(t, http.StatusMethodNotAllowed, resp.status)
	require.Equal(t, "POST", resp.header.Get("Allow"))
}

func TestRunAtSchedulesTask(t *testing.T) {
	b := setup(t)
	runAt := time.Now().Add(time.Second)
	resp := b.submit(t, `{"type": "echo", "run_at": "`+runAt.UTC().Format(time.RFC3339Nano)+`"}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	scheduled := resp.view(t)
	require.Equal(t, events.StatusScheduled, scheduled.Status)
	require.True(t, scheduled.RunAt.Equal(runAt), "run_at %s", scheduled.RunAt)
	require.GreaterOrEqual(t, seconds(t, resp.header), 1)

	got := b.get(t, "/v1/tasks/"+scheduled.ID)
	require.Equal(t, events.StatusScheduled, got.view(t).Status)

	var queued events.View
	require.Eventually(t, func() bool {
		queued = b.get(t, "/v1/tasks/"+scheduled.ID).view(t)
		return queued.Status == events.StatusQueued
	}, scheduleWait, 20*time.Millisecond)
	require.Equal(t, scheduled.Created, queued.Created, "created_at stays the time of the submit")
	require.Equal(t, scheduled.ExpiresAt, queued.ExpiresAt)
	require.True(t, queued.RunAt.Equal(runAt))
	require.False(t, queued.Updated.Before(runAt.Truncate(time.Second)), "queued at %s, before run_at %s", queued.Updated, runAt)
	require.Equal(t, []events.Kind{events.KindSubmitted}, b.kinds(t, scheduled.ID))
}

func TestRunAtIdempotentRepeat(t *testing.T) {
	b := setup(t)
	body := `{"type": "echo", "run_at": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
	first := b.submit(t, body, "Idempotency-Key", "delayed-1")
	require.Equal(t, http.StatusAccepted, first.status)
	repeat := b.submit(t, body, "Idempotency-Key", "delayed-1")
	require.Equal(t, http.StatusOK, repeat.status)
	require.Equal(t, first.view(t).ID, repeat.view(t).ID)
	require.Equal(t, events.StatusScheduled, repeat.view(t).Status)
	require.Equal(t, uint64(1), b.storedEvents(t))
}

func TestDeadlineIsScheduled(t *testing.T) {
	b := setup(t)
	deadline := time.Now().Add(time.Second)
	id := b.newTask(t, `, "deadline": "`+deadline.UTC().Format(time.RFC3339Nano)+`"`)
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindDeadlineScheduled}, b.kinds(t, id))

	var task *events.Task
	require.Eventually(t, func() bool {
		var err error
		task, err = b.bus.ReadTask(context.Background(), events.DefaultTenant, id)
		return err == nil && task.DeadlinePassed
	}, scheduleWait, 20*time.Millisecond)
	require.Empty(t, task.Skipped)
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindDeadline}, b.kinds(t, id))
}

func TestTTLExpiresEveryEvent(t *testing.T) {
	b := setup(t)
	id := b.newTask(t, `, "ttl": "2s"`)
	cancelled := b.post(t, "/v1/tasks/"+id+"/cancel", "").view(t)
	require.Equal(t, events.StatusCancelled, cancelled.Status)
	require.Equal(t, cancelled.Created.Add(2*time.Second), cancelled.ExpiresAt)

	require.Eventually(t, func() bool {
		return b.get(t, "/v1/tasks/"+id).status == http.StatusNotFound
	}, 10*time.Second, 50*time.Millisecond)
	// The cancelled event's TTL is rounded up to whole seconds, so it may
	// outlive the submitted one by under a second.
	require.Eventually(t, func() bool {
		_, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, id, 0)
		return errors.Is(err, bus.ErrTaskNotFound)
	}, 2*time.Second, 50*time.Millisecond, "every event expires")
	resp := b.post(t, "/v1/tasks/"+id+"/cancel", "")
	require.Equal(t, http.StatusNotFound, resp.status)
}

// contractTransport checks every response it carries against the API
// contract, so that tests through the Go client are checked too.
type contractTransport struct {
	t    testing.TB
	next http.RoundTripper
}

func (c contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	checkContract(c.t, req, &response{status: resp.StatusCode, header: resp.Header, body: body})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func TestClientLifecycleCalls(t *testing.T) {
	b := setup(t)
	hc := &http.Client{Transport: contractTransport{t: t, next: b.client.Transport}}
	c, err := client.New(b.url, client.WithHTTPClient(hc))
	require.NoError(t, err)
	ctx := context.Background()

	queued := b.taskIn(t, "queued")
	v, err := c.Pause(ctx, queued, "hold on")
	require.NoError(t, err)
	require.Equal(t, events.StatusPaused, v.Status)
	require.Equal(t, "hold on", v.Reason)
	v, err = c.Resume(ctx, queued, "")
	require.NoError(t, err)
	require.Equal(t, events.StatusQueued, v.Status)
	v, err = c.Cancel(ctx, queued, "done with it")
	require.NoError(t, err)
	require.Equal(t, events.StatusCancelled, v.Status)

	_, err = c.Cancel(ctx, queued, "")
	var p *client.ProblemError
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusConflict, p.Status)
	require.Equal(t, events.StatusCancelled, p.TaskStatus)

	waiting := b.taskIn(t, "input_required")
	_, err = c.Answer(ctx, waiting, json.RawMessage(`{"grant": "maybe"}`))
	require.ErrorAs(t, err, &p)
	require.Equal(t, http.StatusUnprocessableEntity, p.Status)
	require.Equal(t, "/answer/grant", p.Errors[0].Pointer)
	v, err = c.Answer(ctx, waiting, json.RawMessage(`{"grant": true}`))
	require.NoError(t, err)
	require.Equal(t, events.StatusQueued, v.Status)
	_, err = c.Answer(ctx, waiting, json.RawMessage(`{"grant":`))
	require.ErrorContains(t, err, "answer is not valid JSON")

	_, err = c.Resume(ctx, "01JQ4NOSUCHTASK0000000000", "")
	require.True(t, client.IsNotFound(err), "error: %v", err)
}
