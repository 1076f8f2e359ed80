// Command handoff-executor runs Handoff task handlers: it serves the task
// types of a YAML file (see examples/handoff.yaml) for one executor pool,
// against a NATS server whose streams were provisioned by 'handoff
// provision' or 'handoff dev'.
//
// Flags fall back to environment variables, then to defaults:
//
//	--nats-url       HANDOFF_NATS_URL       nats://127.0.0.1:4222
//	--config         HANDOFF_CONFIG         (required)
//	--namespace      HANDOFF_NAMESPACE      handoff
//	--pool           HANDOFF_POOL           the file's pool, else "default"
//	--instance       HANDOFF_INSTANCE       host name and a random suffix
//	--concurrency    HANDOFF_CONCURRENCY    the file's concurrency, else 64
//	--log-format     HANDOFF_LOG_FORMAT     json
//	--log-level      HANDOFF_LOG_LEVEL      info
//	--health-addr    HANDOFF_HEALTH_ADDR    empty: no health listener
//	--otlp-endpoint  HANDOFF_OTLP_ENDPOINT  empty: no spans are sent
//
// With --health-addr set, GET /healthz returns 200 while the process runs,
// GET /readyz returns 200 while its NATS connection is connected, and GET
// /metrics serves the Prometheus metrics. With --otlp-endpoint set, the
// span of each attempt goes to that OpenTelemetry collector.
//
// SIGINT or SIGTERM stops it gracefully: running handlers get the file's
// drain_timeout (30s by default) to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/health"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/metrics"
	"github.com/handoff-dev/handoff/pkg/tracing/otlp"
	"github.com/handoff-dev/handoff/services/executor"
)

// drainTimeout bounds the drain of the NATS connection at exit.
const drainTimeout = 10 * time.Second

func main() {
	code := 0
	opts, err := parseOptions(os.Args[1:], os.LookupEnv)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "handoff-executor: %v\n", err)
		code = 2
	default:
		code = serve(opts)
	}
	os.Exit(code)
}

// serve runs the executor until a signal stops it and returns the exit
// code.
func serve(opts options) int {
	log, err := logging.New(logging.Format(opts.logFormat), opts.logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoff-executor: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, log); err != nil {
		log.Error("handoff-executor failed", zap.Error(err))
		return 1
	}
	return 0
}

// run loads the task types, connects, checks the streams and runs the
// executor until ctx is done, then drains the connection.
func run(ctx context.Context, opts options, log *zap.Logger) error {
	cfg, err := executor.LoadConfig(opts.configPath)
	if err != nil {
		return err
	}
	opts.apply(&cfg)
	reg := metrics.NewProcessRegistry()
	cfg.Metrics = reg
	tp, stopTracing, err := otlp.Setup(ctx, opts.otlpEndpoint, "handoff-executor", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	cfg.TracerProvider = tp

	closed := make(chan struct{})
	nc, err := bus.Connect(ctx, opts.natsURL, "handoff-executor",
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS error", zap.String("subject", subject), zap.Error(err))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	if err != nil {
		return err
	}
	defer drain(nc, closed, log)

	if opts.healthAddr != "" {
		mux := health.NewMux(nc)
		mux.Handle("GET /metrics", metrics.Handler(reg, log))
		hs, err := health.Serve(ctx, opts.healthAddr, mux, log)
		if err != nil {
			return err
		}
		defer func() { _ = hs.Close() }()
	}

	b, err := bus.New(nc, cfg.Namespace)
	if err != nil {
		return err
	}
	if err := b.Verify(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped while checking the streams: not a failure.
			return nil
		}
		return err
	}
	ex, err := executor.New(cfg, b, log.Named("executor"))
	if err != nil {
		return err
	}
	return ex.Run(ctx)
}

// drain flushes what the executor published and closes the connection.
func drain(nc *nats.Conn, closed <-chan struct{}, log *zap.Logger) {
	if err := nc.Drain(); err != nil {
		log.Warn("draining the NATS connection failed", zap.Error(err))
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(drainTimeout):
		log.Warn("draining the NATS connection timed out", zap.Duration("timeout", drainTimeout))
		nc.Close()
	}
}
