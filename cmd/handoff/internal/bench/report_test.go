package bench

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTargetMet(t *testing.T) {
	require.True(t, atLeast(0.2).Met(0.2))
	require.False(t, atLeast(0.2).Met(0.19))
	require.True(t, atMost(8).Met(8))
	require.False(t, atMost(8).Met(8.01))
	require.False(t, atLeast(0.2).Met(math.NaN()))
	require.False(t, atMost(8).Met(math.NaN()))
	require.Equal(t, "≥ 0.20", atLeast(0.2).String())
	require.Equal(t, "≤ 8.00", atMost(8).String())
}

func TestRateRowUsesRoundRatios(t *testing.T) {
	sample := func(ops uint64) Sample { return Sample{Total: ops, Elapsed: time.Second, Latency: &Histogram{}} }
	bs := []Sample{sample(1000), sample(100), sample(1000)}
	hs := []Sample{sample(300), sample(10), sample(100)}

	row := rateRow("figure", bs, hs, atLeast(0.2))
	require.Equal(t, 1000.0, row.BaselineValue)
	require.Equal(t, 100.0, row.HandoffValue)
	require.InDelta(t, 0.1, row.Ratio, 1e-9, "the median of 0.3, 0.1 and 0.1")
	require.False(t, row.Met)
	require.False(t, row.Failed())
}

func TestRowFailures(t *testing.T) {
	failed := Sample{Errors: 2, FirstError: errNoOutcome, Latency: &Histogram{}}
	ok := Sample{Total: 10, Elapsed: time.Second, Latency: &Histogram{}}

	row := rateRow("figure", []Sample{ok}, []Sample{failed}, atLeast(0.2))
	require.True(t, row.Failed())
	require.True(t, math.IsNaN(row.Ratio))
	require.Len(t, row.Failures, 1)
	require.Contains(t, row.Failures[0], "Handoff: 2 failed operations")

	var out bytes.Buffer
	r := &Report{Config: Config{}.WithDefaults(), Rows: []Row{row}}
	require.NoError(t, r.WriteTable(&out))
	require.Contains(t, out.String(), "| figure | 10/s | 0/s | — | ≥ 0.20 | no |")
	require.Contains(t, out.String(), "figure: FAILED: Handoff: 2 failed operations")
	require.Equal(t, []string{"figure"}, r.Failed())
}

func TestSampleRateCountsDrain(t *testing.T) {
	s := Sample{Ops: 500, Window: time.Second, Total: 600, Elapsed: 1200 * time.Millisecond, Drain: 1800 * time.Millisecond}
	require.InDelta(t, 200.0, s.Rate(), 1e-9)
	require.InDelta(t, 500.0, s.WindowRate(), 1e-9)
	require.Zero(t, Sample{}.Rate())
}

func TestRendezvousEarlyArrival(t *testing.T) {
	rv := newRendezvous()
	at := time.Now()

	rv.arrive("late", at, "ignored", nil, false)
	rv.arrive("early", at, "succeeded", nil, true)
	a := rv.expect("early")
	select {
	case <-a.done:
	default:
		t.Fatal("an early arrival must be waiting for its operation")
	}
	require.Equal(t, "succeeded", a.outcome)
	require.Equal(t, at, a.at)

	rv.arrive("early", at.Add(time.Second), "again", nil, true)
	require.Equal(t, "succeeded", a.outcome, "a repeat must not overwrite the first arrival")

	b := rv.expect("late")
	select {
	case <-b.done:
		t.Fatal("an arrival before expect without early must be dropped")
	default:
	}
	rv.forget("early")
	rv.forget("late")
	require.Empty(t, rv.arrivals)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, Config{}.WithDefaults().Validate())

	tests := []struct {
		name    string
		change  func(*Config)
		wantMsg string
	}{
		{"rounds", func(c *Config) { c.Rounds = -1 }, "invalid rounds"},
		{"in flight", func(c *Config) { c.InFlight = 5000 }, "invalid in-flight count 5000"},
		{"input", func(c *Config) { c.InputBytes = 3 }, "invalid input size 3 bytes"},
		{"retained", func(c *Config) { c.RetainedSmall, c.RetainedLarge = 10, 10 }, "invalid retained task counts"},
		{"row", func(c *Config) { c.Rows = []string{"nats", "everything"} }, `invalid row "everything"`},
	}
	for _, tt := range tests {
		c := Config{}.WithDefaults()
		tt.change(&c)
		require.ErrorContains(t, c.Validate(), tt.wantMsg, tt.name)
	}
}

func TestNewInputSize(t *testing.T) {
	for _, n := range []int{minInputBytes, 512, 4096} {
		in := newInput(n)
		require.Len(t, in, n)
		require.JSONEq(t, `{"text":"`+string(bytes.Repeat([]byte("x"), n-minInputBytes))+`"}`, string(in))
	}
}
