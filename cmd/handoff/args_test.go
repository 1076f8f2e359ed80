package main

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCLIArgumentErrors checks that wrong arguments fail before any
// request, with a message that names the fault and the usage line.
func TestCLIArgumentErrors(t *testing.T) {
	var requests atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "unexpected", http.StatusTeapot)
	}))
	t.Cleanup(api.Close)

	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"get", ""}, []string{"the task id is empty", "usage: handoff get ID"}},
		{[]string{"cancel", "a.b"}, []string{`invalid task id "a.b" contains '.'`, "usage: handoff cancel"}},
		{[]string{"input", "x y", "{}"}, []string{`invalid task id "x y" contains ' '`}},
		{[]string{"submit"}, []string{"accepts between 1 and 2 arg(s), received 0", "usage: handoff submit TYPE [INPUT_JSON]"}},
		{[]string{"submit", "echo", "{}", "--max-attempts", "abc"}, []string{`invalid argument "abc" for "--max-attempts" flag`, "see handoff submit --help"}},
		{[]string{"submit", "echo", "{}", "--idempotency-key", ""}, []string{"--idempotency-key is empty"}},
	}
	for _, tt := range tests {
		out, err := runCLI(t, api.URL, tt.args...)
		require.Error(t, err, "%q", tt.args)
		for _, want := range tt.want {
			require.Contains(t, out, want, "%q", tt.args)
		}
	}
	require.Zero(t, requests.Load(), "a command with wrong arguments sent a request")
}

// TestBenchZeroFlags checks that a zero given on the command line is
// validated, not replaced by the default.
func TestBenchZeroFlags(t *testing.T) {
	for _, flag := range []string{"--rounds", "--sleep-tasks"} {
		out, err := exec.Command(binary(t, "handoff"), "bench", flag, "0").CombinedOutput()
		require.Error(t, err, flag)
		require.Contains(t, string(out), "invalid", flag)
		require.Contains(t, string(out), " 0: use 1 or more", flag)
	}
}
