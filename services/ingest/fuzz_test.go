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
