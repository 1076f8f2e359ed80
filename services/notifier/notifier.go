package notifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// NotifiedKinds are the event kinds the notifier delivers: the terminal
// kinds and input_required.
var NotifiedKinds = []events.Kind{
	events.KindSucceeded, events.KindFailed, events.KindCancelled,
	events.KindRejected, events.KindExpired, events.KindInputRequired,
}

// Timing of the work around deliveries.
const (
	// taskRetryDelay spaces redeliveries of an event whose task could not
	// be read, such as while NATS is unavailable.
	taskRetryDelay = 5 * time.Second
	// drainTimeout bounds the wait for the consumer to stop at shutdown.
	drainTimeout = 10 * time.Second
)

// Notifier delivers task events to webhooks. It consumes the terminal and
// input_required events of every task with a durable consumer shared by
// all instances, and POSTs each event whose task was submitted with a
// webhook URL to that URL, retrying with backoff. Each attempt is recorded
// on the task as a delivered or delivery_failed event.
type Notifier struct {
	cfg    Config
	bus    *bus.Bus
	log    *zap.Logger
	source string
	sender *sender
	retry  retryPolicy

	running  atomic.Bool
	stopping chan struct{}
	// slots bounds the deliveries in flight to cfg.Concurrency.
	slots    chan struct{}
	inflight sync.WaitGroup
}

// New returns a Notifier for cfg, with defaults applied, on b. It logs to
// log as given, so the caller names it; nil discards the logs. The error
// names the first invalid field of cfg.
func New(cfg Config, b *bus.Bus, log *zap.Logger) (*Notifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("notifier: bus is nil")
	}
	if b.Names().Namespace != cfg.Namespace {
		return nil, fmt.Errorf("%w: Namespace %q differs from the bus namespace %q", ErrInvalidConfig, cfg.Namespace, b.Names().Namespace)
	}
	signer, err := webhook.NewSigner(cfg.Secrets)
	if err != nil {
		return nil, fmt.Errorf("%w: Secrets: %w", ErrInvalidConfig, err)
	}
	if log == nil {
		log = zap.NewNop()
	}

	return &Notifier{
		cfg:      cfg,
		bus:      b,
		log:      log,
		source:   "/handoff/notifier/" + cfg.Instance,
		sender:   newSender(cfg, signer),
		retry:    retryPolicy{backoff: cfg.Backoff, maxRetryAfter: cfg.MaxRetryAfter},
		stopping: make(chan struct{}),
		slots:    make(chan struct{}, cfg.Concurrency),
	}, nil
}

// ConsumerConfig returns the configuration of the durable consumer the
// notifier creates or updates on the tasks stream. It delivers every
// stored event of the notified kinds, so events stored before the first
// notifier started are delivered too.
func (n *Notifier) ConsumerConfig() jetstream.ConsumerConfig {
	filters := make([]string, len(NotifiedKinds))
	for i, kind := range NotifiedKinds {
		filters[i] = n.bus.Names().KindFilter(kind, ">")
	}
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName,
		Description:    "Handoff notifier: delivers terminal and input_required events to webhooks",
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        n.cfg.AckWait,
		// The notifier decides when to give up, from the delivery count.
		MaxDeliver:    -1,
		MaxAckPending: n.cfg.MaxAckPending,
	}
}

// Run delivers events until ctx is cancelled and then drains. Draining stops
// taking events and returns the ones not yet started to the stream. Then it
// waits for the deliveries in flight, each bounded by Timeout plus the time
// to read the task and record the attempt, and Run returns nil. Run returns
// an error if the consumer cannot be created or stops on its own, as when
// it is deleted or the connection closes. Run may be called once.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notifier: Run called more than once")
	}

	stream := n.bus.Names().TasksStream()
	cons, err := n.bus.JetStream().CreateOrUpdateConsumer(ctx, stream, n.ConsumerConfig())
	if err != nil {
		return fmt.Errorf("create consumer %s on stream %s: %w", ConsumerName, stream, err)
	}

	stopped := make(chan error, 1)
	cc, err := cons.Consume(n.receive,
		jetstream.PullMaxMessages(n.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			n.consumeError(cons, err, stopped)
		}))
	if err != nil {
		return fmt.Errorf("consume %s on stream %s: %w", ConsumerName, stream, err)
	}
	n.log.Info("notifier started",
		zap.String("namespace", n.cfg.Namespace),
		zap.String("instance", n.cfg.Instance),
		zap.Int("secrets", len(n.cfg.Secrets)),
		zap.Bool("allow_loopback", n.cfg.AllowLoopback),
		zap.Duration("timeout", n.cfg.Timeout),
		zap.Durations("backoff", n.cfg.Backoff),
		zap.Int("concurrency", n.cfg.Concurrency),
		zap.Duration("ack_wait", n.cfg.AckWait))

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-stopped:
		runErr = fmt.Errorf("consumer %s stopped: %w", ConsumerName, err)
	}
	n.drain(cc)
	return runErr
}

// consumeError logs an error of the consumer and reports on stopped the
// ones after which no more events arrive: nats.go stops consuming after
// some, and a consumer deleted while no pull request was waiting shows
// only as missing heartbeats.
func (n *Notifier) consumeError(cons jetstream.Consumer, err error, stopped chan<- error) {
	if errors.Is(err, jetstream.ErrNoHeartbeat) {
		ctx, cancel := context.WithTimeout(context.Background(), taskIOTimeout)
		_, infoErr := cons.Info(ctx)
		cancel()
		if errors.Is(infoErr, jetstream.ErrConsumerNotFound) {
			err = infoErr
		}
	}
	if !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrConsumerNotFound) &&
		!errors.Is(err, jetstream.ErrBadRequest) && !errors.Is(err, jetstream.ErrConnectionClosed) {
		n.log.Warn("consume events", zap.Error(err))
		return
	}

	select {
	case <-n.stopping:
	default:
		n.log.Error("consumer stopped", zap.Error(err))
	}
	select {
	case stopped <- err:
	default:
	}
}

// drain stops intake, waits for the deliveries in flight and closes idle
// connections.
func (n *Notifier) drain(cc jetstream.ConsumeContext) {
	n.log.Info("notifier stopping")
	close(n.stopping)
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(drainTimeout):
		n.log.Warn("consumer did not stop in time", zap.Duration("timeout", drainTimeout))
	}
	n.inflight.Wait()
	n.sender.closeIdleConnections()
	n.log.Info("notifier stopped")
}

// receive is the consumer's message handler. It blocks while Concurrency
// deliveries are in flight, so at most Concurrency more events wait in the
// client buffer.
func (n *Notifier) receive(msg jetstream.Msg) {
	select {
	case <-n.stopping:
		n.release(msg)
		return
	default:
	}
	select {
	case n.slots <- struct{}{}:
	case <-n.stopping:
		n.release(msg)
		return
	}
	n.inflight.Go(func() {
		defer func() { <-n.slots }()
		n.handle(msg)
	})
}

// release returns an event that was not started at shutdown to the
// stream, for another instance to deliver.
//
// NOTE: the return counts as a delivery, so it advances the event's attempt
// number by one without a request having been made.
func (n *Notifier) release(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		n.log.Warn("return event at shutdown", zap.String(logging.KeyEvent, msg.Subject()), zap.Error(err))
	}
}

// handle delivers one event and settles its message. Its context is not
// cancelled at shutdown, because every step has its own timeout.
func (n *Notifier) handle(msg jetstream.Msg) {
	// The message may have waited in the client buffer for a slot.
	_ = msg.InProgress()

	defer func() {
		if r := recover(); r != nil {
			n.log.Error("delivery panicked", zap.String(logging.KeyEvent, msg.Subject()), zap.Any("panic", r), zap.Stack("stack"))
			n.settle(msg, outcome{action: actionRetry, delay: taskRetryDelay})
		}
	}()
	n.settle(msg, n.process(context.Background(), msg))
}
