package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
	"github.com/handoff-dev/handoff/services/ingest"
)

// countingTransport counts the requests a client sends, by method and
// path.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[req.Method+" "+req.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

func (c *countingTransport) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// newClient returns a client of the bundle's server and the counter of its
// requests.
func (b *bundle) newClient(t testing.TB, opts ...client.Option) (*client.Client, *countingTransport) {
	t.Helper()
	counter := &countingTransport{next: b.client.Transport, n: map[string]int{}}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Transport: counter, Timeout: time.Minute})}, opts...)
	c, err := client.New(b.url, opts...)
	require.NoError(t, err)
	return c, counter
}

// An agent hands off 100 tasks and waits for all of them without polling
// at a fixed pace: each wait is a request that the server holds until the
// task changes.
func TestAgentHandsOffHundredTasks(t *testing.T) {
	b := setup(t)
	startExecutor(t, b, "echo")
	c, counter := b.newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const n = 100
	ids := make([]string, n)
	for i := range ids {
		input := json.RawMessage(fmt.Sprintf(`{"message": "task %d"}`, i))
		submitted, err := c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: input}, client.SubmitOptions{IdempotencyKey: fmt.Sprintf("agent-%d", i)})
		require.NoError(t, err)
		require.True(t, submitted.Created)
		ids[i] = submitted.Task.ID
	}

	results := make([]*events.View, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 25)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = c.Wait(ctx, id, 0, nil)
		}()
	}
	wg.Wait()

	for i := range ids {
		require.NoError(t, errs[i], "task %d", i)
		require.Equal(t, events.StatusSucceeded, results[i].Status, "task %d", i)
		require.JSONEq(t, fmt.Sprintf(`{"message": "task %d"}`, i), string(results[i].Result))
		// One request to learn the task ended, or two when it was still
		// queued or running at the first: never a polling loop.
		require.LessOrEqual(t, counter.count("GET /v1/tasks/"+ids[i]), 3, "task %d", i)
	}

	page, err := c.List(ctx, client.ListOptions{Statuses: []events.Status{events.StatusSucceeded}, Limit: 500})
	require.NoError(t, err)
	require.Len(t, page.Tasks, n)
	require.Empty(t, page.NextCursor)
}

func TestClientWatch(t *testing.T) {
	b := setup(t)
	c, _ := b.newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	id := b.submit(t, `{"type": "echo"}`).view(t).ID
	evs, err := c.Watch(ctx, id)
	require.NoError(t, err)

	submitted := <-evs
	require.Equal(t, events.KindSubmitted, submitted.Kind)
	require.Equal(t, id, submitted.TaskID)
	require.Positive(t, submitted.Seq)

	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	started := <-evs
	require.Equal(t, events.KindStarted, started.Kind)
	require.Equal(t, 1, started.Attempt)
	require.Greater(t, started.Seq, submitted.Seq)

	// The server shuts its streams down; the client reconnects and resumes
	// after the last event it delivered.
	b.srv.Close()
	b.appendEvent(t, id, events.KindProgress, 1, events.Progress{Percent: 40})
	b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"n": 1}`)})
	var rest []events.Kind
	for ev := range evs {
		rest = append(rest, ev.Kind)
	}
	require.Equal(t, []events.Kind{events.KindProgress, events.KindSucceeded}, rest, "no event lost or repeated, and the channel closes after the end")

	_, err = c.Watch(ctx, "01J0000000000000000000000")
	require.True(t, client.IsNotFound(err), "err: %v", err)
}

func TestClientWaitTimesOutWithContext(t *testing.T) {
	b := setup(t)
	c, _ := b.newClient(t)
	id := b.submit(t, `{"type": "echo"}`).view(t).ID

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	v, err := c.Wait(ctx, id, 0, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotNil(t, v)
	require.Equal(t, events.StatusQueued, v.Status, "the last view comes with the error")
}

func TestClientListAndTypes(t *testing.T) {
	b := setup(t)
	c, _ := b.newClient(t)
	ctx := context.Background()
	created := b.submitN(t, 5, `{"type": "echo"}`)

	var listed []string
	opts := client.ListOptions{Type: "echo", Limit: 2}
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

	_, err := c.List(ctx, client.ListOptions{Limit: 1000})
	var problem *client.ProblemError
	require.ErrorAs(t, err, &problem)
	require.Equal(t, http.StatusBadRequest, problem.Status)
	require.Equal(t, "limit", problem.Errors[0].Field)

	types, err := c.Types(ctx)
	require.NoError(t, err)
	require.Len(t, types, 2)
	require.Equal(t, "files.manifest", types[1].Name)
	require.Equal(t, manifestTimeout, types[1].DefaultTimeout.Std())
	require.JSONEq(t, manifestSchema, string(types[1].InputSchema))
}

func TestClientSubscriptions(t *testing.T) {
	token, entry := issueToken(t, "acme", "ci")
	b, _ := setupTokens(t, []ingest.TokenEntry{entry})
	c, _ := b.newClient(t, client.WithToken(token))
	ctx := context.Background()

	created, err := c.CreateSubscription(ctx, client.SubscriptionRequest{URL: "https://hooks.example.com/", Kinds: []events.Kind{events.KindFailed}, TaskTypePrefix: "files"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(created.Secret, "whsec_"))
	require.Equal(t, "acme", created.Tenant)
	require.Equal(t, "active", created.Status)

	got, err := c.GetSubscription(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, created.Subscription, *got)
	list, err := c.Subscriptions(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)

	rotated, err := c.RotateSubscriptionSecret(ctx, created.ID, 0)
	require.NoError(t, err)
	require.NotEqual(t, created.Secret, rotated.Secret)
	require.Nil(t, rotated.PreviousSecretEnds, "no overlap")
	rotated, err = c.RotateSubscriptionSecret(ctx, created.ID, -1)
	require.NoError(t, err)
	require.NotNil(t, rotated.PreviousSecretEnds, "the server's default overlap")

	require.NoError(t, c.DeleteSubscription(ctx, created.ID))
	_, err = c.GetSubscription(ctx, created.ID)
	require.True(t, client.IsNotFound(err))

	_, err = c.CreateSubscription(ctx, client.SubscriptionRequest{URL: "http://127.0.0.1/"})
	var problem *client.ProblemError
	require.ErrorAs(t, err, &problem)
	require.Equal(t, http.StatusUnprocessableEntity, problem.Status)

	anonymous, _ := b.newClient(t)
	_, err = anonymous.Subscriptions(ctx)
	require.ErrorAs(t, err, &problem)
	require.Equal(t, http.StatusUnauthorized, problem.Status)
}
