// Package webhook signs and verifies webhook requests as Standard Webhooks
// 1.0 defines them: the sender puts a webhook-id, a webhook-timestamp and a
// webhook-signature header on each request, where the signature is
// "v1,<base64 HMAC-SHA256>" over "<id>.<timestamp>.<body>" with a shared
// whsec_ secret. During a key rotation the sender signs with every current
// secret, and the receiver accepts a request if any signature matches any
// of its secrets.
//
// The HMAC itself is computed by the reference library,
// github.com/standard-webhooks/standard-webhooks/libraries/go. This package
// adds secret checks, several secrets, a configurable timestamp tolerance
// and errors that name the problem. Secrets never appear in its errors or
// in the String output of its types.
package webhook

import (
	"errors"
	"net/http"
	"strings"
)

// Header names of a signed webhook request.
const (
	// HeaderID carries the message id, the same on every retry of one
	// message, so receivers can use it to drop duplicates.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the Unix time in seconds of this attempt.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries the space-separated signatures.
	HeaderSignature = "webhook-signature"
)

var (
	// ErrInvalidSecret is returned for a secret that is not whsec_ followed
	// by the base64 of 24 to 64 bytes. The error says which secret, by its
	// position, and never shows its value.
	ErrInvalidSecret = errors.New("invalid webhook secret")

	// ErrInvalidID is returned by [Signer.Sign] for a message id that is
	// empty or contains a '.', a space or a byte outside printable ASCII.
	ErrInvalidID = errors.New("invalid webhook id")

	// ErrNoSigningKey is returned by [Signer.Sign] when every key of the
	// Signer ended before the request's timestamp.
	ErrNoSigningKey = errors.New("no webhook secret in use")

	// ErrMissingHeader is returned by [Verifier.Verify] when one of the
	// three webhook headers is absent or empty.
	ErrMissingHeader = errors.New("missing webhook header")

	// ErrInvalidTimestamp is returned by [Verifier.Verify] when
	// webhook-timestamp is not a number of Unix seconds.
	ErrInvalidTimestamp = errors.New("invalid webhook timestamp")

	// ErrTimestampTooOld is returned by [Verifier.Verify] when
	// webhook-timestamp lies further in the past than the tolerance, as for
	// a replayed request.
	ErrTimestampTooOld = errors.New("webhook timestamp too old")

	// ErrTimestampTooNew is returned by [Verifier.Verify] when
	// webhook-timestamp lies further in the future than the tolerance.
	ErrTimestampTooNew = errors.New("webhook timestamp too new")

	// ErrNoValidSignature is returned by [Verifier.Verify] when no
	// signature in webhook-signature matches the body with any secret.
	ErrNoValidSignature = errors.New("no valid webhook signature")
)

// headerValues returns the values of the header name. It also finds keys
// that were stored in the map without canonicalization, such as
// "webhook-id", which http.Header.Values misses.
func headerValues(h http.Header, name string) []string {
	if v := h.Values(name); len(v) > 0 {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v
		}
	}
	return nil
}
