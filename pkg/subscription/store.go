package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// Limits of a [Store].
const (
	// DefaultMaxPerTenant is the number of subscriptions a tenant may have
	// when Options.MaxPerTenant is zero.
	DefaultMaxPerTenant = 100

	// MaxMaxPerTenant bounds Options.MaxPerTenant. One batch direct get
	// returns at most 1024 messages, which must cover a tenant's
	// subscriptions and the tombstones of those it deleted in the last
	// hour.
	MaxMaxPerTenant = 500

	// MaxRotationOverlap bounds how long the previous secret keeps signing
	// after [Store.RotateSecret].
	MaxRotationOverlap = 7 * 24 * time.Hour

	// IDPrefix starts every subscription id.
	IDPrefix = "sub_"
)

// updateTries bounds the compare-and-set writes of one update.
const updateTries = 5

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options configure a [Store]. Zero values mean the defaults documented on
// each field.
type Options struct {
	// Guard decides which URLs subscriptions may have. The zero Guard
	// rejects loopback and internal addresses.
	Guard webhook.Guard

	// MaxPerTenant bounds the subscriptions of one tenant, from 1 to
	// MaxMaxPerTenant. Zero means DefaultMaxPerTenant (100).
	MaxPerTenant int
}

// Store reads and writes the subscriptions of a namespace in its registry
// stream. It is safe for concurrent use.
type Store struct {
	bus  *bus.Bus
	opts Options
	now  func() time.Time
}

// NewStore returns a Store on b. The error names an invalid option.
func NewStore(b *bus.Bus, opts Options) (*Store, error) {
	if b == nil {
		return nil, errors.New("subscription store: bus is nil")
	}
	if opts.MaxPerTenant == 0 {
		opts.MaxPerTenant = DefaultMaxPerTenant
	}
	if opts.MaxPerTenant < 1 || opts.MaxPerTenant > MaxMaxPerTenant {
		return nil, fmt.Errorf("subscription store: MaxPerTenant %d is outside 1 to %d", opts.MaxPerTenant, MaxMaxPerTenant)
	}
	return &Store{bus: b, opts: opts, now: time.Now}, nil
}

// Create stores a new subscription for tenant with a fresh id and secret
// and returns both. The secret is never returned again. For an invalid
// input the error is the [events.FieldErrors] of [Input.Validate]. For a
// tenant at its limit the error wraps ErrLimitReached.
//
// NOTE: the limit is checked before the write, so concurrent creations can
// exceed it by their number.
func (s *Store) Create(ctx context.Context, tenant string, in Input) (*Created, error) {
	if err := events.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	if err := in.Validate(s.opts.Guard); err != nil {
		return nil, err
	}
	existing, err := s.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if len(existing) >= s.opts.MaxPerTenant {
		return nil, fmt.Errorf("%w: tenant %s has %d subscriptions, the maximum; delete one first", ErrLimitReached, tenant, len(existing))
	}

	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	rec := &record{
		Subscription: Subscription{
			ID:             IDPrefix + events.NewID(),
			Tenant:         tenant,
			URL:            in.URL,
			Kinds:          normalizeKinds(in.Kinds),
			TaskTypePrefix: in.TaskTypePrefix,
			Description:    in.Description,
			Status:         StatusActive,
			CreatedAt:      now,
			UpdatedAt:      now,
		},
		Secrets: []storedSecret{{Secret: secret}},
	}
	if err := s.write(ctx, rec, 0); err != nil {
		return nil, err
	}
	return &Created{Subscription: rec.Subscription, Secret: secret}, nil
}

// Get returns the subscription id of tenant, or an error wrapping
// ErrNotFound or ErrInvalidID.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Subscription, error) {
	rec, _, err := s.read(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return &rec.Subscription, nil
}

// List returns the subscriptions of tenant, oldest first.
func (s *Store) List(ctx context.Context, tenant string) ([]Subscription, error) {
	if err := events.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	prefix := subjectPrefix(s.bus.Names().Namespace)
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.bus.JetStream(), s.bus.Names().RegistryStream(), []string{prefix + tenant + ".*"})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of tenant %s: %w", tenant, err)
	}

	out := []Subscription{}
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list subscriptions of tenant %s: %w", tenant, err)
		}
		_, id, ok := parseSubject(s.bus.Names().Namespace, msg.Subject)
		if !ok {
			continue
		}
		rec, deleted, err := decodeRecord(msg.Header, msg.Data, tenant, id)
		if err != nil || deleted {
			// A record that does not decode is left out, as if absent.
			continue
		}
		out = append(out, rec.Subscription)
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Delete removes the subscription id of tenant. Deliveries already
// planned for it are dropped. It returns an error wrapping ErrNotFound if
// there is no such subscription.
func (s *Store) Delete(ctx context.Context, tenant, id string) error {
	for range updateTries {
		_, seq, err := s.read(ctx, tenant, id)
		if err != nil {
			return err
		}
		msg := nats.NewMsg(subject(s.bus.Names().Namespace, tenant, id))
		msg.Header.Set(HeaderDeleted, "true")
		_, err = s.bus.JetStream().PublishMsg(ctx, msg,
			jetstream.WithExpectLastSequencePerSubject(seq), jetstream.WithMsgTTL(TombstoneTTL))
		if bus.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete subscription %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("%w: delete subscription %s: gave up after %d tries", ErrConflict, id, updateTries)
}

// Disable stops deliveries to the subscription id of tenant and records
// reason, such as the endpoint's 410 Gone. Disabling a disabled
// subscription changes nothing. It returns the subscription, or an error
// wrapping ErrNotFound.
func (s *Store) Disable(ctx context.Context, tenant, id, reason string) (*Subscription, error) {
	return s.update(ctx, tenant, id, func(rec *record, now time.Time) bool {
		if rec.Status == StatusDisabled {
			return false
		}
		rec.Status = StatusDisabled
		rec.DisabledReason = reason
		rec.DisabledAt = &now
		return true
	})
}

// RotateSecret gives the subscription id of tenant a new secret and
// returns it. The secrets in use keep signing beside it for overlap, so
// receivers can switch at any moment in between; zero ends them at once.
// overlap must be from 0 to MaxRotationOverlap.
func (s *Store) RotateSecret(ctx context.Context, tenant, id string, overlap time.Duration) (*Created, error) {
	if overlap < 0 || overlap > MaxRotationOverlap {
		return nil, fmt.Errorf("rotation overlap %s is outside 0 to %s", overlap, MaxRotationOverlap)
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, err
	}
	sub, err := s.update(ctx, tenant, id, func(rec *record, now time.Time) bool {
		ends := now.Add(overlap)
		secrets := []storedSecret{{Secret: secret}}
		var previousEnds *time.Time
		for _, old := range rec.Secrets {
			end := ends
			if old.NotAfter != nil && old.NotAfter.Before(end) {
				end = *old.NotAfter
			}
			if !end.After(now) {
				continue
			}
			secrets = append(secrets, storedSecret{Secret: old.Secret, NotAfter: &end})
			if previousEnds == nil || end.After(*previousEnds) {
				previousEnds = &end
			}
		}
		rec.Secrets = secrets
		rec.PreviousSecretEnds = previousEnds
		return true
	})
	if err != nil {
		return nil, err
	}
	return &Created{Subscription: *sub, Secret: secret}, nil
}

// Target returns the subscription id of tenant with its signing keys, for
// the notifier to deliver to it. It returns an error wrapping ErrNotFound
// if there is no such subscription.
func (s *Store) Target(ctx context.Context, tenant, id string) (*Target, error) {
	rec, _, err := s.read(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	signer, err := webhook.NewSignerKeys(rec.keys())
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", id, err)
	}
	return &Target{Subscription: rec.Subscription, signer: signer}, nil
}

// Target is a subscription with the signer of its secrets. Its fields show
// no secret.
type Target struct {
	Subscription
	signer *webhook.Signer
}

// Signer returns the signer of the subscription's secrets, including a
// previous secret until its rotation overlap ends.
func (t *Target) Signer() *webhook.Signer { return t.signer }

// update applies change to the subscription and writes it with a
// compare-and-set, re-reading after a concurrent write. change returns
// false to leave the subscription as it is.
func (s *Store) update(ctx context.Context, tenant, id string, change func(*record, time.Time) bool) (*Subscription, error) {
	for range updateTries {
		rec, seq, err := s.read(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		now := s.now().UTC()
		if !change(rec, now) {
			return &rec.Subscription, nil
		}
		rec.UpdatedAt = now
		err = s.write(ctx, rec, seq)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &rec.Subscription, nil
	}
	return nil, fmt.Errorf("%w: update subscription %s: gave up after %d tries", ErrConflict, id, updateTries)
}

// read returns the record of tenant/id and its stream sequence.
func (s *Store) read(ctx context.Context, tenant, id string) (*record, uint64, error) {
	if err := events.ValidateTenant(tenant); err != nil {
		return nil, 0, err
	}
	if !idPattern.MatchString(id) {
		return nil, 0, fmt.Errorf("%w: %q must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'", ErrInvalidID, id)
	}
	subj := subject(s.bus.Names().Namespace, tenant, id)
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.bus.JetStream(), s.bus.Names().RegistryStream(), []string{subj})
	if err != nil {
		return nil, 0, fmt.Errorf("read subscription %s: %w", id, err)
	}
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read subscription %s: %w", id, err)
		}
		rec, deleted, err := decodeRecord(msg.Header, msg.Data, tenant, id)
		if err != nil {
			return nil, 0, err
		}
		if deleted {
			break
		}
		return rec, msg.Sequence, nil
	}
	return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// write stores rec if the last message on its subject is still at
// expectSeq, zero for none. A lost compare-and-set wraps ErrConflict.
func (s *Store) write(ctx context.Context, rec *record, expectSeq uint64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", rec.ID, err)
	}
	subj := subject(s.bus.Names().Namespace, rec.Tenant, rec.ID)
	_, err = s.bus.JetStream().Publish(ctx, subj, data, jetstream.WithExpectLastSequencePerSubject(expectSeq))
	if bus.IsConflict(err) {
		return fmt.Errorf("%w: write subscription %s: %w", ErrConflict, rec.ID, err)
	}
	if err != nil {
		return fmt.Errorf("write subscription %s: %w", rec.ID, err)
	}
	return nil
}
