package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// DefaultTolerance is how far webhook-timestamp may lie from the
// receiver's clock, in either direction, before Verify rejects the request.
// It is the tolerance the Standard Webhooks reference libraries use.
const DefaultTolerance = 5 * time.Minute

// maxTimestampDigits bounds webhook-timestamp. Unix seconds have 10 digits
// until the year 2286, and 18 digits always fit an int64.
const maxTimestampDigits = 18

// Verifier checks the signature of webhook requests against one or more
// secrets. A Verifier is safe for concurrent use.
type Verifier struct {
	keys      []*standardwebhooks.Webhook
	tolerance time.Duration
}

// NewVerifier returns a Verifier that accepts a request signed with any of
// secrets, which must contain at least one whsec_ secret. tolerance bounds the
// distance between webhook-timestamp and the local clock; zero means
// [DefaultTolerance].
func NewVerifier(secrets []string, tolerance time.Duration) (*Verifier, error) {
	if tolerance < 0 {
		return nil, fmt.Errorf("webhook tolerance %s is negative", tolerance)
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	keys, err := newKeys(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys, tolerance: tolerance}, nil
}

// Verify checks that header carries a valid signature of body. It returns
// nil if the timestamp is within the tolerance and at least one v1
// signature matches with at least one secret. Otherwise the error wraps
// ErrMissingHeader, ErrInvalidTimestamp, ErrTimestampTooOld,
// ErrTimestampTooNew or ErrNoValidSignature. Several webhook-signature
// header lines are read as one space-separated list.
func (v *Verifier) Verify(header http.Header, body []byte) error {
	return v.verify(header, body, time.Now())
}

func (v *Verifier) verify(header http.Header, body []byte, now time.Time) error {
	id := first(headerValues(header, HeaderID))
	if id == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderID)
	}
	rawTimestamp := first(headerValues(header, HeaderTimestamp))
	if rawTimestamp == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderTimestamp)
	}
	// The reference library splits the list on single spaces.
	signature := strings.Join(strings.Fields(strings.Join(headerValues(header, HeaderSignature), " ")), " ")
	if signature == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderSignature)
	}

	timestamp, err := ParseTimestamp(rawTimestamp)
	if err != nil {
		return err
	}
	if err := v.checkTimestamp(timestamp, now); err != nil {
		return err
	}

	n := countV1(signature)
	if n == 0 {
		return fmt.Errorf("%w: %s contains no v1 signature", ErrNoValidSignature, HeaderSignature)
	}

	// The reference library reads the canonical header keys, so hand it
	// the values read above under those keys.
	canonical := http.Header{}
	canonical.Set(HeaderID, id)
	canonical.Set(HeaderTimestamp, rawTimestamp)
	canonical.Set(HeaderSignature, signature)
	for i, key := range v.keys {
		// The timestamp was checked above against v.tolerance; the
		// library's own check has a fixed tolerance.
		err := key.VerifyIgnoringTimestamp(body, canonical)
		if err == nil {
			return nil
		}
		if !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			return fmt.Errorf("verify webhook %s with secret %d: %w", id, i+1, err)
		}
	}
	return fmt.Errorf("%w: none of the %d v1 signatures matches the body with any of the %d secrets", ErrNoValidSignature, n, len(v.keys))
}

// ParseTimestamp parses a webhook-timestamp value: Unix seconds as decimal
// digits without a sign. The error wraps ErrInvalidTimestamp.
func ParseTimestamp(raw string) (time.Time, error) {
	if raw == "" || len(raw) > maxTimestampDigits {
		return time.Time{}, fmt.Errorf("%w: %s %q is not 1 to %d decimal digits of Unix seconds", ErrInvalidTimestamp, HeaderTimestamp, raw, maxTimestampDigits)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] < '0' || raw[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: %s %q is not a number of Unix seconds", ErrInvalidTimestamp, HeaderTimestamp, raw)
		}
	}
	secs, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q: %w", ErrInvalidTimestamp, HeaderTimestamp, raw, err)
	}
	return time.Unix(secs, 0), nil
}

// checkTimestamp compares times rather than their difference, because
// time.Time.Sub saturates for timestamps centuries away.
func (v *Verifier) checkTimestamp(timestamp, now time.Time) error {
	if timestamp.Before(now.Add(-v.tolerance)) {
		return fmt.Errorf("%w: %s is %s old, more than the tolerance of %s", ErrTimestampTooOld, HeaderTimestamp, now.Sub(timestamp).Truncate(time.Second), v.tolerance)
	}
	if timestamp.After(now.Add(v.tolerance)) {
		return fmt.Errorf("%w: %s is %s in the future, more than the tolerance of %s; check the sender's clock", ErrTimestampTooNew, HeaderTimestamp, timestamp.Sub(now).Truncate(time.Second), v.tolerance)
	}
	return nil
}

// Secrets returns how many secrets the Verifier accepts.
func (v *Verifier) Secrets() int { return len(v.keys) }

// Tolerance returns the accepted distance between webhook-timestamp and
// the local clock.
func (v *Verifier) Tolerance() time.Duration { return v.tolerance }

// String describes the Verifier by its number of secrets and tolerance.
func (v *Verifier) String() string {
	return fmt.Sprintf("webhook.Verifier{secrets: %d, tolerance: %s}", len(v.keys), v.tolerance)
}

// GoString is String, so that %#v does not print the keys either.
func (v *Verifier) GoString() string { return v.String() }

// countV1 counts the entries of a webhook-signature value that are v1
// (HMAC-SHA256) signatures. Entries of other versions, such as v1a
// (ed25519), are not counted.
func countV1(signature string) int {
	n := 0
	for _, entry := range strings.Fields(signature) {
		if strings.HasPrefix(entry, "v1,") {
			n++
		}
	}
	return n
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}
