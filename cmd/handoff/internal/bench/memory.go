package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/services/executor"
)

// memoryTarget is the most memory an in-flight task may cost the executor.
const memoryTarget = 16 << 10

// memoryPool is the executor pool that runs the sleep tasks.
const memoryPool = "bench-memory"

// steadyWait is how long the sleep tasks run after the last one started
// before the memory is measured, so that each has written progress.
const steadyWait = 2 * time.Second

// submitWindow bounds the asynchronous appends in flight while sleep
// tasks are submitted.
const submitWindow = 1024

// runMemory measures the executor's memory per in-flight task: the growth
// of the process's live heap and goroutine stacks from executors at rest
// to executors running cfg.SleepTasks sleep tasks at once. It runs on a
// stack of its own without the notifier, whose reads of each ended task
// would compete with the executors, and whose memory is not measured.
func runMemory(ctx context.Context, cfg Config, dir string, report *Report, log *zap.Logger) ([]Row, error) {
	st, err := startStack(ctx, stackOptions{dir: dir, concurrency: cfg.InFlight}, log)
	if err != nil {
		return nil, err
	}
	defer st.stop()
	report.ServerVersion = st.client.Conn().ConnectedServerVersion()
	m := &memoryBench{cfg: cfg, st: st}
	return m.row(ctx)
}

// memoryBench runs the memory row's rounds on its stack.
type memoryBench struct {
	cfg Config
	st  *stack
}

func (m *memoryBench) row(ctx context.Context) ([]Row, error) {
	n := m.cfg.SleepTasks
	// One executor runs at most MaxConcurrency tasks, so a larger n takes
	// a pool of several instances.
	instances := (n + executor.MaxConcurrency - 1) / executor.MaxConcurrency
	perInstance := (n + instances - 1) / instances
	for i := range instances {
		name := fmt.Sprintf("%s-%d", memoryPool, i+1)
		svc, err := m.st.startExecutor(ctx, name, executor.Config{
			Pool:          memoryPool,
			Instance:      name,
			Concurrency:   perInstance,
			MaxAckPending: max(executor.DefaultMaxAckPending, perInstance*instances),
			Types:         map[string]executor.TypeConfig{sleepType: {Description: "Benchmark sleep", Handler: executor.HandlerSleep}},
		})
		if err != nil {
			return nil, err
		}
		defer m.st.stopService(svc)
	}

	setupCtx, cancel := context.WithTimeout(ctx, stackIOTimeout)
	defer cancel()
	if err := waitForTypes(setupCtx, m.st.client, sleepType); err != nil {
		return nil, err
	}
	counts, err := countSleepEvents(m.st.client)
	if err != nil {
		return nil, err
	}
	defer counts.stop()

	input, err := json.Marshal(map[string]float64{"seconds": m.cfg.SleepFor.Seconds()})
	if err != nil {
		return nil, err
	}
	var rest, perTask, heap, stacks, goroutines []float64
	var failures []string
	for round := 1; round <= m.cfg.Rounds && ctx.Err() == nil; round++ {
		r, busy, err := m.round(ctx, round, counts, input)
		if err != nil {
			failures = append(failures, fmt.Sprintf("round %d: %v", round, err))
			fmt.Fprintf(m.cfg.Progress, "%s round %d/%d: %v\n", RowMemory, round, m.cfg.Rounds, err)
			continue
		}
		per := busy.minus(r).per(uint64(n))
		rest, perTask = append(rest, r.total()), append(perTask, per.total())
		heap, stacks, goroutines = append(heap, per.heap), append(stacks, per.stacks), append(goroutines, per.goroutines)
		fmt.Fprintf(m.cfg.Progress, "%s round %d/%d: at rest %.1f MiB; per in-flight task %.2f KiB, of which %.2f KiB heap and %.2f KiB goroutine stacks, %.1f goroutines\n",
			RowMemory, round, m.cfg.Rounds, r.total()/(1<<20), per.total()/(1<<10), per.heap/(1<<10), per.stacks/(1<<10), per.goroutines)
	}

	row := Row{
		Figure:        fmt.Sprintf("executor memory per in-flight task, %d sleep tasks running", n),
		BaselineValue: median(rest),
		HandoffValue:  median(perTask),
		Ratio:         math.NaN(),
		Target:        Target{Text: fmt.Sprintf("≤ %d KiB per task", memoryTarget>>10)},
		Failures:      failures,
	}
	row.Baseline = fmt.Sprintf("process at rest: %.1f MiB live heap and stacks", row.BaselineValue/(1<<20))
	row.Handoff = fmt.Sprintf("%.2f KiB per task", row.HandoffValue/(1<<10))
	row.Met = len(perTask) > 0 && row.HandoffValue <= memoryTarget
	row.Notes = append(row.Notes,
		fmt.Sprintf("per task %.2f KiB heap and %.2f KiB goroutine stacks, %.1f goroutines (medians)", median(heap)/(1<<10), median(stacks)/(1<<10), median(goroutines)),
		fmt.Sprintf("%d executor instances of concurrency %d; the growth of the whole process, so it includes the embedded server's share, such as its index of the tasks' subjects", instances, perInstance))
	return []Row{row}, nil
}

// memoryRound submits the sleep tasks, measures the memory once all of
// them run, and waits until they ended. It returns the memory at rest and
// with the tasks running.
func (m *memoryBench) round(ctx context.Context, round int, counts *sleepCounts, input json.RawMessage) (rest, busy memoryUse, err error) {
	n := uint64(m.cfg.SleepTasks)
	startedBefore, endedBefore := counts.started.Load(), counts.ended.Load()
	profile := m.cfg.ProfileDir != "" && round == 1

	rest = measureMemory()
	if profile {
		if err := writeProfile(m.cfg.ProfileDir, "memory-heap-rest.pprof", "heap"); err != nil {
			return rest, busy, err
		}
	}
	submitted := time.Now()
	if err := m.submitSleepTasks(ctx, int(n), input); err != nil {
		return rest, busy, err
	}

	allStarted := submitted.Add(m.cfg.SleepFor)
	for counts.started.Load()-startedBefore < n {
		if time.Now().After(allStarted) || !sleep(ctx, 20*time.Millisecond) {
			return rest, busy, fmt.Errorf("only %d of %d sleep tasks started within --sleep-for %s; raise it", counts.started.Load()-startedBefore, n, m.cfg.SleepFor)
		}
	}
	fmt.Fprintf(m.cfg.Progress, "%s round %d/%d: %d sleep tasks submitted and started in %s\n", RowMemory, round, m.cfg.Rounds, n, time.Since(submitted).Round(time.Millisecond))
	wait := min(steadyWait, time.Until(allStarted)-time.Second)
	sleep(ctx, max(wait, 0))
	if ended := counts.ended.Load() - endedBefore; ended > 0 {
		return rest, busy, fmt.Errorf("%d sleep tasks ended before the measurement; raise --sleep-for above %s", ended, m.cfg.SleepFor)
	}
	busy = measureMemory()
	if profile {
		if err := writeProfile(m.cfg.ProfileDir, "memory-heap.pprof", "heap"); err != nil {
			return rest, busy, err
		}
		if err := writeProfile(m.cfg.ProfileDir, "memory-goroutine.pprof", "goroutine"); err != nil {
			return rest, busy, err
		}
	}

	allEnded := time.Now().Add(m.cfg.SleepFor + 2*time.Minute)
	for counts.ended.Load()-endedBefore < n {
		if time.Now().After(allEnded) || !sleep(ctx, 50*time.Millisecond) {
			return rest, busy, fmt.Errorf("only %d of %d sleep tasks ended in time", counts.ended.Load()-endedBefore, n)
		}
	}
	// The next round's rest starts once every attempt has acknowledged
	// its message and returned.
	if _, err := m.st.waitIdle(ctx, m.st.client.Names().TasksStream()); err != nil {
		return rest, busy, err
	}
	return rest, busy, nil
}

// submitSleepTasks appends n submitted events of sleep tasks, with at most
// submitWindow appends in flight.
func (m *memoryBench) submitSleepTasks(ctx context.Context, n int, input json.RawMessage) error {
	type pending struct {
		ev *events.Event
		f  jetstream.PubAckFuture
	}
	opts := bus.AppendOptions{TTL: events.DefaultTTL}
	var inFlight []pending
	wait := func(p pending) error {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		_, err := bus.AppendResult(ctx, p.ev, opts, p.f)
		return err
	}
	for range n {
		if len(inFlight) == submitWindow {
			if err := wait(inFlight[0]); err != nil {
				return err
			}
			inFlight = inFlight[1:]
		}
		ev, err := events.NewEvent(events.KindSubmitted, benchTenant, events.NewID(), sleepType, agentSource, events.Submission{Input: input})
		if err != nil {
			return err
		}
		f, err := m.st.client.AppendAsync(&ev, opts)
		if err != nil {
			return err
		}
		inFlight = append(inFlight, pending{&ev, f})
	}
	for _, p := range inFlight {
		if err := wait(p); err != nil {
			return err
		}
	}
	return nil
}

// sleepCounts counts the started and terminal events of sleep tasks with
// core NATS subscriptions, which see every message published to the
// stream.
type sleepCounts struct {
	started atomic.Uint64
	ended   atomic.Uint64
	subs    []*nats.Subscription
}

func countSleepEvents(b *bus.Bus) (*sleepCounts, error) {
	c := &sleepCounts{}
	subjects := map[string]*atomic.Uint64{b.Names().KindFilter(events.KindStarted, sleepType): &c.started}
	for _, f := range terminalFilters(b.Names(), benchTenant, sleepType) {
		subjects[f] = &c.ended
	}
	for subject, counter := range subjects {
		sub, err := b.Conn().Subscribe(subject, func(*nats.Msg) { counter.Add(1) })
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		// The counters must not lose messages to a slow consumer.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			c.stop()
			return nil, err
		}
		c.subs = append(c.subs, sub)
	}
	if err := b.Conn().Flush(); err != nil {
		c.stop()
		return nil, fmt.Errorf("flush subscriptions: %w", err)
	}
	return c, nil
}

func (c *sleepCounts) stop() {
	for _, s := range c.subs {
		_ = s.Unsubscribe()
	}
}

// memoryUse is the process's memory that grows with running tasks.
type memoryUse struct {
	// heap is the live heap in bytes, stacks the goroutine stacks in
	// bytes.
	heap, stacks float64
	goroutines   float64
}

// measureMemory returns the memory in use after a garbage collection.
func measureMemory() memoryUse {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memoryUse{heap: float64(m.HeapAlloc), stacks: float64(m.StackInuse), goroutines: float64(runtime.NumGoroutine())}
}

func (m memoryUse) total() float64 { return m.heap + m.stacks }

func (m memoryUse) minus(o memoryUse) memoryUse {
	return memoryUse{heap: m.heap - o.heap, stacks: m.stacks - o.stacks, goroutines: m.goroutines - o.goroutines}
}

func (m memoryUse) per(n uint64) memoryUse {
	f := float64(n)
	return memoryUse{heap: m.heap / f, stacks: m.stacks / f, goroutines: m.goroutines / f}
}
