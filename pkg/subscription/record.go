package subscription

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

// HeaderDeleted marks a tombstone: the message that replaces a deleted
// subscription on its subject. Its body is empty.
const HeaderDeleted = "Handoff-Subscription-Deleted"

// TombstoneTTL is how long a tombstone stays in the stream. A [Cache] that
// is connected when the tombstone is stored removes the subscription. A
// cache started after the tombstone expired never loads the subscription.
const TombstoneTTL = time.Hour

// record is the stored form of a subscription: the subscription and its
// secrets, newest first.
type record struct {
	Subscription
	Secrets []storedSecret `json:"secrets"`
}

// storedSecret is a secret with the end of its use, nil for the current
// secret.
type storedSecret struct {
	Secret   string     `json:"secret"`
	NotAfter *time.Time `json:"not_after,omitempty"`
}

// keys returns the record's secrets for a [webhook.Signer].
func (r *record) keys() []webhook.Key {
	keys := make([]webhook.Key, len(r.Secrets))
	for i, s := range r.Secrets {
		keys[i] = webhook.Key{Secret: s.Secret}
		if s.NotAfter != nil {
			keys[i].NotAfter = *s.NotAfter
		}
	}
	return keys
}

// subjectPrefix returns "<namespace>.registry.subscription.".
func subjectPrefix(namespace string) string {
	return namespace + ".registry.subscription."
}

// subject returns the registry subject of one subscription.
func subject(namespace, tenant, id string) string {
	return subjectPrefix(namespace) + tenant + "." + id
}

// parseSubject returns the tenant and id of a subscription subject.
func parseSubject(namespace, subj string) (tenant, id string, ok bool) {
	rest, ok := strings.CutPrefix(subj, subjectPrefix(namespace))
	if !ok {
		return "", "", false
	}
	tenant, id, ok = strings.Cut(rest, ".")
	if !ok || tenant == "" || id == "" || strings.Contains(id, ".") {
		return "", "", false
	}
	return tenant, id, true
}

// decodeRecord decodes a stored message of the subscription tenant/id. It
// returns deleted for a tombstone, and an error for a message that does not
// decode or names another subscription than its subject.
func decodeRecord(header nats.Header, data []byte, tenant, id string) (rec *record, deleted bool, err error) {
	if header.Get(HeaderDeleted) != "" {
		return nil, true, nil
	}
	rec = &record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, false, fmt.Errorf("decode subscription %s of tenant %s: %w", id, tenant, err)
	}
	if rec.ID != id || rec.Tenant != tenant {
		return nil, false, fmt.Errorf("decode subscription %s of tenant %s: the record names subscription %q of tenant %q", id, tenant, rec.ID, rec.Tenant)
	}
	return rec, false, nil
}
