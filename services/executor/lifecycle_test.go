package executor

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// request appends an event of kind to the task as ingest does: it reads the
// task, checks that the kind may follow, and appends with the
// compare-and-set, re-reading after a conflict.
func request(t *testing.T, b *bus.Bus, id string, kind events.Kind, data any) {
	t.Helper()
	ctx := context.Background()
	for range maxConflicts {
		task, err := b.ReadTask(ctx, testTenant, id)
		require.NoError(t, err)
		require.NoError(t, task.Check(kind))
		ev, err := events.NewEvent(kind, task.Tenant, task.ID, task.Type, "/handoff/ingest", data)
		require.NoError(t, err)
		_, err = b.Append(ctx, &ev, bus.AppendOptions{ExpectSeq: task.LastSeq, TTL: task.TTLLeft(time.Now())})
		if bus.IsConflict(err) {
			continue
		}
		require.NoError(t, err)
		return
	}
	t.Fatalf("appending %s to task %s kept conflicting", kind, id)
}

// blockUntilStopped returns a handler that records a checkpoint, reports
// its task id on entered and waits for its context to end, returning the
// cause. causes receives the cause.
func blockUntilStopped(entered chan<- string, causes chan<- error) Handler {
	return func(ctx context.Context, task *Task) (any, error) {
		if err := task.Checkpoint(map[string]int{"offset": 3}); err != nil {
			return nil, err
		}
		entered <- task.ID
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, context.Cause(ctx)
	}
}

func TestCancelStopsRunningHandler(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered, causes := make(chan string, 1), make(chan error, 1)
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"block": blockUntilStopped(entered, causes)})

	id := submit(t, tb.bus, "block", input(`{}`))
	<-entered
	request(t, tb.bus, id, events.KindCancelRequested, events.Reason{Reason: "plans changed"})

	require.ErrorIs(t, <-causes, ErrCancelRequested, "the handler is stopped without waiting for a write")
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusCancelled, task.Status)
	require.Equal(t, "plans changed", task.Reason)
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindCancelRequested, events.KindCancelled},
		kindsOf(history(t, tb.bus, id)))
}

func TestCancelBeatsLaterSuccess(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	stubborn := func(ctx context.Context, task *Task) (any, error) {
		entered <- struct{}{}
		<-release
		return "finished anyway", nil
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"stubborn": stubborn})

	id := submit(t, tb.bus, "stubborn", input(`{}`))
	<-entered
	request(t, tb.bus, id, events.KindCancelRequested, nil)
	close(release)

	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusCancelled, task.Status)
	require.Nil(t, task.Result)
	require.Empty(t, eventsOf(history(t, tb.bus, id), events.KindSucceeded))
}

func TestExecCancelTermsThenKills(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	termFile := filepath.Join(dir, "term")
	script := writeScript(t, dir, "stubborn.sh", `
trap 'echo term >> "$TERM_FILE"' TERM
echo $$ > "$PID_FILE"
while :; do sleep 0.05; done
`)
	tc := execType(script)
	tc.Env = map[string]string{"PID_FILE": pidFile, "TERM_FILE": termFile}
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"stubborn": tc}), nil)

	id := submit(t, tb.bus, "stubborn", input(`{}`))
	var pid int
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(raw), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
		return err == nil
	}, waitTimeout, pollEvery)
	request(t, tb.bus, id, events.KindCancelRequested, nil)

	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusCancelled, task.Status)
	term, err := os.ReadFile(termFile)
	require.NoError(t, err)
	require.Contains(t, string(term), "term", "the script got SIGTERM first")
	require.Eventually(t, func() bool {
		return syscall.Kill(-pid, 0) == syscall.ESRCH
	}, waitTimeout, pollEvery, "process group %d still has members after SIGKILL", pid)

	evs := history(t, tb.bus, id)
	requested := eventsOf(evs, events.KindCancelRequested)[0].Stored
	cancelled := eventsOf(evs, events.KindCancelled)[0].Stored
	require.GreaterOrEqual(t, cancelled.Sub(requested), 200*time.Millisecond, "the kill came before the kill grace")
}

func TestPauseKeepsCheckpointAndResumes(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered, causes := make(chan string, 1), make(chan error, 1)
	var resumed atomic.Value
	handler := func(ctx context.Context, task *Task) (any, error) {
		if task.Resumed() {
			resumed.Store(task.LastCheckpoint())
			return "continued", nil
		}
		return blockUntilStopped(entered, causes)(ctx, task)
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"export": handler})

	id := submit(t, tb.bus, "export", events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: 1})
	<-entered
	request(t, tb.bus, id, events.KindPauseRequested, events.Reason{Reason: "needs a permission"})

	require.ErrorIs(t, <-causes, ErrPauseRequested)
	task := waitStatus(t, tb.bus, id, events.StatusPaused)
	require.JSONEq(t, `{"offset":3}`, string(task.Checkpoint), "the paused event keeps the checkpoint that was not yet written")
	require.Equal(t, "needs a permission", task.Reason)
	require.Zero(t, task.Failures)

	request(t, tb.bus, id, events.KindResumed, nil)
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 2, task.Attempt, "a pause uses up no attempt of the one allowed")
	require.JSONEq(t, `{"offset":3}`, string(resumed.Load().(json.RawMessage)))
	require.Equal(t, []events.Kind{
		events.KindSubmitted, events.KindStarted, events.KindPauseRequested, events.KindPaused,
		events.KindResumed, events.KindStarted, events.KindSucceeded,
	}, kindsOf(history(t, tb.bus, id)))
}

func TestPauseQueuedTaskBeforeStart(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	count := func(ctx context.Context, task *Task) (any, error) {
		runs.Add(1)
		return task.Resumed(), nil
	}

	// The task is paused before any executor serves its type, so the
	// executor's first look at the submission conflicts with the pause.
	id := submit(t, tb.bus, "count", input(`{}`))
	request(t, tb.bus, id, events.KindPaused, events.Paused{Reason: "not yet"})
	r := tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"count": count})

	// A second task shows when the executor has read the stream.
	other := submit(t, tb.bus, "count", input(`{}`))
	waitTerminal(t, tb.bus, other)
	task, err := tb.bus.ReadTask(context.Background(), testTenant, id)
	require.NoError(t, err)
	require.Equal(t, events.StatusPaused, task.Status)
	require.Equal(t, int32(1), runs.Load())

	request(t, tb.bus, id, events.KindResumed, nil)
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.JSONEq(t, `true`, string(task.Result), "a resumed run knows it continues")
	require.Equal(t, 1, task.Attempt)
	require.Zero(t, r.logs.FilterMessage("writing task event failed; retrying later").Len())
}

func TestInputRequiredThenAnswered(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	type run struct {
		checkpoint, answer json.RawMessage
		resumed            bool
	}
	runs := make(chan run, 2)
	grant := func(ctx context.Context, task *Task) (any, error) {
		runs <- run{task.LastCheckpoint(), task.Answer(), task.Resumed()}
		if task.Answer() == nil {
			return nil, AskInput("Grant read access to the bucket?", json.RawMessage(`{"type":"boolean"}`), map[string]int{"listed": 40})
		}
		return map[string]json.RawMessage{"granted": task.Answer()}, nil
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"grant": grant})

	id := submit(t, tb.bus, "grant", input(`{}`))
	task := waitStatus(t, tb.bus, id, events.StatusInputRequired)
	first := <-runs
	require.False(t, first.resumed)
	require.Nil(t, first.answer)
	v := task.View()
	require.Equal(t, "Grant read access to the bucket?", v.InputRequest.Prompt)
	require.JSONEq(t, `{"type":"boolean"}`, string(v.InputRequest.InputSchema))
	require.JSONEq(t, `{"listed":40}`, string(task.Checkpoint))

	request(t, tb.bus, id, events.KindResumed, events.Resumed{Input: json.RawMessage(`true`)})
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.JSONEq(t, `{"granted":true}`, string(task.Result))
	second := <-runs
	require.True(t, second.resumed)
	require.JSONEq(t, `{"listed":40}`, string(second.checkpoint))
	require.JSONEq(t, `true`, string(second.answer))
}

func TestInvalidInputRequestFails(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ask := func(ctx context.Context, task *Task) (any, error) {
		return nil, AskInput("Which one?", json.RawMessage(`{"type":"nonsense"}`), nil)
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"ask": ask})

	id := submit(t, tb.bus, "ask", input(`{}`))
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, events.CodeInvalidOutput, task.Error.Code)
	require.Contains(t, task.Error.Message, "input request schema")
	require.Equal(t, 1, task.Attempt, "no retry: the handler would ask the same")
}

func TestExecCheckpointAndInputRequired(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	script := writeScript(t, t.TempDir(), "grant.sh", `
if [ -z "$HANDOFF_RESUMED" ]; then
	echo 'checkpoint: {"listed": 40}' >&2
	echo 'checkpoint: not json' >&2
	echo 'input-required: {"prompt": "Grant access?", "input_schema": {"type": "boolean"}}' >&2
	exit 76
fi
printf '{"resumed":"%s","stdin":' "$HANDOFF_RESUMED"
cat
printf '}'
`)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"grant": execType(script)}), nil)

	id := submit(t, tb.bus, "grant", input(`{"bucket":"reports","answer":"reserved"}`))
	task := waitStatus(t, tb.bus, id, events.StatusInputRequired)
	require.Equal(t, "Grant access?", task.InputRequest.Prompt)
	require.JSONEq(t, `{"type":"boolean"}`, string(task.InputRequest.InputSchema))
	require.JSONEq(t, `{"listed":40}`, string(task.Checkpoint), "the request keeps the last checkpoint line that was JSON")

	request(t, tb.bus, id, events.KindResumed, events.Resumed{Input: json.RawMessage(`true`)})
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.JSONEq(t, `{"resumed":"1","stdin":{"bucket":"reports","checkpoint":{"listed":40},"answer":true}}`, string(task.Result),
		"the input gets checkpoint and answer, replacing a member of the same name")
}

func TestExecInputRequiredWithoutRequestFails(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	dir := t.TempDir()
	missing := writeScript(t, dir, "missing.sh", "echo 'no request here' >&2\nexit 76\n")
	invalid := writeScript(t, dir, "invalid.sh", "echo 'input-required: {\"question\": \"?\"}' >&2\nexit 76\n")
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"missing": execType(missing), "invalid": execType(invalid)}), nil)

	for taskType, want := range map[string]string{
		"missing": `stderr has no line "input-required: <json>"`,
		"invalid": `unknown field "question"`,
	} {
		id := submit(t, tb.bus, taskType, input(`{}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusFailed, task.Status, taskType)
		require.Equal(t, events.CodeInvalidOutput, task.Error.Code, taskType)
		require.Contains(t, task.Error.Message, want, taskType)
		require.Equal(t, 1, task.Attempt, taskType)
	}
}

func TestExecNonObjectInputGetsFiles(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	script := writeScript(t, t.TempDir(), "list.sh", `
if [ -z "$HANDOFF_RESUMED" ]; then
	echo 'checkpoint: {"done": 1}' >&2
	echo 'input-required: {"prompt": "Continue?"}' >&2
	exit 76
fi
printf '{"stdin":%s,"checkpoint":%s,"answer":%s}' "$(cat)" "$(cat "$HANDOFF_CHECKPOINT_FILE")" "$(cat "$HANDOFF_ANSWER_FILE")"
`)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"list": execType(script)}), nil)

	id := submit(t, tb.bus, "list", input(`["a","b"]`))
	waitStatus(t, tb.bus, id, events.StatusInputRequired)
	request(t, tb.bus, id, events.KindResumed, events.Resumed{Input: json.RawMessage(`{"yes":true}`)})
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.JSONEq(t, `{"stdin":["a","b"],"checkpoint":{"done":1},"answer":{"yes":true}}`, string(task.Result))
}

func TestDeadlineBoundsRunningAttempt(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered, causes := make(chan string, 1), make(chan error, 1)
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"block": blockUntilStopped(entered, causes)})

	// No deadline event comes: the attempt's own context ends at the
	// deadline, long before its timeout.
	deadline := time.Now().Add(time.Second)
	id := submit(t, tb.bus, "block", events.Submission{Input: json.RawMessage(`{}`), Timeout: events.Duration(time.Hour), Deadline: &deadline})
	<-entered
	require.ErrorIs(t, <-causes, ErrDeadlinePassed)

	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusExpired, task.Status)
	require.Equal(t, events.CodeTimeout, task.Error.Code)
	expired := eventsOf(history(t, tb.bus, id), events.KindExpired)[0]
	require.False(t, expired.Stored.Before(deadline))
}

func TestExpiredStopsRunningAttempt(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered, causes := make(chan string, 1), make(chan error, 1)
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"block": blockUntilStopped(entered, causes)})

	id := submit(t, tb.bus, "block", input(`{}`))
	<-entered
	// The deadline schedule fires; the executor records expired, which
	// stops the handler that another goroutine runs.
	ev, err := events.NewEvent(events.KindDeadline, testTenant, id, "block", "/handoff/schedule", nil)
	require.NoError(t, err)
	_, err = tb.bus.Append(context.Background(), &ev, bus.AppendOptions{})
	require.NoError(t, err)

	require.ErrorIs(t, <-causes, ErrTaskEnded)
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusExpired, task.Status)
}

func TestClientChosenIDRunsOnce(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var runs atomic.Int32
	once := func(ctx context.Context, task *Task) (any, error) {
		runs.Add(1)
		return "ran", nil
	}
	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"once": once})

	// An agent submits over NATS with its own task id, expecting no event
	// before it. Each publish is a new event with a new id, so the
	// stream's duplicate window cannot be what stops the repeat: the
	// compare-and-set does, for as long as the task is kept.
	ctx := context.Background()
	const id = "agent-chosen-id-1"
	publish := func() error {
		ev, err := events.NewEvent(events.KindSubmitted, testTenant, id, "once", "urn:agent:planner", input(`{}`))
		require.NoError(t, err)
		_, err = tb.bus.Append(ctx, &ev, bus.AppendOptions{ExpectSeq: 0, TTL: time.Hour})
		return err
	}
	require.NoError(t, publish())
	waitTerminal(t, tb.bus, id)
	err := publish()
	require.ErrorIs(t, err, bus.ErrConflict)

	task, err := tb.bus.ReadTask(ctx, testTenant, id)
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, int32(1), runs.Load())
	require.Len(t, eventsOf(history(t, tb.bus, id), events.KindSubmitted), 1)
}

// TestExecProtocolExample runs the worked example of docs/exec-protocol.md,
// with shorter pages, through an input request, a pause and a resume.
func TestExecProtocolExample(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatalf("the worked example of docs/exec-protocol.md needs jq on PATH: %v", err)
	}
	doc, err := os.ReadFile("../../docs/exec-protocol.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "`export.sh`:\n\n```sh\n")
	require.True(t, ok, "the worked example's script is missing")
	script, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	require.Contains(t, script, "sleep 1 #")
	script = strings.Replace(script, "sleep 1 #", "sleep 0.2 #", 1)
	path := filepath.Join(t.TempDir(), "export.sh")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))

	tb := setup(t)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"reports.export": execType(path)}), nil)
	id := submit(t, tb.bus, "reports.export", input(`{"table": "salaries", "pages": 5}`))

	task := waitStatus(t, tb.bus, id, events.StatusInputRequired)
	require.Equal(t, "Export the restricted table salaries?", task.InputRequest.Prompt)
	require.JSONEq(t, `{"page": 0}`, string(task.Checkpoint))
	request(t, tb.bus, id, events.KindResumed, events.Resumed{Input: json.RawMessage(`{"granted": true}`)})

	require.Eventually(t, func() bool {
		task, err = tb.bus.ReadTask(context.Background(), testTenant, id)
		return err == nil && len(eventsOf(history(t, tb.bus, id), events.KindProgress)) > 0
	}, waitTimeout, pollEvery, "the export never reported a page")
	request(t, tb.bus, id, events.KindPauseRequested, nil)
	task = waitStatus(t, tb.bus, id, events.StatusPaused)
	var paused struct{ Page int }
	require.NoError(t, json.Unmarshal(task.Checkpoint, &paused))
	require.Positive(t, paused.Page)

	request(t, tb.bus, id, events.KindResumed, nil)
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.JSONEq(t, `{"table": "salaries", "pages": 5}`, string(task.Result))
	require.Equal(t, 3, task.Attempt, "asked, paused, finished")
	require.Len(t, eventsOf(history(t, tb.bus, id), events.KindInputRequired), 1, "the answer holds after the pause")
}

// scheduleDeadline appends the deadline_scheduled event of a task as ingest
// does, whose message schedule publishes the deadline event at deadline.
func scheduleDeadline(t *testing.T, b *bus.Bus, id string, deadline time.Time) {
	t.Helper()
	ctx := context.Background()
	task, err := b.ReadTask(ctx, testTenant, id)
	require.NoError(t, err)
	ev, err := events.NewEvent(events.KindDeadlineScheduled, task.Tenant, task.ID, task.Type, "/handoff/ingest", events.DeadlineScheduled{Deadline: deadline})
	require.NoError(t, err)
	_, err = b.Append(ctx, &ev, bus.AppendOptions{
		ExpectSeq: task.LastSeq,
		TTL:       task.TTLLeft(time.Now()),
		Schedule:  &bus.Schedule{At: deadline, Target: events.KindDeadline, TTL: task.TTLLeft(deadline)},
	})
	require.NoError(t, err)
}

func TestDeadlineExpiresWaitingTasks(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	entered := make(chan string, 1)
	release := make(chan struct{})
	var runs atomic.Int32
	busy := func(ctx context.Context, task *Task) (any, error) {
		if runs.Add(1) == 1 {
			entered <- task.ID
			<-release
		}
		return "ran", nil
	}
	cfg := testConfig(nil)
	cfg.Concurrency = 1
	tb.start(t, tb.bus, cfg, map[string]Handler{"busy": busy})

	// The only slot is taken, so the second task stays queued.
	first := submit(t, tb.bus, "busy", input(`{}`))
	require.Equal(t, first, <-entered)
	deadline := time.Now().Add(time.Second)
	queued := submit(t, tb.bus, "busy", events.Submission{Input: json.RawMessage(`{}`), Deadline: &deadline})
	scheduleDeadline(t, tb.bus, queued, deadline)

	// A paused task waits for a resume that does not come in time.
	paused := submit(t, tb.bus, "busy", events.Submission{Input: json.RawMessage(`{}`), Deadline: &deadline})
	request(t, tb.bus, paused, events.KindPaused, nil)
	scheduleDeadline(t, tb.bus, paused, deadline)

	require.Eventually(t, func() bool {
		task, err := tb.bus.ReadTask(context.Background(), testTenant, queued)
		return err == nil && task.DeadlinePassed
	}, waitTimeout, pollEvery, "the deadline schedule never fired")
	close(release)

	for _, id := range []string{queued, paused} {
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusExpired, task.Status)
		require.Zero(t, task.Attempt, "an expired task never runs")
	}
	require.Equal(t, int32(1), runs.Load())
	task := waitTerminal(t, tb.bus, first)
	require.Equal(t, events.StatusSucceeded, task.Status)
}

func TestEndedTaskLosesItsSchedules(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	deadline := time.Now().Add(time.Hour)
	id := submit(t, tb.bus, "quick", events.Submission{Input: json.RawMessage(`{}`), Deadline: &deadline})
	scheduleDeadline(t, tb.bus, id, deadline)
	require.Len(t, eventsOf(history(t, tb.bus, id), events.KindDeadlineScheduled), 1)

	tb.start(t, tb.bus, testConfig(nil), map[string]Handler{"quick": func(ctx context.Context, task *Task) (any, error) {
		return "done", nil
	}})
	waitTerminal(t, tb.bus, id)

	require.Eventually(t, func() bool {
		return len(eventsOf(history(t, tb.bus, id), events.KindDeadlineScheduled)) == 0
	}, waitTimeout, pollEvery, "the deadline schedule was not purged")
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindSucceeded}, kindsOf(history(t, tb.bus, id)))
}

func TestStaleCopyLeavesLeaseAlone(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	cfg := testConfig(nil)
	cfg.AckWait = 500 * time.Millisecond
	cfg.DrainTimeout = 100 * time.Millisecond
	entered := make(chan string, 1)
	work := func(ctx context.Context, task *Task) (any, error) {
		if task.Attempt > 1 {
			return "taken over", nil
		}
		entered <- task.ID
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}

	// An executor that stalls after it received the submitted message:
	// the test holds its delivery and hands it over later.
	cfg.Instance = "stalled"
	stalled, err := New(cfg, tb.connect(t), zapNop())
	require.NoError(t, err)
	stalled.Handle("work", work, TypeOptions{})
	require.NoError(t, stalled.serve())
	stalled.workCtx, stalled.cancelWork = context.WithCancelCause(ctx)
	defer stalled.cancelWork(nil)
	cons, err := stalled.ensureConsumer(ctx)
	require.NoError(t, err)

	id := submit(t, tb.bus, "work", input(`{}`))
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(waitTimeout))
	require.NoError(t, err)
	staleCopy := <-batch.Messages()
	require.NotNil(t, staleCopy)

	// After the ack wait the server gives the message to another executor,
	// which starts the attempt.
	cfg.Instance = "winner"
	winnerBus := tb.connect(t)
	tb.start(t, winnerBus, cfg, map[string]Handler{"work": work})
	require.Equal(t, id, <-entered)
	task := waitStatus(t, tb.bus, id, events.StatusRunning)
	require.Equal(t, uint64(2), task.AttemptDelivery)

	// The stalled executor goes on with its copy. It must neither start
	// the task nor acknowledge the copy: the server acknowledges by stream
	// sequence, so an ack would end the winner's lease.
	stalled.handleMessage(staleCopy)
	task, err = tb.bus.ReadTask(ctx, testTenant, id)
	require.NoError(t, err)
	require.Equal(t, 1, task.Attempt)
	require.Equal(t, "winner", task.Executor)

	// The winner crashes. Its lease lapses, and the message comes back to
	// the pool, which it would not after a stale ack.
	winnerBus.Conn().Close()
	cfg.Instance = "rescuer"
	tb.start(t, tb.bus, cfg, map[string]Handler{"work": work})
	task = waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 2, task.Attempt)
	require.Equal(t, "rescuer", task.Executor)
	require.JSONEq(t, `"taken over"`, string(task.Result))
}
