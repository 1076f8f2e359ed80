package bench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is the measure of one side of one round: the operations that
// completed in the measured window, how long each took, and the failures,
// plus the totals of the whole run from the warm-up to the idle stack.
type Sample struct {
	// Ops counts the operations that completed within the window.
	Ops uint64
	// Errors counts the operations that failed within the window.
	Errors uint64
	// Window is the measured time, warm-up excluded.
	Window time.Duration
	// Latency holds the duration of each operation of the window.
	Latency *Histogram
	// FirstError is the first failure seen, for the report.
	FirstError error

	// Total counts the operations completed from the start of the warm-up
	// until the last operation ended, and Elapsed is that time.
	Total   uint64
	Elapsed time.Duration
	// Drain is how long the services took after the last operation to
	// finish the work the run left behind, such as the notifier's
	// backlog. [stack.waitIdle] measures it.
	Drain time.Duration
}

// Rate returns the sustained rate: the operations completed from the
// start of the warm-up until the stack was idle again, per second of that
// time. Work that a fast side leaves to a slow service, such as
// notifications, so counts against it.
func (s Sample) Rate() float64 {
	d := s.Elapsed + s.Drain
	if d <= 0 {
		return 0
	}
	return float64(s.Total) / d.Seconds()
}

// WindowRate returns the operations completed per second of the window,
// whatever they left behind.
func (s Sample) WindowRate() float64 {
	if s.Window <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Window.Seconds()
}

// window counts operations from a moment on. Operations recorded before
// open or after close are not counted, so work that is still warming up
// or draining does not dilute the figure.
type window struct {
	latency  Histogram
	ops      atomic.Uint64
	total    atomic.Uint64
	errs     atomic.Uint64
	counting atomic.Bool

	mu       sync.Mutex
	firstErr error
	started  time.Time
	ended    time.Time
}

func (w *window) open() {
	w.mu.Lock()
	w.started = time.Now()
	w.mu.Unlock()
	w.counting.Store(true)
}

func (w *window) close() {
	w.counting.Store(false)
	w.mu.Lock()
	w.ended = time.Now()
	w.mu.Unlock()
}

// done records one completed operation that took d.
func (w *window) done(d time.Duration) {
	w.total.Add(1)
	if !w.counting.Load() {
		return
	}
	w.ops.Add(1)
	w.latency.Record(d)
}

// fail records one failed operation.
func (w *window) fail(err error) {
	if !w.counting.Load() {
		return
	}
	w.errs.Add(1)
	w.mu.Lock()
	if w.firstErr == nil {
		w.firstErr = err
	}
	w.mu.Unlock()
}

func (w *window) sample() Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Sample{
		Ops:        w.ops.Load(),
		Errors:     w.errs.Load(),
		Window:     w.ended.Sub(w.started),
		Latency:    &w.latency,
		FirstError: w.firstErr,
		Total:      w.total.Load(),
	}
}

// runWindow runs workers goroutines of work until the warm-up and the
// measured window have passed, and returns what the window measured. Then
// each worker finishes the operation it has started, so the next
// measurement starts on an idle system. work runs one operation and
// reports it to w. ctx aborts everything; work must return soon after it
// ends.
func runWindow(ctx context.Context, workers int, warmup, length time.Duration, work func(ctx context.Context, w *window)) Sample {
	begin := time.Now()
	stop := make(chan struct{})
	w := &window{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				work(ctx, w)
			}
		})
	}

	if sleep(ctx, warmup) {
		w.open()
		sleep(ctx, length)
		w.close()
	}
	close(stop)
	wg.Wait()
	s := w.sample()
	s.Elapsed = time.Since(begin)
	return s
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// median returns the median of values, the mean of the middle two for an
// even count, and 0 for none.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}
