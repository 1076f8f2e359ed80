package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/ingest"
)

// FuzzSubmitBody posts arbitrary bodies. The server must never fail or
// panic, must respond as the contract describes, and may accept only a body that
// decodes into a valid submission of a registered type.
func FuzzSubmitBody(f *testing.F) {
	b := setup(f)
	for _, seed := range []string{
		`{"type": "echo", "input": {"message": "hi"}}`,
		`{"type": "files.manifest", "input": {"dir": "/srv"}, "timeout": "90s", "ttl": 3600, "max_attempts": 2}`,
		`{"type": "echo", "webhook": {"url": "https://a.example/h"}, "metadata": {"k": "v"}}`,
		`{"type": "echo", "deadline": "2099-01-01T00:00:00Z"}`,
		`{"type": "echo", "run_at": "2099-01-01T00:00:00Z"}`,
		`{"type": "echo", "input": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"type": "echo", "input": "\ud800"}`,
		`{"type": "echo", "timeout": 1e400}`,
		`{"type": "echo", "timeout": -1}`,
		`{"type": "echo", "max_attempts": 99999999999999999999}`,
		`{"type": "echo"} trailing`,
		`{"type": "Echo"}`,
		`{"type": "echo", "type": "files.manifest"}`,
		`{"type": "echo", "webhook": {"url": "http://[::1"}}`,
		"{\"type\": \"echo\", \"metadata\": {\"\": \"\xff\"}}",
		`[]`,
		`null`,
		`"echo"`,
		``,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		req := b.request(t, http.MethodPost, "/v1/tasks", body, "Content-Type", "application/json")
		resp := b.do(t, req)

		require.Less(t, resp.status, 500, "body %q: %s", body, resp.body)
		require.True(t, resp.status == http.StatusAccepted || resp.status >= 400, "status %d for %q", resp.status, body)
		if resp.status == http.StatusAccepted {
			requireValidSubmission(t, body)
			requireStoredSubmission(t, b, resp.view(t).ID)
		}
	})
}

// requireValidSubmission checks, independently of the server's decoder, that
// body is a JSON object that decodes into a valid submission of a
// registered type without run_at.
func requireValidSubmission(t *testing.T, body []byte) {
	t.Helper()
	require.True(t, json.Valid(body), "accepted invalid JSON %q", body)

	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &fields), "accepted a body that is not an object: %q", body)
	var taskType string
	require.NoError(t, json.Unmarshal(fields["type"], &taskType))
	require.Contains(t, []string{"echo", "files.manifest"}, taskType)

	var sub events.Submission
	require.NoError(t, json.Unmarshal(body, &sub), "accepted %q", body)
	require.NoError(t, sub.Validate(time.Now().Add(-time.Minute)), "accepted %q", body)
	require.Nil(t, sub.RunAt, "accepted run_at in %q", body)
	require.Empty(t, sub.RequestHash, "accepted request_hash in %q", body)
	if taskType == "files.manifest" {
		require.True(t, strings.Contains(string(fields["input"]), `"dir"`), "accepted input without dir: %q", body)
	}
}

// requireStoredSubmission checks the stored event of an accepted task
// against submission.json.
func requireStoredSubmission(t *testing.T, b *bundle, id string) {
	t.Helper()
	c, err := loadContract()
	require.NoError(t, err)
	te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, id, 0)
	require.NoError(t, err)
	require.Len(t, te.Events, 1)

	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(te.Events[0].Data))
	require.NoError(t, err)
	require.NoError(t, c.submission.Validate(v), "stored submission: %s", te.Events[0].Data)
}

// FuzzSubscriptionBody posts arbitrary bodies to /v1/subscriptions. The
// server must never fail, must respond as the contract describes, and may
// create a subscription only from a body that decodes into a valid input.
func FuzzSubscriptionBody(f *testing.F) {
	b := setup(f, func(c *ingest.Config) { c.MaxSubscriptions = subscription.MaxMaxPerTenant })
	for _, seed := range []string{
		`{"url": "https://hooks.example.com/h"}`,
		`{"url": "https://hooks.example.com/h", "kinds": ["failed", "expired"], "task_type_prefix": "files", "description": "team"}`,
		`{"url": "http://127.0.0.1/"}`,
		`{"url": "https://a.example/", "kinds": ["failed", "failed"]}`,
		`{"url": "https://a.example/", "kinds": [1]}`,
		`{"url": "https://a.example/", "secret": "whsec_x"}`,
		`{"url": "https://a.example/", "url": "https://b.example/"}`,
		"{\"url\": \"https://a.example/\", \"description\": \"\xff\"}",
		`{"url": null}`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		req := b.request(t, http.MethodPost, "/v1/subscriptions", body, "Content-Type", "application/json")
		resp := b.do(t, req)

		require.Less(t, resp.status, 500, "body %q: %s", body, resp.body)
		if resp.status != http.StatusCreated {
			require.GreaterOrEqual(t, resp.status, 400, "status %d for %q", resp.status, body)
			return
		}
		require.True(t, json.Valid(body), "accepted invalid JSON %q", body)
		var in subscription.Input
		require.NoError(t, json.Unmarshal(body, &in), "accepted %q", body)
		require.NoError(t, in.Validate(webhook.Guard{}), "accepted %q", body)

		// Keep room for the next inputs.
		var created struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &created))
		require.Equal(t, http.StatusNoContent, b.do(t, b.request(t, http.MethodDelete, "/v1/subscriptions/"+created.ID, nil)).status)
	})
}

// FuzzListQuery sends arbitrary queries to GET /v1/tasks. The server must
// never fail, must respond as the contract describes, and must name every
// parameter it rejects.
func FuzzListQuery(f *testing.F) {
	b := setup(f)
	for range 3 {
		b.submit(f, `{"type": "echo"}`)
	}
	cursor := b.listTasks(f, "limit=1").NextCursor
	for _, seed := range []string{
		"",
		"limit=1",
		"limit=1&cursor=" + cursor,
		"type=echo&status=queued,running&limit=500",
		"type=files.%3E&created_after=2030-01-02T15:04:05Z",
		"created_before=2000-01-01T00:00:00.5%2B02:00",
		"status=done&limit=0&colour=red",
		"cursor=" + cursor + "&type=echo",
		"limit=%ff",
		"type=%3E",
		"a;b=c",
		"cursor=MTo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTo",
		"=1",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, query string) {
		if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '#' }) {
			// Not a valid request target: net/http rejects it before
			// any handler runs.
			t.Skip()
		}
		req := b.request(t, http.MethodGet, "/v1/tasks", nil)
		req.URL.RawQuery = query
		resp := b.do(t, req)

		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, resp.status, "query %q: %s", query, resp.body)
		if resp.status == http.StatusBadRequest {
			require.NotEmpty(t, resp.problem(t).Errors, "query %q", query)
		}
	})
}
