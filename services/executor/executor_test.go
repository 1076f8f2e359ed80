package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/registry"
)

func TestGoHandlerSucceeds(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	add := func(ctx context.Context, task *Task) (any, error) {
		var in struct{ A, B int }
		if err := json.Unmarshal(task.Input, &in); err != nil {
			return nil, Permanent(err)
		}
		return map[string]int{"sum": in.A + in.B}, nil
	}
	r := tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"math.add": add})

	id := submit(t, tb.bus, "math.add", input(`{"a":2,"b":3}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status)
	require.JSONEq(t, `{"sum":5}`, string(task.View().Result))
	require.Equal(t, 1, task.Attempt)
	evs := history(t, tb.bus, id)
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindSucceeded}, kindsOf(evs))
	var started events.Started
	require.NoError(t, evs[1].DecodeData(&started))
	require.Equal(t, events.Started{Attempt: 1, Executor: "e1", MessageSeq: evs[0].Seq, Delivery: 1}, started,
		"the started event names the message and the delivery that started it")
	require.Equal(t, 1, evs[1].Attempt)
	require.Equal(t, 1, evs[2].Attempt)
	require.Equal(t, "/handoff/executor/e1", evs[2].Source)
	// The first delivery of a fresh submission is its whole history.
	require.Zero(t, r.e.reads.Load())
}

func TestLongHandlerRunsOnce(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	slow := func(ctx context.Context, task *Task) (any, error) {
		runs.Add(1)
		select {
		case <-time.After(3 * time.Second):
			return "done", nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	cfg := testConfig(nil)
	cfg.AckWait = time.Second
	tb.start(t, tb.bus, cfg, map[string]Handler{"slow": slow})

	id := submit(t, tb.bus, "slow", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, int32(1), runs.Load())
	require.Equal(t, 1, task.Attempt)
}

func TestFailingHandlerEndsFailed(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	flaky := func(ctx context.Context, task *Task) (any, error) {
		n := runs.Add(1)
		if n == 1 {
			panic("first attempt panics")
		}
		return nil, fmt.Errorf("boom %d", n)
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"flaky": flaky})

	id := submit(t, tb.bus, "flaky", events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: 3})
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, int32(3), runs.Load())
	require.Equal(t, 3, task.Attempt)
	require.NotNil(t, task.View().Error)
	require.Equal(t, events.CodeHandlerError, task.View().Error.Code)
	require.Equal(t, "boom 3", task.View().Error.Message)

	evs := history(t, tb.bus, id)
	require.Equal(t, []events.Kind{
		events.KindSubmitted,
		events.KindStarted, events.KindRetrying,
		events.KindStarted, events.KindRetrying,
		events.KindStarted, events.KindFailed,
	}, kindsOf(evs))
	var first events.Retrying
	require.NoError(t, eventsOf(evs, events.KindRetrying)[0].DecodeData(&first))
	require.Equal(t, events.CodePanic, first.Error.Code)
	require.Contains(t, first.Error.Message, "first attempt panics")
	require.Equal(t, 1, first.Attempt)
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	refuse := func(ctx context.Context, task *Task) (any, error) {
		return nil, Permanent(errors.New("account closed"))
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"refuse": refuse})

	id := submit(t, tb.bus, "refuse", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, 1, task.Attempt)
	require.Equal(t, "account closed", task.Error.Message)
	require.False(t, task.Error.Retryable)
}

func TestRetryAfterSetsNextAttempt(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	busy := func(ctx context.Context, task *Task) (any, error) {
		if runs.Add(1) == 1 {
			return nil, RetryAfter(time.Hour, errors.New("busy"))
		}
		return "ok", nil
	}
	cfg := testConfig(nil)
	cfg.Retry.Max = 300 * time.Millisecond
	tb.start(t, tb.bus, cfg, map[string]Handler{"busy": busy})

	id := submit(t, tb.bus, "busy", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status)
	var retrying events.Retrying
	evs := history(t, tb.bus, id)
	require.NoError(t, eventsOf(evs, events.KindRetrying)[0].DecodeData(&retrying))
	// The hour asked for is capped at the policy's max.
	delay := retrying.NextAttemptAt.Sub(eventsOf(evs, events.KindRetrying)[0].Time)
	require.InDelta(t, 300*time.Millisecond, delay, float64(50*time.Millisecond))
	started := eventsOf(evs, events.KindStarted)
	require.GreaterOrEqual(t, started[1].Stored, retrying.NextAttemptAt.Add(-50*time.Millisecond))
}

func TestCheckpointAndProgress(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var last json.RawMessage
	step := func(ctx context.Context, task *Task) (any, error) {
		last = task.LastCheckpoint()
		task.Progress(40, "halfway")
		if err := task.Checkpoint(map[string]int{"offset": 7}); err != nil {
			return nil, err
		}
		// Wait for the checkpoint's progress event, written after the
		// throttle's second.
		time.Sleep(1200 * time.Millisecond)
		return "done", nil
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"step": step})

	id := submit(t, tb.bus, "step", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Nil(t, last)
	require.JSONEq(t, `{"offset":7}`, string(task.Checkpoint))
	progress := eventsOf(history(t, tb.bus, id), events.KindProgress)
	require.NotEmpty(t, progress)
	var p events.Progress
	require.NoError(t, progress[0].DecodeData(&p))
	require.Equal(t, 40.0, p.Percent)
	require.Equal(t, "halfway", p.Message)
}

func TestResultTooLargeFails(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	big := func(ctx context.Context, task *Task) (any, error) {
		return "this string is longer than the limit", nil
	}
	cfg := testConfig(nil)
	cfg.ResultLimit = 10
	cfg.MaxResultBytes = 20
	tb.start(t, tb.bus, cfg, map[string]Handler{"big": big})

	id := submit(t, tb.bus, "big", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, events.CodeResultTooLarge, task.Error.Code)
	require.Equal(t, 1, task.Attempt)
}

func TestTwoExecutorsShareWork(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var mu sync.Mutex
	runs := map[string]int{}
	byExecutor := map[string]int{}
	work := func(instance string) Handler {
		return func(ctx context.Context, task *Task) (any, error) {
			mu.Lock()
			runs[task.ID]++
			byExecutor[instance]++
			mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			return instance, nil
		}
	}
	for _, instance := range []string{"e1", "e2"} {
		cfg := testConfig(nil)
		cfg.Instance = instance
		cfg.Concurrency = 2
		tb.start(t, tb.connect(t), cfg, map[string]Handler{"work": work(instance)})
	}

	ids := make([]string, 12)
	for i := range ids {
		ids[i] = submit(t, tb.bus, "work", input(`{}`))
	}
	for _, id := range ids {
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusSucceeded, task.Status)
		require.Equal(t, 1, task.Attempt)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		require.Equal(t, 1, runs[id], "task %s ran %d times", id, runs[id])
	}
	require.Positive(t, byExecutor["e1"])
	require.Positive(t, byExecutor["e2"])
}

func TestStaleResultRefused(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan string, 1)
	release := make(chan struct{})
	blocked := func(ctx context.Context, task *Task) (any, error) {
		entered <- task.ID
		<-release
		return "stale", nil
	}
	r := tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"blocked": blocked})

	id := submit(t, tb.bus, "blocked", input(`{}`))
	require.Equal(t, id, <-entered)

	// Another executor takes the task over, as after a lost heartbeat.
	ctx := context.Background()
	task, err := tb.bus.ReadTask(ctx, testTenant, id)
	require.NoError(t, err)
	ev, err := events.NewEvent(events.KindStarted, testTenant, id, "blocked", "/handoff/executor/thief", events.Started{Attempt: 2, Executor: "thief"})
	require.NoError(t, err)
	_, err = tb.bus.Append(ctx, &ev, bus.AppendOptions{ExpectSeq: task.LastSeq})
	require.NoError(t, err)
	close(release)

	require.Eventually(t, func() bool {
		return r.logs.FilterMessage("dropping the result: another executor took the task over").Len() == 1
	}, waitTimeout, pollEvery)
	task, err = tb.bus.ReadTask(ctx, testTenant, id)
	require.NoError(t, err)
	require.Equal(t, events.StatusRunning, task.Status)
	require.Equal(t, 2, task.Attempt)
	require.Equal(t, "thief", task.Executor)
	require.Empty(t, eventsOf(history(t, tb.bus, id), events.KindSucceeded))
}

func TestDeadlinePassedExpires(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	never := func(ctx context.Context, task *Task) (any, error) {
		runs.Add(1)
		return "ran", nil
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"late": never})

	past := time.Now().Add(-time.Minute)
	id := submit(t, tb.bus, "late", events.Submission{Input: json.RawMessage(`{}`), Deadline: &past})
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusExpired, task.Status)
	require.Zero(t, runs.Load())
}

func TestDeadlineEventExpiresRunningTask(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan struct{}, 1)
	var cause atomic.Value
	wait := func(ctx context.Context, task *Task) (any, error) {
		entered <- struct{}{}
		for ctx.Err() == nil {
			task.Progress(10, "waiting")
			time.Sleep(100 * time.Millisecond)
		}
		cause.Store(context.Cause(ctx))
		return nil, context.Cause(ctx)
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"wait": wait})

	id := submit(t, tb.bus, "wait", input(`{}`))
	<-entered
	// The server's deadline schedule publishes a deadline event.
	ev, err := events.NewEvent(events.KindDeadline, testTenant, id, "wait", "/handoff/schedule", nil)
	require.NoError(t, err)
	_, err = tb.bus.Append(context.Background(), &ev, bus.AppendOptions{})
	require.NoError(t, err)

	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusExpired, task.Status)
	// The handler learns of the end at its next progress write.
	require.Eventually(t, func() bool {
		err, _ := cause.Load().(error)
		return errors.Is(err, ErrTaskEnded)
	}, waitTimeout, pollEvery)
}

func TestShutdownDrainsRunningHandlers(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan struct{}, 1)
	short := func(ctx context.Context, task *Task) (any, error) {
		entered <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		return "finished while draining", nil
	}
	r := tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"short": short})

	id := submit(t, tb.bus, "short", input(`{}`))
	<-entered
	require.NoError(t, r.stop())

	task, err := tb.bus.ReadTask(context.Background(), testTenant, id)
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, task.Status)
}

func TestShutdownUsesNoAttempt(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan struct{}, 1)
	stuck := func(ctx context.Context, task *Task) (any, error) {
		if err := task.Checkpoint(map[string]int{"offset": 3}); err != nil {
			return nil, err
		}
		entered <- struct{}{}
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	cfg := testConfig(nil)
	cfg.DrainTimeout = 100 * time.Millisecond
	first := tb.start(t, tb.bus, cfg, map[string]Handler{"stuck": stuck})

	// One attempt only: a shutdown must not use it up.
	id := submit(t, tb.bus, "stuck", events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: 1})
	<-entered
	require.NoError(t, first.stop())

	task, err := tb.bus.ReadTask(context.Background(), testTenant, id)
	require.NoError(t, err)
	require.Equal(t, events.StatusRetrying, task.Status)
	require.Equal(t, events.CodeInterrupted, task.Error.Code)
	require.Zero(t, task.Failures)
	require.JSONEq(t, `{"offset":3}`, string(task.Checkpoint), "the checkpoint is written before the retry")

	// The next executor of the pool runs the task at once, from the
	// checkpoint.
	var resumedFrom json.RawMessage
	cfg.Instance = "e2"
	tb.start(t, tb.bus, cfg, map[string]Handler{"stuck": func(ctx context.Context, task *Task) (any, error) {
		resumedFrom = task.LastCheckpoint()
		return "second", nil
	}})
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 2, task.Attempt)
	require.Equal(t, "e2", task.Executor)
	require.JSONEq(t, `{"offset":3}`, string(resumedFrom))
}

func TestCrashedAttemptsUseUpAttempts(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan string, 2)
	stuck := func(ctx context.Context, task *Task) (any, error) {
		entered <- task.ID
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	cfg := testConfig(nil)
	cfg.AckWait = 500 * time.Millisecond
	cfg.DrainTimeout = 100 * time.Millisecond

	// Each executor crashes while its attempt runs: its connection goes
	// away without a word, as when the process is killed, and the message
	// comes back to the pool after the ack wait.
	id := submit(t, tb.bus, "stuck", events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: 2})
	for _, instance := range []string{"e1", "e2"} {
		cfg.Instance = instance
		b := tb.connect(t)
		tb.start(t, b, cfg, map[string]Handler{"stuck": stuck})
		require.Equal(t, id, <-entered)
		b.Conn().Close()
	}

	cfg.Instance = "e3"
	tb.start(t, tb.bus, cfg, map[string]Handler{"stuck": stuck})
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, events.CodeAttemptLost, task.Error.Code)
	require.Equal(t, 2, task.Attempt)
	require.Equal(t, 1, task.Failures, "the takeover counted the first lost attempt")
	require.Contains(t, task.Error.Message, "attempt 2 on executor e2 was lost")
}

func TestTypesRegistered(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(map[string]TypeConfig{
		"echo":  {Handler: HandlerEcho, Description: "returns its input"},
		"sleep": {Handler: HandlerSleep, Description: "sleeps", Timeout: time.Minute, MaxAttempts: 2},
	})
	tb.start(t, tb.bus, cfg, nil)

	ctx := context.Background()
	cache, err := registry.Watch(ctx, tb.bus)
	require.NoError(t, err)
	defer cache.Stop()
	require.Eventually(t, func() bool { return len(cache.List()) == 2 }, waitTimeout, pollEvery)

	sleep, ok := cache.Get("sleep")
	require.True(t, ok)
	require.Equal(t, "sleeps", sleep.Description)
	require.Equal(t, events.Duration(time.Minute), sleep.DefaultTimeout)
	require.Equal(t, 2, sleep.MaxAttempts)
	require.Equal(t, "test", sleep.Pool)
	require.Equal(t, "e1", sleep.Executor)
	require.JSONEq(t, string(sleepInputSchema), string(sleep.InputSchema))
	echo, ok := cache.Get("echo")
	require.True(t, ok)
	require.Equal(t, events.Duration(DefaultAttemptTimeout), echo.DefaultTimeout)
}

func TestRunRejectsMissingGoHandler(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	e, err := New(testConfig(map[string]TypeConfig{"custom": {Handler: HandlerGo}}), tb.bus, zapNop())
	require.NoError(t, err)
	err = e.Run(context.Background())
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "types.custom.handler")

	e, err = New(testConfig(map[string]TypeConfig{"echo": {Handler: HandlerEcho}}), tb.bus, zapNop())
	require.NoError(t, err)
	e.Handle("echo", echoHandler, TypeOptions{})
	err = e.Run(context.Background())
	require.ErrorContains(t, err, "types.echo: is configured with handler echo")
}

func TestStuckHandlerAbandoned(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	release := make(chan struct{})
	var returned atomic.Bool
	stuck := func(ctx context.Context, task *Task) (any, error) {
		<-release
		returned.Store(true)
		return "too late", nil
	}
	quick := func(ctx context.Context, task *Task) (any, error) { return "done", nil }
	cfg := testConfig(nil)
	cfg.Concurrency = 1
	tb.start(t, tb.bus, cfg, map[string]Handler{"stuck": stuck, "quick": quick})

	sub := input(`{}`)
	sub.Timeout = events.Duration(100 * time.Millisecond)
	sub.MaxAttempts = 1
	id := submit(t, tb.bus, "stuck", sub)
	// The attempt times out, and a kill grace and a second later the
	// executor records the timeout without waiting for the handler.
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusFailed, task.Status)
	require.NotNil(t, task.Error)
	require.Equal(t, events.CodeTimeout, task.Error.Code)
	require.False(t, returned.Load(), "the handler returned before it was released")

	// The abandoned handler gave its slot back: with a concurrency of one,
	// the next task runs while the handler is still stuck.
	next := submit(t, tb.bus, "quick", input(`{}`))
	require.Equal(t, events.StatusSucceeded, waitTerminal(t, tb.bus, next).Status)
	require.False(t, returned.Load())

	// Its late return changes nothing.
	close(release)
	require.Eventually(t, returned.Load, waitTimeout, pollEvery)
	before := len(history(t, tb.bus, id))
	again := submit(t, tb.bus, "quick", input(`{}`))
	waitTerminal(t, tb.bus, again)
	require.Len(t, history(t, tb.bus, id), before)
	require.Equal(t, events.StatusFailed, waitTerminal(t, tb.bus, id).Status)
}
