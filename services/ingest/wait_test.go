package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

// consumers counts the consumers of the tasks stream: one per running
// wait or event stream.
func (b *bundle) consumers(t testing.TB) int {
	t.Helper()
	ctx := context.Background()
	stream, err := b.bus.JetStream().Stream(ctx, b.bus.Names().TasksStream())
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	return info.State.Consumers
}

// sendAsync sends req in a goroutine and returns a channel with the
// response, which the caller checks against the contract.
func (b *bundle) sendAsync(req *http.Request) <-chan *response {
	out := make(chan *response, 1)
	go func() {
		resp, err := b.send(req)
		if err != nil {
			resp = &response{status: -1, body: []byte(err.Error())}
		}
		out <- resp
	}()
	return out
}

// receive waits for a response of sendAsync and checks it.
func (b *bundle) receive(t testing.TB, req *http.Request, ch <-chan *response) *response {
	t.Helper()
	select {
	case resp := <-ch:
		require.NotEqual(t, -1, resp.status, "request failed: %s", resp.body)
		checkContract(t, req, resp)
		return resp
	case <-time.After(30 * time.Second):
		t.Fatal("no response within 30s")
		return nil
	}
}

func TestGetWaitReturnsOnChange(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	req := b.request(t, http.MethodGet, "/v1/tasks/"+id+"?wait=30s", nil)
	start := time.Now()
	ch := b.sendAsync(req)
	require.Eventually(t, func() bool { return b.consumers(t) == 1 }, 10*time.Second, 5*time.Millisecond, "the request waits")
	seq := b.appendEventFor(t, events.DefaultTenant, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	resp := b.receive(t, req, ch)
	require.Equal(t, http.StatusOK, resp.status)
	require.Less(t, time.Since(start), 20*time.Second)
	v := resp.view(t)
	require.Equal(t, events.StatusRunning, v.Status)
	require.Equal(t, `"`+strconv.FormatUint(seq, 10)+`"`, resp.header.Get("ETag"))
	require.Eventually(t, func() bool { return b.consumers(t) == 0 }, 10*time.Second, 10*time.Millisecond, "the wait's consumer is deleted")
}

func TestGetWaitFromETag(t *testing.T) {
	b := setup(t)
	created := b.submit(t, `{"type": "echo"}`).view(t)
	seq := b.appendEventFor(t, events.DefaultTenant, created.ID, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	// The client's view is older than the task: the answer comes at once.
	stale := `"` + strconv.FormatUint(created.Sequence, 10) + `"`
	resp := b.get(t, "/v1/tasks/"+created.ID+"?wait=30s", "If-None-Match", stale)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, events.StatusRunning, resp.view(t).Status)
	require.Zero(t, b.consumers(t), "no wait was needed")

	// The client's view is current: the wait ends with the next event.
	current := `"` + strconv.FormatUint(seq, 10) + `"`
	req := b.request(t, http.MethodGet, "/v1/tasks/"+created.ID+"?wait=30", nil, "If-None-Match", current)
	ch := b.sendAsync(req)
	require.Eventually(t, func() bool { return b.consumers(t) == 1 }, 10*time.Second, 5*time.Millisecond)
	b.appendEventFor(t, events.DefaultTenant, created.ID, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"ok": true}`)})
	resp = b.receive(t, req, ch)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, events.StatusSucceeded, resp.view(t).Status)
}

func TestGetWaitTimesOut(t *testing.T) {
	b := setup(t)
	created := b.submit(t, `{"type": "echo"}`).view(t)
	etag := `"` + strconv.FormatUint(created.Sequence, 10) + `"`

	start := time.Now()
	resp := b.get(t, "/v1/tasks/"+created.ID+"?wait=300ms", "If-None-Match", etag)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the response was held")
	require.Equal(t, http.StatusNotModified, resp.status, "unchanged, so 304 as without wait")
	require.Equal(t, etag, resp.header.Get("ETag"))

	resp = b.get(t, "/v1/tasks/"+created.ID+"?wait=300ms")
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, events.StatusQueued, resp.view(t).Status)
	require.Positive(t, seconds(t, resp.header), "Retry-After stays")
}

func TestGetWaitEndedTask(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	require.Equal(t, http.StatusOK, b.do(t, b.request(t, http.MethodPost, "/v1/tasks/"+id+"/cancel", nil)).status)

	start := time.Now()
	resp := b.get(t, "/v1/tasks/"+id+"?wait=30s")
	require.Less(t, time.Since(start), 10*time.Second, "an ended task is returned at once")
	require.Equal(t, events.StatusCancelled, resp.view(t).Status)
}

// The schedule of a delayed task publishes its submitted event without a
// client, and a wait sees it.
func TestGetWaitSeesScheduledEvent(t *testing.T) {
	b := setup(t)
	runAt := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	created := b.submit(t, `{"type": "echo", "run_at": "`+runAt+`"}`)
	require.Equal(t, http.StatusAccepted, created.status, "body: %s", created.body)
	require.Equal(t, events.StatusScheduled, created.view(t).Status)

	resp := b.get(t, "/v1/tasks/"+created.view(t).ID+"?wait=30s")
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, events.StatusQueued, resp.view(t).Status)
}

func TestGetWaitInvalid(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.MaxWait = 10 * time.Second })
	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	for _, wait := range []string{"soon", "-1s", "11s", "1h", "1.5", "30s&wait=1s"} {
		resp := b.get(t, "/v1/tasks/"+id+"?wait="+wait)
		require.Equal(t, http.StatusBadRequest, resp.status, wait)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidQuery, p.Type, wait)
		require.Equal(t, []string{"wait"}, fields(p), wait)
	}
	require.Equal(t, http.StatusOK, b.get(t, "/v1/tasks/"+id+"?wait=0").status, "0 does not wait")

	p := b.get(t, "/v1/tasks/"+id+"?wait=-1s").problem(t)
	require.Contains(t, p.Detail, "-1s is negative")
}

func TestGetWaitEndsAtShutdown(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	req := b.request(t, http.MethodGet, "/v1/tasks/"+id+"?wait=60s", nil)
	start := time.Now()
	ch := b.sendAsync(req)
	require.Eventually(t, func() bool { return b.consumers(t) == 1 }, 10*time.Second, 5*time.Millisecond)
	b.srv.Close()

	resp := b.receive(t, req, ch)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, events.StatusQueued, resp.view(t).Status)
	require.Less(t, time.Since(start), 30*time.Second)
}

func TestSubmitPreferWait(t *testing.T) {
	b := setup(t)
	startExecutor(t, b, "echo")

	resp := b.submit(t, `{"type": "echo", "input": {"message": "hi"}}`, "Prefer", "wait=20")
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.Equal(t, "wait=20", resp.header.Get("Preference-Applied"))
	require.Equal(t, "Prefer", resp.header.Get("Vary"))
	require.Empty(t, resp.header.Get("Retry-After"), "an ended task needs no poll")
	v := resp.view(t)
	require.Equal(t, events.StatusSucceeded, v.Status)
	require.JSONEq(t, `{"message": "hi"}`, string(v.Result))
	require.Equal(t, "/v1/tasks/"+v.ID, resp.header.Get("Location"))

	// respond-async with wait is the same request, as RFC 7240 reads it.
	resp = b.submit(t, `{"type": "echo"}`, "Prefer", "respond-async, wait=20")
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "respond-async, wait=20", resp.header.Get("Preference-Applied"))
}

func TestSubmitPreferWaitTimesOut(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.MaxWait = time.Second })

	start := time.Now()
	resp := b.submit(t, `{"type": "echo"}`, "Prefer", "wait=100")
	require.GreaterOrEqual(t, time.Since(start), time.Second, "held up to the server's maximum")
	require.Equal(t, http.StatusAccepted, resp.status)
	require.Equal(t, "wait=1", resp.header.Get("Preference-Applied"), "the wait applied is capped")
	require.Equal(t, "Prefer", resp.header.Get("Vary"))
	require.Positive(t, seconds(t, resp.header))
	require.Equal(t, events.StatusQueued, resp.view(t).Status)

	for prefer, applied := range map[string]string{
		"respond-async":           "respond-async",
		"wait=soon":               "",
		"handling=strict":         "",
		"RESPOND-ASYNC; foo=bar":  "respond-async",
		`wait="0", respond-async`: "respond-async",
		"respond-async, wait=0":   "respond-async",
	} {
		start := time.Now()
		resp := b.submit(t, `{"type": "echo"}`, "Prefer", prefer)
		require.Less(t, time.Since(start), time.Second, prefer)
		require.Equal(t, http.StatusAccepted, resp.status, prefer)
		require.Equal(t, applied, resp.header.Get("Preference-Applied"), prefer)
		require.Equal(t, "Prefer", resp.header.Get("Vary"), prefer)
	}
}

func TestSubmitPreferWaitIdempotentRepeat(t *testing.T) {
	b := setup(t)
	first := b.submit(t, `{"type": "echo"}`, "Idempotency-Key", "job-1")
	require.Equal(t, http.StatusAccepted, first.status)
	id := first.view(t).ID

	startExecutor(t, b, "echo")
	// The executor consumes the earlier submitted event too.
	resp := b.submit(t, `{"type": "echo"}`, "Idempotency-Key", "job-1", "Prefer", "wait=20")
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, id, resp.view(t).ID)
	require.Equal(t, events.StatusSucceeded, resp.view(t).Status)
}
