package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// lifecycleConfig declares the task types of TestLifecycleCommands. The
// exec types follow docs/exec-protocol.md: grant asks for input with exit
// status 76, and export records a checkpoint and works until it is
// stopped, unless it continues earlier work.
const lifecycleConfig = `
pool: lifecycle
kill_grace: 1s
types:
  sleep:
    handler: sleep
  echo:
    handler: echo
  grant:
    handler: exec
    command: ["./grant.sh"]
  export:
    handler: exec
    command: ["./export.sh"]
`

const grantScript = `#!/bin/sh
input=$(cat)
if [ -n "$HANDOFF_RESUMED" ]; then
	printf '{"stdin":%s}' "$input"
	exit 0
fi
echo 'checkpoint: {"listed": 40}' >&2
echo 'input-required: {"prompt": "Grant read access?", "input_schema": {"type": "boolean"}}' >&2
exit 76
`

const exportScript = `#!/bin/sh
input=$(cat)
if [ -n "$HANDOFF_RESUMED" ]; then
	printf '{"stdin":%s}' "$input"
	exit 0
fi
echo 'checkpoint: {"offset": 7}' >&2
echo 'progress: 10 exporting' >&2
while :; do sleep 0.05; done
`

// runCLI runs the handoff binary against the API at apiURL and returns its
// standard output, and its error output when it fails.
func runCLI(t *testing.T, apiURL string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary(t, "handoff"), append(args, "--api-url", apiURL)...)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		return stderr.String(), err
	}
	return stdout.String(), nil
}

// cliView runs a command that prints a task view and decodes it.
func cliView(t *testing.T, apiURL string, args ...string) events.View {
	t.Helper()
	out, err := runCLI(t, apiURL, args...)
	require.NoError(t, err, "handoff %s: %s", strings.Join(args, " "), out)
	var v events.View
	require.NoError(t, json.Unmarshal([]byte(out), &v), "output: %s", out)
	return v
}

// waitStatus polls the task until its status is want.
func waitStatus(t *testing.T, c *client.Client, id string, want events.Status) *events.View {
	t.Helper()
	var v *events.View
	require.Eventually(t, func() bool {
		var err error
		v, _, err = c.Get(context.Background(), id)
		return err == nil && v.Status == want
	}, 60*time.Second, 50*time.Millisecond, "task %s never became %s", id, want)
	return v
}

// TestLifecycleCommands drives cancel, pause, resume, input, run_at and
// deadlines through the CLI and the HTTP API of a real `handoff dev`.
func TestLifecycleCommands(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "handoff.yaml"), []byte(lifecycleConfig), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "grant.sh"), []byte(grantScript), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "export.sh"), []byte(exportScript), 0o755))
	dev := startDev(t, "--config", filepath.Join(dir, "handoff.yaml"))
	c := dev.client(t)
	ctx := context.Background()
	submit := func(req client.SubmitRequest) string {
		t.Helper()
		res, err := c.Submit(ctx, req, client.SubmitOptions{})
		require.NoError(t, err)
		return res.Task.ID
	}

	t.Run("cancel stops a running task", func(t *testing.T) {
		id := submit(client.SubmitRequest{Type: "sleep", Input: json.RawMessage(`{"seconds": 60}`)})
		waitStatus(t, c, id, events.StatusRunning)

		v := cliView(t, dev.apiURL, "cancel", id, "--reason", "no longer needed")
		require.True(t, v.Status == events.StatusCancelled || v.CancelRequested, "view: %+v", v)
		v = *waitDone(t, c, id)
		require.Equal(t, events.StatusCancelled, v.Status)
		require.Equal(t, "no longer needed", v.Reason)

		out, err := runCLI(t, dev.apiURL, "cancel", id)
		require.Error(t, err, "cancelling an ended task fails")
		require.Contains(t, out, "409")
		require.Contains(t, out, "has already ended as cancelled")
	})

	t.Run("pause keeps the checkpoint and resume continues", func(t *testing.T) {
		id := submit(client.SubmitRequest{Type: "export", Input: json.RawMessage(`{"table": "orders"}`)})
		waitStatus(t, c, id, events.StatusRunning)

		v := cliView(t, dev.apiURL, "pause", id, "--reason", "maintenance")
		require.True(t, v.Status == events.StatusPaused || v.PauseRequested, "view: %+v", v)
		waitStatus(t, c, id, events.StatusPaused)

		v = cliView(t, dev.apiURL, "resume", id)
		require.Equal(t, events.StatusQueued, v.Status)
		v = *waitDone(t, c, id)
		require.Equal(t, events.StatusSucceeded, v.Status, "error: %+v", v.Error)
		require.JSONEq(t, `{"stdin": {"table": "orders", "checkpoint": {"offset": 7}}}`, string(v.Result))
		require.Equal(t, 2, v.Attempt)
	})

	t.Run("input answers a waiting task", func(t *testing.T) {
		id := submit(client.SubmitRequest{Type: "grant", Input: json.RawMessage(`{"bucket": "reports"}`)})
		v := waitStatus(t, c, id, events.StatusInputRequired)
		require.Equal(t, "Grant read access?", v.InputRequest.Prompt)

		out, err := runCLI(t, dev.apiURL, "input", id, `"yes"`)
		require.Error(t, err, "an answer that fails the schema is rejected")
		require.Contains(t, out, "422")
		require.Contains(t, out, "/answer")

		v2 := cliView(t, dev.apiURL, "input", id, "true")
		require.Equal(t, events.StatusQueued, v2.Status)
		v = waitDone(t, c, id)
		require.Equal(t, events.StatusSucceeded, v.Status, "error: %+v", v.Error)
		require.JSONEq(t, `{"stdin": {"bucket": "reports", "checkpoint": {"listed": 40}, "answer": true}}`, string(v.Result))

		out, err = runCLI(t, dev.apiURL, "input", id, "true")
		require.Error(t, err)
		require.Contains(t, out, "409")
	})

	t.Run("run_at delays a task", func(t *testing.T) {
		runAt := time.Now().Add(2 * time.Second)
		res, err := c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"n": 1}`), RunAt: &runAt}, client.SubmitOptions{})
		require.NoError(t, err)
		require.Equal(t, events.StatusScheduled, res.Task.Status)

		v := waitDone(t, c, res.Task.ID)
		require.Equal(t, events.StatusSucceeded, v.Status)
		require.JSONEq(t, `{"n": 1}`, string(v.Result))
		require.False(t, v.Updated.Before(runAt.Truncate(time.Second)), "ran at %s, before run_at %s", v.Updated, runAt)
		require.Equal(t, res.Task.Created, v.Created)
	})

	t.Run("submit --run-at schedules a task", func(t *testing.T) {
		v := cliView(t, dev.apiURL, "submit", "echo", `{"n": 2}`, "--run-at", "2s")
		require.Equal(t, events.StatusScheduled, v.Status)
		require.NotNil(t, v.RunAt)
		require.WithinDuration(t, time.Now().Add(2*time.Second), *v.RunAt, 2*time.Second)
		require.Equal(t, events.StatusSucceeded, waitDone(t, c, v.ID).Status)

		out, err := runCLI(t, dev.apiURL, "submit", "echo", "--run-at", "soon")
		require.Error(t, err)
		require.Contains(t, out, `invalid --run-at: "soon" is neither an RFC 3339 time nor a duration`)
	})

	t.Run("a deadline expires a running task", func(t *testing.T) {
		deadline := time.Now().Add(2 * time.Second)
		id := submit(client.SubmitRequest{Type: "sleep", Input: json.RawMessage(`{"seconds": 60}`), Deadline: &deadline})
		v := waitDone(t, c, id)
		require.Equal(t, events.StatusExpired, v.Status)
		require.False(t, v.Updated.Before(deadline))
	})
}
