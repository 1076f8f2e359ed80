package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// compare measures baseline and handoff side by side in cfg.Rounds rounds
// and returns their samples. Odd rounds measure the baseline first, even
// rounds Handoff first, so that a drift of the machine's load during the
// run weighs on both. It writes a line per round to cfg.Progress.
func compare(ctx context.Context, cfg Config, row string, baseline, handoff func(context.Context) Sample, value func(Sample) float64, format func(Sample) string) (bs, hs []Sample) {
	for round := 1; round <= cfg.Rounds && ctx.Err() == nil; round++ {
		var b, h Sample
		if round%2 == 1 {
			b = baseline(ctx)
			h = handoff(ctx)
		} else {
			h = handoff(ctx)
			b = baseline(ctx)
		}
		bs, hs = append(bs, b), append(hs, h)
		fmt.Fprintf(cfg.Progress, "%s round %d/%d: baseline %s, Handoff %s, ratio %.2f%s\n",
			row, round, cfg.Rounds, format(b), format(h), ratio(value(h), value(b)), errorNote(b, h))
	}
	return bs, hs
}

// ratio returns h/b, or NaN when either is not a positive measure.
func ratio(h, b float64) float64 {
	if b <= 0 || h <= 0 {
		return math.NaN()
	}
	return h / b
}

// roundRatios returns the ratio of each round.
func roundRatios(bs, hs []Sample, value func(Sample) float64) []float64 {
	out := make([]float64, 0, len(bs))
	for i := range bs {
		if r := ratio(value(hs[i]), value(bs[i])); !math.IsNaN(r) {
			out = append(out, r)
		}
	}
	return out
}

func rateValue(s Sample) float64 { return s.Rate() }

func p50Value(s Sample) float64 { return float64(s.Latency.Quantile(0.50)) }

func formatRate(s Sample) string {
	return fmt.Sprintf("%.0f/s (%.0f/s in the window, idle %s later)", s.Rate(), s.WindowRate(), s.Drain.Round(time.Millisecond))
}

func formatLatency(s Sample) string {
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s", formatDuration(s.Latency.Quantile(0.50)), formatDuration(s.Latency.Quantile(0.95)), formatDuration(s.Latency.Quantile(0.99)))
}

// formatDuration prints d in milliseconds with three significant digits.
func formatDuration(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

// errorNote returns " (N errors)" for samples that saw failures.
func errorNote(samples ...Sample) string {
	var n uint64
	for _, s := range samples {
		n += s.Errors
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d errors)", n)
}

// medianOf returns the median of value over samples.
func medianOf(samples []Sample, value func(Sample) float64) float64 {
	values := make([]float64, len(samples))
	for i, s := range samples {
		values[i] = value(s)
	}
	return median(values)
}

// rateRow builds a throughput row: the medians of both sides and the
// median of the rounds' ratios.
func rateRow(figure string, bs, hs []Sample, target Target) Row {
	r := newRow(figure, medianOf(bs, rateValue), medianOf(hs, rateValue), roundRatios(bs, hs, rateValue), target)
	r.Baseline = fmt.Sprintf("%.0f/s", r.BaselineValue)
	r.Handoff = fmt.Sprintf("%.0f/s", r.HandoffValue)
	r.Failures = failureNotes(bs, hs)
	windowRate := func(s Sample) float64 { return s.WindowRate() }
	drain := func(s Sample) float64 { return s.Drain.Seconds() }
	if d := medianOf(hs, drain); d >= 0.5 {
		r.Notes = append(r.Notes, fmt.Sprintf("Handoff completed %.0f/s in the measured windows, but the stack needed %.1f s more after each to finish the work they left behind (median), which the sustained figure counts", medianOf(hs, windowRate), d))
	}
	return r
}

// latencyRow builds a latency row: the medians of p50, p95 and p99 of
// both sides, and the median of the rounds' p50 ratios.
func latencyRow(figure string, bs, hs []Sample, target Target) Row {
	r := newRow(figure, medianOf(bs, p50Value), medianOf(hs, p50Value), roundRatios(bs, hs, p50Value), target)
	r.Baseline = formatQuantiles(bs)
	r.Handoff = formatQuantiles(hs)
	r.Failures = failureNotes(bs, hs)
	return r
}

func formatQuantiles(samples []Sample) string {
	q := func(p float64) string {
		return formatDuration(time.Duration(medianOf(samples, func(s Sample) float64 { return float64(s.Latency.Quantile(p)) })))
	}
	return fmt.Sprintf("p50 %s, p95 %s, p99 %s", q(0.50), q(0.95), q(0.99))
}

// failureNotes describes the failed operations of both sides, if any.
func failureNotes(bs, hs []Sample) []string {
	var notes []string
	for _, side := range []struct {
		name    string
		samples []Sample
	}{{"baseline", bs}, {"Handoff", hs}} {
		var n uint64
		var first error
		for _, s := range side.samples {
			n += s.Errors
			if first == nil {
				first = s.FirstError
			}
		}
		if n > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d failed operations, the first: %v", side.name, n, first))
		}
	}
	return notes
}
