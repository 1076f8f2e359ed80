package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// binDir holds the binaries built once for all end-to-end tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "handoff-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)

	// Idle keep-alive connections hold goroutines until they time out.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var buildOnce sync.Once
var buildErr error

// binary returns the path of a built binary: "handoff", "handoff-executor"
// or "slowapi". The first call builds them all.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		root := repoRoot(t)
		for name, pkg := range map[string]string{
			"handoff":          "./cmd/handoff",
			"handoff-executor": "./services/executor/cmd/handoff-executor",
			"slowapi":          "./examples/slowapi",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(binDir, name)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// process is a started binary whose output lines are collected.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	out   []string
	done  chan error
	// stderr is complete once the process has exited: after stop.
	stderr *bytes.Buffer
}

func start(t *testing.T, dir string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary(t, name), args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())

	p := &process{cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1), stderr: stderr}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s stdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), strings.Join(p.output(), "\n"), stderr.String())
		}
	})
	return p
}

func (p *process) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

// waitLine returns the first output line matching re, or fails after the
// timeout.
func (p *process) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("process exited before printing a line matching %s", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %s within %s", re, timeout)
		}
	}
}

// stop interrupts the process and requires a clean exit.
func (p *process) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	for range p.lines {
	}
	select {
	case err := <-p.done:
		require.NoError(t, err, "exit after %s", sig)
	case <-time.After(60 * time.Second):
		t.Fatalf("process did not exit within 60s of %s", sig)
	}
}

// runningDev is a `handoff dev` process the test started.
type runningDev struct {
	proc    *process
	apiURL  string
	natsURL string
	secret  string
}

func startDev(t *testing.T, extra ...string) *runningDev {
	t.Helper()
	return startDevIn(t, t.TempDir(), extra...)
}

func startDevIn(t *testing.T, dataDir string, extra ...string) *runningDev {
	t.Helper()
	args := append([]string{"dev",
		"--data-dir", dataDir,
		"--http-addr", "127.0.0.1:0",
		"--nats-port", "-1",
		"--config", "examples/handoff.yaml",
	}, extra...)
	p := start(t, repoRoot(t), "handoff", args...)

	d := &runningDev{proc: p}
	labels := regexp.MustCompile(`^\s+(HTTP API|NATS|Webhook secret):\s+(\S+)`)
	deadline := time.After(90 * time.Second)
	for ready := false; !ready; {
		select {
		case line, ok := <-p.lines:
			require.True(t, ok, "handoff dev exited before it was ready")
			ready = line == "Ready."
			if m := labels.FindStringSubmatch(line); m != nil {
				switch m[1] {
				case "HTTP API":
					d.apiURL = m[2]
				case "NATS":
					d.natsURL = m[2]
				case "Webhook secret":
					d.secret = m[2]
				}
			}
		case <-deadline:
			t.Fatal("handoff dev was not ready within 90s")
		}
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.stop(t, os.Interrupt)
		}
	})
	return d
}

func (d *runningDev) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(d.apiURL)
	require.NoError(t, err)
	return c
}

func waitDone(t *testing.T, c *client.Client, id string) *events.View {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	v, err := c.Wait(ctx, id, 100*time.Millisecond, nil)
	require.NoError(t, err)
	return v
}

// TestQuickstart follows the README's quickstart on a real `handoff dev`.
func TestQuickstart(t *testing.T) {
	dev := startDev(t)
	c := dev.client(t)
	ctx := context.Background()
	root := repoRoot(t)

	t.Run("files.manifest hashes match sha256sum", func(t *testing.T) {
		res, err := c.Submit(ctx, client.SubmitRequest{Type: "files.manifest", Input: json.RawMessage(`{"dir":"examples"}`)}, client.SubmitOptions{})
		require.NoError(t, err)
		require.True(t, res.Created)
		require.Equal(t, events.StatusQueued, res.Task.Status)

		v := waitDone(t, c, res.Task.ID)
		require.Equal(t, events.StatusSucceeded, v.Status, "error: %+v", v.Error)

		var m struct {
			FileCount int `json:"file_count"`
			Files     []struct {
				Path   string `json:"path"`
				SHA256 string `json:"sha256"`
			} `json:"files"`
		}
		require.NoError(t, json.Unmarshal(v.Result, &m))
		require.Equal(t, len(m.Files), m.FileCount)
		require.NotEmpty(t, m.Files)

		paths := []string{}
		for _, f := range m.Files {
			paths = append(paths, f.Path)
		}
		cmd := exec.Command("sha256sum", paths...)
		cmd.Dir = filepath.Join(root, "examples")
		out, err := cmd.Output()
		require.NoError(t, err)
		want := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			sum, path, ok := strings.Cut(line, "  ")
			require.True(t, ok, line)
			want[path] = sum
		}
		for _, f := range m.Files {
			require.Equal(t, want[f.Path], f.SHA256, f.Path)
		}
	})

	t.Run("watch draws sleep progress", func(t *testing.T) {
		res, err := c.Submit(ctx, client.SubmitRequest{Type: "sleep", Input: json.RawMessage(`{"seconds":3}`)}, client.SubmitOptions{})
		require.NoError(t, err)

		cmd := exec.Command(binary(t, "handoff"), "watch", res.Task.ID, "--api-url", dev.apiURL)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), stderr.String())

		progress := regexp.MustCompile(`running attempt 1\s+(\d+)%`)
		moving := false
		for _, line := range strings.Split(stderr.String(), "\n") {
			if m := progress.FindStringSubmatch(line); m != nil {
				pct, _ := strconv.Atoi(m[1])
				moving = moving || pct > 0 && pct < 100
			}
		}
		require.True(t, moving, "no progress between 0 and 100%% in:\n%s", stderr.String())
		require.Contains(t, stderr.String(), "succeeded")
		require.True(t, json.Valid(stdout.Bytes()), stdout.String())
	})

	t.Run("listen verifies the signed completion", func(t *testing.T) {
		require.NotEmpty(t, dev.secret)
		l := start(t, root, "handoff", "listen", "--addr", "127.0.0.1:0", "--secret", dev.secret, "--count", "1")
		addr := l.waitLine(t, regexp.MustCompile(`^Listening on (http://\S+)`), 30*time.Second)[1]

		res, err := c.Submit(ctx, client.SubmitRequest{
			Type:    "echo",
			Input:   json.RawMessage(`{"hello":"world"}`),
			Webhook: &events.Webhook{URL: addr},
		}, client.SubmitOptions{})
		require.NoError(t, err)

		l.waitLine(t, regexp.MustCompile(`^verified dev\.handoff\.task\.succeeded task `+res.Task.ID+` \(echo\)`), 60*time.Second)
		select {
		case err := <-l.done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("listen --count 1 did not exit after one event")
		}
		require.Contains(t, strings.Join(l.output(), "\n"), `"hello": "world"`)
	})

	t.Run("quote.price calls the slow HTTP service", func(t *testing.T) {
		api := start(t, root, "slowapi", "--addr", "127.0.0.1:8090")
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://127.0.0.1:8090/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusNoContent
		}, 30*time.Second, 50*time.Millisecond, "slowapi did not start on 127.0.0.1:8090")

		res, err := c.Submit(ctx, client.SubmitRequest{
			Type:  "quote.price",
			Input: json.RawMessage(`{"customer":"acme","items":[{"sku":"A","quantity":2}],"delay_seconds":1}`),
		}, client.SubmitOptions{})
		require.NoError(t, err)
		v := waitDone(t, c, res.Task.ID)
		require.Equal(t, events.StatusSucceeded, v.Status, "error: %+v", v.Error)
		var q struct {
			TotalCents int `json:"total_cents"`
		}
		require.NoError(t, json.Unmarshal(v.Result, &q))
		require.Equal(t, 2*165, q.TotalCents)
		api.stop(t, os.Interrupt)
	})

	t.Run("bad input gets a problem and stores nothing", func(t *testing.T) {
		nc, err := nats.Connect(dev.natsURL)
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		stream, err := js.Stream(ctx, "HANDOFF_TASKS")
		require.NoError(t, err)
		before, err := stream.Info(ctx)
		require.NoError(t, err)

		cases := []struct {
			name   string
			method string
			path   string
			body   string
			status int
			detail string
		}{
			{"malformed JSON", "POST", "/v1/tasks", `{"type":"echo",`, 400, ""},
			{"unknown type", "POST", "/v1/tasks", `{"type":"no.such.type","input":{}}`, 422, "no.such.type"},
			{"input fails the schema", "POST", "/v1/tasks", `{"type":"files.manifest","input":{"dir":"../etc;rm"}}`, 422, ""},
			{"body over the limit", "POST", "/v1/tasks", `{"type":"echo","input":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`, 413, ""},
			{"invalid id", "GET", "/v1/tasks/not.valid", "", 400, ""},
			{"unknown id", "GET", "/v1/tasks/01JZZZZZZZZZZZZZZZZZZZZZZZ", "", 404, ""},
		}
		for _, tc := range cases {
			req, err := http.NewRequest(tc.method, dev.apiURL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.name, body)
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), tc.name)
			var p client.ProblemError
			require.NoError(t, json.Unmarshal(body, &p), tc.name)
			require.Equal(t, tc.status, p.Status, tc.name)
			require.NotEmpty(t, p.Detail, tc.name)
			require.Contains(t, p.Detail, tc.detail, tc.name)
		}

		after, err := stream.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, before.State.Msgs, after.State.Msgs, "a rejected request stored an event")
	})

	t.Run("malformed CloudEvent on NATS ends rejected", func(t *testing.T) {
		nc, err := nats.Connect(dev.natsURL)
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)

		id := events.NewID()
		_, err = js.Publish(ctx, "handoff.task.default."+id+".submitted.echo", []byte(`{"input":{}}`))
		require.NoError(t, err)

		var v *events.View
		require.Eventually(t, func() bool {
			v, _, err = c.Get(ctx, id)
			return err == nil && v.Status == events.StatusRejected
		}, 60*time.Second, 50*time.Millisecond)
		require.NotNil(t, v.Error)
		require.Equal(t, events.CodeInvalidEvent, v.Error.Code)
		require.Contains(t, v.Error.Message, "ce-specversion")
	})
}

// TestSplitServices runs ingest and notifier in `handoff dev` and the
// executor as its own process, as a deployment with executor pools would.
func TestSplitServices(t *testing.T) {
	dev := startDev(t, "--services", "ingest,notifier")
	ex := start(t, repoRoot(t), "handoff-executor", "--nats-url", dev.natsURL, "--config", "examples/handoff.yaml")

	c := dev.client(t)
	ctx := context.Background()

	// The type registers once the executor runs; until then it is unknown.
	var res *client.Submitted
	require.Eventually(t, func() bool {
		var err error
		res, err = c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"n":1}`)}, client.SubmitOptions{})
		return err == nil
	}, 60*time.Second, 100*time.Millisecond)

	v := waitDone(t, c, res.Task.ID)
	require.Equal(t, events.StatusSucceeded, v.Status)
	require.JSONEq(t, `{"n":1}`, string(v.Result))

	ex.stop(t, os.Interrupt)
}

// TestDevRestartKeepsTasksAndSecret restarts `handoff dev` on its data
// directory: earlier tasks are still there, and the generated webhook
// secret is the same, so receivers keep verifying.
func TestDevRestartKeepsTasksAndSecret(t *testing.T) {
	dataDir := t.TempDir()
	first := startDevIn(t, dataDir)
	res, err := first.client(t).Submit(context.Background(), client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"kept":true}`)}, client.SubmitOptions{})
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, waitDone(t, first.client(t), res.Task.ID).Status)
	first.proc.stop(t, os.Interrupt)
	require.Contains(t, first.proc.stderr.String(), "embedded NATS server stopped")

	second := startDevIn(t, dataDir)
	require.NotEmpty(t, first.secret)
	require.Equal(t, first.secret, second.secret)
	v, _, err := second.client(t).Get(context.Background(), res.Task.ID)
	require.NoError(t, err)
	require.Equal(t, events.StatusSucceeded, v.Status)
	require.JSONEq(t, `{"kept":true}`, string(v.Result))
}

func TestDevRejectsBadFlags(t *testing.T) {
	cases := map[string][]string{
		"unknown service": {"dev", "--services", "ingest,scheduler"},
		"bad nats port":   {"dev", "--nats-port", "0"},
		"bad auth":        {"dev", "--auth", "tokens"},
		"bad secret":      {"dev", "--webhook-secret", "not-a-secret"},
		"data dir a file": {"dev", "--data-dir", "/dev/null"},
		"bad tolerance":   {"listen", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--tolerance", "-1s"},
	}
	want := map[string]string{
		"unknown service": `invalid --services value "scheduler"`,
		"bad nats port":   "invalid --nats-port 0",
		"bad auth":        `invalid --auth "tokens"`,
		"bad secret":      "invalid --webhook-secret",
		"data dir a file": "invalid --data-dir /dev/null: not a directory",
		"bad tolerance":   "invalid --tolerance -1s",
	}
	for name, args := range cases {
		if args[0] == "dev" && !slices.Contains(args, "--data-dir") {
			args = append(args, "--data-dir", t.TempDir())
		}
		cmd := exec.Command(binary(t, "handoff"), args...)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, name)
		require.Contains(t, string(out), want[name], name)
	}
}
