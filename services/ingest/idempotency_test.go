package ingest_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestIdempotentRepeat(t *testing.T) {
	b := setup(t)
	const key = "8e03978e-40d5-43e8-bc93-6894a57f9324"

	first := b.submit(t, `{"type": "files.manifest", "input": {"dir": "/srv", "pattern": "*.csv"}, "metadata": {"a": "1", "b": "2"}}`, "Idempotency-Key", key)
	require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)
	fv := first.view(t)
	require.Regexp(t, `^idem_[a-z2-7]{32}$`, fv.ID)

	// The same request, with keys in another order and other whitespace.
	repeat := b.submit(t, `{"metadata": {"b": "2", "a": "1"}, "input": {"pattern": "*.csv", "dir": "/srv"},   "type": "files.manifest"}`, "Idempotency-Key", key)
	require.Equal(t, http.StatusOK, repeat.status, "body: %s", repeat.body)
	rv := repeat.view(t)
	require.Equal(t, fv.ID, rv.ID)
	require.Equal(t, fv.Sequence, rv.Sequence)
	require.Equal(t, first.header.Get("Location"), repeat.header.Get("Location"))
	require.Positive(t, seconds(t, repeat.header))
	require.Equal(t, uint64(1), b.storedEvents(t))

	different := b.submit(t, `{"type": "files.manifest", "input": {"dir": "/srv/other"}}`, "Idempotency-Key", key)
	require.Equal(t, http.StatusUnprocessableEntity, different.status)
	p := different.problem(t)
	require.Equal(t, ingest.ProblemIdempotencyKeyReused, p.Type)
	require.Contains(t, p.Detail, fv.ID)
	require.Equal(t, uint64(1), b.storedEvents(t))

	otherKey := b.submit(t, `{"type": "files.manifest", "input": {"dir": "/srv", "pattern": "*.csv"}, "metadata": {"a": "1", "b": "2"}}`, "Idempotency-Key", key+"-2")
	require.Equal(t, http.StatusAccepted, otherKey.status)
	require.NotEqual(t, fv.ID, otherKey.view(t).ID)
}

func TestIdempotentNullInputEqualsMissing(t *testing.T) {
	b := setup(t)

	first := b.submit(t, `{"type": "echo"}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusAccepted, first.status)
	repeat := b.submit(t, `{"type": "echo", "input": null}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusOK, repeat.status, "body: %s", repeat.body)
	require.Equal(t, first.view(t).ID, repeat.view(t).ID)
}

// A repeat after the task ended returns the finished task. Nothing here
// depends on the stream's duplicate window (2 minutes): every request
// publishes an event with a new id, so the window never detects a duplicate.
// The repeat is found because the first submitted event was appended
// expecting the task to have no events (sequence 0), and the key maps to
// that task for as long as its events are kept.
func TestIdempotentRepeatAfterTaskEnded(t *testing.T) {
	b := setup(t)
	body := `{"type": "echo", "input": {"message": "hi"}}`

	first := b.submit(t, body, "Idempotency-Key", "report-2026-q3")
	require.Equal(t, http.StatusAccepted, first.status)
	id := first.view(t).ID

	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"message": "hi"}`)})

	repeat := b.submit(t, body, "Idempotency-Key", "report-2026-q3")
	require.Equal(t, http.StatusOK, repeat.status, "body: %s", repeat.body)
	v := repeat.view(t)
	require.Equal(t, id, v.ID)
	require.Equal(t, events.StatusSucceeded, v.Status)
	require.JSONEq(t, `{"message": "hi"}`, string(v.Result))
	require.Empty(t, repeat.header.Get("Retry-After"), "a finished task needs no polling")
	require.Equal(t, uint64(3), b.storedEvents(t))

	different := b.submit(t, `{"type": "echo"}`, "Idempotency-Key", "report-2026-q3")
	require.Equal(t, http.StatusUnprocessableEntity, different.status)
	require.Equal(t, ingest.ProblemIdempotencyKeyReused, different.problem(t).Type)
}

func TestIdempotentRepeatSkipsRevalidation(t *testing.T) {
	b := setup(t)
	deadline := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	body := `{"type": "echo", "deadline": "` + deadline + `"}`

	first := b.submit(t, body, "Idempotency-Key", "k")
	require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)

	// Once the deadline has passed, the same request without a key is
	// invalid, but the repeat still finds its task.
	require.Eventually(t, func() bool {
		resp, err := b.send(b.request(t, http.MethodPost, "/v1/tasks", []byte(body), "Content-Type", "application/json"))
		return err == nil && resp.status == http.StatusUnprocessableEntity
	}, 5*time.Second, 50*time.Millisecond)
	repeat := b.submit(t, body, "Idempotency-Key", "k")
	require.Equal(t, http.StatusOK, repeat.status, "body: %s", repeat.body)
	require.Equal(t, first.view(t).ID, repeat.view(t).ID)
}

func TestIdempotentConcurrentRequests(t *testing.T) {
	b := setup(t)
	const n = 16
	body := []byte(`{"type": "echo", "input": {"message": "once"}}`)

	reqs := make([]*http.Request, n)
	resps := make([]*response, n)
	errs := make([]error, n)
	for i := range reqs {
		reqs[i] = b.request(t, http.MethodPost, "/v1/tasks", body, "Content-Type", "application/json", "Idempotency-Key", "same")
	}
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { resps[i], errs[i] = b.send(reqs[i]) })
	}
	wg.Wait()

	created := 0
	ids := map[string]bool{}
	for i, resp := range resps {
		require.NoError(t, errs[i])
		checkContract(t, reqs[i], resp)
		require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, resp.status, "body: %s", resp.body)
		if resp.status == http.StatusAccepted {
			created++
		}
		ids[resp.view(t).ID] = true
	}
	require.Equal(t, 1, created, "exactly one request creates the task")
	require.Len(t, ids, 1, "every request names the same task")
	require.Equal(t, uint64(1), b.storedEvents(t))
}
