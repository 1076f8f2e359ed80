package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/bus"
)

// The baselines' stream, on the same server as Handoff's, with the file
// storage and limits retention of the tasks stream.
const (
	rawStream     = "BENCH_RAW"
	rawJobs       = "bench.raw.job."
	rawDone       = "bench.raw.done."
	rawRoundTrip  = "bench.raw.rtt."
	rawSubmission = "bench.raw.http."
	rawWorkerName = "bench-raw-worker"
)

// fetchWait bounds one pull request of the raw worker, as the executor's.
const fetchWait = time.Second

// provisionRaw creates the baselines' stream.
func provisionRaw(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, stackIOTimeout)
	defer cancel()
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        rawStream,
		Description: "Handoff benchmark: the raw JetStream operations that bound Handoff",
		Subjects:    []string{"bench.raw.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      bus.DefaultMaxAge,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("provision stream %s: %w", rawStream, err)
	}
	return nil
}

// rawWorker is the baseline of the executor: a durable pull consumer of
// jobs that, with at most concurrency jobs at once, publishes a completion
// of the same size for each and acknowledges it.
type rawWorker struct {
	js      jetstream.JetStream
	log     *zap.Logger
	slots   chan struct{}
	freed   chan struct{}
	workers sync.WaitGroup
	cancel  context.CancelFunc
	done    chan struct{}
}

// startRawWorker starts the worker on js's connection.
func startRawWorker(ctx context.Context, js jetstream.JetStream, concurrency int, log *zap.Logger) (*rawWorker, error) {
	setupCtx, cancel := context.WithTimeout(ctx, stackIOTimeout)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(setupCtx, rawStream, jetstream.ConsumerConfig{
		Durable:       rawWorkerName,
		FilterSubject: rawJobs + ">",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: max(10000, concurrency),
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", rawWorkerName, err)
	}

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w := &rawWorker{js: js, log: log, slots: make(chan struct{}, concurrency), freed: make(chan struct{}, 1), cancel: stop, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.run(runCtx, cons)
	}()
	return w, nil
}

// run pulls jobs while ctx is live, never more than the free slots.
func (w *rawWorker) run(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		free := cap(w.slots) - len(w.slots)
		if free == 0 {
			select {
			case <-w.freed:
			case <-ctx.Done():
			}
			continue
		}
		batch, err := cons.Fetch(free, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			w.log.Warn("raw worker: fetch failed", zap.Error(err))
			sleep(ctx, fetchWait)
			continue
		}
		for msg := range batch.Messages() {
			w.slots <- struct{}{}
			w.workers.Go(func() {
				defer w.release()
				w.complete(ctx, msg)
			})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			w.log.Warn("raw worker: fetch ended with an error", zap.Error(err))
		}
	}
	w.workers.Wait()
}

func (w *rawWorker) release() {
	<-w.slots
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// complete publishes the completion of one job and acknowledges the job.
func (w *rawWorker) complete(ctx context.Context, msg jetstream.Msg) {
	id := strings.TrimPrefix(msg.Subject(), rawJobs)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(ctx, &nats.Msg{Subject: rawDone + id, Header: msg.Headers(), Data: msg.Data()}); err != nil {
		w.log.Warn("raw worker: publishing a completion failed", zap.Error(err))
		return
	}
	if err := msg.Ack(); err != nil {
		w.log.Warn("raw worker: ack failed", zap.Error(err))
	}
}

// stop stops pulling and waits for the jobs in progress.
func (w *rawWorker) stop() {
	w.cancel()
	<-w.done
}

// watcher delivers the messages of an ordered consumer, from the moment it
// is created, to a rendezvous.
type watcher struct {
	cc jetstream.ConsumeContext
}

// watch starts an ordered consumer of the new messages on filters in
// stream. route returns the id and outcome of each message, or false to
// ignore it.
func watch(ctx context.Context, js jetstream.JetStream, stream string, filters []string, rv *rendezvous, route func(subject string) (id, outcome string, ok bool), log *zap.Logger) (*watcher, error) {
	setupCtx, cancel := context.WithTimeout(ctx, stackIOTimeout)
	defer cancel()
	cons, err := js.OrderedConsumer(setupCtx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create ordered consumer on %s: %w", stream, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		at := time.Now()
		if id, outcome, ok := route(msg.Subject()); ok {
			rv.arrive(id, at, outcome, nil, false)
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Warn("watcher: consume error", zap.String("stream", stream), zap.Error(err))
	}))
	if err != nil {
		return nil, fmt.Errorf("consume from %s: %w", stream, err)
	}
	return &watcher{cc: cc}, nil
}

// stop stops the consumer and waits until its handler has returned.
func (w *watcher) stop() {
	w.cc.Stop()
	<-w.cc.Closed()
}
