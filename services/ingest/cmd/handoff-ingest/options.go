package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/services/ingest"
)

// envPrefix starts the environment variable of every flag: --nats-url is
// read from HANDOFF_NATS_URL when the flag is not given.
const envPrefix = "HANDOFF_"

// options are the command line settings of handoff-ingest.
type options struct {
	natsURL   string
	httpAddr  string
	logFormat string
	logLevel  string
	auth      string
	natsAPI   bool
	// otlpEndpoint is the URL of the OpenTelemetry collector that receives
	// the spans, or empty for none.
	otlpEndpoint string
	cfg          ingest.Config
}

// parseOptions reads flags from args, then the HANDOFF_* environment
// variable of each flag not given, then the defaults. lookupEnv is
// os.LookupEnv outside tests; this is the only place that reads the
// environment.
func parseOptions(args []string, lookupEnv func(string) (string, bool), output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("handoff-ingest", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: handoff-ingest [flags]\n\nServe Handoff's HTTP API on the streams of a NATS server.\nEvery flag can also be set with HANDOFF_<FLAG>, such as HANDOFF_NATS_URL.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "URL of the NATS server")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "listen address of the HTTP API")
	fs.StringVar(&o.cfg.Namespace, "namespace", events.DefaultNamespace, "first token of every subject and prefix of the stream names")
	fs.IntVar(&o.cfg.MaxInputBytes, "max-input-bytes", ingest.DefaultMaxInputBytes, "largest task input accepted, in bytes")
	fs.BoolVar(&o.cfg.AllowUnregisteredTypes, "allow-unregistered-types", false, "accept task types that no live executor has registered, without checking their input")
	fs.BoolVar(&o.cfg.AllowLoopback, "allow-loopback", false, "accept webhook URLs on loopback addresses and localhost, for a stack on one machine")
	fs.DurationVar(&o.cfg.MaxTTL, "max-ttl", ingest.DefaultMaxTTL, "longest ttl a task may keep; longer requests are lowered to it")
	fs.BoolVar(&o.cfg.AllowLoopback, "allow-loopback-webhooks", false, "the same as --allow-loopback")
	fs.StringVar(&o.auth, "auth", string(ingest.AuthNone), "authentication: none (every caller is tenant \"default\"; local use only) or tokens (bearer tokens of --tokens-file)")
	fs.StringVar(&o.cfg.TokensFile, "tokens-file", "", "file of bearer token hashes with their tenants, one JSON object per line, as handoff token create prints them")
	fs.DurationVar(&o.cfg.TokensCheckInterval, "tokens-check-interval", ingest.DefaultTokensCheck, "how often to check --tokens-file for changes and reload it; negative turns the check off, leaving SIGHUP")
	fs.Float64Var(&o.cfg.RateLimit, "rate-limit", 0, "submissions per second of a token whose entry sets no rate, and of all callers with --auth=none; 0 is unlimited")
	fs.IntVar(&o.cfg.RateBurst, "rate-burst", 0, "submissions at once above --rate-limit; 0 means --rate-limit rounded up")
	fs.DurationVar(&o.cfg.MaxWait, "max-wait", ingest.DefaultMaxWait, "longest a request may wait for a task with ?wait= or Prefer: wait")
	fs.IntVar(&o.cfg.MaxSubscriptions, "max-subscriptions", subscription.DefaultMaxPerTenant, "most webhook subscriptions one tenant may have, up to 500")
	fs.StringVar(&o.cfg.ResultSigningKey, "result-signing-key", "", "secret of at least 32 bytes that signs links to stored results; give every instance the same one, preferably through the environment, which ps does not show (default: a random key per start, whose links only this instance accepts)")
	fs.DurationVar(&o.cfg.ResultLinkTTL, "result-link-ttl", ingest.DefaultResultLinkTTL, "how long a signed link to a stored result works")
	fs.BoolVar(&o.natsAPI, "nats-api", true, "also serve the API as the NATS micro service \"handoff\" on <namespace>.api.*")
	fs.StringVar(&o.logFormat, "log-format", string(logging.FormatJSON), "log format: json or console")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP URL of an OpenTelemetry collector that receives the spans of API requests, such as http://otel-collector:4318 (default: no spans are sent)")

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q; handoff-ingest takes only flags", fs.Arg(0))
	}

	setByFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setByFlag[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if setByFlag[f.Name] {
			return
		}
		name := envName(f.Name)
		if value, ok := lookupEnv(name); ok {
			if err := fs.Set(f.Name, value); err != nil {
				errs = append(errs, fmt.Errorf("invalid %s %q: %w", name, value, err))
			}
		}
	})
	o.cfg.Auth = ingest.AuthMode(o.auth)
	o.cfg.DisableNATSAPI = !o.natsAPI
	return o, errors.Join(errs...)
}

// envName returns the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
