package webhook

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Signer signs webhook requests with one or more secrets. With several
// secrets, as during a key rotation, every request carries one signature
// per secret, in the order the secrets were given. A secret given as a
// [Key] with a NotAfter time stops signing after that time. A Signer is
// safe for concurrent use.
type Signer struct {
	keys []signingKey
}

// signingKey is a reference-library signer and the end of its use.
type signingKey struct {
	hmac     *standardwebhooks.Webhook
	notAfter time.Time
}

// Key is a secret with an optional end of use, for a rotation: the old
// secret keeps signing beside the new one until NotAfter, so receivers can
// switch secrets at any moment of that overlap.
type Key struct {
	// Secret is "whsec_" and the base64 of 24 to 64 bytes.
	Secret string
	// NotAfter is the last moment that the secret signs. Requests
	// timestamped later carry no signature with it. Zero means no end.
	NotAfter time.Time
}

// String describes the key by its end of use, never by its secret.
func (k Key) String() string {
	if k.NotAfter.IsZero() {
		return "webhook.Key{NotAfter: none}"
	}
	return "webhook.Key{NotAfter: " + k.NotAfter.UTC().Format(time.RFC3339) + "}"
}

// GoString is String, so that %#v does not print the secret either.
func (k Key) GoString() string { return k.String() }

// NewSigner returns a Signer for secrets, which must contain at least one
// whsec_ secret. Every secret signs every request. The error wraps
// ErrInvalidSecret and names a bad secret by its position.
func NewSigner(secrets []string) (*Signer, error) {
	keys := make([]Key, len(secrets))
	for i, s := range secrets {
		keys[i] = Key{Secret: s}
	}
	return NewSignerKeys(keys)
}

// NewSignerKeys returns a Signer for keys, which must contain at least one
// key. Each key signs the requests timestamped until its NotAfter. The
// error wraps ErrInvalidSecret and names a bad secret by its position.
func NewSignerKeys(keys []Key) (*Signer, error) {
	secrets := make([]string, len(keys))
	for i, k := range keys {
		secrets[i] = k.Secret
	}
	hmacs, err := newKeys(secrets)
	if err != nil {
		return nil, err
	}
	s := &Signer{keys: make([]signingKey, len(keys))}
	for i, k := range keys {
		s.keys[i] = signingKey{hmac: hmacs[i], notAfter: k.NotAfter}
	}
	return s, nil
}

// Sign returns the value of the webhook-signature header for a message:
// "v1,<base64 HMAC-SHA256>" per secret in use at timestamp, separated by
// spaces. Each HMAC covers "<id>.<unix seconds of timestamp>.<body>". id
// must be printable ASCII without spaces or dots; otherwise the error wraps
// ErrInvalidID. When every key ended before timestamp, the error wraps
// ErrNoSigningKey.
func (s *Signer) Sign(id string, timestamp time.Time, body []byte) (string, error) {
	if err := validateID(id); err != nil {
		return "", err
	}
	sigs := make([]string, 0, len(s.keys))
	for i, key := range s.keys {
		if !key.activeAt(timestamp) {
			continue
		}
		sig, err := key.hmac.Sign(id, timestamp, body)
		if err != nil {
			return "", fmt.Errorf("sign webhook %s with secret %d: %w", id, i+1, err)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return "", fmt.Errorf("%w: all %d secrets ended before %s", ErrNoSigningKey, len(s.keys), timestamp.UTC().Format(time.RFC3339))
	}
	return strings.Join(sigs, " "), nil
}

// activeAt reports whether the key signs a request timestamped at t.
func (k signingKey) activeAt(t time.Time) bool {
	return k.notAfter.IsZero() || !t.After(k.notAfter)
}

// Active returns how many secrets sign a request timestamped at t.
func (s *Signer) Active(t time.Time) int {
	n := 0
	for _, key := range s.keys {
		if key.activeAt(t) {
			n++
		}
	}
	return n
}

// SetHeaders signs a message and sets webhook-id, webhook-timestamp and
// webhook-signature on h.
func (s *Signer) SetHeaders(h http.Header, id string, timestamp time.Time, body []byte) error {
	sig, err := s.Sign(id, timestamp, body)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(timestamp.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Secrets returns how many secrets the Signer holds, whether in use or
// ended.
func (s *Signer) Secrets() int { return len(s.keys) }

// String describes the Signer by its number of secrets.
func (s *Signer) String() string {
	return fmt.Sprintf("webhook.Signer{secrets: %d}", len(s.keys))
}

// GoString is String, so that %#v does not print the keys either.
func (s *Signer) GoString() string { return s.String() }

// validateID checks that id can be signed unambiguously and sent as a
// header value: the signed content joins id, timestamp and body with dots.
func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: id is empty", ErrInvalidID)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return fmt.Errorf("%w: %q contains %q; use printable ASCII without spaces or dots", ErrInvalidID, id, c)
		}
	}
	return nil
}
