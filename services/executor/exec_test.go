package executor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestExecHandlerSucceeds(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	dir := t.TempDir()
	writeScript(t, dir, "wrap.sh", `printf '{"wrapped":'; cat; printf '}'`)
	cfg := testConfig(map[string]TypeConfig{"wrap": execType("./wrap.sh")})
	cfg.BaseDir = dir
	tb.start(t, tb.bus, cfg, nil)

	id := submit(t, tb.bus, "wrap", input(`{"n":1}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status)
	require.JSONEq(t, `{"wrapped":{"n":1}}`, string(task.Result))
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindSucceeded}, kindsOf(history(t, tb.bus, id)))
}

func TestExecTempFailIsRetried(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	script := writeScript(t, dir, "flaky.sh", `
if [ ! -e "$STATE" ]; then
	touch "$STATE"
	echo "database busy" >&2
	exit 75
fi
echo '{"ok":true}'
`)
	tc := execType(script)
	tc.Env = map[string]string{"STATE": state}
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"flaky": tc}), nil)

	id := submit(t, tb.bus, "flaky", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, 2, task.Attempt)
	evs := history(t, tb.bus, id)
	require.Equal(t, []events.Kind{
		events.KindSubmitted, events.KindStarted, events.KindRetrying, events.KindStarted, events.KindSucceeded,
	}, kindsOf(evs))
	var retrying events.Retrying
	require.NoError(t, eventsOf(evs, events.KindRetrying)[0].DecodeData(&retrying))
	require.False(t, retrying.NextAttemptAt.IsZero())
	require.Equal(t, events.CodeExitStatus, retrying.Error.Code)
	require.Contains(t, retrying.Error.Message, "exit status 75")
	require.Contains(t, retrying.Error.Message, "database busy")
}

func TestExecDataErrFailsAtOnce(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	script := writeScript(t, t.TempDir(), "bad.sh", "echo 'dir must be relative' >&2\nexit 65\n")
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"bad": execType(script)}), nil)

	id := submit(t, tb.bus, "bad", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, 1, task.Attempt)
	require.Equal(t, events.CodeExitStatus, task.Error.Code)
	require.False(t, task.Error.Retryable)
	require.Contains(t, task.Error.Message, "dir must be relative")
}

func TestExecProgressIsThrottled(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	script := writeScript(t, t.TempDir(), "progress.sh", `
echo "progress: 10 starting" >&2
sleep 0.2
echo "progress: 20" >&2
echo "progress: 30 a third" >&2
echo "not a progress line" >&2
sleep 1.5
echo '"done"'
`)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"progress": execType(script)}), nil)

	id := submit(t, tb.bus, "progress", input(`{}`))
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)

	var reports []events.Progress
	var times []time.Time
	for _, ev := range eventsOf(history(t, tb.bus, id), events.KindProgress) {
		var p events.Progress
		require.NoError(t, ev.DecodeData(&p))
		reports = append(reports, p)
		times = append(times, ev.Stored)
	}
	require.Len(t, reports, 2)
	require.Equal(t, events.Progress{Percent: 10, Message: "starting"}, reports[0])
	// 20 was superseded by 30 within the same second.
	require.Equal(t, events.Progress{Percent: 30, Message: "a third"}, reports[1])
	require.GreaterOrEqual(t, times[1].Sub(times[0]), 900*time.Millisecond)
}

func TestExecInvalidOutputFails(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	script := writeScript(t, t.TempDir(), "text.sh", "echo 'all good'\n")
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"text": execType(script)}), nil)

	id := submit(t, tb.bus, "text", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, events.CodeInvalidOutput, task.Error.Code)
	require.Equal(t, 1, task.Attempt)
	require.Contains(t, task.Error.Message, `"all good`)
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
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
	tc.Timeout = time.Second
	tc.Env = map[string]string{"PID_FILE": pidFile, "TERM_FILE": termFile}
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"stubborn": tc}), nil)

	id := submit(t, tb.bus, "stubborn", events.Submission{Input: json.RawMessage(`{}`), MaxAttempts: 1})
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, events.CodeTimeout, task.Error.Code)
	require.True(t, strings.HasPrefix(task.Error.Message, "attempt timed out after 1s: signal: killed"), task.Error.Message)

	// The script got SIGTERM first, ignored it, and was killed.
	term, err := os.ReadFile(termFile)
	require.NoError(t, err)
	require.Contains(t, string(term), "term")
	raw, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return syscall.Kill(-pid, 0) == syscall.ESRCH
	}, waitTimeout, pollEvery, "process group %d still has members", pid)

	evs := history(t, tb.bus, id)
	started := eventsOf(evs, events.KindStarted)[0].Stored
	failed := eventsOf(evs, events.KindFailed)[0].Stored
	require.GreaterOrEqual(t, failed.Sub(started), 1200*time.Millisecond, "the kill came before timeout plus grace")
}

func TestExecEnvironment(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	script := writeScript(t, t.TempDir(), "env.sh", `
names=$(env | cut -d= -f1 | sort | tr '\n' ' ')
printf '{"id":"%s","type":"%s","attempt":"%s","tenant":"%s","custom":"%s","names":"%s"}' \
	"$HANDOFF_TASK_ID" "$HANDOFF_TASK_TYPE" "$HANDOFF_ATTEMPT" "$HANDOFF_TENANT" "$CUSTOM" "$names"
`)
	tc := execType(script)
	tc.Env = map[string]string{"CUSTOM": "value with spaces"}
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"env.show": tc}), nil)

	id := submit(t, tb.bus, "env.show", input(`{}`))
	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusSucceeded, task.Status)

	var out struct {
		ID, Type, Attempt, Tenant, Custom, Names string
	}
	require.NoError(t, json.Unmarshal(task.Result, &out))
	require.Equal(t, id, out.ID)
	require.Equal(t, "env.show", out.Type)
	require.Equal(t, "1", out.Attempt)
	require.Equal(t, testTenant, out.Tenant)
	require.Equal(t, "value with spaces", out.Custom)

	// Only the passed-through variables, the HANDOFF_ ones, the type's own
	// and what the shell sets itself are there.
	allowed := map[string]bool{"CUSTOM": true, "PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}
	for _, k := range passedEnv {
		allowed[k] = true
	}
	for _, name := range strings.Fields(out.Names) {
		if strings.HasPrefix(name, "HANDOFF_") {
			continue
		}
		require.True(t, allowed[name], "unexpected variable %s in the handler's environment", name)
	}
}

func TestStderrParserKeepsTail(t *testing.T) {
	var got []events.Progress
	task := &Task{report: newProgressReport(nil)}
	p := &stderrParser{task: task}
	_, err := p.Write([]byte("progress: 12.5 step one\r\nwarn"))
	require.NoError(t, err)
	_, err = p.Write([]byte("ing: disk slow\nprogress: oops\n"))
	require.NoError(t, err)
	p.flush()

	percent, message, _, ok := task.report.take()
	require.True(t, ok)
	got = append(got, events.Progress{Percent: percent, Message: message})
	require.Equal(t, []events.Progress{{Percent: 12.5, Message: "step one"}}, got)
	require.Equal(t, "; stderr: warning: disk slow\nprogress: oops", p.summary())

	// The tail keeps the last bytes only.
	for range 1000 {
		_, err = p.Write([]byte("0123456789\n"))
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(p.tail), stderrTailSize)
	require.True(t, strings.HasSuffix(string(p.tail), "0123456789\n"))
}
