package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/cmd/handoff/internal/bench"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// defaultBenchTimeout bounds a whole benchmark run.
const defaultBenchTimeout = time.Hour

type benchOptions struct {
	cfg      bench.Config
	timeout  time.Duration
	logLevel string
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Handoff against the raw JetStream operations that bound it",
		Long: `Run the whole stack in this process on an embedded nats-server with file
storage in a temporary directory, drive it with a load generator over NATS
and over HTTP on loopback, and measure each figure beside its baseline:
the raw JetStream operations, or the bare net/http handler, that bound it.
Each figure is the median of --rounds rounds, and each round measures the
baseline and Handoff one after the other, so that the ratio compares
figures taken under the same load of the machine.

The table goes to standard output, one line per round to standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.cfg.Progress = cmd.ErrOrStderr()
			return runBench(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.cfg.Rounds, "rounds", bench.DefaultRounds, "rounds per figure; the table shows the medians")
	f.DurationVar(&o.cfg.Duration, "duration", bench.DefaultDuration, "measured time of each side of each round")
	f.DurationVar(&o.cfg.Warmup, "warmup", bench.DefaultWarmup, "unmeasured time before each measured window")
	f.IntVar(&o.cfg.InFlight, "in-flight", bench.DefaultInFlight, "tasks in flight over NATS, and the executor's concurrency")
	f.IntVar(&o.cfg.HTTPClients, "http-clients", bench.DefaultHTTPClients, "concurrent keep-alive HTTP clients")
	f.IntVar(&o.cfg.InputBytes, "input-bytes", bench.DefaultInputBytes, "size of each task input, in bytes")
	f.IntVar(&o.cfg.SleepTasks, "sleep-tasks", bench.DefaultSleepTasks, "sleep tasks running at once when the executor's memory is measured")
	f.DurationVar(&o.cfg.SleepFor, "sleep-for", bench.DefaultSleepFor, "how long each of those sleep tasks runs; it must cover starting them all")
	f.IntVar(&o.cfg.RetainedSmall, "retained-small", bench.DefaultRetainedSmall, "retained tasks of the retained row's baseline")
	f.IntVar(&o.cfg.RetainedLarge, "retained-large", bench.DefaultRetainedLarge, "retained tasks of the retained row's figure")
	f.StringSliceVar(&o.cfg.Rows, "rows", bench.AllRows, "rows to run: any of nats, http, reads, latency, webhook, memory, retained")
	f.StringVar(&o.cfg.Dir, "data-dir", "", "directory for the temporary stores (default: the system's temporary directory)")
	f.StringVar(&o.cfg.ProfileDir, "profile-dir", "", "write CPU and allocation profiles of one more Handoff window per row to this directory")
	f.DurationVar(&o.timeout, "timeout", defaultBenchTimeout, "bound of the whole run")
	f.StringVar(&o.logLevel, "log-level", "warn", "log level of the services: debug, info, warn or error")
	return cmd
}

func runBench(ctx context.Context, o benchOptions, out io.Writer) error {
	if o.timeout <= 0 {
		return fmt.Errorf("invalid --timeout %s: use a positive duration", o.timeout)
	}
	log, err := logging.New(logging.FormatConsole, o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// The flags default to the defaults, so a zero here was given on the
	// command line: validate before Run would replace it with a default.
	if err := o.cfg.Validate(); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("the benchmark ran longer than --timeout %s", o.timeout))
	defer cancel()
	report, err := bench.Run(ctx, o.cfg, log)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("%w (%w)", err, cause)
		}
		return err
	}
	if err := report.WriteTable(out); err != nil {
		return err
	}
	if failed := report.Failed(); len(failed) > 0 {
		return fmt.Errorf("%d figures saw failed operations or were not measured, listed under the table: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}
