package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/client"
)

// Bounds of the waits for a process to become ready.
const (
	startTimeout = 60 * time.Second
	exitTimeout  = 60 * time.Second
)

// execModes are the behaviours of testdata/task.sh, each served as the
// task type fault.<mode>.
var execModes = []string{"work", "fail", "flaky", "crash", "panic", "kill-executor", "ask"}

// execConfig are the executor settings of one test.
type execConfig struct {
	Concurrency  int
	AckWait      time.Duration
	DrainTimeout time.Duration
	KillGrace    time.Duration
	// LogLevel is the executors' log level; default info.
	LogLevel string
}

func (c execConfig) withDefaults() execConfig {
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.AckWait == 0 {
		c.AckWait = 2 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.KillGrace == 0 {
		c.KillGrace = 2 * time.Second
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	return c
}

// stack is one Handoff deployment of separate processes: a nats-server
// with its own store, and the ingest and executor processes the test
// starts, all on loopback.
type stack struct {
	t   *testing.T
	dir string
	cfg execConfig

	natsStore string
	natsPort  int
	natsURL   string
	nats      *proc

	// bus is the test's own connection, used to read task events.
	bus *bus.Bus
	// configPath is the executors' task type file.
	configPath string
	// executionLog is where task.sh records each execution.
	executionLog string

	ingest *proc
	api    *client.Client
}

// newStack starts a nats-server, provisions the streams with `handoff
// provision` and connects the test to it. Executors and ingest are started
// by the test.
func newStack(t *testing.T, cfg execConfig) *stack {
	t.Helper()
	s := &stack{t: t, dir: t.TempDir(), cfg: cfg.withDefaults()}
	s.natsStore = filepath.Join(s.dir, "nats")
	s.prepareExecutionLog()
	s.startNATS()
	s.provision()
	return s
}

// prepareExecutionLog creates the execution log that task.sh writes, and
// kills the handlers left running when the test ends.
func (s *stack) prepareExecutionLog() {
	s.t.Helper()
	s.executionLog = filepath.Join(s.dir, "executions.log")
	require.NoError(s.t, os.WriteFile(s.executionLog, nil, 0o644))
	s.t.Cleanup(s.killHandlers)
}

// provision provisions the streams on s.natsURL with `handoff provision`
// and extra flags, connects the test to them and writes the executors'
// configuration.
func (s *stack) provision(flags ...string) {
	s.t.Helper()
	args := append([]string{"provision", "--nats-url", s.natsURL}, flags...)
	prov := startProc(s.t, s.dir, "handoff", args...)
	require.NoError(s.t, prov.waitExit(s.t, startTimeout), "handoff provision")

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	nc, err := bus.Connect(ctx, s.natsURL, "handoff-faults-test")
	require.NoError(s.t, err)
	s.t.Cleanup(nc.Close)
	s.bus, err = bus.New(nc, "")
	require.NoError(s.t, err)

	s.configPath = s.writeConfig()
}

// natsReady matches the line nats-server prints when it accepts clients.
var (
	natsListening = regexp.MustCompile(`Listening for client connections on 127\.0\.0\.1:(\d+)`)
	natsReady     = regexp.MustCompile(`Server is ready`)
)

// startNATS starts nats-server with JetStream on the stack's store. The
// first start picks a free port; later ones reuse it, as an operator
// restarting the server would.
func (s *stack) startNATS() {
	s.t.Helper()
	port := s.natsPort
	if port == 0 {
		port = -1
	}
	p := startProc(s.t, s.dir, "nats-server",
		"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", s.natsStore,
		"-n", "handoff-faults")
	m := p.waitLine(s.t, natsListening, startTimeout)
	p.waitLine(s.t, natsReady, startTimeout)
	s.natsPort, _ = strconv.Atoi(m[1])
	s.natsURL = "nats://127.0.0.1:" + m[1]
	s.nats = p
}

// stopNATS stops nats-server with sig and waits for it to exit.
func (s *stack) stopNATS(sig syscall.Signal) {
	s.t.Helper()
	s.nats.signal(s.t, sig)
	err := s.nats.waitExit(s.t, exitTimeout)
	if sig != syscall.SIGKILL {
		require.NoError(s.t, err, "nats-server exit after %s", sig)
	}
}

// writeConfig renders testdata/executor.yaml into the test's directory.
func (s *stack) writeConfig() string {
	s.t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "executor.yaml"))
	require.NoError(s.t, err)
	script, err := filepath.Abs(filepath.Join("testdata", "task.sh"))
	require.NoError(s.t, err)

	path := filepath.Join(s.dir, "executor.yaml")
	f, err := os.Create(path)
	require.NoError(s.t, err)
	defer f.Close()
	require.NoError(s.t, tmpl.Execute(f, map[string]any{
		"Concurrency":  s.cfg.Concurrency,
		"AckWait":      s.cfg.AckWait,
		"DrainTimeout": s.cfg.DrainTimeout,
		"KillGrace":    s.cfg.KillGrace,
		"Script":       script,
		"ExecutionLog": s.executionLog,
		"Modes":        execModes,
	}))
	return path
}

var executorStarted = regexp.MustCompile(`"msg":"executor started"`)

// startExecutor starts a handoff-executor named instance and waits until
// it consumes.
func (s *stack) startExecutor(instance string) *proc {
	s.t.Helper()
	p := startProc(s.t, s.dir, "handoff-executor", s.executorArgs(instance)...)
	p.waitLine(s.t, executorStarted, startTimeout)
	return p
}

func (s *stack) executorArgs(instance string) []string {
	return []string{
		"--nats-url", s.natsURL,
		"--config", s.configPath,
		"--instance", instance,
		"--log-format", "json",
		"--log-level", s.cfg.LogLevel,
	}
}

var ingestServing = regexp.MustCompile(`"msg":"serving the HTTP API".*"addr":"([^"]+)"`)

// startIngest starts handoff-ingest on a free loopback port and makes it
// the stack's API. Start it after an executor, so that the task types are
// registered.
func (s *stack) startIngest() {
	s.t.Helper()
	s.ingest, s.api = s.startIngestInstance()
}

// startIngestInstance starts one more handoff-ingest with extra flags on a
// free loopback port and returns it with a client of its API.
func (s *stack) startIngestInstance(flags ...string) (*proc, *client.Client) {
	s.t.Helper()
	args := append([]string{
		"--nats-url", s.natsURL,
		"--http-addr", "127.0.0.1:0",
		"--log-format", "json",
	}, flags...)
	p := startProc(s.t, s.dir, "handoff-ingest", args...)
	addr := p.waitLine(s.t, ingestServing, startTimeout)[1]
	api, err := client.New("http://" + addr)
	require.NoError(s.t, err)
	return p, api
}

var notifierStarted = regexp.MustCompile(`"msg":"notifier started"`)

// startNotifier starts a handoff-notifier named instance that signs with
// secret and may call loopback webhooks, and waits until it consumes.
func (s *stack) startNotifier(instance, secret string) *proc {
	s.t.Helper()
	p := startProc(s.t, s.dir, "handoff-notifier",
		"--nats-url", s.natsURL,
		"--instance", instance,
		"--webhook-secret", secret,
		"--allow-loopback",
		"--log-format", "json")
	p.waitLine(s.t, notifierStarted, startTimeout)
	return p
}

// submit submits a task over HTTP and returns its id. Only a 202 counts as
// accepted.
func (s *stack) submit(ctx context.Context, req client.SubmitRequest) (string, error) {
	res, err := s.api.Submit(ctx, req, client.SubmitOptions{})
	if err != nil {
		return "", err
	}
	if !res.Created {
		return "", fmt.Errorf("submit returned an existing task %s", res.Task.ID)
	}
	return res.Task.ID, nil
}

// mustSubmit submits a task and fails the test unless it is accepted.
func (s *stack) mustSubmit(req client.SubmitRequest) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := s.submit(ctx, req)
	require.NoError(s.t, err, "submit %s", req.Type)
	return id
}

// awaitStatus polls a task until its status is want, for up to timeout.
// Unlike [stack.waitTask] it returns an error, so other goroutines than
// the test's can call it.
func (s *stack) awaitStatus(id string, want events.Status, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := events.StatusNew
	for time.Now().Before(deadline) {
		task, err := s.readTask(id)
		if err == nil {
			last = task.Status
			if last == want {
				return nil
			}
			if last.Terminal() {
				break
			}
		}
		pause := time.NewTimer(50 * time.Millisecond)
		<-pause.C
	}
	return fmt.Errorf("task %s is %s, not %s, after %s", id, last, want, timeout)
}

// readTask folds one task's events.
func (s *stack) readTask(id string) (*events.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.bus.ReadTask(ctx, events.DefaultTenant, id)
}

// waitStarted waits for the started event of attempt n and returns its
// data.
func (s *stack) waitStarted(id string, n int, timeout time.Duration) events.Started {
	s.t.Helper()
	var started events.Started
	require.Eventually(s.t, func() bool {
		h, err := s.history(id)
		if err != nil || len(h.starts) < n {
			return false
		}
		started = h.starts[n-1]
		return true
	}, timeout, 20*time.Millisecond, "task %s: no started attempt %d within %s", id, n, timeout)
	return started
}

// unended returns the tasks of ids that have not ended, polling until none
// is left or timeout passes.
func (s *stack) unended(ids []string, timeout time.Duration) []string {
	s.t.Helper()
	left := append([]string(nil), ids...)
	deadline := time.Now().Add(timeout)
	for {
		left = s.filterUnended(left)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		wait := time.NewTimer(100 * time.Millisecond)
		<-wait.C
	}
}

// waitEnded fails the test unless every task of ids ends within timeout.
func (s *stack) waitEnded(ids []string, timeout time.Duration) {
	s.t.Helper()
	left := s.unended(ids, timeout)
	if len(left) == 0 {
		return
	}
	var b strings.Builder
	for i, id := range left {
		if i == 10 {
			fmt.Fprintf(&b, "\n  and %d more", len(left)-i)
			break
		}
		task, err := s.readTask(id)
		if err != nil {
			fmt.Fprintf(&b, "\n  %s: %v", id, err)
			continue
		}
		fmt.Fprintf(&b, "\n  %s: %s, attempt %d, executor %s", id, task.Status, task.Attempt, task.Executor)
	}
	s.t.Fatalf("%d of %d tasks did not end within %s:%s", len(left), len(ids), timeout, b.String())
}

// filterUnended reads the tasks of ids with a few readers at once and
// returns those that have not ended. A task that cannot be read counts as
// not ended.
func (s *stack) filterUnended(ids []string) []string {
	const readers = 8
	var mu sync.Mutex
	var left []string
	next := make(chan string)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				task, err := s.readTask(id)
				if err != nil || !task.Terminal() {
					mu.Lock()
					left = append(left, id)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	return left
}

// consumerInfo returns the state of the executors' durable consumer.
func (s *stack) consumerInfo() (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.bus.JetStream().Consumer(ctx, s.bus.Names().TasksStream(), "executor-faults")
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// execution is one line of the execution log that task.sh writes.
type execution struct {
	phase   string // start or end
	task    string
	attempt int
	pid     int
}

// executions reads the execution log.
func (s *stack) executions() []execution {
	s.t.Helper()
	f, err := os.Open(s.executionLog)
	require.NoError(s.t, err)
	defer f.Close()
	var out []execution
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			continue
		}
		attempt, _ := strconv.Atoi(fields[2])
		pid, _ := strconv.Atoi(fields[3])
		out = append(out, execution{phase: fields[0], task: fields[1], attempt: attempt, pid: pid})
	}
	require.NoError(s.t, sc.Err())
	return out
}

// waitExecution waits until task.sh logged phase ("start" or "end") for
// the task's attempt.
func (s *stack) waitExecution(id string, attempt int, phase string, timeout time.Duration) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		for _, e := range s.executions() {
			if e.task == id && e.attempt == attempt && e.phase == phase {
				return true
			}
		}
		return false
	}, timeout, 20*time.Millisecond, "task %s: task.sh did not log %s of attempt %d within %s", id, phase, attempt, timeout)
}

// countExecutions returns how many times task.sh started and ended for the
// task.
func (s *stack) countExecutions(id string) (starts, ends int) {
	for _, e := range s.executions() {
		if e.task != id {
			continue
		}
		if e.phase == "start" {
			starts++
		} else {
			ends++
		}
	}
	return starts, ends
}

// killHandlers kills the process group of every handler that task.sh
// recorded as started but not ended and that still runs task.sh. An
// executor killed with SIGKILL leaves its handlers running, because each
// runs in its own process group.
func (s *stack) killHandlers() {
	script, err := filepath.Abs(filepath.Join("testdata", "task.sh"))
	if err != nil {
		return
	}
	running := map[int]bool{}
	for _, e := range s.executions() {
		switch e.phase {
		case "start":
			running[e.pid] = true
		case "end":
			delete(running, e.pid)
		}
	}
	for pid := range running {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), script) {
			continue
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.t.Logf("kill handler process group %d: %v", pid, err)
		}
	}
}

// storedTasks returns the id of every task with a submitted event in the
// stream, whether or not its submitter learned that it was accepted.
func (s *stack) storedTasks() []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := s.bus.JetStream().Stream(ctx, s.bus.Names().TasksStream())
	require.NoError(s.t, err)
	filter := s.bus.Names().KindFilter(events.KindSubmitted, ">")
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	require.NoError(s.t, err)

	ids := make([]string, 0, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		subj, err := events.ParseSubject(subject)
		require.NoError(s.t, err)
		ids = append(ids, subj.TaskID)
	}
	return ids
}
