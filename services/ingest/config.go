package ingest

import (
	"fmt"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// Defaults of [Config].
const (
	DefaultSource          = "/handoff/ingest"
	DefaultMaxInputBytes   = 256 << 10
	DefaultMaxDepth        = 64
	DefaultMaxTTL          = bus.DefaultMaxAge
	DefaultRequestTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 10 * time.Second

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
	return nil
}
