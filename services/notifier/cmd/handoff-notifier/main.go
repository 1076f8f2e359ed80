// Command handoff-notifier delivers Handoff task events to webhooks. It
// connects to NATS, checks that the streams exist and runs a notifier until
// it receives SIGINT or SIGTERM.
//
// Every flag falls back to an environment variable named HANDOFF_ and the
// flag in upper case, such as HANDOFF_NATS_URL for --nats-url. With
// --health-addr (HANDOFF_HEALTH_ADDR; empty, the default, serves nothing),
// GET /healthz returns 200 while the process runs, GET /readyz returns 200
// while its NATS connection is connected, and GET /metrics serves the
// Prometheus metrics. With --otlp-endpoint (HANDOFF_OTLP_ENDPOINT), the
// span of each delivery attempt goes to that OpenTelemetry collector.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/health"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/metrics"
	"github.com/handoff-dev/handoff/pkg/tracing/otlp"
	"github.com/handoff-dev/handoff/services/notifier"
)

// Environment variables that supply the secrets when no flag gives them,
// separated by commas or spaces.
const (
	envSecret         = "HANDOFF_WEBHOOK_SECRET"
	envPreviousSecret = "HANDOFF_PREVIOUS_WEBHOOK_SECRET"
)

// usage is printed above the flags by -help.
const usage = `Usage: handoff-notifier [flags]

Delivers the terminal and input_required events of Handoff tasks to the
webhook given at submit and to matching subscriptions, signed per Standard
Webhooks.

Rotating the secret of submit webhooks: start the notifier with the new
secret in --webhook-secret, the old one in --previous-webhook-secret and the
end of the overlap in --rotation-ends. Until then every request carries two
signatures, so receivers can switch to the new secret at any moment; after
it, only the new secret signs. Then drop --previous-webhook-secret.

Flags:
`

// Timeouts of the start and the end of the process.
const (
	startTimeout = 10 * time.Second
	closeTimeout = 10 * time.Second
)

// options are the command line and environment settings.
type options struct {
	natsURL    string
	logFormat  string
	logLevel   string
	healthAddr string
	// otlpEndpoint is the URL of the OpenTelemetry collector that receives
	// the spans, or empty for none.
	otlpEndpoint string
	cfg          notifier.Config
}

func main() {
	os.Exit(start(os.Args[1:], os.Getenv, os.Stderr))
}

// start parses the settings, builds the logger, runs the notifier until a
// signal arrives and returns the exit code: 0 after a clean stop, 2 for
// invalid flags, 1 for any other error.
func start(args []string, getenv func(string) string, stderr io.Writer) int {
	opts, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "handoff-notifier: %v\n", err)
		return 2
	}
	log, err := logging.New(logging.Format(opts.logFormat), opts.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "handoff-notifier: %v\n", err)
		return 2
	}

	log = log.Named("notifier")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts, log)
	stop()
	if err != nil {
		log.Error("handoff-notifier failed", zap.Error(err))
	}
	_ = log.Sync()
	if err != nil {
		return 1
	}
	return 0
}

// parseOptions reads the flags, then the environment for what the flags
// leave unset. It is the only place that reads the environment.
func parseOptions(args []string, getenv func(string) string, output io.Writer) (options, error) {
	return parseOptionsAt(args, getenv, output, time.Now())
}

// parseOptionsAt is parseOptions with the current time now, from which a
// --rotation-ends duration counts.
func parseOptionsAt(args []string, getenv func(string) string, output io.Writer, now time.Time) (options, error) {
	var opts options
	fs := flag.NewFlagSet("handoff-notifier", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(output, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.natsURL, "nats-url", "nats://127.0.0.1:4222", "URL of the NATS server")
	fs.StringVar(&opts.cfg.Namespace, "namespace", events.DefaultNamespace, "first token of every subject and prefix of the stream names")
	fs.StringVar(&opts.cfg.Instance, "instance", "", "name of this instance in the source of the events it writes (default: the host name)")
	fs.Func("webhook-secret", "secret that signs submit webhooks, whsec_ and base64; repeat it to sign with each (default: $"+envSecret+", comma-separated)", func(s string) error {
		opts.cfg.Secrets = append(opts.cfg.Secrets, s)
		return nil
	})
	fs.Func("previous-webhook-secret", "old secret that keeps signing beside --webhook-secret until --rotation-ends; repeatable (default: $"+envPreviousSecret+")", func(s string) error {
		opts.cfg.PreviousSecrets = append(opts.cfg.PreviousSecrets, s)
		return nil
	})
	var rotationEnds string
	fs.StringVar(&rotationEnds, "rotation-ends", "", "end of the rotation overlap: an RFC 3339 time such as 2026-05-01T12:00:00Z, or a duration such as 24h counted from this start (a restart counts again, so prefer a time)")
	fs.Func("allow-network", "internal address range that webhooks may reach, in CIDR notation such as 10.8.0.0/16; repeatable", func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("invalid CIDR prefix %q: %w", s, err)
		}
		opts.cfg.AllowNetworks = append(opts.cfg.AllowNetworks, p.Masked())
		return nil
	})
	fs.BoolVar(&opts.cfg.AllowLoopback, "allow-loopback", false, "allow webhooks to loopback addresses, for local development")
	fs.DurationVar(&opts.cfg.Timeout, "timeout", notifier.DefaultTimeout, "maximum duration of one delivery attempt")
	fs.IntVar(&opts.cfg.Concurrency, "concurrency", notifier.DefaultConcurrency, "maximum delivery attempts in flight in this instance")
	fs.IntVar(&opts.cfg.EndpointConcurrency, "endpoint-concurrency", notifier.DefaultEndpointConcurrency, "maximum delivery attempts in flight to one endpoint in this instance")
	fs.StringVar(&opts.logFormat, "log-format", string(logging.FormatJSON), "log format: json or console")
	fs.StringVar(&opts.logLevel, "log-level", "info", "minimum log level: debug, info, warn or error")
	fs.StringVar(&opts.healthAddr, "health-addr", "", "listen address of /healthz, /readyz and /metrics, such as :8081 (default: no health listener)")
	fs.StringVar(&opts.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP URL of an OpenTelemetry collector that receives the spans of delivery attempts, such as http://otel-collector:4318 (default: no spans are sent)")
	fs.VisitAll(func(f *flag.Flag) {
		if name := envName(f.Name); !strings.Contains(f.Usage, name) {
			f.Usage += " (env " + name + ")"
		}
	})
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q; all settings are flags, see -help", fs.Arg(0))
	}
	if err := setFromEnvironment(fs, getenv); err != nil {
		return options{}, err
	}

	if len(opts.cfg.Secrets) == 0 {
		opts.cfg.Secrets = splitSecrets(getenv(envSecret))
	}
	if len(opts.cfg.Secrets) == 0 {
		return options{}, fmt.Errorf("no webhook secret: set %s or pass --webhook-secret (whsec_ followed by the output of 'openssl rand -base64 32')", envSecret)
	}
	if len(opts.cfg.PreviousSecrets) == 0 {
		opts.cfg.PreviousSecrets = splitSecrets(getenv(envPreviousSecret))
	}
	if rotationEnds != "" {
		ends, err := parseRotationEnds(rotationEnds, now)
		if err != nil {
			return options{}, err
		}
		opts.cfg.RotationEnds = ends
	}
	opts.cfg = opts.cfg.WithDefaults()
	if err := opts.cfg.Validate(); err != nil {
		return options{}, err
	}
	return opts, nil
}

// envName returns the environment variable of a flag: HANDOFF_NATS_URL
// for nats-url.
func envName(flagName string) string {
	return "HANDOFF_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// setFromEnvironment sets each flag that the arguments left unset from its
// non-empty environment variable. It skips the secret flags, whose
// variables hold lists that parseOptionsAt splits itself.
func setFromEnvironment(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if given[f.Name] || name == envSecret || name == envPreviousSecret {
			return
		}
		value := getenv(name)
		if value == "" {
			return
		}
		if err := fs.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("invalid %s %q: %w", name, value, err))
		}
	})
	return errors.Join(errs...)
}

// splitSecrets splits an environment value at commas and spaces.
func splitSecrets(value string) []string {
	return strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' })
}

// parseRotationEnds reads --rotation-ends: an RFC 3339 time, or a positive
// duration added to now.
func parseRotationEnds(value string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("invalid --rotation-ends %q: give an RFC 3339 time such as 2026-05-01T12:00:00Z or a positive duration such as 24h", value)
	}
	return now.Add(d), nil
}

// run connects to NATS, verifies the streams and runs the notifier until
// ctx is cancelled, then drains the connection.
func run(ctx context.Context, opts options, log *zap.Logger) error {
	reg := metrics.NewProcessRegistry()
	opts.cfg.Metrics = reg
	tp, stopTracing, err := otlp.Setup(ctx, opts.otlpEndpoint, "handoff-notifier", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	opts.cfg.TracerProvider = tp

	closed := make(chan struct{})
	natsLog := log.Named("nats")
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	nc, err := bus.Connect(startCtx, opts.natsURL, "handoff-notifier "+opts.cfg.Instance,
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			natsLog.Warn("disconnected from NATS", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			natsLog.Info("reconnected to NATS", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			natsLog.Warn("NATS error", zap.String("subject", subject), zap.Error(err))
		}))
	if err != nil {
		cancel()
		return err
	}
	defer closeConn(nc, closed, log)

	if opts.healthAddr != "" {
		mux := health.NewMux(nc)
		mux.Handle("GET /metrics", metrics.Handler(reg, log))
		hs, err := health.Serve(ctx, opts.healthAddr, mux, log)
		if err != nil {
			cancel()
			return err
		}
		defer func() { _ = hs.Close() }()
	}

	b, err := bus.New(nc, opts.cfg.Namespace)
	if err != nil {
		cancel()
		return err
	}
	err = b.Verify(startCtx)
	cancel()
	if err != nil && ctx.Err() != nil {
		// A stop requested during the start is a clean stop.
		return nil
	}
	if err != nil {
		return err
	}

	n, err := notifier.New(opts.cfg, b, log)
	if err != nil {
		return err
	}
	log.Info("connected to NATS", zap.String("url", nc.ConnectedUrlRedacted()), zap.String("server_version", nc.ConnectedServerVersion()))
	return n.Run(ctx)
}

// closeConn drains the connection, so that pending acks and publishes
// reach the server, and waits for it to close.
func closeConn(nc *nats.Conn, closed <-chan struct{}, log *zap.Logger) {
	if err := nc.Drain(); err != nil {
		log.Warn("drain NATS connection", zap.Error(err))
		nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(closeTimeout):
		log.Warn("NATS connection did not close in time", zap.Duration("timeout", closeTimeout))
		nc.Close()
	}
}
