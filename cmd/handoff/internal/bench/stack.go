package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/cmd/handoff/internal/embedded"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/registry"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/executor"
	"github.com/handoff-dev/handoff/services/ingest"
	"github.com/handoff-dev/handoff/services/notifier"
)

// Task types of the benchmark. The executor of the stack serves echoType
// and the memory row's executors serve sleepType. No executor serves
// submitType, whose registration only lets ingest accept it, so that the
// HTTP figure measures ingest alone. The retained row stores finished
// tasks of retainedType.
const (
	echoType     = "bench.echo"
	sleepType    = "bench.sleep"
	submitType   = "bench.submit"
	retainedType = "bench.retained"
)

// submitSchema is the input schema registered for submitType: the shape
// of the benchmark's inputs, so that ingest validates each one.
const submitSchema = `{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}`

// stackIOTimeout bounds the setup steps of a stack: provisioning,
// registrations and flushes at stop.
const stackIOTimeout = 30 * time.Second

// stackOptions choose what a stack runs.
type stackOptions struct {
	// dir holds the JetStream store.
	dir string
	// concurrency is the executor's Concurrency.
	concurrency int
	// notifier runs the notifier too.
	notifier bool
}

// stack is an embedded nats-server with file storage and Handoff's
// services, each on its own connection as in `handoff dev`, plus a
// connection for the load generator.
type stack struct {
	log    *zap.Logger
	nats   *embedded.Server
	client *bus.Bus
	// apiURL is the base URL of the ingest HTTP API on loopback.
	apiURL string
	// secret signs the notifier's webhooks.
	secret   string
	services []*service
}

// service is one running service with its own connection.
type service struct {
	name    string
	bus     *bus.Bus
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// startStack starts the server and the services and waits until ingest
// accepts the benchmark's task types.
func startStack(ctx context.Context, opts stackOptions, log *zap.Logger) (_ *stack, err error) {
	if err := os.MkdirAll(opts.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	srv, err := embedded.Start(embedded.Options{DataDir: opts.dir, Port: -1})
	if err != nil {
		return nil, err
	}
	s := &stack{log: log, nats: srv}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()

	if s.client, err = connect(ctx, srv.URL, "handoff-bench"); err != nil {
		return nil, err
	}
	setupCtx, cancel := context.WithTimeout(ctx, stackIOTimeout)
	defer cancel()
	if err := s.client.Provision(setupCtx, bus.StreamOptions{}); err != nil {
		return nil, err
	}
	if err := registry.Register(setupCtx, s.client, registry.TaskType{
		Name:        submitType,
		Description: "Benchmark submissions that no executor runs",
		InputSchema: []byte(submitSchema),
		Pool:        "bench",
		Executor:    "none",
	}, 24*time.Hour); err != nil {
		return nil, err
	}

	if opts.notifier {
		if s.secret, err = webhook.NewSecret(); err != nil {
			return nil, err
		}
		b, err := connect(ctx, srv.URL, "handoff-notifier")
		if err != nil {
			return nil, err
		}
		n, err := notifier.New(notifier.Config{Secrets: []string{s.secret}, AllowLoopback: true}, b, log.Named("notifier"))
		if err != nil {
			b.Conn().Close()
			return nil, err
		}
		s.start("notifier", b, n.Run)
	}

	execCfg := executor.Config{
		Concurrency: opts.concurrency,
		Types:       map[string]executor.TypeConfig{echoType: {Description: "Benchmark echo", Handler: executor.HandlerEcho}},
	}
	if _, err := s.startExecutor(ctx, "handoff-executor", execCfg); err != nil {
		return nil, err
	}
	if err := waitForTypes(setupCtx, s.client, echoType, submitType); err != nil {
		return nil, err
	}

	b, err := connect(ctx, srv.URL, "handoff-ingest")
	if err != nil {
		return nil, err
	}
	api, err := ingest.New(ctx, ingest.Config{AllowLoopback: true}, b, log.Named("ingest"))
	if err != nil {
		b.Conn().Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		api.Close()
		b.Conn().Close()
		return nil, fmt.Errorf("listen for the HTTP API: %w", err)
	}
	s.apiURL = "http://" + ln.Addr().String()
	s.start("ingest", b, func(ctx context.Context) error { return api.Serve(ctx, ln) })
	return s, nil
}

// startExecutor starts one more executor with cfg on its own connection.
// Stop it with stopService, or let stop stop it with the rest.
func (s *stack) startExecutor(ctx context.Context, name string, cfg executor.Config) (*service, error) {
	b, err := connect(ctx, s.nats.URL, name)
	if err != nil {
		return nil, err
	}
	ex, err := executor.New(cfg, b, s.log.Named("executor"))
	if err != nil {
		b.Conn().Close()
		return nil, err
	}
	return s.start(name, b, ex.Run), nil
}

func (s *stack) start(name string, b *bus.Bus, run func(context.Context) error) *service {
	ctx, cancel := context.WithCancel(context.Background())
	svc := &service{name: name, bus: b, cancel: cancel, done: make(chan error, 1)}
	s.services = append(s.services, svc)
	go func() { svc.done <- run(ctx) }()
	return svc
}

// stopService stops one service and closes its connection. A service that
// stopped on its own reports its error here. Only the goroutine that
// drives the stack calls it.
func (s *stack) stopService(svc *service) {
	if svc.stopped {
		return
	}
	svc.stopped = true
	svc.cancel()
	if err := <-svc.done; err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("service stopped with an error", zap.String("service", svc.name), zap.Error(err))
	}
	// Flush before closing, so the acks of the last messages reach the
	// server.
	if err := svc.bus.Conn().FlushTimeout(stackIOTimeout); err != nil {
		s.log.Warn("flushing the connection failed", zap.String("service", svc.name), zap.Error(err))
	}
	svc.bus.Conn().Close()
}

// stop stops the services in the reverse order of their start, then the
// server. It is safe to call on a partly started stack.
func (s *stack) stop() {
	for i := len(s.services) - 1; i >= 0; i-- {
		s.stopService(s.services[i])
	}
	s.services = nil
	if s.client != nil {
		s.client.Conn().Close()
	}
	s.nats.Shutdown()
}

// connect opens a connection and a bus in the default namespace.
func connect(ctx context.Context, url, name string) (*bus.Bus, error) {
	nc, err := bus.Connect(ctx, url, name)
	if err != nil {
		return nil, err
	}
	b, err := bus.New(nc, "")
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// waitForTypes waits until every task type in names is registered.
func waitForTypes(ctx context.Context, b *bus.Bus, names ...string) error {
	cache, err := registry.Watch(ctx, b)
	if err != nil {
		return err
	}
	defer cache.Stop()
	for {
		missing := ""
		for _, name := range names {
			if _, ok := cache.Get(name); !ok {
				missing = name
				break
			}
		}
		if missing == "" {
			return nil
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return fmt.Errorf("task type %s was not registered in time: %w", missing, ctx.Err())
		}
	}
}

// idleTimeout bounds the wait for the services to finish the work that a
// measurement left behind.
const idleTimeout = 2 * time.Minute

// waitIdle waits until no durable consumer on streams has messages pending
// or unacknowledged, so that the work one measurement left behind, such as
// the notifier's backlog, does not slow the next. It returns how long that
// took.
func (s *stack) waitIdle(ctx context.Context, streams ...string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, idleTimeout)
	defer cancel()
	for {
		busy, err := s.busyConsumer(ctx, streams)
		if err != nil {
			return time.Since(start), err
		}
		if busy == "" {
			return time.Since(start), nil
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return time.Since(start), fmt.Errorf("consumer %s still has work after %s", busy, idleTimeout)
		}
	}
}

// busyConsumer returns the name of a durable consumer on streams with
// messages pending or unacknowledged, or "".
func (s *stack) busyConsumer(ctx context.Context, streams []string) (string, error) {
	for _, name := range streams {
		stream, err := s.client.JetStream().Stream(ctx, name)
		if err != nil {
			return "", fmt.Errorf("look up stream %s: %w", name, err)
		}
		consumers := stream.ListConsumers(ctx)
		busy := ""
		for info := range consumers.Info() {
			if info.Config.Durable != "" && busy == "" && (info.NumPending > 0 || info.NumAckPending > 0) {
				busy = name + "/" + info.Name
			}
		}
		if err := consumers.Err(); err != nil {
			return "", fmt.Errorf("list consumers of %s: %w", name, err)
		}
		if busy != "" {
			return busy, nil
		}
	}
	return "", nil
}
