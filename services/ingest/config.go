package ingest

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/subscription"
)

// Defaults of [Config].
const (
	DefaultSource          = "/handoff/ingest"
	DefaultMaxInputBytes   = 256 << 10
	DefaultMaxDepth        = 64
	DefaultMaxTTL          = bus.DefaultMaxAge
	DefaultRequestTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultMaxWait         = 60 * time.Second
	DefaultHeartbeat       = 15 * time.Second
	DefaultTokensCheck     = 5 * time.Second

	// bodyOverheadBytes is what a request body may hold besides the input:
	// 64 metadata entries of up to 64+512 bytes, a webhook URL of up to
	// 2048 bytes and the other fields fit with room to spare.
	bodyOverheadBytes = 64 << 10

	// maxInputLimit bounds MaxInputBytes. [New] also checks that a body of
	// MaxBodyBytes fits the NATS server's max_payload, 1 MiB by default.
	maxInputLimit = 64 << 20

	// maxDepthLimit bounds MaxDepth below encoding/json's own nesting limit
	// of 10000.
	maxDepthLimit = 1000

	// maxWaitLimit bounds MaxWait below the server's write timeout, so a
	// held response can still be written.
	maxWaitLimit = writeTimeout - 10*time.Second
)

// Config is the configuration of an ingest [Server]. Zero values mean the
// defaults documented on each field; call [Config.WithDefaults] to fill them
// in and [Config.Validate] to check the result.
type Config struct {
	// Namespace is the first token of every subject. It must equal the
	// namespace of the bus given to [New]. Default "handoff".
	Namespace string

	// Source is the CloudEvents source of the events ingest writes.
	// Default "/handoff/ingest".
	Source string

	// MaxInputBytes bounds the input of one submission, in bytes. A larger
	// input is rejected with 413. Default 256 KiB.
	MaxInputBytes int

	// MaxBodyBytes bounds a request body, in bytes. Default MaxInputBytes
	// plus 64 KiB, enough for every other field at its maximum size.
	MaxBodyBytes int

	// MaxDepth bounds the nesting of arrays and objects in a request body,
	// counting the body itself as depth 1. Default 64.
	MaxDepth int

	// AllowUnregisteredTypes accepts submissions of task types that no live
	// executor has registered. Their input is not checked against any
	// schema. Default false, which rejects them with 422.
	AllowUnregisteredTypes bool

	// MaxTTL caps a task's ttl: a submission that requests more gets MaxTTL.
	// Keep it at or below the tasks stream's MaxAge, which removes events
	// at that age whatever their TTL. Default 168h, the default MaxAge.
	MaxTTL time.Duration

	// RequestTimeout bounds the NATS reads and writes of one request.
	// Default 10s.
	RequestTimeout time.Duration

	// ShutdownTimeout bounds how long [Server.Serve] waits for open
	// requests once its context is done. Default 10s.
	ShutdownTimeout time.Duration

	// AllowLoopback accepts webhook URLs, at submit and in subscriptions,
	// whose host is a loopback address or localhost. Only for a stack on
	// one machine, such as handoff dev. Default false.
	AllowLoopback bool

	// Auth selects how callers are authenticated: [AuthNone], where every
	// caller is the tenant "default", or [AuthTokens]. Default AuthNone.
	Auth AuthMode

	// TokensFile is the bearer tokens file that AuthTokens reads; see
	// [LoadTokens] for its format. Required with AuthTokens.
	TokensFile string

	// TokensCheckInterval is how often the server checks TokensFile for a
	// change and reloads it. A negative value turns the check off, which
	// leaves [Server.ReloadTokens]. Default 5s.
	TokensCheckInterval time.Duration

	// RateLimit is the submissions per second allowed to a token whose
	// entry sets no rate, and to all callers together with AuthNone. Zero
	// means unlimited.
	RateLimit float64

	// RateBurst is the submissions allowed at once above RateLimit, for
	// tokens whose entry sets no burst. Default RateLimit rounded up, at
	// least 1.
	RateBurst int

	// MaxWait bounds the wait of GET /v1/tasks/{id}?wait= and of a
	// submission with Prefer: wait. Default 60s.
	MaxWait time.Duration

	// Heartbeat is the interval of the comments that keep an idle event
	// stream open through proxies. Default 15s.
	Heartbeat time.Duration

	// MaxSubscriptions bounds the webhook subscriptions of one tenant,
	// from 1 to 500. Default 100.
	MaxSubscriptions int

	// ResultSigningKey signs the links to results stored by reference,
	// and checks them. Every instance behind one API must have the same
	// key, so that each accepts the links the others made. It must be at
	// least 32 bytes long. Empty means a random key made at start: only
	// this instance accepts its links, and only until it restarts.
	ResultSigningKey string

	// ResultLinkTTL is how long a signed link to a stored result works,
	// from 1s to 24h. Default 15m.
	ResultLinkTTL time.Duration

	// Metrics is the registry of the server's metrics, which GET /metrics
	// serves. Default: a registry of the server's own, which holds only
	// its metrics.
	Metrics *prometheus.Registry

	// TracerProvider records the spans of the server's requests. Default:
	// the no-op provider, which records nothing but passes a caller's
	// traceparent on to the task's events.
	TracerProvider trace.TracerProvider

	// DisableNATSAPI turns off the NATS request API, the micro service
	// "handoff" on the subjects <namespace>.api.*, which [Server.Serve]
	// runs next to the HTTP API. Default false, which serves both.
	DisableNATSAPI bool
}

// WithDefaults returns a copy of c with every zero field set to its
// default.
func (c Config) WithDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = events.DefaultNamespace
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.MaxInputBytes == 0 {
		c.MaxInputBytes = DefaultMaxInputBytes
	}
	if c.MaxBodyBytes == 0 && c.MaxInputBytes > 0 {
		c.MaxBodyBytes = c.MaxInputBytes + bodyOverheadBytes
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Auth == "" {
		c.Auth = AuthNone
	}
	if c.TokensCheckInterval == 0 {
		c.TokensCheckInterval = DefaultTokensCheck
	}
	if c.RateBurst == 0 && c.RateLimit > 0 {
		c.RateBurst = max(1, int(math.Ceil(c.RateLimit)))
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = subscription.DefaultMaxPerTenant
	}
	if c.ResultLinkTTL == 0 {
		c.ResultLinkTTL = DefaultResultLinkTTL
	}
	return c
}

// Validate checks c after [Config.WithDefaults] and returns an error that
// wraps ErrInvalidConfig and names the first invalid field.
func (c Config) Validate() error {
	if err := events.ValidateNamespace(c.Namespace); err != nil {
		return fmt.Errorf("%w: Namespace: %w", ErrInvalidConfig, err)
	}
	if c.Source == "" {
		return fmt.Errorf("%w: Source is empty", ErrInvalidConfig)
	}
	if c.MaxInputBytes < 1 || c.MaxInputBytes > maxInputLimit {
		return fmt.Errorf("%w: MaxInputBytes is %d; it must be between 1 and %d", ErrInvalidConfig, c.MaxInputBytes, maxInputLimit)
	}
	if c.MaxBodyBytes < c.MaxInputBytes || c.MaxBodyBytes > maxInputLimit+bodyOverheadBytes {
		return fmt.Errorf("%w: MaxBodyBytes is %d; it must be between MaxInputBytes (%d) and %d", ErrInvalidConfig, c.MaxBodyBytes, c.MaxInputBytes, maxInputLimit+bodyOverheadBytes)
	}
	if c.MaxDepth < 2 || c.MaxDepth > maxDepthLimit {
		return fmt.Errorf("%w: MaxDepth is %d; it must be between 2 and %d", ErrInvalidConfig, c.MaxDepth, maxDepthLimit)
	}
	if c.MaxTTL < events.MinTTL {
		return fmt.Errorf("%w: MaxTTL is %s; it must be at least %s", ErrInvalidConfig, c.MaxTTL, events.MinTTL)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("%w: RequestTimeout is %s; it must be positive", ErrInvalidConfig, c.RequestTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("%w: ShutdownTimeout is %s; it must be positive", ErrInvalidConfig, c.ShutdownTimeout)
	}
	if err := c.validateAccess(); err != nil {
		return err
	}
	if c.MaxWait < time.Second || c.MaxWait > maxWaitLimit {
		return fmt.Errorf("%w: MaxWait is %s; it must be between 1s and %s", ErrInvalidConfig, c.MaxWait, maxWaitLimit)
	}
	if c.Heartbeat < time.Millisecond {
		return fmt.Errorf("%w: Heartbeat is %s; it must be at least 1ms", ErrInvalidConfig, c.Heartbeat)
	}
	if c.MaxSubscriptions < 1 || c.MaxSubscriptions > subscription.MaxMaxPerTenant {
		return fmt.Errorf("%w: MaxSubscriptions is %d; it must be between 1 and %d", ErrInvalidConfig, c.MaxSubscriptions, subscription.MaxMaxPerTenant)
	}
	if err := c.validateResultLinks(); err != nil {
		return err
	}
	return nil
}
