package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
	"github.com/handoff-dev/handoff/services/ingest"
)

// transports returns an HTTP and a NATS client of the bundle's server,
// which serves its NATS API until the test ends.
func (b *bundle) transports(t *testing.T, token string) map[string]client.API {
	t.Helper()
	httpClient, _ := b.newClient(t, client.WithToken(token))
	natsClient, err := client.NewNATS(b.serveNATS(t), client.WithNATSToken(token))
	require.NoError(t, err)
	return map[string]client.API{"http": httpClient, "nats": natsClient}
}

func TestClientAPISubmitAndWait(t *testing.T) {
	b := setup(t)
	startExecutor(t, b, "echo")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for name, c := range b.transports(t, "") {
		t.Run(name, func(t *testing.T) {
			res, err := c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"message": "` + name + `"}`)}, client.SubmitOptions{})
			require.NoError(t, err)
			require.True(t, res.Created)
			require.Positive(t, res.RetryAfter)

			var seen []events.Status
			v, err := c.Wait(ctx, res.Task.ID, 0, func(v *events.View) { seen = append(seen, v.Status) })
			require.NoError(t, err)
			require.Equal(t, events.StatusSucceeded, v.Status)
			require.JSONEq(t, `{"message": "`+name+`"}`, string(v.Result))
			require.NotEmpty(t, seen)
			require.Equal(t, events.StatusSucceeded, seen[len(seen)-1], "the last change is the end")

			got, retry, err := c.Get(ctx, res.Task.ID)
			require.NoError(t, err)
			require.Equal(t, v.Sequence, got.Sequence)
			require.Zero(t, retry, "an ended task has no poll hint")
		})
	}
}

func TestClientAPISubmitWithWait(t *testing.T) {
	b := setup(t)
	startExecutor(t, b, "echo")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for name, c := range b.transports(t, "") {
		t.Run(name, func(t *testing.T) {
			req := client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"message": "sync"}`)}
			opts := client.SubmitOptions{IdempotencyKey: "sync-" + name, Wait: 20 * time.Second}
			res, err := c.Submit(ctx, req, opts)
			require.NoError(t, err)
			require.True(t, res.Created, "a new task that ended within the wait")
			require.Equal(t, events.StatusSucceeded, res.Task.Status)
			require.JSONEq(t, `{"message": "sync"}`, string(res.Task.Result))

			again, err := c.Submit(ctx, req, opts)
			require.NoError(t, err)
			require.False(t, again.Created, "a repeat of the key")
			require.Equal(t, res.Task.ID, again.Task.ID)

			// A task that no executor runs is still queued after the wait.
			slow, err := c.Submit(ctx, client.SubmitRequest{Type: "files.manifest", Input: json.RawMessage(`{"dir": "."}`)}, client.SubmitOptions{Wait: time.Second})
			require.NoError(t, err)
			require.True(t, slow.Created)
			require.Equal(t, events.StatusQueued, slow.Task.Status)
		})
	}
}

func TestClientAPIWatch(t *testing.T) {
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for name, c := range b.transports(t, "") {
		t.Run(name, func(t *testing.T) {
			id := b.newTask(t, "")
			evs, err := c.Watch(ctx, id)
			require.NoError(t, err)
			submitted := <-evs
			require.Equal(t, events.KindSubmitted, submitted.Kind)
			require.Equal(t, id, submitted.TaskID)
			require.Positive(t, submitted.Seq)

			b.appendEvent(t, id, events.KindStarted, 1, started)
			b.appendEvent(t, id, events.KindProgress, 1, events.Progress{Percent: 50})
			b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"n": 1}`)})
			var rest []events.Kind
			var last uint64
			for ev := range evs {
				rest = append(rest, ev.Kind)
				require.Greater(t, ev.Seq, last, "stream order")
				last = ev.Seq
			}
			require.Equal(t, []events.Kind{events.KindStarted, events.KindProgress, events.KindSucceeded}, rest, "the channel closes after the end")

			// An ended task delivers its history and closes.
			evs, err = c.Watch(ctx, id)
			require.NoError(t, err)
			var all []events.Kind
			for ev := range evs {
				all = append(all, ev.Kind)
			}
			require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindProgress, events.KindSucceeded}, all)

			_, err = c.Watch(ctx, "01J0000000000000000000000")
			require.True(t, client.IsNotFound(err), "err: %v", err)
		})
	}
}

func TestClientAPILifecycle(t *testing.T) {
	b := setup(t)
	ctx := context.Background()

	for name, c := range b.transports(t, "") {
		t.Run(name, func(t *testing.T) {
			// No executor runs files.manifest, so the task stays queued.
			res, err := c.Submit(ctx, client.SubmitRequest{Type: "files.manifest", Input: json.RawMessage(`{"dir": "/srv"}`)}, client.SubmitOptions{})
			require.NoError(t, err)
			id := res.Task.ID

			v, err := c.Pause(ctx, id, "later")
			require.NoError(t, err)
			require.Equal(t, events.StatusPaused, v.Status)
			v, err = c.Resume(ctx, id, "")
			require.NoError(t, err)
			require.Equal(t, events.StatusQueued, v.Status)
			v, err = c.Cancel(ctx, id, "no longer needed")
			require.NoError(t, err)
			require.Equal(t, events.StatusCancelled, v.Status)

			_, err = c.Cancel(ctx, id, "")
			var problem *client.ProblemError
			require.ErrorAs(t, err, &problem)
			require.Equal(t, http.StatusConflict, problem.Status)
			require.Equal(t, events.StatusCancelled, problem.TaskStatus)

			waiting := b.taskIn(t, "input_required")
			_, err = c.Answer(ctx, waiting, json.RawMessage(`{"grant": "yes"}`))
			require.ErrorAs(t, err, &problem)
			require.Equal(t, http.StatusUnprocessableEntity, problem.Status)
			require.Equal(t, "/answer/grant", problem.Errors[0].Pointer)
			v, err = c.Answer(ctx, waiting, json.RawMessage(`{"grant": true}`))
			require.NoError(t, err)
			require.Equal(t, events.StatusQueued, v.Status)

			_, err = c.Submit(ctx, client.SubmitRequest{Type: "files.manifest", Input: json.RawMessage(`{"dir": 7}`)}, client.SubmitOptions{})
			require.ErrorAs(t, err, &problem)
			require.Equal(t, http.StatusUnprocessableEntity, problem.Status)
			require.Equal(t, string(ingest.ProblemInvalidInput), problem.Type)

			_, _, err = c.Get(ctx, "01J0000000000000000000000")
			require.True(t, client.IsNotFound(err), "err: %v", err)
		})
	}
}

func TestClientAPIListAndTypes(t *testing.T) {
	token, entry := issueToken(t, "acme", "ci")
	b, _ := setupTokens(t, []ingest.TokenEntry{entry})
	ctx := context.Background()
	var created []string
	for range 3 {
		resp := b.submit(t, `{"type": "echo"}`, bearer(token)...)
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		created = append(created, resp.view(t).ID)
	}

	for name, c := range b.transports(t, token) {
		t.Run(name, func(t *testing.T) {
			var listed []string
			opts := client.ListOptions{Type: "echo", Statuses: []events.Status{events.StatusQueued, events.StatusRunning}, Limit: 2}
			for {
				page, err := c.List(ctx, opts)
				require.NoError(t, err)
				listed = append(listed, ids(page.Tasks)...)
				if page.NextCursor == "" {
					break
				}
				opts.Cursor = page.NextCursor
			}
			require.Equal(t, reversed(created), listed)

			types, err := c.Types(ctx)
			require.NoError(t, err)
			require.Len(t, types, 2)
			require.Equal(t, "echo", types[0].Name)
			require.Equal(t, manifestTimeout, types[1].DefaultTimeout.Std())
		})
	}

	// Without the token both transports are refused alike.
	for name, c := range b.transports(t, "") {
		_, err := c.Types(ctx)
		var problem *client.ProblemError
		require.ErrorAs(t, err, &problem, name)
		require.Equal(t, http.StatusUnauthorized, problem.Status, name)
	}
}

func TestNATSClientWaitEndsWithContext(t *testing.T) {
	b := setup(t)
	c, err := client.NewNATS(b.serveNATS(t))
	require.NoError(t, err)
	id := b.newTask(t, "")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	v, err := c.Wait(ctx, id, 0, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotNil(t, v)
	require.Equal(t, events.StatusQueued, v.Status, "the last view comes with the error")
	require.Eventually(t, func() bool { return b.consumers(t) == 0 }, 10*time.Second, 10*time.Millisecond, "the watch's consumer is deleted")
}

func TestNATSClientWithoutService(t *testing.T) {
	b := setup(t)
	nc := b.nats.Connect(t)
	c, err := client.NewNATS(nc, client.WithNamespace("elsewhere"), client.WithRequestTimeout(time.Second))
	require.NoError(t, err)
	_, err = c.Types(context.Background())
	require.ErrorIs(t, err, client.ErrNoService)

	_, err = client.NewNATS(nc, client.WithNamespace("Not.Valid"))
	require.Error(t, err)
	_, err = client.NewNATS(nil)
	require.Error(t, err)
}
