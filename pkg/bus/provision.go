package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream defaults.
const (
	// DefaultMaxAge is the longest a task's events are kept: the cap of
	// every task's ttl.
	DefaultMaxAge = 7 * 24 * time.Hour

	// DuplicateWindow is how long the server remembers event ids, so that a
	// retried publish of the same event is stored once.
	DuplicateWindow = 2 * time.Minute
)

// StreamOptions are the deployment's choices for the streams.
type StreamOptions struct {
	// Replicas per stream: 1 for a single server, 3 in production.
	// Zero means 1.
	Replicas int
	// MaxAge caps the retention of task events. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// Memory stores the streams in memory instead of files. Only for tests
	// and benchmarks that measure the file store's cost.
	Memory bool
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	return o
}

// StreamConfigs returns the configuration of every stream Handoff uses.
func (b *Bus) StreamConfigs(opts StreamOptions) []jetstream.StreamConfig {
	opts = opts.withDefaults()
	storage := jetstream.FileStorage
	if opts.Memory {
		storage = jetstream.MemoryStorage
	}
	n := b.names
	return []jetstream.StreamConfig{
		{
			Name:              n.TasksStream(),
			Description:       "Handoff task events, one CloudEvent per message",
			Subjects:          []string{n.TasksSubjects()},
			Storage:           storage,
			Retention:         jetstream.LimitsPolicy,
			MaxAge:            opts.MaxAge,
			Duplicates:        DuplicateWindow,
			Replicas:          opts.Replicas,
			AllowDirect:       true,
			AllowMsgTTL:       true,
			AllowMsgSchedules: true,
			// Cancelling a task that waits for its run_at stores a
			// submitted copy and the cancelled event as one batch.
			AllowAtomicPublish: true,
		},
		{
			Name:              n.RegistryStream(),
			Description:       "Handoff task type registrations and webhook subscriptions",
			Subjects:          []string{n.RegistrySubjects()},
			Storage:           storage,
			Retention:         jetstream.LimitsPolicy,
			MaxMsgsPerSubject: 1,
			Replicas:          opts.Replicas,
			AllowDirect:       true,
			AllowMsgTTL:       true,
		},
		{
			Name:        n.DeliveriesStream(),
			Description: "Handoff webhook deliveries pending, one message per event and endpoint",
			Subjects:    []string{n.DeliveriesSubjects()},
			Storage:     storage,
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      opts.MaxAge,
			Replicas:    opts.Replicas,
			// The notifier reads the pending deliveries of one task and
			// endpoint with a batch direct get to keep them in order.
			AllowDirect: true,
		},
	}
}

// ResultsConfig returns the configuration of the results object store.
// Its TTL is MaxAge, the longest any task is kept, so a stored result
// outlives the task that refers to it.
func (b *Bus) ResultsConfig(opts StreamOptions) jetstream.ObjectStoreConfig {
	opts = opts.withDefaults()
	storage := jetstream.FileStorage
	if opts.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.ObjectStoreConfig{
		Bucket:      b.names.ResultsBucket(),
		Description: "Handoff task results too large to inline in a succeeded event",
		TTL:         opts.MaxAge,
		Storage:     storage,
		Replicas:    opts.Replicas,
	}
}

// Provision creates the streams and the results bucket, or updates them
// to the configuration of [Bus.StreamConfigs] and [Bus.ResultsConfig]. It
// is safe to run on every start and from several processes at once.
func (b *Bus) Provision(ctx context.Context, opts StreamOptions) error {
	for _, cfg := range b.StreamConfigs(opts) {
		if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("provision stream %s: %w", cfg.Name, err)
		}
	}
	results := b.ResultsConfig(opts)
	if _, err := b.js.CreateOrUpdateObjectStore(ctx, results); err != nil {
		return fmt.Errorf("provision object store %s: %w", results.Bucket, err)
	}
	return nil
}

// Verify checks that every stream exists with the settings Handoff relies
// on, and that the results bucket exists. Services call it at start so
// that a missing stream is one clear error instead of failed publishes
// later.
func (b *Bus) Verify(ctx context.Context) error {
	for _, want := range b.StreamConfigs(StreamOptions{}) {
		s, err := b.js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%w: stream %s does not exist; run 'handoff provision' or start 'handoff dev'", ErrNotProvisioned, want.Name)
		}
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", want.Name, err)
		}
		have := s.CachedInfo().Config
		switch {
		case want.AllowDirect && !have.AllowDirect:
			return fmt.Errorf("%w: stream %s lacks allow_direct; run 'handoff provision' to update it", ErrNotProvisioned, want.Name)
		case want.AllowMsgTTL && !have.AllowMsgTTL:
			return fmt.Errorf("%w: stream %s lacks allow_msg_ttl; run 'handoff provision' to update it", ErrNotProvisioned, want.Name)
		case want.AllowMsgSchedules && !have.AllowMsgSchedules:
			return fmt.Errorf("%w: stream %s lacks allow_msg_schedules; run 'handoff provision' to update it", ErrNotProvisioned, want.Name)
		case want.AllowAtomicPublish && !have.AllowAtomicPublish:
			return fmt.Errorf("%w: stream %s lacks allow_atomic; run 'handoff provision' to update it", ErrNotProvisioned, want.Name)
		case want.Retention != have.Retention:
			return fmt.Errorf("%w: stream %s has retention %s, want %s", ErrNotProvisioned, want.Name, have.Retention, want.Retention)
		}
	}

	bucket := b.names.ResultsBucket()
	_, err := b.js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%w: object store %s does not exist; run 'handoff provision' or start 'handoff dev'", ErrNotProvisioned, bucket)
	}
	if err != nil {
		return fmt.Errorf("look up object store %s: %w", bucket, err)
	}
	return nil
}
