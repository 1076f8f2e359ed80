// Command handoff-notifier delivers Handoff task events to webhooks. It
// connects to NATS, checks that the streams exist and runs a notifier until
// it receives SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/services/notifier"
)

// envSecret holds the webhook secrets when no --webhook-secret flag is
// given, separated by commas or spaces during a rotation.
const envSecret = "HANDOFF_WEBHOOK_SECRET"

// Timeouts of the start and the end of the process.
const (
	startTimeout = 10 * time.Second
	closeTimeout = 10 * time.Second
)

// options are the command line and environment settings.
type options struct {
	natsURL   string
	logFormat string
	logLevel  string
	cfg       notifier.Config
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
	var opts options
	fs := flag.NewFlagSet("handoff-notifier", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&opts.natsURL, "nats-url", "nats://127.0.0.1:4222", "URL of the NATS server")
	fs.StringVar(&opts.cfg.Namespace, "namespace", events.DefaultNamespace, "first token of every subject and prefix of the stream names")
	fs.StringVar(&opts.cfg.Instance, "instance", "", "name of this instance in the source of the events it writes (default: the host name)")
	fs.Func("webhook-secret", "secret that signs webhooks, whsec_ and base64; repeat it during a key rotation to sign with each (default: $"+envSecret+", comma-separated)", func(s string) error {
		opts.cfg.Secrets = append(opts.cfg.Secrets, s)
		return nil
	})
	fs.BoolVar(&opts.cfg.AllowLoopback, "allow-loopback", false, "allow webhooks to loopback addresses, for local development")
	fs.DurationVar(&opts.cfg.Timeout, "timeout", notifier.DefaultTimeout, "maximum duration of one delivery attempt")
	fs.StringVar(&opts.logFormat, "log-format", string(logging.FormatJSON), "log format: json or console")
	fs.StringVar(&opts.logLevel, "log-level", "info", "minimum log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q; all settings are flags, see -help", fs.Arg(0))
	}

	if len(opts.cfg.Secrets) == 0 {
		opts.cfg.Secrets = strings.FieldsFunc(getenv(envSecret), func(r rune) bool { return r == ',' || r == ' ' })
	}
	if len(opts.cfg.Secrets) == 0 {
		return options{}, fmt.Errorf("no webhook secret: set %s or pass --webhook-secret (whsec_ followed by the output of 'openssl rand -base64 32')", envSecret)
	}
	opts.cfg = opts.cfg.WithDefaults()
	if err := opts.cfg.Validate(); err != nil {
		return options{}, err
	}
	return opts, nil
}

// run connects to NATS, verifies the streams and runs the notifier until
// ctx is cancelled, then drains the connection.
func run(ctx context.Context, opts options, log *zap.Logger) error {
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

	b, err := bus.New(nc, opts.cfg.Namespace)
	if err != nil {
		cancel()
		return err
	}
	err = b.Verify(startCtx)
	cancel()
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
