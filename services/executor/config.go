package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
)

// Defaults of [Config].
const (
	DefaultPool           = "default"
	DefaultConcurrency    = 64
	DefaultAckWait        = 30 * time.Second
	DefaultMaxAckPending  = 10000
	DefaultAttemptTimeout = events.DefaultTimeout
	DefaultKillGrace      = 10 * time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultResultLimit    = 256 << 10
	// DefaultMaxResultBytes bounds a stored result: room for reports,
	// exports and documents of tens of MiB, while the results bucket,
	// which keeps every result until its TTL, stays within a small
	// deployment's disk.
	DefaultMaxResultBytes = 64 << 20
	DefaultRetryInitial   = time.Second
	DefaultRetryMax       = 5 * time.Minute

	// MinAckWait is the shortest AckWait accepted. Heartbeats go out every
	// AckWait/3, so a shorter one would flood the server.
	MinAckWait = 100 * time.Millisecond
	// MaxConcurrency bounds the handlers one instance runs at once.
	MaxConcurrency = 4096
	// MaxPoolLen bounds a pool name, which is part of the consumer name.
	MaxPoolLen = 64
	// MaxInstanceLen bounds an instance name.
	MaxInstanceLen = 64
)

// Handler kinds a task type can declare in [TypeConfig.Handler].
const (
	// HandlerExec runs a program with the input on stdin.
	HandlerExec = "exec"
	// HandlerHTTP posts the input to a URL.
	HandlerHTTP = "http"
	// HandlerSleep is the built-in that sleeps for input.seconds.
	HandlerSleep = "sleep"
	// HandlerEcho is the built-in that returns its input.
	HandlerEcho = "echo"
	// HandlerGo is a Go function registered with [Executor.Handle].
	HandlerGo = "go"
)

var handlerKinds = []string{HandlerExec, HandlerHTTP, HandlerSleep, HandlerEcho, HandlerGo}

// Config is the configuration of one executor instance. Zero values take
// the defaults documented on each field; call [Config.WithDefaults] and
// then [Config.Validate], as [New] does.
type Config struct {
	// Namespace is the first token of every subject. Empty means the
	// namespace of the bus given to [New].
	Namespace string `yaml:"-"`

	// Pool names the instances that share one durable consumer,
	// executor-<pool>. Every instance of a pool serves the same task
	// types. Default "default".
	Pool string `yaml:"pool"`

	// Instance names this process in started events and in the registry.
	// Default: the host name and a random suffix.
	Instance string `yaml:"-"`

	// Concurrency bounds the handlers this instance runs at once. Default
	// 64.
	Concurrency int `yaml:"concurrency"`

	// AckWait is how long the server waits for an acknowledgement before
	// it hands a message to another instance. Running handlers send a
	// heartbeat every AckWait/3. Default 30s.
	AckWait time.Duration `yaml:"ack_wait"`

	// MaxAckPending bounds the messages of the pool that are delivered and
	// not yet acknowledged, across all instances. A task waiting for its
	// next attempt holds one too. It must be at least Concurrency times
	// the number of instances. Default 10000.
	MaxAckPending int `yaml:"max_ack_pending"`

	// DefaultTimeout bounds an attempt when neither the submission nor the
	// task type sets a timeout. Default 10m.
	DefaultTimeout time.Duration `yaml:"default_timeout"`

	// KillGrace is how long a handler may take to stop after its context
	// is cancelled. An exec process gets SIGTERM, then SIGKILL after
	// KillGrace. Default 10s.
	KillGrace time.Duration `yaml:"kill_grace"`

	// DrainTimeout is how long running handlers may finish after Run's
	// context is cancelled, before they are cancelled too. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// ResultLimit bounds an inline result in bytes. A larger result of an
	// exec or Go handler is stored in the results bucket, and the
	// succeeded event refers to it. A larger response of an http handler
	// fails the task with code result_too_large. Default 256 KiB.
	ResultLimit int `yaml:"result_limit"`

	// MaxResultBytes bounds a result stored in the results bucket, in
	// bytes. A larger result fails the task with code result_too_large.
	// It must be at least ResultLimit. Default 64 MiB.
	MaxResultBytes int64 `yaml:"max_result_bytes"`

	// Retry spaces the attempts of a task.
	Retry RetryPolicy `yaml:"retry"`

	// Types are the task types served from configuration, by name. Types
	// served by Go handlers may instead be added with [Executor.Handle].
	Types map[string]TypeConfig `yaml:"-"`

	// BaseDir is the directory against which relative program paths of
	// exec handlers are resolved. LoadConfig sets it to the directory of
	// the file. Empty means the working directory.
	BaseDir string `yaml:"-"`

	// Metrics registers the executor's metrics. Nil leaves them
	// unregistered, so nothing exposes them.
	Metrics prometheus.Registerer `yaml:"-"`

	// TracerProvider records the span of each attempt. Default: the no-op
	// provider, which records nothing but passes the traceparent of the
	// submitted event on to the events the attempt writes.
	TracerProvider trace.TracerProvider `yaml:"-"`
}

// RetryPolicy is the exponential backoff between attempts: the delay after
// the n-th failure is Initial*2^(n-1), capped at Max, of which a random
// half is jitter.
type RetryPolicy struct {
	// Initial is the delay after the first failure. Default 1s.
	Initial time.Duration `yaml:"initial"`
	// Max caps every delay, including one a handler requests with
	// [RetryAfter]. Default 5m.
	Max time.Duration `yaml:"max"`
}

// TypeConfig declares one task type served by this executor.
type TypeConfig struct {
	// Description is the purpose of the type, for people and for agents
	// that list the types.
	Description string `yaml:"description"`

	// Handler is the handler kind: exec, http, sleep, echo or go.
	Handler string `yaml:"handler"`

	// Command is the program and its arguments for exec handlers. A
	// relative program path that contains a slash is relative to BaseDir;
	// a bare name is looked up in PATH.
	Command []string `yaml:"command"`

	// Dir is the working directory of exec handlers. Default: the
	// executor's working directory, against which a relative Dir is also
	// resolved.
	Dir string `yaml:"dir"`

	// Env is added to the environment of exec handlers; see the exec
	// handler for the variables passed through.
	Env map[string]string `yaml:"env"`

	// URL receives the input of http handlers as a POST.
	URL string `yaml:"url"`

	// Timeout bounds an attempt when the submission sets none. Default:
	// Config.DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`

	// MaxAttempts is the default max_attempts the registry advertises for
	// submissions of this type; ingest fills it into submissions that set
	// none. The executor follows the value stored with the task.
	MaxAttempts int `yaml:"max_attempts"`

	// InputSchema is the JSON Schema every input must match. The built-in
	// handlers have their own default.
	InputSchema json.RawMessage `yaml:"-"`

	// OutputSchema describes the result, for the registry.
	OutputSchema json.RawMessage `yaml:"-"`

	// OutputMediaType declares that an exec program writes bytes of this
	// media type, such as application/pdf, to stdout instead of JSON.
	// Such a result is always stored in the results bucket, whatever its
	// size, and the succeeded event refers to it. Empty means JSON.
	OutputMediaType string `yaml:"output_media_type"`
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Pool == "" {
		c.Pool = DefaultPool
	}
	if c.Instance == "" {
		c.Instance = defaultInstance()
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = max(DefaultMaxAckPending, c.Concurrency)
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultAttemptTimeout
	}
	if c.KillGrace == 0 {
		c.KillGrace = DefaultKillGrace
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ResultLimit == 0 {
		c.ResultLimit = DefaultResultLimit
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = max(DefaultMaxResultBytes, int64(c.ResultLimit))
	}
	if c.Retry.Initial == 0 {
		c.Retry.Initial = DefaultRetryInitial
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = max(DefaultRetryMax, c.Retry.Initial)
	}
	return c
}

// defaultInstance returns the host name with a random suffix, so that two
// processes on one host have distinct names.
func defaultInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "executor"
	}
	host = strings.Map(func(r rune) rune {
		if instanceChar(r) {
			return r
		}
		return '-'
	}, host)
	suffix := strings.ToLower(events.NewID()[20:])
	if len(host) > MaxInstanceLen-len(suffix)-1 {
		host = host[:MaxInstanceLen-len(suffix)-1]
	}
	return host + "-" + suffix
}

// Validate checks c, which should have its defaults applied, and returns
// every problem found, each naming its field, or nil.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &configError{field: field, msg: fmt.Sprintf(format, args...)})
	}

	if c.Namespace != "" {
		if err := events.ValidateNamespace(c.Namespace); err != nil {
			add("namespace", "%s", err)
		}
	}
	if err := validateName(c.Pool, MaxPoolLen, poolChar); err != nil {
		add("pool", "%s; allowed are 1 to %d of a-z, 0-9, '_' and '-'", err, MaxPoolLen)
	}
	if err := validateName(c.Instance, MaxInstanceLen, instanceChar); err != nil {
		add("instance", "%s; allowed are 1 to %d of A-Z, a-z, 0-9, '.', '_' and '-'", err, MaxInstanceLen)
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		add("concurrency", "%d is outside 1 to %d", c.Concurrency, MaxConcurrency)
	}
	if c.AckWait < MinAckWait {
		add("ack_wait", "%s is shorter than the minimum of %s", c.AckWait, MinAckWait)
	}
	if c.MaxAckPending < c.Concurrency {
		add("max_ack_pending", "%d is below concurrency %d", c.MaxAckPending, c.Concurrency)
	}
	if c.DefaultTimeout < events.MinTimeout || c.DefaultTimeout > events.MaxTimeout {
		add("default_timeout", "%s is outside %s to %s", c.DefaultTimeout, events.MinTimeout, events.MaxTimeout)
	}
	if c.KillGrace <= 0 {
		add("kill_grace", "%s is not positive", c.KillGrace)
	}
	if c.DrainTimeout <= 0 {
		add("drain_timeout", "%s is not positive", c.DrainTimeout)
	}
	if c.ResultLimit < 1 {
		add("result_limit", "%d is not positive", c.ResultLimit)
	}
	if c.MaxResultBytes < int64(c.ResultLimit) {
		add("max_result_bytes", "%d is below result_limit %d", c.MaxResultBytes, c.ResultLimit)
	}
	if c.Retry.Initial <= 0 {
		add("retry.initial", "%s is not positive", c.Retry.Initial)
	}
	if c.Retry.Max < c.Retry.Initial {
		add("retry.max", "%s is shorter than retry.initial %s", c.Retry.Max, c.Retry.Initial)
	}

	names := make([]string, 0, len(c.Types))
	for name := range c.Types {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		errs = append(errs, c.validateType(name, c.Types[name])...)
	}
	return errors.Join(errs...)
}

// validateType checks one task type; every error names types.<name>.<field>.
func (c *Config) validateType(name string, tc TypeConfig) []error {
	var errs []error
	prefix := "types." + name
	add := func(field, format string, args ...any) {
		f := prefix
		if field != "" {
			f += "." + field
		}
		errs = append(errs, &configError{field: f, msg: fmt.Sprintf(format, args...)})
	}

	if err := events.ValidateTaskType(name); err != nil {
		add("", "invalid task type name: %s", err)
	}
	switch tc.Handler {
	case HandlerExec:
		c.validateExec(tc, add)
	case HandlerHTTP:
		if err := validateHTTPURL(tc.URL); err != nil {
			add("url", "%s", err)
		}
	case HandlerSleep, HandlerEcho, HandlerGo:
	case "":
		add("handler", "is missing; use one of %s", strings.Join(handlerKinds, ", "))
	default:
		add("handler", "unknown handler %q; use one of %s", tc.Handler, strings.Join(handlerKinds, ", "))
	}
	if tc.Handler != HandlerExec {
		if len(tc.Command) > 0 {
			add("command", "is only for handler exec")
		}
		if tc.Dir != "" {
			add("dir", "is only for handler exec")
		}
		if len(tc.Env) > 0 {
			add("env", "is only for handler exec")
		}
	}
	if tc.Handler != HandlerHTTP && tc.URL != "" {
		add("url", "is only for handler http")
	}
	if tc.OutputMediaType != "" {
		validateOutputMediaType(tc, add)
	}
	if tc.Timeout != 0 && (tc.Timeout < events.MinTimeout || tc.Timeout > events.MaxTimeout) {
		add("timeout", "%s is outside %s to %s", tc.Timeout, events.MinTimeout, events.MaxTimeout)
	}
	if tc.MaxAttempts < 0 || tc.MaxAttempts > events.MaxMaxAttempts {
		add("max_attempts", "%d is outside 1 to %d", tc.MaxAttempts, events.MaxMaxAttempts)
	}
	if len(tc.InputSchema) > 0 {
		if _, err := compileSchema(name, "input", tc.InputSchema); err != nil {
			add("input_schema", "%s", err)
		}
	}
	if len(tc.OutputSchema) > 0 {
		if _, err := compileSchema(name, "output", tc.OutputSchema); err != nil {
			add("output_schema", "%s", err)
		}
	}
	return errs
}

func (c *Config) validateExec(tc TypeConfig, add func(field, format string, args ...any)) {
	if len(tc.Command) == 0 || tc.Command[0] == "" {
		add("command", "is missing; handler exec needs the program and its arguments, such as [\"./script.sh\"]")
	} else if _, err := resolveProgram(tc.Command[0], c.BaseDir); err != nil {
		add("command", "%s", err)
	}
	if tc.Dir != "" {
		if fi, err := os.Stat(tc.Dir); err != nil {
			add("dir", "%s", err)
		} else if !fi.IsDir() {
			add("dir", "%s is not a directory", tc.Dir)
		}
	}
	for k, v := range tc.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			add("env", "invalid variable name %q", k)
		case strings.HasPrefix(k, "HANDOFF_"):
			add("env."+k, "HANDOFF_ variables are set by the executor")
		case strings.ContainsRune(v, 0):
			add("env."+k, "value contains a NUL byte")
		}
	}
}

// validateOutputMediaType checks the output_media_type of a type that sets
// one.
func validateOutputMediaType(tc TypeConfig, add func(field, format string, args ...any)) {
	if tc.Handler != HandlerExec {
		add("output_media_type", "is only for handler exec")
	}
	if _, _, err := mime.ParseMediaType(tc.OutputMediaType); err != nil || !strings.Contains(tc.OutputMediaType, "/") {
		add("output_media_type", "%q is not a media type such as application/pdf", tc.OutputMediaType)
	}
	if len(tc.OutputSchema) > 0 {
		add("output_schema", "describes a JSON result, but output_media_type declares bytes of %s; remove one of them", tc.OutputMediaType)
	}
}

// resolveProgram returns the path an exec handler runs: a path with a slash
// is joined to baseDir when relative, a bare name is looked up in PATH.
func resolveProgram(program, baseDir string) (string, error) {
	if !strings.Contains(program, "/") {
		path, err := exec.LookPath(program)
		if err != nil {
			return "", fmt.Errorf("program %q not found in PATH", program)
		}
		return path, nil
	}
	path := program
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("program %s: %w", path, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("program %s is not an executable file", path)
	}
	return path, nil
}

func validateHTTPURL(raw string) error {
	if raw == "" {
		return errors.New("is missing; handler http needs the URL to post the input to")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

func validateName(s string, maxLen int, allowed func(rune) bool) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > maxLen {
		return fmt.Errorf("%q is %d bytes long", s, len(s))
	}
	for _, r := range s {
		if !allowed(r) {
			return fmt.Errorf("%q contains %q", s, r)
		}
	}
	return nil
}

func poolChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

func instanceChar(r rune) bool {
	return poolChar(r) || r >= 'A' && r <= 'Z' || r == '.'
}

// configError is one invalid field of a [Config].
type configError struct {
	field string
	msg   string
}

func (e *configError) Error() string { return e.field + ": " + e.msg }
func (e *configError) Unwrap() error { return ErrInvalidConfig }
