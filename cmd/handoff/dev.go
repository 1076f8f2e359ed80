package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/cmd/handoff/internal/embedded"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/metrics"
	"github.com/handoff-dev/handoff/pkg/registry"
	"github.com/handoff-dev/handoff/pkg/tracing/otlp"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/executor"
	"github.com/handoff-dev/handoff/services/ingest"
	"github.com/handoff-dev/handoff/services/notifier"
)

// Service names accepted by --services.
const (
	serviceIngest   = "ingest"
	serviceExecutor = "executor"
	serviceNotifier = "notifier"
)

var allServices = []string{serviceIngest, serviceExecutor, serviceNotifier}

// typesReadyTimeout bounds the wait for the in-process executor's task
// type registrations before dev reports that it is ready.
const typesReadyTimeout = 15 * time.Second

type devOptions struct {
	dataDir       string
	httpAddr      string
	natsPort      int
	config        string
	webhookSecret string
	services      []string
	auth          string
	tokensFile    string
	namespace     string
	logLevel      string
	otlpEndpoint  string
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run NATS and the ingest, executor and notifier services in one process",
		Long: `Run the whole Handoff stack on this machine: an embedded nats-server with
JetStream (store under --data-dir), the streams, and the ingest, executor
and notifier services. Webhooks may go to loopback addresses, because the
stack is local. Stop it with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "./.handoff", "directory of the JetStream store")
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "listen address of the HTTP API (port 0 picks a free one)")
	f.IntVar(&o.natsPort, "nats-port", 4222, "client port of the embedded NATS server (-1 picks a free one)")
	f.StringVar(&o.config, "config", "examples/handoff.yaml", "task type file of the executor")
	f.StringVar(&o.webhookSecret, "webhook-secret", "", "whsec_ secret that signs webhooks (generated and printed when empty)")
	f.StringSliceVar(&o.services, "services", allServices, "services to run in this process: any of ingest, executor, notifier")
	f.StringVar(&o.auth, "auth", "none", "API authentication: none (every caller is tenant \"default\") or tokens (bearer tokens of --tokens-file)")
	f.StringVar(&o.tokensFile, "tokens-file", "", "tokens file of --auth=tokens, as handoff token create prints its lines")
	f.StringVar(&o.namespace, "namespace", "handoff", "first token of every subject and prefix of the stream names")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP URL of an OpenTelemetry collector that receives the spans of all three services, such as http://127.0.0.1:4318 (default: no spans are sent)")
	return cmd
}

func (o *devOptions) validate() error {
	for _, s := range o.services {
		if !slices.Contains(allServices, s) {
			return fmt.Errorf("invalid --services value %q: use any of %s", s, strings.Join(allServices, ", "))
		}
	}
	if o.auth != string(ingest.AuthNone) && o.auth != string(ingest.AuthTokens) {
		return fmt.Errorf("invalid --auth %q: use none or tokens", o.auth)
	}
	if (o.auth == string(ingest.AuthTokens)) != (o.tokensFile != "") {
		return fmt.Errorf("invalid --auth %q with --tokens-file %q: --auth=tokens needs --tokens-file, and only it takes one", o.auth, o.tokensFile)
	}
	if o.natsPort == 0 || o.natsPort < -1 || o.natsPort > 65535 {
		return fmt.Errorf("invalid --nats-port %d: use 1 to 65535, or -1 for any free port", o.natsPort)
	}
	if o.webhookSecret != "" {
		if _, err := webhook.NewSigner([]string{o.webhookSecret}); err != nil {
			return fmt.Errorf("invalid --webhook-secret: %w", err)
		}
	}
	return nil
}

func (o *devOptions) runs(service string) bool { return slices.Contains(o.services, service) }

// runDev starts the stack, prints where it listens, and runs until ctx is
// done. It stops the services in the reverse order of the data flow: ingest
// first so no new work arrives, then the executor drains, then the
// notifier, and the NATS server last.
func runDev(ctx context.Context, o devOptions, out io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	log, err := logging.New(logging.FormatConsole, o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	if err := prepareDataDir(o.dataDir); err != nil {
		return err
	}
	secretNote := ""
	if o.webhookSecret == "" && o.runs(serviceNotifier) {
		if o.webhookSecret, secretNote, err = loadOrCreateSecret(o.dataDir); err != nil {
			return err
		}
	}
	var resultKey string
	if o.runs(serviceIngest) {
		if resultKey, err = loadOrCreateResultKey(o.dataDir); err != nil {
			return err
		}
	}

	// The services share one registry, which the API serves at /metrics,
	// and one tracer provider.
	reg := metrics.NewProcessRegistry()
	tp, stopTracing, err := otlp.Setup(ctx, o.otlpEndpoint, "handoff-dev", log)
	if err != nil {
		return err
	}
	defer stopTracing()

	var execCfg executor.Config
	if o.runs(serviceExecutor) {
		if execCfg, err = executor.LoadConfig(o.config); err != nil {
			return err
		}
		execCfg.Namespace = o.namespace
		execCfg.Metrics = reg
		execCfg.TracerProvider = tp
	}

	nats, err := embedded.Start(embedded.Options{DataDir: o.dataDir, Port: o.natsPort})
	if err != nil {
		return err
	}
	defer func() {
		nats.Shutdown()
		log.Info("embedded NATS server stopped", zap.String("data_dir", o.dataDir))
	}()
	log.Info("embedded NATS server started", zap.String("url", nats.URL), zap.String("data_dir", o.dataDir))

	admin, err := connectBus(ctx, nats.URL, "handoff-dev", o.namespace)
	if err != nil {
		return err
	}
	defer admin.Conn().Close()
	if err := admin.Provision(ctx, bus.StreamOptions{}); err != nil {
		return err
	}

	var ln net.Listener
	if o.runs(serviceIngest) {
		if ln, err = net.Listen("tcp", o.httpAddr); err != nil {
			return fmt.Errorf("listen on --http-addr %s: %w", o.httpAddr, err)
		}
		defer ln.Close()
	}

	stack := &devStack{log: log}
	defer stack.stop()

	// Started in this order, the services stop in the reverse one: ingest,
	// then the executor, then the notifier, which delivers what the
	// executor finished while draining.
	if o.runs(serviceNotifier) {
		b, err := connectBus(ctx, nats.URL, "handoff-notifier", o.namespace)
		if err != nil {
			return err
		}
		n, err := notifier.New(notifier.Config{Namespace: o.namespace, Secrets: []string{o.webhookSecret}, AllowLoopback: true, Metrics: reg, TracerProvider: tp}, b, log.Named("notifier"))
		if err != nil {
			b.Conn().Close()
			return err
		}
		stack.start(serviceNotifier, b, n.Run)
	}

	if o.runs(serviceExecutor) {
		b, err := connectBus(ctx, nats.URL, "handoff-executor", o.namespace)
		if err != nil {
			return err
		}
		ex, err := executor.New(execCfg, b, log.Named("executor"))
		if err != nil {
			b.Conn().Close()
			return err
		}
		stack.start(serviceExecutor, b, ex.Run)
	}
	types, err := waitForTypes(ctx, admin, execCfg)
	if err != nil {
		return err
	}

	if o.runs(serviceIngest) {
		b, err := connectBus(ctx, nats.URL, "handoff-ingest", o.namespace)
		if err != nil {
			return err
		}
		srv, err := ingest.New(ctx, ingest.Config{
			Namespace: o.namespace, ResultSigningKey: resultKey, AllowLoopback: true,
			Auth: ingest.AuthMode(o.auth), TokensFile: o.tokensFile,
			Metrics: reg, TracerProvider: tp,
		}, b, log.Named("ingest"))
		if err != nil {
			b.Conn().Close()
			return err
		}
		stack.start(serviceIngest, b, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
		if err := waitForNATSAPI(ctx, admin, stack.failed); err != nil {
			return err
		}
	}

	printBanner(out, o, nats.URL, ln, types, secretNote)

	select {
	case <-ctx.Done():
		log.Info("stopping")
		return nil
	case err := <-stack.failed:
		return err
	}
}

// printBanner prints where the stack listens. Tests read these lines, so
// their labels are stable.
func printBanner(out io.Writer, o devOptions, natsURL string, ln net.Listener, types []string, secretNote string) {
	fmt.Fprintln(out, "Handoff dev stack is running. Stop it with Ctrl-C.")
	if ln != nil {
		fmt.Fprintf(out, "  HTTP API:       http://%s\n", ln.Addr())
		fmt.Fprintf(out, "  Metrics:        http://%s/metrics\n", ln.Addr())
	}
	fmt.Fprintf(out, "  NATS:           %s\n", natsURL)
	fmt.Fprintf(out, "  Data directory: %s\n", o.dataDir)
	fmt.Fprintf(out, "  Services:       %s\n", strings.Join(o.services, ", "))
	if len(types) > 0 {
		fmt.Fprintf(out, "  Task types:     %s\n", strings.Join(types, ", "))
	}
	if o.runs(serviceNotifier) {
		fmt.Fprintf(out, "  Webhook secret: %s%s\n", o.webhookSecret, secretNote)
	}
	if o.runs(serviceIngest) && o.auth == string(ingest.AuthNone) {
		fmt.Fprintln(out, "WARNING: authentication is off (--auth=none): every caller is tenant \"default\". Use this stack only on this machine.")
	}
	fmt.Fprintln(out, "Ready.")
}

// waitForTypes waits until every task type of the in-process executor is
// registered, so that a submission right after the banner is accepted, and
// returns the names of all live types.
func waitForTypes(ctx context.Context, b *bus.Bus, cfg executor.Config) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, typesReadyTimeout)
	defer cancel()
	cache, err := registry.Watch(ctx, b)
	if err != nil {
		return nil, err
	}
	defer cache.Stop()

	want := make([]string, 0, len(cfg.Types))
	for name := range cfg.Types {
		want = append(want, name)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		missing := ""
		for _, name := range want {
			if _, ok := cache.Get(name); !ok {
				missing = name
				break
			}
		}
		if missing == "" {
			names := []string{}
			for _, tt := range cache.List() {
				names = append(names, tt.Name)
			}
			return names, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("task type %s was not registered within %s; see the executor's log above", missing, typesReadyTimeout)
		case <-tick.C:
		}
	}
}

// waitForNATSAPI waits until the in-process ingest answers on its NATS
// request API, which Serve starts in its own goroutine, so that "Ready."
// holds for NATS clients too. It returns the error of a service that
// failed meanwhile.
func waitForNATSAPI(ctx context.Context, b *bus.Bus, failed <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, typesReadyTimeout)
	defer cancel()
	subject := b.Names().APISubject(ingest.EndpointTypes)
	for {
		reqCtx, cancelReq := context.WithTimeout(ctx, time.Second)
		_, err := b.Conn().RequestWithContext(reqCtx, subject, nil)
		cancelReq()
		if err == nil {
			return nil
		}
		select {
		case err := <-failed:
			return err
		case <-ctx.Done():
			return fmt.Errorf("the NATS request API on %s did not answer within %s: %w", subject, typesReadyTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func connectBus(ctx context.Context, url, name, namespace string) (*bus.Bus, error) {
	nc, err := bus.Connect(ctx, url, name)
	if err != nil {
		return nil, err
	}
	b, err := bus.New(nc, namespace)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// devStack runs the in-process services, each with its own connection and
// context, and stops them in the reverse order of their start.
type devStack struct {
	log      *zap.Logger
	services []*devService
	failed   chan error
	once     sync.Once
}

type devService struct {
	name   string
	bus    *bus.Bus
	cancel context.CancelFunc
	done   chan error
}

func (s *devStack) start(name string, b *bus.Bus, run func(context.Context) error) {
	if s.failed == nil {
		s.failed = make(chan error, len(allServices))
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &devService{name: name, bus: b, cancel: cancel, done: make(chan error, 1)}
	s.services = append(s.services, svc)
	go func() {
		err := run(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.failed <- fmt.Errorf("%s stopped: %w", name, err)
		}
		svc.done <- err
	}()
}

func (s *devStack) stop() {
	s.once.Do(func() {
		for i := len(s.services) - 1; i >= 0; i-- {
			svc := s.services[i]
			svc.cancel()
			if err := <-svc.done; err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("service stopped with an error", zap.String("service", svc.name), zap.Error(err))
			}
			// Flush before closing, so the acks and naks of the last
			// messages reach the server instead of waiting out AckWait.
			if err := svc.bus.Conn().FlushTimeout(5 * time.Second); err != nil {
				s.log.Warn("flushing the connection failed", zap.String("service", svc.name), zap.Error(err))
			}
			svc.bus.Conn().Close()
			s.log.Info("service stopped", zap.String("service", svc.name))
		}
	})
}

// secretFile is where dev keeps its generated webhook secret, so receivers
// set up with it keep verifying after a restart.
const secretFile = "webhook-secret"

// prepareDataDir creates the data directory, or checks that the existing
// path is a directory, before the NATS server tries to use it.
func prepareDataDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("invalid --data-dir %s: not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("invalid --data-dir %s: %w", dir, err)
	}
	return nil
}

// loadOrCreateSecret returns the webhook secret stored in the data
// directory, creating it on the first start, and a note for the banner.
func loadOrCreateSecret(dataDir string) (secret, note string, err error) {
	path := filepath.Join(dataDir, secretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		secret = strings.TrimSpace(string(b))
		if _, err := webhook.NewSigner([]string{secret}); err != nil {
			return "", "", fmt.Errorf("webhook secret in %s: %w; delete the file to generate a new one", path, err)
		}
		return secret, " (from " + path + ")", nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("read webhook secret: %w", err)
	}

	if secret, err = webhook.NewSecret(); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("store webhook secret: %w", err)
	}
	return secret, " (generated and stored in " + path + ")", nil
}
