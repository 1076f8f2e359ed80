package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/handoff-dev/handoff/services/executor"
)

// options are the command line settings.
type options struct {
	natsURL     string
	configPath  string
	namespace   string
	pool        string
	instance    string
	concurrency int
	logFormat   string
	logLevel    string
	healthAddr  string
	// otlpEndpoint is the URL of the OpenTelemetry collector that receives
	// the spans, or empty for none.
	otlpEndpoint string
}

// envFallbacks names, per flag, the environment variable that sets it when
// the flag is absent.
var envFallbacks = map[string]string{
	"nats-url":      "HANDOFF_NATS_URL",
	"config":        "HANDOFF_CONFIG",
	"namespace":     "HANDOFF_NAMESPACE",
	"pool":          "HANDOFF_POOL",
	"instance":      "HANDOFF_INSTANCE",
	"concurrency":   "HANDOFF_CONCURRENCY",
	"log-format":    "HANDOFF_LOG_FORMAT",
	"log-level":     "HANDOFF_LOG_LEVEL",
	"health-addr":   "HANDOFF_HEALTH_ADDR",
	"otlp-endpoint": "HANDOFF_OTLP_ENDPOINT",
}

// usage is printed above the flags by -help.
const usage = `Usage: handoff-executor --config FILE [flags]

Runs the handlers of the task types in the config file for one executor
pool: takes their tasks from NATS, records each attempt's events and
retries failed attempts.

Flags:
`

// parseOptions reads the flags in args, then fills the ones not given from
// the environment through lookupEnv. It is the only place that reads the
// environment.
func parseOptions(args []string, lookupEnv func(string) (string, bool)) (options, error) {
	var o options
	fs := flag.NewFlagSet("handoff-executor", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "URL of the NATS server")
	fs.StringVar(&o.configPath, "config", "", "task type YAML file (required)")
	fs.StringVar(&o.namespace, "namespace", "", "first token of every subject and prefix of the stream names (default handoff)")
	fs.StringVar(&o.pool, "pool", "", "executor pool; overrides the file's pool (default \"default\")")
	fs.StringVar(&o.instance, "instance", "", "name of this executor in events and the registry (default: host name and a random suffix)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "handlers run at once; overrides the file's concurrency (default 64)")
	fs.StringVar(&o.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.healthAddr, "health-addr", "", "listen address of /healthz, /readyz and /metrics, such as :8081 (default: no health listener)")
	fs.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP URL of an OpenTelemetry collector that receives the spans of attempts, such as http://otel-collector:4318 (default: no spans are sent)")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + envFallbacks[f.Name] + ")" })
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q; every setting is a flag", fs.Args())
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, env := range envFallbacks {
		if given[name] {
			continue
		}
		v, ok := lookupEnv(env)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return options{}, fmt.Errorf("invalid %s %q: %w", env, v, err)
		}
	}

	if o.configPath == "" {
		return options{}, errors.New("--config is required: the task type YAML file (or set HANDOFF_CONFIG)")
	}
	if o.concurrency < 0 {
		return options{}, fmt.Errorf("invalid --concurrency %d: must be positive", o.concurrency)
	}
	o.logFormat = strings.ToLower(o.logFormat)
	return o, nil
}

// apply sets the fields of cfg that the options override.
func (o options) apply(cfg *executor.Config) {
	if o.namespace != "" {
		cfg.Namespace = o.namespace
	}
	if o.pool != "" {
		cfg.Pool = o.pool
	}
	if o.instance != "" {
		cfg.Instance = o.instance
	}
	if o.concurrency > 0 {
		cfg.Concurrency = o.concurrency
	}
}
