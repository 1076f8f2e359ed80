package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
)

const (
	// fetchWait bounds one pull request. It is also how long Run may take
	// to stop fetching once its context is cancelled.
	fetchWait = time.Second
	// fetchRetryWait spaces pull requests after a failed one.
	fetchRetryWait = time.Second
)

// consumedKinds are the kinds whose events the executor acts on.
var consumedKinds = []events.Kind{events.KindSubmitted, events.KindResumed, events.KindDeadline}

// ConsumerName returns the durable consumer shared by the instances of
// pool: executor-<pool>.
func ConsumerName(pool string) string { return "executor-" + pool }

// consumerConfig returns the pool's consumer: every submitted, resumed and
// deadline event of the served task types, from the start of the stream.
// MaxDeliver is unlimited because attempts are counted from the task's
// events, not from deliveries.
func (e *Executor) consumerConfig() jetstream.ConsumerConfig {
	names := make([]string, 0, len(e.served))
	for name := range e.served {
		names = append(names, name)
	}
	slices.Sort(names)
	filters := make([]string, 0, len(names)*len(consumedKinds))
	for _, name := range names {
		for _, kind := range consumedKinds {
			filters = append(filters, e.bus.Names().KindFilter(kind, name))
		}
	}
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(e.cfg.Pool),
		Description:    "Handoff executor pool " + e.cfg.Pool,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        e.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  e.cfg.MaxAckPending,
	}
}

// ensureConsumer creates the pool's consumer or updates it to this
// instance's configuration.
func (e *Executor) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	cfg := e.consumerConfig()
	cons, err := e.bus.JetStream().CreateOrUpdateConsumer(ctx, e.bus.Names().TasksStream(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on stream %s: %w", cfg.Durable, e.bus.Names().TasksStream(), err)
	}
	return cons, nil
}

// consume pulls messages while ctx is live, never more than the free
// handler slots, so that no message waits in a client buffer while its
// AckWait runs.
func (e *Executor) consume(ctx context.Context, cons jetstream.Consumer) {
	failures := 0
	for ctx.Err() == nil {
		free := cap(e.slots) - len(e.slots)
		if free == 0 {
			select {
			case <-e.freed:
			case <-ctx.Done():
			}
			continue
		}

		err := e.fetch(ctx, cons, free)
		if err == nil {
			if failures > 0 {
				e.log.Info("fetching messages works again", zap.Int("failed_fetches", failures))
			}
			failures = 0
			continue
		}

		failures++
		if failures == 1 || failures%60 == 0 {
			e.log.Warn("fetching messages failed; retrying", zap.Int("failed_fetches", failures), zap.Error(err))
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			if c, err := e.ensureConsumer(ctx); err == nil {
				cons = c
			}
		}
		t := time.NewTimer(fetchRetryWait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// fetch makes one pull request for up to n messages and starts a worker
// for each. Messages that arrive after ctx is cancelled go back to the
// pool at once.
func (e *Executor) fetch(ctx context.Context, cons jetstream.Consumer, n int) error {
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchWait))
	if err != nil {
		return err
	}
	for msg := range batch.Messages() {
		if ctx.Err() != nil {
			e.nak(msg, 0)
			continue
		}
		e.slots <- struct{}{}
		e.workers.Add(1)
		go func() {
			if !e.handleMessage(msg) {
				e.release()
			}
		}()
	}
	return batch.Error()
}

func (e *Executor) release() {
	<-e.slots
	e.workers.Done()
	select {
	case e.freed <- struct{}{}:
	default:
	}
}

func (e *Executor) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		e.log.Debug("ack failed", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

// nak returns msg to the pool, for redelivery after delay.
func (e *Executor) nak(msg jetstream.Msg, delay time.Duration) {
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		e.log.Debug("nak failed", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}
