package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// Exit statuses of exec handlers with a meaning beyond failure, from BSD's
// sysexits.h.
const (
	// ExitTempFail (EX_TEMPFAIL) requests another attempt.
	ExitTempFail = 75
	// ExitDataErr (EX_DATAERR) fails the task without another attempt,
	// for input that can never succeed.
	ExitDataErr = 65
	// ExitInputRequired (EX_PROTOCOL) stops the attempt and asks for the
	// input described by the program's last "input-required:" line on
	// stderr.
	ExitInputRequired = 76
)

const (
	// stderrTailSize bounds the stderr kept for the error message.
	stderrTailSize = 4 << 10
	// maxStderrLine bounds one stderr line; longer lines are split.
	maxStderrLine = 64 << 10
	// progressPrefix starts a stderr line that reports progress.
	progressPrefix = "progress:"
	// checkpointPrefix starts a stderr line that records a checkpoint.
	checkpointPrefix = "checkpoint:"
	// inputRequiredPrefix starts a stderr line that describes the input
	// the program asks for when it exits with ExitInputRequired.
	inputRequiredPrefix = "input-required:"
)

// passedEnv lists the variables of the executor's environment that exec
// handlers inherit. Everything else is dropped, so the executor's own
// credentials do not leak to handlers; a type adds what it needs with env.
var passedEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER"}

// execHandler runs a program per attempt. docs/exec-protocol.md states
// the protocol in full:
//   - the input is its stdin; a run that continues earlier work gets an
//     input object with the members checkpoint and answer added, and
//     HANDOFF_RESUMED=1;
//   - its environment holds PATH, HOME, TMPDIR, LANG, LC_ALL, LC_CTYPE, TZ
//     and USER from the executor's, the type's env, and HANDOFF_TASK_ID,
//     HANDOFF_TASK_TYPE, HANDOFF_ATTEMPT and HANDOFF_TENANT;
//   - stdout is the result and must be JSON (empty means null). Up to the
//     result limit it is inlined in the succeeded event; a longer one is
//     stored in the results bucket while the program writes it, up to
//     MaxResultBytes. A type with an output media type writes bytes of that
//     type, which are always stored;
//   - stderr lines "progress: <percent> <message>" report progress,
//     "checkpoint: <json>" records a checkpoint and "input-required:
//     <json>" describes the input that exit status ExitInputRequired asks
//     for. The last 4 KiB of the other lines go into the error message;
//   - exit 0 succeeds, ExitTempFail and every other status but
//     ExitDataErr and ExitInputRequired fail the attempt and are retried
//     while attempts remain, ExitDataErr fails the task at once;
//   - it runs in its own process group, which gets SIGTERM when the
//     attempt is cancelled or times out and SIGKILL KillGrace later.
type execHandler struct {
	program   string
	args      []string
	dir       string
	env       []string
	killGrace time.Duration
	limit     int
	maxBytes  int64
	// mediaType is the type's output media type, or "" for JSON.
	mediaType string
	results   *bus.Bus
}

func newExecHandler(tc TypeConfig, cfg Config, results *bus.Bus) (*execHandler, error) {
	program, err := resolveProgram(tc.Command[0], cfg.BaseDir)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(passedEnv)+len(tc.Env)+4)
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(tc.Env))
	for k := range tc.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+tc.Env[k])
	}
	return &execHandler{
		program:   program,
		args:      tc.Command[1:],
		dir:       tc.Dir,
		env:       env,
		killGrace: cfg.KillGrace,
		limit:     cfg.ResultLimit,
		maxBytes:  cfg.MaxResultBytes,
		mediaType: tc.OutputMediaType,
		results:   results,
	}, nil
}

func (h *execHandler) run(ctx context.Context, t *Task) (any, error) {
	stdin, extraEnv, cleanup, err := continuation(t)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	cmd := exec.CommandContext(ctx, h.program, h.args...)
	cmd.Dir = h.dir
	cmd.Env = append(slices.Clip(h.env),
		"HANDOFF_TASK_ID="+t.ID,
		"HANDOFF_TASK_TYPE="+t.Type,
		"HANDOFF_ATTEMPT="+strconv.Itoa(t.Attempt),
		"HANDOFF_TENANT="+t.Tenant,
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	stdout := &resultSink{
		// The upload ends with the program's output, not with the
		// attempt's context, so that a program that exits 0 after SIGTERM
		// still stores its result. A failed program aborts it.
		ctx:         context.WithoutCancel(ctx),
		bus:         h.results,
		object:      bus.ResultObject{Tenant: t.Tenant, TaskID: t.ID, Attempt: t.Attempt},
		mediaType:   h.mediaType,
		inlineLimit: h.limit,
		maxBytes:    h.maxBytes,
	}
	stderr := &stderrParser{task: t}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = execProcAttr()
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	// os/exec kills the process and closes its pipes KillGrace after the
	// cancel; the rest of the group is killed below.
	cmd.WaitDelay = h.killGrace

	if err := cmd.Start(); err != nil {
		return nil, Permanent(fmt.Errorf("start %s: %w", h.program, err))
	}
	waitErr := cmd.Wait()
	stderr.flush()
	if ctx.Err() != nil {
		// Processes of the group that outlived the leader, such as a
		// child that ignores SIGTERM, go too.
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	}

	// A program that exits 0 with output after SIGTERM has a result, as
	// the exec protocol promises, although os/exec then reports the
	// context's error. The outcome decides whether the result counts, for example
	// against a requested cancel.
	exitedOK := waitErr == nil
	if ctx.Err() != nil && errors.Is(waitErr, ctx.Err()) && cmd.ProcessState.Success() && !stdout.empty() {
		exitedOK = true
	}
	result, resultErr := stdout.finish(exitedOK)
	if exitedOK {
		return result, resultErr
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %s%s", context.Cause(ctx), describeExit(waitErr), stderr.summary())
	}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) {
		if exitErr.ExitCode() == ExitInputRequired {
			return nil, stderr.inputRequest()
		}
		err := fmt.Errorf("%s%s", describeExit(waitErr), stderr.summary())
		return nil, failure(events.CodeExitStatus, exitErr.ExitCode() == ExitDataErr, err)
	}
	if errors.Is(waitErr, exec.ErrWaitDelay) {
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		return nil, failure(events.CodeExitStatus, false, fmt.Errorf("exited, but its stdout or stderr stayed open for %s, held by a process it started%s", h.killGrace, stderr.summary()))
	}
	return nil, failure(events.CodeHandlerError, false, fmt.Errorf("run %s: %w", h.program, waitErr))
}

// describeExit describes how the process ended: "exit status 3" or "signal:
// killed".
func describeExit(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		switch code := exitErr.ExitCode(); code {
		case ExitTempFail:
			return "exit status 75 (EX_TEMPFAIL, retry requested)"
		case ExitDataErr:
			return "exit status 65 (EX_DATAERR, no retry)"
		}
		return exitErr.String()
	}
	return err.Error()
}

// signalGroup sends sig to the process group led by pid. A group that is
// already gone is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// excerpt quotes the first n bytes of b for an error message.
func excerpt(b []byte, n int) string {
	suffix := ""
	if len(b) > n {
		b, suffix = b[:n], "..."
	}
	return strconv.Quote(strings.ToValidUTF8(string(b), "\uFFFD")) + suffix
}

// stderrParser splits stderr into lines, reports the progress and
// checkpoint lines, keeps the last input request and the tail of the other
// lines. os/exec writes to it from one goroutine, and it is read only
// after Wait returns.
type stderrParser struct {
	task    *Task
	partial []byte
	tail    []byte
	// input is the payload of the last "input-required:" line.
	input []byte
}

func (s *stderrParser) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.partial = append(s.partial, p...)
			if len(s.partial) >= maxStderrLine {
				s.line(s.partial)
				s.partial = s.partial[:0]
			}
			break
		}
		if len(s.partial) > 0 {
			s.partial = append(s.partial, p[:i]...)
			s.line(s.partial)
			s.partial = s.partial[:0]
		} else {
			s.line(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

func (s *stderrParser) flush() {
	if len(s.partial) > 0 {
		s.line(s.partial)
		s.partial = nil
	}
}

func (s *stderrParser) line(l []byte) {
	l = bytes.TrimRight(l, "\r")
	if rest, ok := bytes.CutPrefix(l, []byte(progressPrefix)); ok {
		fields := strings.TrimSpace(string(rest))
		number, message, _ := strings.Cut(fields, " ")
		if percent, err := strconv.ParseFloat(number, 64); err == nil {
			s.task.Progress(percent, strings.TrimSpace(message))
			return
		}
	}
	if rest, ok := bytes.CutPrefix(l, []byte(checkpointPrefix)); ok {
		// A checkpoint that is not JSON stays an ordinary line, so it
		// shows in the error message.
		if raw := bytes.TrimSpace(rest); json.Valid(raw) {
			if err := s.task.Checkpoint(json.RawMessage(raw)); err == nil {
				return
			}
		}
	}
	if rest, ok := bytes.CutPrefix(l, []byte(inputRequiredPrefix)); ok {
		s.input = append(s.input[:0], bytes.TrimSpace(rest)...)
		return
	}
	s.tail = append(s.tail, l...)
	s.tail = append(s.tail, '\n')
	if over := len(s.tail) - stderrTailSize; over > 0 {
		s.tail = append(s.tail[:0], s.tail[over:]...)
	}
}

// inputRequest returns the request of the program's last "input-required:"
// line, for a program that exited with ExitInputRequired. A missing or
// invalid line fails the task without another attempt, because a retry
// would stop at the same point.
func (s *stderrParser) inputRequest() error {
	protocol := func(format string, args ...any) error {
		err := fmt.Errorf("exit status 76 (input required): "+format, args...)
		return failure(events.CodeInvalidOutput, true, fmt.Errorf("%w%s", err, s.summary()))
	}
	if len(s.input) == 0 {
		return protocol("stderr has no line %q describing the input", inputRequiredPrefix+" <json>")
	}
	var req struct {
		Prompt      string          `json:"prompt"`
		InputSchema json.RawMessage `json:"input_schema"`
		Checkpoint  json.RawMessage `json:"checkpoint"`
	}
	dec := json.NewDecoder(bytes.NewReader(s.input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return protocol("the %s line is not a JSON object of prompt, input_schema and checkpoint: %v", inputRequiredPrefix, err)
	}
	var checkpoint any
	if len(req.Checkpoint) > 0 && string(req.Checkpoint) != "null" {
		checkpoint = req.Checkpoint
	}
	schema := req.InputSchema
	if string(schema) == "null" {
		schema = nil
	}
	return AskInput(req.Prompt, schema, checkpoint)
}

// summary returns ": stderr: <tail>" for an error message, or "" when
// stderr had nothing but progress.
func (s *stderrParser) summary() string {
	tail := strings.TrimSpace(strings.ToValidUTF8(string(s.tail), "\uFFFD"))
	if tail == "" {
		return ""
	}
	return "; stderr: " + tail
}
