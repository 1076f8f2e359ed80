package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// measureTenant is the tenant of the tasks that measure the transition
// rate in the retained row. They are purged after each round, so that the
// stream retains the intended number of tasks.
const measureTenant = "bench"

// retainedSample is how many retained task ids the status reads pick
// from, sampled evenly from all retained tasks.
const retainedSample = 10_000

// retainedMaxPending bounds the asynchronous publishes in flight while the
// retained tasks are stored.
const retainedMaxPending = 4096

// transitionsPerTask counts the compare-and-set writes of an echo task:
// submitted, started and succeeded.
const transitionsPerTask = 3

// retainedLevel holds the samples measured with one number of retained
// tasks.
type retainedLevel struct {
	tasks int
	reads []Sample
	rates []Sample
}

// runRetained compares the status read latency and the transition rate
// with cfg.RetainedSmall and then cfg.RetainedLarge tasks retained, on a
// stack of its own. It runs ingest and the executor but not the notifier,
// which would otherwise read every retained task's terminal event once.
func runRetained(ctx context.Context, cfg Config, dir string, report *Report, log *zap.Logger) ([]Row, error) {
	st, err := startStack(ctx, stackOptions{dir: dir, concurrency: cfg.InFlight}, log)
	if err != nil {
		return nil, err
	}
	defer st.stop()
	report.ServerVersion = st.client.Conn().ConnectedServerVersion()

	tasks := newRendezvous()
	w, err := watch(ctx, st.client.JetStream(), st.client.Names().TasksStream(), terminalFilters(st.client.Names(), measureTenant, echoType), tasks, routeTask, log)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	input := newInput(cfg.InputBytes)
	echo := &echoSubmitter{bus: st.client, tasks: tasks, tenant: measureTenant, input: input}
	f, err := newFiller(st.client, input)
	if err != nil {
		return nil, err
	}

	var levels []retainedLevel
	for _, n := range []int{cfg.RetainedSmall, cfg.RetainedLarge} {
		start := time.Now()
		if err := f.fill(ctx, n); err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Progress, "%s: stored %d tasks (%d events) in %s\n", RowRetained, f.stored, f.stored*transitionsPerTask, time.Since(start).Round(time.Millisecond))
		level, err := measureRetained(ctx, cfg, st, echo, f.sample, n)
		if err != nil {
			return nil, err
		}
		levels = append(levels, level)
	}

	small, large := levels[0], levels[1]
	readRow := newRow(fmt.Sprintf("status read p50, one client, with %d retained tasks", large.tasks),
		medianOf(small.reads, p50Value), medianOf(large.reads, p50Value), nil, Target{Value: 1.5, Text: "≤ 1.50"})
	readRow.Ratio = ratio(readRow.HandoffValue, readRow.BaselineValue)
	readRow.Met = readRow.Target.Met(readRow.Ratio)
	readRow.Baseline = fmt.Sprintf("%d retained: %s", small.tasks, formatQuantiles(small.reads))
	readRow.Handoff = formatQuantiles(large.reads)
	readRow.Failures = failureNotes(small.reads, large.reads)

	rateRow := newRow(fmt.Sprintf("transitions/s, echo tasks with %d in flight, with %d retained tasks", cfg.InFlight, large.tasks),
		medianOf(small.rates, transitionRate), medianOf(large.rates, transitionRate), nil, Target{AtLeast: true, Value: 1 / 1.5, Text: "≥ 0.67 (within 1.5×)"})
	rateRow.Ratio = ratio(rateRow.HandoffValue, rateRow.BaselineValue)
	rateRow.Met = rateRow.Target.Met(rateRow.Ratio)
	rateRow.Baseline = fmt.Sprintf("%d retained: %.0f/s", small.tasks, rateRow.BaselineValue)
	rateRow.Handoff = fmt.Sprintf("%.0f/s", rateRow.HandoffValue)
	rateRow.Failures = failureNotes(small.rates, large.rates)
	rateRow.Notes = []string{fmt.Sprintf("%d compare-and-set writes per task: submitted, started, succeeded; measured without the notifier", transitionsPerTask)}
	return []Row{readRow, rateRow}, nil
}

func transitionRate(s Sample) float64 { return s.Rate() * transitionsPerTask }

// measureRetained measures the status read latency and the transition
// rate in cfg.Rounds rounds.
func measureRetained(ctx context.Context, cfg Config, st *stack, echo *echoSubmitter, ids []string, n int) (retainedLevel, error) {
	level := retainedLevel{tasks: n}
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	stream, err := st.client.JetStream().Stream(ctx, st.client.Names().TasksStream())
	if err != nil {
		return level, fmt.Errorf("look up the tasks stream: %w", err)
	}
	purge := st.client.Names().Namespace + ".task." + measureTenant + ".>"

	for round := 1; round <= cfg.Rounds && ctx.Err() == nil; round++ {
		reads := runWindow(ctx, 1, cfg.Warmup, cfg.Duration, func(ctx context.Context, w *window) {
			id := ids[rand.IntN(len(ids))]
			start := time.Now()
			if err := get(ctx, client, st.apiURL+"/v1/tasks/"+id); err != nil {
				w.fail(err)
				return
			}
			w.done(time.Since(start))
		})
		rates := runWindow(ctx, cfg.InFlight, cfg.Warmup, cfg.Duration, echo.op)
		level.reads, level.rates = append(level.reads, reads), append(level.rates, rates)
		fmt.Fprintf(cfg.Progress, "%s %d round %d/%d: status read %s; %.0f transitions/s%s\n",
			RowRetained, n, round, cfg.Rounds, formatLatency(reads), transitionRate(rates), errorNote(reads, rates))

		purgeCtx, cancel := context.WithTimeout(ctx, stackIOTimeout)
		err := stream.Purge(purgeCtx, jetstream.WithPurgeSubject(purge))
		cancel()
		if err != nil {
			return level, fmt.Errorf("purge the measuring tasks: %w", err)
		}
	}
	return level, ctx.Err()
}

// filler stores finished tasks in the stream with raw asynchronous
// publishes, which is much faster than running them. Each task gets the
// submitted, started and succeeded events that the services would write,
// with their CloudEvents headers and TTL. The compare-and-set and message
// id headers are left out, because their checks would only slow the
// filling.
type filler struct {
	bus    *bus.Bus
	js     jetstream.JetStream
	input  json.RawMessage
	errs   atomic.Uint64
	stored int
	// sample holds up to retainedSample ids, each stored task with the
	// same chance.
	sample []string
}

func newFiller(b *bus.Bus, input json.RawMessage) (*filler, error) {
	f := &filler{bus: b, input: input}
	js, err := jetstream.New(b.Conn(),
		jetstream.WithPublishAsyncMaxPending(retainedMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { f.errs.Add(1) }))
	if err != nil {
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	f.js = js
	return f, nil
}

// fill stores tasks until n are stored.
func (f *filler) fill(ctx context.Context, n int) error {
	for ; f.stored < n; f.stored++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		id := events.NewID()
		msgs, err := f.taskMessages(id)
		if err != nil {
			return err
		}
		for _, msg := range msgs {
			if _, err := f.js.PublishMsgAsync(msg, jetstream.WithStallWait(opTimeout)); err != nil {
				return fmt.Errorf("store retained task %d: %w", f.stored+1, err)
			}
		}
		f.keep(id)
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	select {
	case <-f.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("store retained tasks: no acknowledgement of %d publishes: %w", f.js.PublishAsyncPending(), ctx.Err())
	}
	if n := f.errs.Load(); n > 0 {
		return fmt.Errorf("store retained tasks: %d publishes failed", n)
	}
	return nil
}

// keep samples id: algorithm R, which keeps each of the stored ids with
// the same probability.
func (f *filler) keep(id string) {
	if len(f.sample) < retainedSample {
		f.sample = append(f.sample, id)
		return
	}
	if j := rand.IntN(f.stored + 1); j < retainedSample {
		f.sample[j] = id
	}
}

// taskMessages returns the events of one task that succeeded at its first
// attempt, with the echo of its input as the result.
func (f *filler) taskMessages(id string) ([]*nats.Msg, error) {
	kinds := []struct {
		kind events.Kind
		data any
	}{
		{events.KindSubmitted, events.Submission{Input: f.input}.WithDefaults()},
		{events.KindStarted, events.Started{Attempt: 1, Executor: "bench"}},
		{events.KindSucceeded, events.Succeeded{Result: f.input}},
	}
	msgs := make([]*nats.Msg, len(kinds))
	for i, k := range kinds {
		ev, err := events.NewEvent(k.kind, events.DefaultTenant, id, retainedType, agentSource, k.data)
		if err != nil {
			return nil, err
		}
		if k.kind != events.KindSubmitted {
			ev.Attempt = 1
		}
		msg := f.bus.Message(&ev, bus.AppendOptions{TTL: events.DefaultTTL})
		msg.Header.Del(bus.HeaderMsgID)
		msg.Header.Del(bus.HeaderExpectedSubjSeq)
		msg.Header.Del(bus.HeaderExpectedSubjSeqSubj)
		msgs[i] = msg
	}
	return msgs, nil
}
