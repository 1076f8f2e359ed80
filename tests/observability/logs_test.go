package observability

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/services/executor"
	"github.com/handoff-dev/handoff/services/ingest"
)

// Secrets planted where the services see them and must not log them.
const (
	inputSecret    = "planted-input-3d9f1c"
	resultSecret   = "planted-result-7a2e44"
	progressSecret = "planted-progress-5b81d0"
	errorSecret    = "planted-error-c0ffee"
	querySecret    = "planted-query-91ab3e"
	answerSecret   = "planted-answer-e4d2a7"
)

func TestLogsHideSecrets(t *testing.T) {
	token, _, err := ingest.NewToken("acme", "observability-test")
	require.NoError(t, err)
	keeper := func(ctx context.Context, task *executor.Task) (any, error) {
		task.Progress(50, "halfway with "+progressSecret)
		return map[string]string{"token": resultSecret}, nil
	}
	leaky := func(context.Context, *executor.Task) (any, error) {
		return nil, executor.Permanent(errors.New("the upstream rejected key " + errorSecret))
	}
	asker := func(ctx context.Context, task *executor.Task) (any, error) {
		if task.Answer() != nil {
			return map[string]json.RawMessage{"answer": task.Answer()}, nil
		}
		return nil, executor.AskInput("the password, please", nil, nil)
	}
	s := startStack(t, stackOptions{
		token:    token,
		handlers: map[string]executor.Handler{"secret.keeper": keeper, "secret.leaky": leaky, "secret.asker": asker},
	})
	rcv := newReceiver(t, http.StatusServiceUnavailable, http.StatusOK)
	webhook := map[string]any{"url": rcv.URL + "/hook?token=" + querySecret}

	ids := []string{
		s.submit(t, map[string]any{"type": "echo", "input": map[string]any{"password": inputSecret}, "webhook": webhook}),
		s.submit(t, map[string]any{"type": "secret.keeper", "input": map[string]any{"password": inputSecret}, "webhook": webhook}),
		s.submit(t, map[string]any{"type": "secret.leaky", "input": map[string]any{"password": inputSecret}, "webhook": webhook}),
	}
	inputTask := s.submit(t, map[string]any{"type": "secret.asker", "input": map[string]any{"password": inputSecret}, "webhook": webhook})
	s.waitStatus(t, inputTask, "input_required")
	resp := s.do(t, http.MethodPost, "/v1/tasks/"+inputTask+"/input", map[string]any{"answer": map[string]any{"password": answerSecret}})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", resp.body)
	ids = append(ids, inputTask)

	for _, id := range ids[:2] {
		s.waitStatus(t, id, "succeeded")
	}
	s.waitStatus(t, ids[2], "failed")
	s.waitStatus(t, inputTask, "succeeded")
	// The receiver gets input_required and the four terminal events, one
	// of them twice after its first request failed.
	require.Eventually(t, func() bool { return len(rcv.received()) == 6 }, waitFor, tick)
	for _, h := range rcv.received() {
		require.NotEmpty(t, h.Get("webhook-signature"), "the secret was used")
	}

	entries := s.logs.All()
	require.NotEmpty(t, entries)
	secrets := map[string]string{
		"input":          inputSecret,
		"result":         resultSecret,
		"progress":       progressSecret,
		"handler error":  errorSecret,
		"webhook query":  querySecret,
		"input answer":   answerSecret,
		"bearer token":   token,
		"webhook secret": s.secret,
		// The key of the secret alone, without its whsec_ prefix.
		"webhook key": strings.TrimPrefix(s.secret, "whsec_"),
	}
	encoder := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg", NameKey: "logger"})
	services := map[string]int{}
	for _, entry := range entries {
		buf, err := encoder.EncodeEntry(entry.Entry, entry.Context)
		require.NoError(t, err)
		line := buf.String()
		buf.Free()
		for what, secret := range secrets {
			require.NotContains(t, line, secret, "a %s log line shows the %s", entry.LoggerName, what)
		}

		// Every line about a task names it fully.
		fields := entry.ContextMap()
		if _, ok := fields[logging.KeyTaskID]; ok {
			require.Contains(t, fields, logging.KeyTenant, "%s: %s", entry.LoggerName, line)
			require.Contains(t, fields, logging.KeyTaskType, "%s: %s", entry.LoggerName, line)
			require.Equal(t, "acme", fields[logging.KeyTenant], line)
			services[strings.SplitN(entry.LoggerName, ".", 2)[0]]++
		}
	}
	t.Logf("checked %d log lines, of which %d ingest, %d executor and %d notifier lines name a task",
		len(entries), services["ingest"], services["executor"], services["notifier"])
	for _, service := range []string{"ingest", "executor", "notifier"} {
		require.Positive(t, services[service], "the %s logged at debug level about the tasks", service)
	}
}
