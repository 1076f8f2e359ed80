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
// per secret, in the order the secrets were given. A Signer is safe for
// concurrent use.
type Signer struct {
	keys []*standardwebhooks.Webhook
}

// NewSigner returns a Signer for secrets, which must contain at least one
// whsec_ secret. The error wraps ErrInvalidSecret and names a bad secret by
// its position.
func NewSigner(secrets []string) (*Signer, error) {
	keys, err := newKeys(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{keys: keys}, nil
}

// Sign returns the value of the webhook-signature header for a message:
// "v1,<base64 HMAC-SHA256>" per secret, separated by spaces. Each HMAC
// covers "<id>.<unix seconds of timestamp>.<body>". id must be printable
// ASCII without spaces or dots; otherwise the error wraps ErrInvalidID.
func (s *Signer) Sign(id string, timestamp time.Time, body []byte) (string, error) {
	if err := validateID(id); err != nil {
		return "", err
	}
	sigs := make([]string, len(s.keys))
	for i, key := range s.keys {
		sig, err := key.Sign(id, timestamp, body)
		if err != nil {
			return "", fmt.Errorf("sign webhook %s with secret %d: %w", id, i+1, err)
		}
		sigs[i] = sig
	}
	return strings.Join(sigs, " "), nil
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

// Secrets returns how many secrets the Signer signs with.
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
