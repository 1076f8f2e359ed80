package faults

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// Sizing settings. HANDOFF_SIZING_TASKS sets the retained task counts to
// measure, comma-separated and rising, such as 10000,100000,1000000.
const (
	defaultSizingTasks = "5000"
	// sizingBatch is how many tasks are stored at once: each of their
	// four events is an asynchronous append, and the next event of a
	// task waits for the sequence of the one before. It stays under the
	// 4000 asynchronous publishes that nats.go lets wait for an answer.
	sizingBatch = 2048
	// controlStream holds the same messages as the tasks stream, on one
	// subject, to tell the cost of the subjects from that of the
	// messages.
	controlStream  = "SIZING_CONTROL"
	controlSubject = "control.all"
	// sizingMaxBytesPerTask bounds the memory and disk per retained task
	// that the default run accepts. It is far above the measured cost, so
	// only a change of scale fails it.
	sizingMaxBytesPerTask = 16 << 10
)

// sizingLevel is what one retained task count costs a nats-server.
type sizingLevel struct {
	tasks int
	// fill is how long storing the tasks took.
	fill time.Duration
	// rss is the server's resident memory right after the fill, and
	// restartRSS after a restart on the same store, when no write cache
	// is left.
	rss, restartRSS int64
	// restart is how long the restarted server took to become ready.
	restart time.Duration
	disk    int64
	// controlRSS and controlRestartRSS are the same for the control
	// server, whose messages all share one subject.
	controlRSS, controlRestartRSS int64
	controlDisk                   int64
}

// TestRetainedTaskCost measures what retained tasks cost a nats-server
// (v2.15.3, file storage, one replica): resident memory and store size
// per task of four realistic events, each on its task's own subjects. A
// control server stores the same messages on one subject, so that the
// difference is the cost of the subject index. The figures are logged;
// docs/operations.md quotes a run with HANDOFF_SIZING_TASKS.
func TestRetainedTaskCost(t *testing.T) {
	levels := sizingTasks(t)
	tasks := newStack(t, execConfig{})
	control := newStack(t, execConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	createControlStream(t, ctx, control)

	baseRSS := rss(t, tasks.nats)
	baseControlRSS := rss(t, control.nats)
	t.Logf("at rest: rss=%s control_rss=%s", mib(baseRSS), mib(baseControlRSS))

	f := newFiller(tasks.bus)
	stored := 0
	var results []sizingLevel
	for _, n := range levels {
		began := time.Now()
		require.NoError(t, f.fill(ctx, n-stored, control.bus.JetStream()))
		stored = n
		level := sizingLevel{tasks: n, fill: time.Since(began)}
		level.rss = rss(t, tasks.nats)
		level.controlRSS = rss(t, control.nats)

		tasks.stopNATS(syscall.SIGTERM)
		started := time.Now()
		tasks.startNATS()
		level.restart = time.Since(started)
		level.restartRSS = rss(t, tasks.nats)
		control.stopNATS(syscall.SIGTERM)
		control.startNATS()
		level.controlRestartRSS = rss(t, control.nats)

		level.disk = dirSize(t, tasks.natsStore)
		level.controlDisk = dirSize(t, control.natsStore)
		results = append(results, level)
		t.Logf("tasks=%d fill=%s rss=%s (%s per task) rss_after_restart=%s (%s per task) restart=%s disk=%s (%s per task)",
			n, level.fill.Round(time.Millisecond),
			mib(level.rss), perTask(level.rss-baseRSS, n), mib(level.restartRSS), perTask(level.restartRSS-baseRSS, n),
			level.restart.Round(time.Millisecond), mib(level.disk), perTask(level.disk, n))
		t.Logf("control tasks=%d rss=%s rss_after_restart=%s disk=%s; subjects cost %s per task after a restart (%d subjects per task)",
			n, mib(level.controlRSS), mib(level.controlRestartRSS), mib(level.controlDisk),
			perTask(level.restartRSS-baseRSS-(level.controlRestartRSS-baseControlRSS), n), f.subjectsPerTask)
	}

	last := results[len(results)-1]
	require.Less(t, (last.restartRSS-baseRSS)/int64(last.tasks), int64(sizingMaxBytesPerTask), "memory per retained task")
	require.Positive(t, last.disk/int64(last.tasks), "disk per retained task")
	require.Less(t, last.disk/int64(last.tasks), int64(sizingMaxBytesPerTask), "disk per retained task")
}

// sizingTasks returns the rising task counts of HANDOFF_SIZING_TASKS or
// the default.
func sizingTasks(t *testing.T) []int {
	t.Helper()
	v := os.Getenv("HANDOFF_SIZING_TASKS")
	if v == "" {
		v = defaultSizingTasks
	}
	var out []int
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		require.NoError(t, err, "invalid HANDOFF_SIZING_TASKS %q", v)
		require.True(t, n > 0 && (len(out) == 0 || n > out[len(out)-1]), "invalid HANDOFF_SIZING_TASKS %q: want rising positive counts", v)
		out = append(out, n)
	}
	return out
}

// createControlStream creates the control stream with the settings of
// the tasks stream.
func createControlStream(t *testing.T, ctx context.Context, s *stack) {
	t.Helper()
	cfg := s.bus.StreamConfigs(bus.StreamOptions{})[0]
	cfg.Name = controlStream
	cfg.Subjects = []string{"control.>"}
	_, err := s.bus.JetStream().CreateStream(ctx, cfg)
	require.NoError(t, err)
}

// filler stores realistic tasks: submitted, started, progress and
// succeeded events of sizes like those of a real task, with the headers
// Handoff writes, including the compare-and-set and the TTL.
type filler struct {
	bus *bus.Bus
	// subjectsPerTask counts the distinct subjects of one task.
	subjectsPerTask int
}

func newFiller(b *bus.Bus) *filler {
	return &filler{bus: b, subjectsPerTask: 4}
}

// fill stores n more tasks on the filler's bus, and the same messages on
// the control stream of control.
func (f *filler) fill(ctx context.Context, n int, control jetstream.JetStream) error {
	for n > 0 {
		batch := min(n, sizingBatch)
		if err := f.fillBatch(ctx, batch, control); err != nil {
			return err
		}
		n -= batch
	}
	return nil
}

// fillBatch stores n tasks, one event of every task at a time.
func (f *filler) fillBatch(ctx context.Context, n int, control jetstream.JetStream) error {
	ids := make([]string, n)
	last := make([]uint64, n)
	for i := range ids {
		ids[i] = events.NewID()
	}
	for _, kind := range []events.Kind{events.KindSubmitted, events.KindStarted, events.KindProgress, events.KindSucceeded} {
		evs := make([]*events.Event, n)
		futures := make([]jetstream.PubAckFuture, 0, 2*n)
		for i, id := range ids {
			ev, err := events.NewEvent(kind, events.DefaultTenant, id, "files.manifest", "/handoff/executor/exec-7f9c2", sizingData(kind, last[i]))
			if err != nil {
				return err
			}
			if kind == events.KindSubmitted {
				ev.Source = "/handoff/ingest"
			} else {
				ev.Attempt = 1
			}
			evs[i] = &ev
			opts := bus.AppendOptions{ExpectSeq: last[i], TTL: events.DefaultTTL}
			fut, err := f.bus.AppendAsync(&ev, opts)
			if err != nil {
				return err
			}
			futures = append(futures, fut)

			// The control message has the same size: the compare-and-set
			// headers, which would name another stream's subjects, are
			// replaced by a header of the same length.
			msg := f.bus.Message(&ev, opts)
			pad := len(msg.Header.Get(bus.HeaderExpectedSubjSeq)) + len(msg.Header.Get(bus.HeaderExpectedSubjSeqSubj))
			msg.Header.Del(bus.HeaderExpectedSubjSeq)
			msg.Header.Del(bus.HeaderExpectedSubjSeqSubj)
			if pad > 0 {
				msg.Header.Set("Sizing-Pad", strings.Repeat("x", pad))
			}
			msg.Subject = controlSubject
			cfut, err := control.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			futures = append(futures, cfut)
		}
		for i, fut := range futures {
			select {
			case ack := <-fut.Ok():
				if i%2 == 0 {
					last[i/2] = ack.Sequence
				}
			case err := <-fut.Err():
				return fmt.Errorf("store %s of task %s: %w", kind, evs[i/2].TaskID, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// sizingData returns the data of a realistic event of kind; seq is the
// sequence of the task's previous event.
func sizingData(kind events.Kind, seq uint64) any {
	switch kind {
	case events.KindSubmitted:
		input := json.RawMessage(`{"dir":"/srv/exports/2026-12","format":"csv","include":["orders","refunds","invoices"],"max_files":10000}`)
		sum := sha256.Sum256(input)
		return events.Submission{
			Input:       input,
			Timeout:     events.Duration(10 * time.Minute),
			MaxAttempts: 3,
			TTL:         events.Duration(events.DefaultTTL),
			Webhook:     &events.Webhook{URL: "https://agent.example.com/hooks/handoff"},
			Metadata:    map[string]string{"agent": "planner-7", "run": "r-000123"},
			RequestHash: hex.EncodeToString(sum[:]),
		}
	case events.KindStarted:
		return events.Started{Attempt: 1, Executor: "exec-7f9c2", MessageSeq: seq, Delivery: 1}
	case events.KindProgress:
		return events.Progress{Percent: 50, Message: "scanned 1200 of 2400 files"}
	default:
		return events.Succeeded{Result: json.RawMessage(`{"files":2400,"bytes":1834201,"manifest":"/srv/exports/2026-12/manifest.csv","skipped":0}`)}
	}
}

// rss returns the resident memory of a process, from /proc.
func rss(t *testing.T, p *proc) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err, "parse %q", line)
			return kib << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	return 0
}

// dirSize returns the bytes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		return nil
	})
	require.NoError(t, err)
	return size
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

func perTask(b int64, n int) string { return fmt.Sprintf("%dB", b/int64(n)) }
