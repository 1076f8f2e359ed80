// Package registry records which task types live executors serve. Each
// executor publishes a registration per type on <namespace>.registry.type.<type>
// with a TTL and renews it, so a type disappears when no executor serving it
// is alive. Ingest keeps a [Cache] of the registrations to validate
// submissions.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// Registration timing: executors renew every DefaultTTL/3, so two lost
// renewals in a row still leave the type registered.
const DefaultTTL = 30 * time.Second

// TaskType is one registration: what a task type does, what input and
// output it takes, and who serves it.
type TaskType struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// InputSchema is the JSON Schema every submission's input must match.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// OutputSchema describes the result.
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	// DefaultTimeout bounds an attempt when the submission sets none.
	DefaultTimeout events.Duration `json:"default_timeout,omitempty"`
	// MaxAttempts is the default of the submission's max_attempts.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Pool names the executor pool that serves the type.
	Pool string `json:"pool"`
	// Executor names the executor instance that renewed this registration.
	Executor     string    `json:"executor"`
	RegisteredAt time.Time `json:"registered_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// Register publishes tt as a registration that expires after ttl unless it
// is registered again.
func Register(ctx context.Context, b *bus.Bus, tt TaskType, ttl time.Duration) error {
	if err := events.ValidateTaskType(tt.Name); err != nil {
		return err
	}
	if ttl < time.Second {
		return fmt.Errorf("registration ttl %s is shorter than 1s", ttl)
	}
	now := time.Now().UTC()
	tt.RegisteredAt = now
	tt.ExpiresAt = now.Add(ttl)
	data, err := json.Marshal(tt)
	if err != nil {
		return fmt.Errorf("encode registration of %s: %w", tt.Name, err)
	}
	if _, err := b.JetStream().Publish(ctx, b.Names().TypeRegistration(tt.Name), data, jetstream.WithMsgTTL(ttl)); err != nil {
		return fmt.Errorf("register task type %s: %w", tt.Name, err)
	}
	return nil
}

// Cache holds the live registrations, kept current by an ordered consumer
// on the registry stream. It is safe for concurrent use.
type Cache struct {
	prefix string
	now    func() time.Time

	mu    sync.RWMutex
	types map[string]TaskType

	cc jetstream.ConsumeContext
}

// WatchOption configures [Watch].
type WatchOption func(*watchOptions)

type watchOptions struct {
	onError func(error)
}

// OnError makes the cache report errors of its consumer, such as a lost
// connection, to f. Without it they are dropped; the consumer recovers on
// its own either way.
func OnError(f func(error)) WatchOption {
	return func(o *watchOptions) { o.onError = f }
}

// Watch starts a cache and returns once it holds every registration stored
// when it started. Call Stop when done.
func Watch(ctx context.Context, b *bus.Bus, opts ...WatchOption) (*Cache, error) {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	cons, err := b.JetStream().OrderedConsumer(ctx, b.Names().RegistryStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.Names().TypeRegistrations()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("watch task type registrations: %w", err)
	}

	c := &Cache{
		prefix: strings.TrimSuffix(b.Names().TypeRegistrations(), ">"),
		now:    time.Now,
		types:  map[string]TaskType{},
	}
	caughtUp := make(chan struct{})
	var once sync.Once
	if cons.CachedInfo().NumPending == 0 {
		once.Do(func() { close(caughtUp) })
	}

	consumeOpts := []jetstream.PullConsumeOpt{}
	if o.onError != nil {
		consumeOpts = append(consumeOpts, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			o.onError(fmt.Errorf("watch task type registrations: %w", err))
		}))
	}
	c.cc, err = cons.Consume(func(msg jetstream.Msg) {
		c.store(msg)
		if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
			once.Do(func() { close(caughtUp) })
		}
	}, consumeOpts...)
	if err != nil {
		return nil, fmt.Errorf("watch task type registrations: %w", err)
	}

	select {
	case <-caughtUp:
		return c, nil
	case <-ctx.Done():
		c.Stop()
		return nil, fmt.Errorf("load task type registrations: %w", ctx.Err())
	}
}

func (c *Cache) store(msg jetstream.Msg) {
	name := strings.TrimPrefix(msg.Subject(), c.prefix)
	var tt TaskType
	if err := json.Unmarshal(msg.Data(), &tt); err != nil || tt.Name != name {
		// A registration that does not decode or names another type than
		// its subject is ignored, as if it were absent.
		c.mu.Lock()
		delete(c.types, name)
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.types[name] = tt
	c.mu.Unlock()
}

// Stop stops the consumer behind the cache.
func (c *Cache) Stop() {
	if c.cc != nil {
		c.cc.Stop()
	}
}

// Get returns the live registration of a task type.
func (c *Cache) Get(name string) (TaskType, bool) {
	c.mu.RLock()
	tt, ok := c.types[name]
	c.mu.RUnlock()
	if !ok || !tt.ExpiresAt.After(c.now()) {
		return TaskType{}, false
	}
	return tt, true
}

// List returns the live registrations sorted by name.
func (c *Cache) List() []TaskType {
	now := c.now()
	c.mu.RLock()
	out := make([]TaskType, 0, len(c.types))
	for _, tt := range c.types {
		if tt.ExpiresAt.After(now) {
			out = append(out, tt)
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b TaskType) int { return strings.Compare(a.Name, b.Name) })
	return out
}
