package executor

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestMalformedSubmissionRejected(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"echo": {Handler: HandlerEcho}}), nil)

	// A publisher that ignores the contract: no CloudEvents headers.
	msg := nats.NewMsg("handoff.task." + testTenant + ".raw-1.submitted.echo")
	msg.Data = []byte(`{"input":{"n":1}}`)
	_, err := tb.bus.JetStream().PublishMsg(context.Background(), msg)
	require.NoError(t, err)

	task := waitTerminal(t, tb.bus, "raw-1")
	require.Equal(t, events.StatusRejected, task.Status)
	require.Equal(t, events.CodeInvalidEvent, task.Error.Code)
	require.Contains(t, task.Error.Message, "ce-specversion")
	require.Equal(t, "echo", task.Type)
	require.Len(t, task.Skipped, 1)
}

func TestInvalidSubmissionDataRejected(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"echo": {Handler: HandlerEcho}}), nil)

	// A valid CloudEvent whose submission breaks a limit of the fold.
	id := submit(t, tb.bus, "echo", events.Submission{Input: []byte(`{}`), MaxAttempts: events.MaxMaxAttempts + 1})

	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusRejected, task.Status)
	require.Equal(t, events.CodeInvalidEvent, task.Error.Code)
	require.Contains(t, task.Error.Message, "max_attempts")
}

func TestSchemaViolationRejected(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	typed := func(ctx context.Context, task *Task) (any, error) {
		runs.Add(1)
		return nil, nil
	}
	cfg := testConfig(map[string]TypeConfig{"typed": {
		Handler:     HandlerGo,
		InputSchema: []byte(`{"type":"object","required":["dir"],"properties":{"dir":{"type":"string"}}}`),
	}})
	tb.start(t, tb.bus, cfg, map[string]Handler{"typed": typed})

	id := submit(t, tb.bus, "typed", input(`{"dir": 7}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusRejected, task.Status)
	require.Equal(t, events.CodeInvalidInput, task.Error.Code)
	require.Equal(t, []events.ErrorDetail{{Location: "/dir", Message: "got number, want string"}}, task.Error.Details)
	require.Zero(t, task.Attempt)
	require.Zero(t, runs.Load())
}

func TestInvalidSubjectTerminated(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	r := tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"echo": {Handler: HandlerEcho}}), nil)

	// Upper case is not allowed in a tenant, but the consumer's filter
	// matches any token there.
	msg := nats.NewMsg("handoff.task.ACME.t1.submitted.echo")
	msg.Data = []byte(`{}`)
	_, err := tb.bus.JetStream().PublishMsg(context.Background(), msg)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return r.e.invalidSubjects.Load() == 1 }, waitTimeout, pollEvery)
	require.Eventually(t, func() bool {
		info, err := tb.bus.JetStream().Consumer(context.Background(), "HANDOFF_TASKS", ConsumerName("test"))
		require.NoError(t, err)
		return info.CachedInfo().NumAckPending == 0 && info.CachedInfo().NumPending == 0
	}, waitTimeout, pollEvery)
	require.Equal(t, 1, r.logs.FilterMessage("terminating a message on an invalid subject").Len())
}
