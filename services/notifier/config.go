package notifier

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// Defaults of [Config].
const (
	DefaultTimeout             = 15 * time.Second
	DefaultConcurrency         = 64
	DefaultEndpointConcurrency = 8
	DefaultMaxAckPending       = 100_000
	DefaultMaxRetryAfter       = 3 * time.Hour

	// ConsumerName is the durable consumer on the tasks stream that every
	// notifier instance of a namespace shares. It turns each notified
	// event into delivery jobs.
	ConsumerName = "notifier"

	// DeliveryConsumerName is the durable consumer on the deliveries
	// stream that every notifier instance of a namespace shares. It makes
	// the delivery attempts.
	DeliveryConsumerName = "notifier-deliveries"
)

// DefaultBackoff is the delay before each retry of a failed delivery:
// after the first failed attempt 5s, after the second 30s, and so on. When
// the last delay is used up, the notifier gives up on the delivery.
var DefaultBackoff = []time.Duration{
	5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 3 * time.Hour,
}

// taskIOTimeout bounds each read and write around an attempt: reading the
// task, the subscription or the pending jobs, and recording the attempt.
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

	// Secrets sign every request to a webhook given at submit, one
	// signature per secret. At least one is required. Each is "whsec_" and
	// the base64 of 24 to 64 bytes. Subscriptions sign with their own
	// secrets instead.
	Secrets []string

	// PreviousSecrets keep signing beside Secrets until RotationEnds, so
	// that receivers can move from an old secret to a new one at any moment
	// of the overlap. Requests timestamped after RotationEnds carry only
	// the signatures of Secrets.
	PreviousSecrets []string

	// RotationEnds is the end of the overlap of PreviousSecrets. It is
	// required with PreviousSecrets and must be zero without them.
	RotationEnds time.Time

	// AllowLoopback permits webhooks to loopback addresses, for local
	// development and tests. Other internal addresses stay rejected; see
	// [webhook.CheckAddr].
	AllowLoopback bool

	// AllowNetworks lists internal address ranges that webhooks may reach
	// all the same, such as a cluster network whose receivers the operator
	// trusts.
	AllowNetworks []netip.Prefix

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

	// Concurrency bounds the delivery attempts in flight in this instance.
	// Zero means DefaultConcurrency (64).
	Concurrency int

	// EndpointConcurrency bounds the attempts in flight to one endpoint in
	// this instance, so that an endpoint that hangs holds at most this many
	// of the Concurrency workers. An endpoint is a subscription, or the
	// scheme, host and port of a webhook given at submit. Zero means
	// DefaultEndpointConcurrency (8).
	EndpointConcurrency int

	// DrainTimeout bounds how long Run waits at shutdown for the attempts
	// in flight. Attempts still running then are cancelled, recorded as
	// failed and returned to the stream for another instance. Zero means
	// Timeout.
	DrainTimeout time.Duration

	// AckWait is how long JetStream waits for this instance to settle a
	// delivery job before it gives the job to another instance, as after a
	// crash. It must cover one attempt plus the reads and the write around
	// it. Zero means Timeout + 45s.
	AckWait time.Duration

	// MaxAckPending bounds the delivery jobs in flight or waiting for a
	// retry, across all instances. Zero means DefaultMaxAckPending
	// (100000).
	//
	// NOTE: jobs waiting for a retry count against this limit, so enough
	// jobs for failing endpoints stall every delivery until their retries
	// end.
	MaxAckPending int

	// Metrics registers the notifier's metrics. Nil leaves them
	// unregistered, so nothing exposes them.
	Metrics prometheus.Registerer

	// TracerProvider records the span of each delivery attempt. Default:
	// the no-op provider, which records nothing but still sends the
	// traceparent of the delivered event on the webhook request.
	TracerProvider trace.TracerProvider
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
	c.PreviousSecrets = append([]string(nil), c.PreviousSecrets...)
	c.AllowNetworks = append([]netip.Prefix(nil), c.AllowNetworks...)

	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.EndpointConcurrency == 0 {
		c.EndpointConcurrency = min(DefaultEndpointConcurrency, c.Concurrency)
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = c.Timeout
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
	if len(c.PreviousSecrets) > 0 {
		if _, err := webhook.NewSigner(c.PreviousSecrets); err != nil {
			return fmt.Errorf("%w: PreviousSecrets: %w", ErrInvalidConfig, err)
		}
		if c.RotationEnds.IsZero() {
			return fmt.Errorf("%w: RotationEnds is missing; PreviousSecrets need the end of the rotation overlap", ErrInvalidConfig)
		}
	} else if !c.RotationEnds.IsZero() {
		return fmt.Errorf("%w: RotationEnds is set without PreviousSecrets", ErrInvalidConfig)
	}

	for i, p := range c.AllowNetworks {
		if !p.IsValid() {
			return fmt.Errorf("%w: AllowNetworks[%d] is not a valid prefix", ErrInvalidConfig, i)
		}
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
	if c.EndpointConcurrency < 1 || c.EndpointConcurrency > c.Concurrency {
		return fmt.Errorf("%w: EndpointConcurrency %d must be from 1 to Concurrency (%d)", ErrInvalidConfig, c.EndpointConcurrency, c.Concurrency)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("%w: DrainTimeout %s must not be negative", ErrInvalidConfig, c.DrainTimeout)
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

// keys returns the signing keys of webhooks given at submit: Secrets
// without end, then PreviousSecrets until RotationEnds.
func (c Config) keys() []webhook.Key {
	keys := make([]webhook.Key, 0, len(c.Secrets)+len(c.PreviousSecrets))
	for _, s := range c.Secrets {
		keys = append(keys, webhook.Key{Secret: s})
	}
	for _, s := range c.PreviousSecrets {
		keys = append(keys, webhook.Key{Secret: s, NotAfter: c.RotationEnds})
	}
	return keys
}

// guard returns the address guard of webhook requests.
func (c Config) guard() webhook.Guard {
	return webhook.Guard{AllowLoopback: c.AllowLoopback, Allow: c.AllowNetworks}
}

// String formats c for a log line, with the number of secrets in place of
// their values.
func (c Config) String() string {
	ends := "none"
	if !c.RotationEnds.IsZero() {
		ends = c.RotationEnds.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("notifier.Config{Namespace: %q, Instance: %q, Secrets: %d, PreviousSecrets: %d, RotationEnds: %s, AllowLoopback: %t, AllowNetworks: %v, Timeout: %s, Backoff: %v, MaxRetryAfter: %s, Concurrency: %d, EndpointConcurrency: %d, DrainTimeout: %s, AckWait: %s, MaxAckPending: %d}",
		c.Namespace, c.Instance, len(c.Secrets), len(c.PreviousSecrets), ends, c.AllowLoopback, c.AllowNetworks, c.Timeout, c.Backoff, c.MaxRetryAfter,
		c.Concurrency, c.EndpointConcurrency, c.DrainTimeout, c.AckWait, c.MaxAckPending)
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
