// Package bench measures Handoff against the raw JetStream operations that
// bound it, in one process and on one embedded nats-server with file
// storage: the real ingest, executor and notifier on loopback, a load
// generator, and a baseline beside every figure. Each figure is the median
// of several rounds, and each round measures the baseline and Handoff side
// by side, so that only ratios measured under the same noise are compared.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/services/executor"
)

// Row names, accepted by Config.Rows, in the order the table lists them.
const (
	RowNATS     = "nats"
	RowHTTP     = "http"
	RowReads    = "reads"
	RowLatency  = "latency"
	RowWebhook  = "webhook"
	RowMemory   = "memory"
	RowRetained = "retained"
)

// AllRows lists every row in table order.
var AllRows = []string{RowNATS, RowHTTP, RowReads, RowLatency, RowWebhook, RowMemory, RowRetained}

// Defaults of [Config]: the full benchmark.
const (
	DefaultRounds        = 5
	DefaultDuration      = 5 * time.Second
	DefaultWarmup        = time.Second
	DefaultInFlight      = 256
	DefaultHTTPClients   = 64
	DefaultInputBytes    = 512
	DefaultSleepTasks    = 10_000
	DefaultSleepFor      = 30 * time.Second
	DefaultRetainedSmall = 10_000
	DefaultRetainedLarge = 1_000_000
)

// opTimeout bounds one operation of the load generator, such as a task
// from its submission to its terminal event.
const opTimeout = 30 * time.Second

// minInputBytes is the size of the smallest input, {"text":""}.
const minInputBytes = len(`{"text":""}`)

// Config sizes a benchmark run. Zero values take the defaults above; call
// [Config.WithDefaults] and then [Config.Validate], as [Run] does.
type Config struct {
	// Rounds is how many times each figure and its baseline are measured.
	// The table shows the medians. Default 5.
	Rounds int
	// Duration is the measured window of each side of each round. Default
	// 5s.
	Duration time.Duration
	// Warmup runs before each measured window and is not counted. Zero
	// means none; handoff bench's --warmup defaults to DefaultWarmup.
	Warmup time.Duration
	// InFlight is how many tasks the end-to-end figure over NATS keeps in
	// flight, and the executor's Concurrency. Default 256.
	InFlight int
	// HTTPClients is how many keep-alive clients submit and read over
	// HTTP at once. Default 64.
	HTTPClients int
	// InputBytes is the size of every task input, in bytes. Default 512.
	InputBytes int
	// SleepTasks is how many sleep tasks run at once when the executor's
	// memory is measured. Default 10,000.
	SleepTasks int
	// SleepFor is how long each of those tasks sleeps. It must cover the
	// time it takes to start them all. Default 30s.
	SleepFor time.Duration
	// RetainedSmall and RetainedLarge are the numbers of tasks retained in
	// the stream when the read latency and the transition rate are
	// compared. Defaults 10,000 and 1,000,000.
	RetainedSmall int
	RetainedLarge int
	// Rows selects the rows to run, by name; empty means [AllRows].
	Rows []string
	// Dir is the parent directory of the run's temporary stores. Empty
	// means the system's temporary directory.
	Dir string
	// ProfileDir, when set, receives CPU and allocation profiles of one
	// more Handoff window per row, and heap profiles of the memory row.
	ProfileDir string
	// Progress receives a line per round. Nil discards them.
	Progress io.Writer
}

// WithDefaults returns a copy of c with every zero field set to its
// default.
func (c Config) WithDefaults() Config {
	setDefault(&c.Rounds, DefaultRounds)
	setDefault(&c.Duration, DefaultDuration)
	setDefault(&c.InFlight, DefaultInFlight)
	setDefault(&c.HTTPClients, DefaultHTTPClients)
	setDefault(&c.InputBytes, DefaultInputBytes)
	setDefault(&c.SleepTasks, DefaultSleepTasks)
	setDefault(&c.SleepFor, DefaultSleepFor)
	setDefault(&c.RetainedSmall, DefaultRetainedSmall)
	setDefault(&c.RetainedLarge, DefaultRetainedLarge)
	if len(c.Rows) == 0 {
		c.Rows = AllRows
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate checks c after [Config.WithDefaults] and names the first
// invalid field.
func (c Config) Validate() error {
	switch {
	case c.Rounds < 1:
		return fmt.Errorf("invalid rounds %d: use 1 or more", c.Rounds)
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("invalid duration %s: use 100ms or more", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("invalid warm-up %s: use 0 or more", c.Warmup)
	case c.InFlight < 1 || c.InFlight > executor.MaxConcurrency:
		return fmt.Errorf("invalid in-flight count %d: use 1 to %d, the executor's maximum concurrency", c.InFlight, executor.MaxConcurrency)
	case c.HTTPClients < 1:
		return fmt.Errorf("invalid HTTP client count %d: use 1 or more", c.HTTPClients)
	case c.InputBytes < minInputBytes || c.InputBytes > 64<<10:
		return fmt.Errorf("invalid input size %d bytes: use %d to %d", c.InputBytes, minInputBytes, 64<<10)
	case c.SleepTasks < 1:
		return fmt.Errorf("invalid sleep task count %d: use 1 or more", c.SleepTasks)
	case c.SleepFor < time.Second:
		return fmt.Errorf("invalid sleep time %s: use 1s or more", c.SleepFor)
	case c.RetainedSmall < 1 || c.RetainedLarge <= c.RetainedSmall:
		return fmt.Errorf("invalid retained task counts %d and %d: use 1 or more, the second larger than the first", c.RetainedSmall, c.RetainedLarge)
	}
	for _, row := range c.Rows {
		if !slices.Contains(AllRows, row) {
			return fmt.Errorf("invalid row %q: use any of %s", row, strings.Join(AllRows, ", "))
		}
	}
	return nil
}

func (c Config) runs(row string) bool { return slices.Contains(c.Rows, row) }

// Run runs the selected rows and returns the report. It returns an error
// when the run cannot go on, such as when the server does not start or ctx
// ends. A figure that could not be measured is a row with Failures.
func Run(ctx context.Context, cfg Config, log *zap.Logger) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	dir, err := os.MkdirTemp(cfg.Dir, "handoff-bench-")
	if err != nil {
		return nil, fmt.Errorf("create the benchmark's directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o750); err != nil {
			return nil, fmt.Errorf("create profile directory: %w", err)
		}
	}

	report := newReport(cfg)
	rows := make(map[string][]Row)
	// The memory row runs first, because the server frees its caches of
	// earlier messages over the following seconds, which would blur the
	// growth it measures.
	if cfg.runs(RowMemory) {
		measured, err := runMemory(ctx, cfg, filepath.Join(dir, "memory"), report, log)
		if err != nil {
			return nil, fmt.Errorf("row %s: %w", RowMemory, err)
		}
		rows[RowMemory] = measured
	}
	if slices.ContainsFunc(cfg.Rows, onMainStack) {
		if err := runMain(ctx, cfg, filepath.Join(dir, "main"), report, rows, log); err != nil {
			return nil, err
		}
	}
	if cfg.runs(RowRetained) {
		measured, err := runRetained(ctx, cfg, filepath.Join(dir, "retained"), report, log)
		if err != nil {
			return nil, fmt.Errorf("row %s: %w", RowRetained, err)
		}
		rows[RowRetained] = measured
	}
	for _, row := range AllRows {
		report.Rows = append(report.Rows, rows[row]...)
	}
	report.finish()
	return report, nil
}

// runMain runs the rows of the main stack and adds them to rows.
func runMain(ctx context.Context, cfg Config, dir string, report *Report, rows map[string][]Row, log *zap.Logger) error {
	st, err := startStack(ctx, stackOptions{dir: dir, concurrency: cfg.InFlight, notifier: true}, log)
	if err != nil {
		return err
	}
	defer st.stop()
	report.ServerVersion = st.client.Conn().ConnectedServerVersion()

	g, err := newGenerator(ctx, cfg, st, log)
	if err != nil {
		return err
	}
	defer g.close()

	steps := []struct {
		row string
		run func(context.Context) ([]Row, error)
	}{
		{RowNATS, g.natsRow},
		{RowHTTP, g.httpRow},
		{RowReads, g.readsRow},
		{RowLatency, g.latencyRow},
		{RowWebhook, g.webhookRow},
	}
	for _, step := range steps {
		if !cfg.runs(step.row) {
			continue
		}
		measured, err := step.run(ctx)
		if err != nil {
			return fmt.Errorf("row %s: %w", step.row, err)
		}
		rows[step.row] = measured
	}
	return nil
}

// onMainStack reports whether row runs on the main stack, the one with
// the notifier. The memory and retained rows have stacks of their own.
func onMainStack(row string) bool { return row != RowMemory && row != RowRetained }

// errNoOutcome is the failure of an operation whose outcome did not come
// within opTimeout.
var errNoOutcome = errors.New("no outcome within the operation timeout")
