package executor

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

// foldEvents folds events built from (kind, data) pairs into a task.
func foldEvents(t *testing.T, steps ...any) *events.Task {
	t.Helper()
	task := &events.Task{}
	for i := 0; i < len(steps); i += 2 {
		ev, err := events.NewEvent(steps[i].(events.Kind), testTenant, "t1", "echo", "/test", steps[i+1])
		require.NoError(t, err)
		ev.Seq = uint64(i/2 + 1)
		task.Fold(&ev)
	}
	require.Empty(t, task.Skipped)
	return task
}

func TestPlan(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Minute)
	sub := events.Submission{Input: json.RawMessage(`{"dir":"."}`), MaxAttempts: 2}
	late := sub
	late.Deadline = &past
	started := func(n int) events.Started { return events.Started{Attempt: n, Executor: "x"} }
	startedBy := func(n int, seq, delivery uint64) events.Started {
		return events.Started{Attempt: n, Executor: "x", MessageSeq: seq, Delivery: delivery}
	}
	retrying := func(at time.Time) events.Retrying {
		return events.Retrying{Attempt: 1, Error: events.TaskError{Code: "handler_error", Message: "boom"}, NextAttemptAt: at}
	}
	schema, err := compileSchema("echo", "input", json.RawMessage(`{"type":"object","required":["dir"]}`))
	require.NoError(t, err)
	typed := &taskType{name: "echo", inputSchema: schema}

	cases := []struct {
		name      string
		task      *events.Task
		kind      events.Kind
		delivered uint64
		step      step
		writes    events.Kind
		// seq is the message's stream sequence; zero means 1, the
		// sequence of the task's first event.
		seq uint64
	}{
		{"queued starts", foldEvents(t, events.KindSubmitted, sub), events.KindSubmitted, 1, stepStart, "", 0},
		{"invalid input is rejected", foldEvents(t, events.KindSubmitted, events.Submission{Input: json.RawMessage(`{}`)}), events.KindSubmitted, 1, stepWrite, events.KindRejected, 0},
		{"terminal is skipped", foldEvents(t, events.KindSubmitted, sub, events.KindCancelled, nil), events.KindSubmitted, 2, stepAck, "", 0},
		{"passed deadline expires", foldEvents(t, events.KindSubmitted, late), events.KindSubmitted, 1, stepWrite, events.KindExpired, 0},
		{"deadline event expires", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1)), events.KindDeadline, 1, stepWrite, events.KindExpired, 0},
		{"paused is skipped", foldEvents(t, events.KindSubmitted, sub, events.KindPaused, nil), events.KindSubmitted, 1, stepAck, "", 0},
		{"retry not due waits", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1), events.KindRetrying, retrying(now.Add(time.Hour))), events.KindSubmitted, 2, stepRetryLater, "", 0},
		{"retry due starts", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1), events.KindRetrying, retrying(past)), events.KindSubmitted, 2, stepStart, "", 0},
		{"running elsewhere is skipped", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1)), events.KindSubmitted, 1, stepAck, "", 0},
		{"lost attempt is taken over", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1)), events.KindSubmitted, 2, stepStart, "", 0},
		{"lost last attempt fails", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1), events.KindStarted, started(2)), events.KindSubmitted, 3, stepWrite, events.KindFailed, 0},
		{"scheduled waits for its run_at", foldEvents(t, events.KindScheduled, events.Submission{Input: json.RawMessage(`{}`), RunAt: &now}), events.KindDeadline, 1, stepAck, "", 0},
		{"lost attempt asked to pause", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1), events.KindPauseRequested, nil), events.KindSubmitted, 2, stepWrite, events.KindPaused, 0},
		{"input required is skipped", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1), events.KindInputRequired, events.InputRequired{Prompt: "?"}), events.KindSubmitted, 2, stepAck, "", 0},
		{"resumed starts", foldEvents(t, events.KindSubmitted, sub, events.KindPaused, nil, events.KindResumed, nil), events.KindResumed, 1, stepStart, "", 0},
		{"stale copy is left alone", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, startedBy(1, 1, 2)), events.KindSubmitted, 1, stepLeave, "", 1},
		{"same delivery is left alone", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, startedBy(1, 1, 2)), events.KindSubmitted, 2, stepLeave, "", 1},
		{"later delivery takes over", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, startedBy(1, 1, 2)), events.KindSubmitted, 3, stepStart, "", 1},
		{"other message redelivered is acked", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, startedBy(1, 1, 1)), events.KindResumed, 4, stepAck, "", 5},
		{"other message is acked", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, startedBy(1, 1, 1)), events.KindResumed, 1, stepAck, "", 5},
		{"lost attempt asked to cancel", foldEvents(t, events.KindSubmitted, sub, events.KindStarted, started(1), events.KindCancelRequested, events.Reason{Reason: "stop"}), events.KindSubmitted, 2, stepWrite, events.KindCancelled, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seq := tc.seq
			if seq == 0 {
				seq = 1
			}
			d := plan(tc.task, tc.kind, seq, tc.delivered, typed, now)
			require.Equal(t, tc.step, d.step, d.why)
			require.Equal(t, tc.writes, d.kind)
			if d.step == stepWrite {
				require.NoError(t, tc.task.Check(d.kind))
			}
			if d.step == stepStart {
				require.Equal(t, tc.task.Attempt+1, d.attempt)
			}
		})
	}
}

func TestPlanRejectsInvalidSubmission(t *testing.T) {
	ev, err := events.NewEvent(events.KindSubmitted, testTenant, "t1", "echo", "/test", events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: -1})
	require.NoError(t, err)
	task := &events.Task{}
	task.Fold(&ev)

	d := plan(task, events.KindSubmitted, 1, 1, &taskType{}, time.Now())
	require.Equal(t, stepWrite, d.step)
	require.Equal(t, events.KindRejected, d.kind)
	require.Contains(t, d.data.(events.Rejected).Error.Message, "max_attempts")

	// Only a submission is rejected for its own faults.
	require.Equal(t, stepAck, plan(task, events.KindDeadline, 2, 1, &taskType{}, time.Now()).step)
}

func TestDecideOutcome(t *testing.T) {
	now := time.Now()
	policy := RetryPolicy{Initial: time.Second, Max: 10 * time.Second}
	running := func(maxAttempts int) *events.Task {
		return foldEvents(t, events.KindSubmitted, events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: maxAttempts},
			events.KindStarted, events.Started{Attempt: 1, Executor: "x"})
	}
	result := func(r string) settlement { return settlement{result: json.RawMessage(r)} }
	failed := func(err error) settlement { return settlement{err: err} }
	stopped := func(err, cause error) settlement { return settlement{err: err, cause: cause} }
	checkpoint := json.RawMessage(`{"offset":9}`)

	d := decideOutcome(running(3), result(`1`), nil, policy, now)
	require.Equal(t, events.KindSucceeded, d.kind)

	d = decideOutcome(running(3), failed(RetryAfter(3*time.Second, nil)), nil, policy, now)
	require.Equal(t, events.KindRetrying, d.kind)
	require.Equal(t, stepRetryLater, d.step)
	require.Equal(t, 3*time.Second, d.delay)
	require.Equal(t, now.Add(3*time.Second).UTC(), d.data.(events.Retrying).NextAttemptAt)

	d = decideOutcome(running(1), failed(failure(events.CodeExitStatus, false, errBoom)), nil, policy, now)
	require.Equal(t, events.KindFailed, d.kind)
	require.Equal(t, events.CodeExitStatus, d.data.(events.Failed).Error.Code)

	d = decideOutcome(running(3), failed(Permanent(errBoom)), nil, policy, now)
	require.Equal(t, events.KindFailed, d.kind)
	require.False(t, d.data.(events.Failed).Error.Retryable)

	cancelled := running(3)
	cancelled.CancelRequested = true
	require.Equal(t, events.KindCancelled, decideOutcome(cancelled, result(`1`), nil, policy, now).kind)
	require.Equal(t, events.KindCancelled, decideOutcome(running(3), stopped(context.Canceled, ErrCancelRequested), nil, policy, now).kind,
		"a cancel that stopped the handler wins before the task shows it")
	require.Equal(t, events.KindCancelled, decideOutcome(running(3), stopped(nil, ErrCancelRequested), nil, policy, now).kind,
		"a cancel wins over a result returned after it")

	pausing := running(3)
	pausing.PauseRequested = true
	require.Equal(t, events.KindPaused, decideOutcome(pausing, failed(errBoom), nil, policy, now).kind)
	require.Equal(t, events.KindSucceeded, decideOutcome(pausing, result(`1`), nil, policy, now).kind)
	require.Equal(t, events.KindFailed, decideOutcome(pausing, failed(Permanent(errBoom)), nil, policy, now).kind,
		"a permanent failure before the handler noticed the pause still fails")

	d = decideOutcome(running(1), stopped(Permanent(errBoom), ErrPauseRequested), checkpoint, policy, now)
	require.Equal(t, events.KindPaused, d.kind, "a handler stopped by a pause pauses, whatever it returns")
	require.JSONEq(t, `{"offset":9}`, string(d.data.(events.Paused).Checkpoint))
	require.Equal(t, events.KindSucceeded, decideOutcome(running(3), stopped(nil, ErrPauseRequested), nil, policy, now).kind)

	d = decideOutcome(running(1), stopped(context.Canceled, ErrShutdown), nil, policy, now)
	require.Equal(t, events.KindRetrying, d.kind, "a shutdown retries even when no attempts remain, because it uses up none")
	require.Equal(t, stepRetryLater, d.step)
	require.Zero(t, d.delay)
	require.Equal(t, events.CodeInterrupted, d.data.(events.Retrying).Error.Code)
	require.Equal(t, now.UTC(), d.data.(events.Retrying).NextAttemptAt)
	require.Equal(t, events.KindPaused, decideOutcome(pausing, stopped(context.Canceled, ErrShutdown), nil, policy, now).kind)

	d = decideOutcome(running(3), stopped(context.DeadlineExceeded, ErrDeadlinePassed), nil, policy, now)
	require.Equal(t, events.KindExpired, d.kind)
	past := now.Add(-time.Second)
	late := foldEvents(t, events.KindSubmitted, events.Submission{Input: json.RawMessage(`{}`), Deadline: &past},
		events.KindStarted, events.Started{Attempt: 1, Executor: "x"})
	require.Equal(t, events.KindExpired, decideOutcome(late, failed(errBoom), nil, policy, now).kind, "no retry after the deadline")

	d = decideOutcome(running(3), failed(AskInput("Grant access?", json.RawMessage(`{"type":"boolean"}`), nil)), checkpoint, policy, now)
	require.Equal(t, events.KindInputRequired, d.kind)
	ir := d.data.(events.InputRequired)
	require.Equal(t, "Grant access?", ir.Prompt)
	require.JSONEq(t, `{"type":"boolean"}`, string(ir.InputSchema))
	require.JSONEq(t, `{"offset":9}`, string(ir.Checkpoint), "without its own checkpoint the request keeps the latest")
	d = decideOutcome(running(3), failed(AskInput("Which?", nil, map[string]int{"offset": 12})), checkpoint, policy, now)
	require.JSONEq(t, `{"offset":12}`, string(d.data.(events.InputRequired).Checkpoint))
	require.Nil(t, d.data.(events.InputRequired).InputSchema)
}

func TestAskInputInvalid(t *testing.T) {
	for _, tc := range []struct {
		name       string
		prompt     string
		schema     json.RawMessage
		checkpoint any
		wantMsg    string
	}{
		{"no prompt", "", nil, nil, "input request has no prompt"},
		{"schema not a schema", "Which?", json.RawMessage(`"boolean"`), nil, "input request schema"},
		{"schema not JSON", "Which?", json.RawMessage(`{`), nil, "input request schema"},
		{"checkpoint does not encode", "Which?", nil, make(chan int), "encode input request checkpoint"},
	} {
		err := AskInput(tc.prompt, tc.schema, tc.checkpoint)
		var ir *inputRequest
		require.ErrorAs(t, err, &ir, tc.name)
		require.ErrorContains(t, ir.err, tc.wantMsg, tc.name)
	}
}
