package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// TestRunEveryRow runs every row at a tiny size and checks that each
// figure was measured without failures and that the profiles were
// written. The figures themselves are not checked, because the race
// detector distorts them.
func TestRunEveryRow(t *testing.T) {
	profiles := t.TempDir()
	var progress bytes.Buffer
	cfg := Config{
		Rounds:        2,
		Duration:      300 * time.Millisecond,
		Warmup:        100 * time.Millisecond,
		InFlight:      16,
		HTTPClients:   4,
		SleepTasks:    200,
		SleepFor:      4 * time.Second,
		RetainedSmall: 50,
		RetainedLarge: 200,
		Dir:           t.TempDir(),
		ProfileDir:    profiles,
		Progress:      &progress,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	report, err := Run(ctx, cfg, zaptest.NewLogger(t))
	require.NoError(t, err)

	require.Len(t, report.Rows, 8)
	for _, row := range report.Rows {
		require.Empty(t, row.Failures, row.Figure)
		require.Positive(t, row.BaselineValue, row.Figure)
		require.Positive(t, row.HandoffValue, row.Figure)
		require.False(t, row.Failed(), row.Figure)
	}
	require.Empty(t, report.Failed())
	require.Equal(t, "executor memory per in-flight task, 200 sleep tasks running", report.Rows[5].Figure)

	var table bytes.Buffer
	require.NoError(t, report.WriteTable(&table))
	lines := strings.Split(table.String(), "\n")
	require.Contains(t, lines, "| figure | baseline, same run | Handoff | ratio | target | met |")
	for _, row := range report.Rows {
		require.Contains(t, table.String(), "| "+row.Figure+" | ")
	}
	require.Contains(t, progress.String(), "nats round 2/2: baseline ")
	require.Contains(t, progress.String(), "retained 200 round 2/2: status read ")

	for _, name := range []string{"nats-cpu.pprof", "nats-allocs.pprof", "http-cpu.pprof", "webhook-allocs-base.pprof", "memory-heap.pprof", "memory-heap-rest.pprof"} {
		fi, err := os.Stat(filepath.Join(profiles, name))
		require.NoError(t, err, name)
		require.Positive(t, fi.Size(), name)
	}
	entries, err := os.ReadDir(cfg.Dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the run must remove its stores")
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	_, err := Run(context.Background(), Config{Rows: []string{"speed"}}, nil)
	require.ErrorContains(t, err, `invalid row "speed"`)
}
