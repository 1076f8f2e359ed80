// Command handoff-ingest serves Handoff's HTTP API: it accepts task
// submissions, stores them on the tasks stream and serves reads of task
// state. Run as many instances as needed against one NATS server or
// cluster whose streams are provisioned.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/metrics"
	"github.com/handoff-dev/handoff/pkg/tracing/otlp"
	"github.com/handoff-dev/handoff/services/ingest"
)

const (
	// verifyTimeout bounds the check of the streams at start.
	verifyTimeout = 10 * time.Second

	// drainTimeout bounds the drain of the NATS connection at exit.
	drainTimeout = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoff-ingest: %v\n", err)
		os.Exit(1)
	}
}

// run serves the API until ctx is done. It returns flag.ErrHelp after
// printing the usage for -h.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), output io.Writer) error {
	o, err := parseOptions(args, lookupEnv, output)
	if err != nil {
		return err
	}
	cfg := o.cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}

	log, err := logging.New(logging.Format(o.logFormat), o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.Named("ingest")
	log.Info("starting",
		zap.String("nats_url", redactURL(o.natsURL)),
		zap.String("http_addr", o.httpAddr),
		zap.String("namespace", cfg.Namespace),
		zap.Int("max_input_bytes", cfg.MaxInputBytes),
		zap.Bool("allow_unregistered_types", cfg.AllowUnregisteredTypes),
		zap.Bool("allow_loopback", cfg.AllowLoopback),
		zap.Duration("max_ttl", cfg.MaxTTL),
		zap.Bool("result_signing_key_set", cfg.ResultSigningKey != ""),
		zap.Duration("result_link_ttl", cfg.ResultLinkTTL),
		zap.String("auth", string(cfg.Auth)),
		zap.String("tokens_file", cfg.TokensFile),
		zap.Float64("rate_limit", cfg.RateLimit),
		zap.Int("rate_burst", cfg.RateBurst),
		zap.Duration("max_wait", cfg.MaxWait),
		zap.Bool("nats_api", !cfg.DisableNATSAPI),
		zap.String("otlp_endpoint", redactURL(o.otlpEndpoint)))
	if cfg.Auth == ingest.AuthNone {
		log.Warn("authentication is off (--auth=none): every caller is tenant \"default\"; use it only where no one else can reach the API")
	}

	// The API serves the process's metrics at /metrics.
	cfg.Metrics = metrics.NewProcessRegistry()
	tp, stopTracing, err := otlp.Setup(ctx, o.otlpEndpoint, "handoff-ingest", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	cfg.TracerProvider = tp

	nc, err := bus.Connect(ctx, o.natsURL, "handoff-ingest", connectionLogging(log)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.New(nc, cfg.Namespace)
	if err != nil {
		return err
	}
	verifyCtx, cancel := context.WithTimeout(ctx, verifyTimeout)
	err = b.Verify(verifyCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("check the streams at %s: %w", redactURL(o.natsURL), err)
	}

	srv, err := ingest.New(ctx, cfg, b, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen on %s: %w", o.httpAddr, err)
	}
	stopReloads := reloadOnHangup(srv, log)
	err = srv.Serve(ctx, ln)
	stopReloads()

	// Serve has returned, so no request uses the connection any more.
	if derr := drain(nc, drainTimeout); derr != nil {
		log.Warn("draining the NATS connection failed", zap.Error(derr))
	}
	log.Info("stopped")
	return err
}

// reloadOnHangup reloads the tokens file on each SIGHUP until the returned
// function is called.
func reloadOnHangup(srv *ingest.Server, log *zap.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				log.Info("reloading the tokens file on SIGHUP")
				// ReloadTokens logs its own failure.
				_ = srv.ReloadTokens()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// connectionLogging logs the NATS connection's state changes and the
// errors it reports asynchronously.
func connectionLogging(log *zap.Logger) []nats.Option {
	log = log.Named("nats")
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("NATS reported an error", zap.String("subject", subject), zap.Error(err))
		}),
	}
}

// drain drains nc and waits until it is closed, at most timeout.
func drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("connection not closed within %s", timeout)
	}
}

// redactURL hides the credentials in a comma-separated list of NATS URLs,
// so it can be logged. A user without a password may be a token, so it is
// hidden too.
func redactURL(raw string) string {
	urls := strings.Split(raw, ",")
	for i, part := range urls {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			urls[i] = "(invalid URL)"
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		urls[i] = u.String()
	}
	return strings.Join(urls, ",")
}
