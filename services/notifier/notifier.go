package notifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/tracing"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// NotifiedKinds are the event kinds the notifier delivers: input_required
// and the terminal kinds.
var NotifiedKinds = subscription.DeliveredKinds

// Settings of the dispatch consumer, which only reads tasks and stores
// jobs, so it needs neither a configurable bound nor a long AckWait.
const (
	dispatchConcurrency   = 32
	dispatchAckWait       = 30 * time.Second
	dispatchMaxAckPending = 10_000
)

// drainTimeout bounds the wait for the consumers to stop at shutdown.
const drainTimeout = 10 * time.Second

// Notifier delivers task events to webhooks in two steps. A dispatcher
// consumes the notified events of every task and stores one delivery job
// per event and endpoint in the deliveries stream: the webhook given at
// submit, and every matching subscription. Workers consume the jobs and
// make the attempts, with retries that wait in the stream, so a slow or
// dead endpoint holds no worker and delays no other endpoint. Each attempt
// is recorded on the task as a delivered or delivery_failed event. All
// instances of a namespace share both durable consumers.
type Notifier struct {
	cfg     Config
	bus     *bus.Bus
	log     *zap.Logger
	source  string
	sender  *sender
	signer  *webhook.Signer
	store   *subscription.Store
	retry   retryPolicy
	slots   *endpointSlots
	running atomic.Bool

	// stopping is closed when Run starts to drain.
	stopping chan struct{}
	// work is the context of the attempts; it is cancelled when the
	// attempts in flight outlast DrainTimeout.
	work       context.Context
	cancelWork context.CancelFunc

	deliverySlots chan struct{}
	dispatchSlots chan struct{}
	inflight      sync.WaitGroup

	// Set by Run before the consumers start.
	cache    *subscription.Cache
	dispatch jetstream.Consumer

	metrics *notifierMetrics
	tracer  trace.Tracer
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
	signer, err := webhook.NewSignerKeys(cfg.keys())
	if err != nil {
		return nil, fmt.Errorf("%w: Secrets: %w", ErrInvalidConfig, err)
	}
	store, err := subscription.NewStore(b, subscription.Options{Guard: cfg.guard()})
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}

	work, cancelWork := context.WithCancel(context.Background())
	n := &Notifier{
		cfg:           cfg,
		bus:           b,
		log:           log,
		source:        "/handoff/notifier/" + cfg.Instance,
		sender:        newSender(cfg),
		signer:        signer,
		store:         store,
		retry:         retryPolicy{backoff: cfg.Backoff, maxRetryAfter: cfg.MaxRetryAfter},
		slots:         newEndpointSlots(cfg.EndpointConcurrency, cfg.Timeout),
		stopping:      make(chan struct{}),
		work:          work,
		cancelWork:    cancelWork,
		deliverySlots: make(chan struct{}, cfg.Concurrency),
		dispatchSlots: make(chan struct{}, dispatchConcurrency),
		tracer:        tracing.Tracer(cfg.TracerProvider, tracerComponent),
	}
	if n.metrics, err = newNotifierMetrics(cfg.Metrics, n); err != nil {
		cancelWork()
		return nil, err
	}
	return n, nil
}

// ConsumerConfig returns the configuration of the dispatch consumer, which
// the notifier creates or updates on the tasks stream. It delivers every
// stored event of the notified kinds, so events stored before the first
// notifier started are delivered too.
func (n *Notifier) ConsumerConfig() jetstream.ConsumerConfig {
	filters := make([]string, len(NotifiedKinds))
	for i, kind := range NotifiedKinds {
		filters[i] = n.bus.Names().KindFilter(kind, ">")
	}
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName,
		Description:    "Handoff notifier: plans the webhook deliveries of terminal and input_required events",
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        dispatchAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  dispatchMaxAckPending,
	}
}

// DeliveryConsumerConfig returns the configuration of the delivery
// consumer, which the notifier creates or updates on the deliveries
// stream.
func (n *Notifier) DeliveryConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       DeliveryConsumerName,
		Description:   "Handoff notifier: delivers each pending webhook job",
		FilterSubject: n.bus.Names().DeliveriesSubjects(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       n.cfg.AckWait,
		// The notifier decides when to give up, from the task's records.
		MaxDeliver:    -1,
		MaxAckPending: n.cfg.MaxAckPending,
	}
}

// Run delivers events until ctx is cancelled and then drains. Draining stops
// taking events and jobs and returns the ones not yet started to their
// streams. Then it waits up to DrainTimeout for the attempts in flight,
// cancels those still running, and returns nil, also when ctx is cancelled
// before the consumers started. Run returns an error if a consumer cannot
// be created or stops on its own, as when it is deleted or the connection
// closes. Run may be called once.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notifier: Run called more than once")
	}
	defer n.cancelWork()

	cache, err := subscription.Watch(ctx, n.bus, n.log.Named("subscriptions"))
	if err != nil && ctx.Err() != nil {
		// A stop requested during the start is a clean stop.
		return nil
	}
	if err != nil {
		return err
	}
	defer cache.Stop()
	n.cache = cache

	names := n.bus.Names()
	n.dispatch, err = n.bus.JetStream().CreateOrUpdateConsumer(ctx, names.TasksStream(), n.ConsumerConfig())
	if err != nil && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create consumer %s on stream %s: %w", ConsumerName, names.TasksStream(), err)
	}
	deliveries, err := n.bus.JetStream().CreateOrUpdateConsumer(ctx, names.DeliveriesStream(), n.DeliveryConsumerConfig())
	if err != nil && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create consumer %s on stream %s: %w", DeliveryConsumerName, names.DeliveriesStream(), err)
	}

	stopped := make(chan error, 2)
	dispatchCC, err := n.dispatch.Consume(n.receiveEvent,
		jetstream.PullMaxMessages(dispatchConcurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			n.consumeError(n.dispatch, ConsumerName, err, stopped)
		}))
	if err != nil {
		return fmt.Errorf("consume %s on stream %s: %w", ConsumerName, names.TasksStream(), err)
	}
	deliveryCC, err := deliveries.Consume(n.receiveJob,
		jetstream.PullMaxMessages(n.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			n.consumeError(deliveries, DeliveryConsumerName, err, stopped)
		}))
	if err != nil {
		dispatchCC.Stop()
		return fmt.Errorf("consume %s on stream %s: %w", DeliveryConsumerName, names.DeliveriesStream(), err)
	}

	n.log.Info("notifier started",
		zap.String("namespace", n.cfg.Namespace),
		zap.String("instance", n.cfg.Instance),
		zap.Int("secrets", len(n.cfg.Secrets)),
		zap.Int("previous_secrets", len(n.cfg.PreviousSecrets)),
		zap.Timep("rotation_ends", timeOrNil(n.cfg.RotationEnds)),
		zap.Int("subscriptions", cache.Len()),
		zap.Bool("allow_loopback", n.cfg.AllowLoopback),
		zap.Stringers("allow_networks", n.cfg.AllowNetworks),
		zap.Duration("timeout", n.cfg.Timeout),
		zap.Durations("backoff", n.cfg.Backoff),
		zap.Int("concurrency", n.cfg.Concurrency),
		zap.Int("endpoint_concurrency", n.cfg.EndpointConcurrency),
		zap.Duration("ack_wait", n.cfg.AckWait))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-stopped:
	}
	n.drain(dispatchCC, deliveryCC)
	return runErr
}

// consumeError logs an error of a consumer and reports on stopped the
// ones after which no more messages arrive: nats.go stops consuming after
// some, and a consumer deleted while no pull request was waiting shows
// only as missing heartbeats.
func (n *Notifier) consumeError(cons jetstream.Consumer, name string, err error, stopped chan<- error) {
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
		n.log.Warn("consume messages", zap.String("consumer", name), zap.Error(err))
		return
	}

	select {
	case <-n.stopping:
	default:
		n.log.Error("consumer stopped", zap.String("consumer", name), zap.Error(err))
	}
	select {
	case stopped <- fmt.Errorf("consumer %s stopped: %w", name, err):
	default:
	}
}

// drain stops intake, waits up to DrainTimeout for the work in flight,
// cancels what still runs, waits for it to be recorded and settled, and
// closes idle connections.
func (n *Notifier) drain(ccs ...jetstream.ConsumeContext) {
	n.log.Info("notifier stopping")
	close(n.stopping)
	for _, cc := range ccs {
		cc.Drain()
	}
	for _, cc := range ccs {
		select {
		case <-cc.Closed():
		case <-time.After(drainTimeout):
			n.log.Warn("consumer did not stop in time", zap.Duration("timeout", drainTimeout))
		}
	}

	done := make(chan struct{})
	go func() {
		n.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(n.cfg.DrainTimeout):
		n.log.Warn("cancelling delivery attempts still in flight", zap.Duration("drain_timeout", n.cfg.DrainTimeout))
		n.cancelWork()
		<-done
	}
	n.sender.closeIdleConnections()
	n.log.Info("notifier stopped")
}

// receiveEvent is the dispatch consumer's message handler. It blocks while
// dispatchConcurrency events are in flight.
func (n *Notifier) receiveEvent(msg jetstream.Msg) {
	n.start(msg, n.dispatchSlots, n.dispatchEvent)
}

// receiveJob is the delivery consumer's message handler. It blocks while
// Concurrency jobs are in flight, so at most Concurrency more wait in the
// client buffer.
func (n *Notifier) receiveJob(msg jetstream.Msg) {
	n.start(msg, n.deliverySlots, n.deliverJob)
}

// start runs handle on msg in a goroutine once a slot is free, and settles
// the message with the outcome.
func (n *Notifier) start(msg jetstream.Msg, slots chan struct{}, handle func(jetstream.Msg) outcome) {
	select {
	case <-n.stopping:
		n.release(msg)
		return
	default:
	}
	select {
	case slots <- struct{}{}:
	case <-n.stopping:
		n.release(msg)
		return
	}
	n.inflight.Go(func() {
		defer func() { <-slots }()
		// The message may have waited in the client buffer for a slot.
		_ = msg.InProgress()

		defer func() {
			if r := recover(); r != nil {
				n.log.Error("handler panicked", zap.String("subject", msg.Subject()), zap.Any("panic", r), zap.Stack("stack"))
				n.settle(msg, outcome{action: actionRetry, delay: taskRetryDelay})
			}
		}()
		n.settle(msg, handle(msg))
	})
}

// release returns a message that was not started at shutdown to the
// stream, for another instance.
func (n *Notifier) release(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		n.log.Warn("return message at shutdown", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

// readTask reads the events of one task and folds them, with the messages
// that did not decode in Skipped, as [bus.Bus.ReadTask] does, and returns
// the events too. A through above 0 is the stream sequence of an event
// the caller holds: a read that misses it, from a replica that is behind,
// is retried as [bus.Bus.ReadEventsThrough] does.
func readTask(ctx context.Context, b *bus.Bus, tenant, taskID string, through uint64) (*events.Task, []events.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	te, err := b.ReadEventsThrough(ctx, tenant, taskID, 0, through)
	if err != nil {
		return nil, nil, err
	}
	task := events.Fold(te.Events)
	task.Skipped = append(task.Skipped, te.Invalid...)
	task.LastSeq = max(task.LastSeq, te.LastSeq)
	return task, te.Events, nil
}

// skippedByFold reports whether the fold ignored the event with id, as an
// illegal transition or invalid data, so it is not part of the task's
// history.
func skippedByFold(task *events.Task, id string) bool {
	for _, s := range task.Skipped {
		if s.ID == id {
			return true
		}
	}
	return false
}

// eventLog returns log with the fields of ev's task and ev.
func eventLog(log *zap.Logger, ev *events.Event) *zap.Logger {
	return log.With(logging.Task(ev.Tenant, ev.TaskID, ev.TaskType)...).With(
		zap.String(logging.KeyEvent, ev.ID), zap.String(logging.KeyKind, string(ev.Kind)))
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
