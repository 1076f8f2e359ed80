package subscription

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// Cache holds every tenant's subscriptions, without their secrets, kept
// current by an ordered consumer on the registry stream. The notifier
// matches events against it. It is safe for concurrent use.
type Cache struct {
	namespace string

	mu sync.RWMutex
	// subs maps tenant to subscription id to subscription.
	subs map[string]map[string]Subscription

	cc jetstream.ConsumeContext
}

// Watch starts a cache and returns once it holds every subscription stored
// when it started. It logs the consumer's errors to log; nil discards them.
// Call Stop when done.
func Watch(ctx context.Context, b *bus.Bus, log *zap.Logger) (*Cache, error) {
	if log == nil {
		log = zap.NewNop()
	}
	namespace := b.Names().Namespace
	cons, err := b.JetStream().OrderedConsumer(ctx, b.Names().RegistryStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjectPrefix(namespace) + ">"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("watch subscriptions: %w", err)
	}

	c := &Cache{namespace: namespace, subs: map[string]map[string]Subscription{}}
	caughtUp := make(chan struct{})
	var once sync.Once
	if cons.CachedInfo().NumPending == 0 {
		once.Do(func() { close(caughtUp) })
	}

	c.cc, err = cons.Consume(func(msg jetstream.Msg) {
		c.store(msg)
		if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
			once.Do(func() { close(caughtUp) })
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Warn("watch subscriptions", zap.Error(err))
	}))
	if err != nil {
		return nil, fmt.Errorf("watch subscriptions: %w", err)
	}

	select {
	case <-caughtUp:
		return c, nil
	case <-ctx.Done():
		c.Stop()
		return nil, fmt.Errorf("load subscriptions: %w", ctx.Err())
	}
}

// store applies one message of the registry stream.
func (c *Cache) store(msg jetstream.Msg) {
	tenant, id, ok := parseSubject(c.namespace, msg.Subject())
	if !ok {
		return
	}
	rec, deleted, err := decodeRecord(msg.Headers(), msg.Data(), tenant, id)

	c.mu.Lock()
	defer c.mu.Unlock()
	if deleted || err != nil {
		// A record that does not decode is ignored, as if absent.
		delete(c.subs[tenant], id)
		return
	}
	if c.subs[tenant] == nil {
		c.subs[tenant] = map[string]Subscription{}
	}
	c.subs[tenant][id] = rec.Subscription
}

// Match returns the subscriptions that ev is delivered to, ordered by id.
// See [Subscription.Matches].
func (c *Cache) Match(ev *events.Event) []Subscription {
	c.mu.RLock()
	var out []Subscription
	for _, sub := range c.subs[ev.Tenant] {
		if sub.Matches(ev) {
			out = append(out, sub)
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Len returns the number of subscriptions the cache holds, of all tenants.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, subs := range c.subs {
		n += len(subs)
	}
	return n
}

// Stop stops the consumer behind the cache.
func (c *Cache) Stop() {
	if c.cc != nil {
		c.cc.Stop()
	}
}
