package notifier

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// Defaults of [Config].
const (
	DefaultTimeout       = 15 * time.Second
	DefaultConcurrency   = 16
	DefaultMaxAckPending = 10_000
	DefaultMaxRetryAfter = 3 * time.Hour

	// ConsumerName is the durable consumer every notifier instance of a
	// namespace shares, so JetStream balances the events between them.
	ConsumerName = "notifier"
)

// DefaultBackoff is the delay before each retry of a failed delivery:
// after the first failed attempt 5s, after the second 30s, and so on. When
// the last delay is used up, the notifier gives up on the event.
var DefaultBackoff = []time.Duration{
	5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 3 * time.Hour,
}

// taskIOTimeout bounds reading a task and recording one attempt on it.
const taskIOTimeout = 5 * time.Second

// ErrInvalidConfig is wrapped by the errors of [Config.Validate].
var ErrInvalidConfig = errors.New("invalid notifier config")

var instancePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Config is the configuration of a notifier. Zero values mean the defaults
// documented on each field; see [Config.WithDefaults].
type Config struct {
	// Namespace is the first token of every subject and the prefix of the
	// stream names. Empty means "handoff".
	Namespace string

	// Instance names this notifier in the source of the events it writes,
	// /handoff/notifier/<instance>. Empty means the host name.
	Instance string

	// Secrets sign every webhook request, one signature per secret, so a
	// receiver can move to a new secret while the old one still verifies.
	// At least one is required. Each is "whsec_" and the base64 of 24 to 64
	// bytes.
	Secrets []string

	// AllowLoopback permits webhooks to loopback addresses, for local
	// development and tests. Private, link-local and other internal
	// addresses stay rejected; see [CheckAddr].
	AllowLoopback bool

	// Timeout bounds one delivery attempt, from dialing to the end of the
	// response. Zero means DefaultTimeout (15s).
	Timeout time.Duration

	// Backoff lists the delays before each retry; its length is the number
	// of retries. Each delay gets up to 20% of jitter either way, and a
	// longer Retry-After from the receiver wins. Empty means
	// DefaultBackoff.
	Backoff []time.Duration

	// MaxRetryAfter caps how long a receiver's Retry-After header can delay
	// the next attempt. Zero means DefaultMaxRetryAfter (3h).
	MaxRetryAfter time.Duration

	// Concurrency bounds the deliveries in flight in this instance. Zero
	// means DefaultConcurrency (16).
	Concurrency int

	// AckWait is how long JetStream waits for this instance to settle an
	// event before it redelivers it to another. It must cover one attempt
	// plus reading the task and recording the attempt. Zero means
	// Timeout + 45s.
	AckWait time.Duration

	// MaxAckPending bounds the events that are in flight or waiting for a
	// retry, across all instances. Zero means DefaultMaxAckPending (10000).
	//
	// NOTE: events waiting for a retry count against this limit, so enough
	// failing endpoints stall every delivery until their retries end.
	MaxAckPending int
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = events.DefaultNamespace
	}
	if c.Instance == "" {
		c.Instance = defaultInstance()
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	c.Backoff = append([]time.Duration(nil), c.Backoff...)
	c.Secrets = append([]string(nil), c.Secrets...)
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AckWait == 0 {
		c.AckWait = c.Timeout + 45*time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	return c
}

// Validate checks c, after WithDefaults, and returns an error that wraps
// ErrInvalidConfig and names the first invalid field. It never shows a
// secret.
func (c Config) Validate() error {
	if err := events.ValidateNamespace(c.Namespace); err != nil {
		return fmt.Errorf("%w: Namespace: %w", ErrInvalidConfig, err)
	}
	if !instancePattern.MatchString(c.Instance) {
		return fmt.Errorf("%w: Instance %q must be 1 to 64 letters, digits, '.', '_' or '-'", ErrInvalidConfig, c.Instance)
	}
	if len(c.Secrets) == 0 {
		return fmt.Errorf("%w: Secrets is empty; give at least one webhook secret, such as whsec_ followed by the output of 'openssl rand -base64 32'", ErrInvalidConfig)
	}
	if _, err := webhook.NewSigner(c.Secrets); err != nil {
		return fmt.Errorf("%w: Secrets: %w", ErrInvalidConfig, err)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: Timeout %s must be positive", ErrInvalidConfig, c.Timeout)
	}
	for i, d := range c.Backoff {
		if d <= 0 {
			return fmt.Errorf("%w: Backoff[%d] %s must be positive", ErrInvalidConfig, i, d)
		}
	}
	if c.MaxRetryAfter < 0 {
		return fmt.Errorf("%w: MaxRetryAfter %s must not be negative", ErrInvalidConfig, c.MaxRetryAfter)
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("%w: Concurrency %d must be at least 1", ErrInvalidConfig, c.Concurrency)
	}
	if minAckWait := c.Timeout + 2*taskIOTimeout; c.AckWait < minAckWait {
		return fmt.Errorf("%w: AckWait %s is shorter than Timeout plus %s to read the task and record the attempt (%s)",
			ErrInvalidConfig, c.AckWait, 2*taskIOTimeout, minAckWait)
	}
	if c.MaxAckPending < c.Concurrency {
		return fmt.Errorf("%w: MaxAckPending %d is below Concurrency %d", ErrInvalidConfig, c.MaxAckPending, c.Concurrency)
	}
	return nil
}

// String formats c for a log line, with the number of secrets in place of
// their values.
func (c Config) String() string {
	return fmt.Sprintf("notifier.Config{Namespace: %q, Instance: %q, Secrets: %d, AllowLoopback: %t, Timeout: %s, Backoff: %v, MaxRetryAfter: %s, Concurrency: %d, AckWait: %s, MaxAckPending: %d}",
		c.Namespace, c.Instance, len(c.Secrets), c.AllowLoopback, c.Timeout, c.Backoff, c.MaxRetryAfter, c.Concurrency, c.AckWait, c.MaxAckPending)
}

// GoString is String, so that %#v does not print the secrets either.
func (c Config) GoString() string { return c.String() }

func defaultInstance() string {
	host, err := os.Hostname()
	if err != nil || !instancePattern.MatchString(host) {
		return "notifier"
	}
	return host
}
