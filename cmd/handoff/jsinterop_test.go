package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// TestJavaScriptInterop runs tests/js/interop.mjs against a real handoff
// dev: the official NATS JavaScript client and the CloudEvents JavaScript
// SDK, installed from npm at the versions of tests/js/package-lock.json,
// submit a task straight to NATS and follow it to its end, with no
// Handoff code on their side.
func TestJavaScriptInterop(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "tests", "js")
	for _, tool := range []string{"node", "npm"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the JavaScript interop test needs %s (Node.js 20 or later) on PATH", tool)
	}

	// npm ci installs exactly the lock file into tests/js/node_modules,
	// which git ignores, and takes packages from npm's cache when it has
	// them.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error")
	install.Dir = dir
	out, err := install.CombinedOutput()
	require.NoError(t, err, "npm ci in %s:\n%s", dir, out)

	dev := startDev(t)
	run := exec.CommandContext(ctx, "node", "interop.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "HANDOFF_NATS_URL="+dev.natsURL, "HANDOFF_TIMEOUT_MS=60000")
	out, err = run.CombinedOutput()
	require.NoError(t, err, "node interop.mjs:\n%s", out)
	m := regexp.MustCompile(`task (\S+) succeeded; events: submitted, started, succeeded`).FindSubmatch(out)
	require.NotNil(t, m, "output:\n%s", out)

	// Go agents see the same task through the HTTP and NATS APIs.
	id := string(m[1])
	nc, err := nats.Connect(dev.natsURL)
	require.NoError(t, err)
	defer nc.Close()
	overNATS, err := client.NewNATS(nc)
	require.NoError(t, err)
	for name, api := range map[string]client.API{"http": dev.client(t), "nats": overNATS} {
		v, _, err := api.Get(ctx, id)
		require.NoError(t, err, name)
		require.Equal(t, events.StatusSucceeded, v.Status, name)
		require.JSONEq(t, `{"greeting": "hello from JavaScript", "n": 42, "nested": {"list": [1, "two", true]}}`, string(v.Result), name)
	}
}
