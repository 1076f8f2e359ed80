package ingest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
)

// Result link settings.
const (
	// DefaultResultLinkTTL is how long a signed link to a stored result
	// works by default.
	DefaultResultLinkTTL = 15 * time.Minute

	// MinResultSigningKeyLen is the shortest ResultSigningKey accepted, in
	// bytes: as long as the HMAC-SHA256 output, so the key is not the
	// weak part.
	MinResultSigningKeyLen = 32

	// maxResultLinkTTL bounds ResultLinkTTL. A link is a bearer
	// credential, so it should not outlive a working day.
	maxResultLinkTTL = 24 * time.Hour

	// resultLinkPrefix starts the path of every signed link. The object
	// name follows it.
	resultLinkPrefix = "/v1/results/"

	// resultLinkContext starts the signed message, so that a signature
	// made with the same key for another purpose never passes as a link.
	resultLinkContext = "handoff result link v1"
)

// Errors of a signed link that does not pass [resultLinks.check].
var (
	errLinkMalformed = errors.New("the link lacks a valid expires or sig parameter")
	errLinkSignature = errors.New("the link's signature does not match; it was changed or made with another key")
	errLinkExpired   = errors.New("the link expired")
)

// resultLinks makes and checks the signed links to results stored by
// reference. A link is
//
//	/v1/results/<object>?expires=<unix seconds>&sig=<signature>
//
// where the signature is the unpadded base64url HMAC-SHA256, under the
// signing key, of a fixed context string, the object name and expires.
// The object name contains the tenant, so a link is bound to the tenant's
// result, and no part of the link can be changed without the key. Anyone
// who holds a link can use it until it expires, without other credentials.
// It is safe for concurrent use.
type resultLinks struct {
	key []byte
	ttl time.Duration
}

// newResultLinks returns the links of cfg, which has its defaults applied.
// An empty key is replaced by a random one, and generated reports that.
func newResultLinks(cfg Config) (links *resultLinks, generated bool) {
	key := []byte(cfg.ResultSigningKey)
	if len(key) == 0 {
		key = make([]byte, MinResultSigningKeyLen)
		// crypto/rand.Read never returns an error since Go 1.24.
		_, _ = rand.Read(key)
		generated = true
	}
	return &resultLinks{key: key, ttl: cfg.ResultLinkTTL}, generated
}

// newServerLinks returns the links of a server with cfg, and warns when
// the server made its own key.
func newServerLinks(cfg Config, log *zap.Logger) *resultLinks {
	links, generated := newResultLinks(cfg)
	if generated {
		log.Warn("no result signing key is configured, so links to stored results use a random key: other instances reject them and a restart invalidates them; set the same key on every instance")
	}
	return links
}

// link returns the path of a link to object that works until the returned
// time, ttl after now at most.
func (l *resultLinks) link(object string, now time.Time) (string, time.Time) {
	expires := now.Add(l.ttl).Truncate(time.Second)
	unix := expires.Unix()
	path := resultLinkPrefix + object + "?expires=" + strconv.FormatInt(unix, 10) + "&sig=" + l.signature(object, unix)
	return path, expires.UTC()
}

// check returns nil when expires and sig are a valid signature of object
// that has not expired at now, and otherwise one of the errLink errors.
// It compares signatures in constant time.
func (l *resultLinks) check(object, expires, sig string, now time.Time) error {
	unix, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || unix <= 0 || sig == "" {
		return errLinkMalformed
	}
	want := l.signature(object, unix)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return errLinkSignature
	}
	if !now.Before(time.Unix(unix, 0)) {
		return fmt.Errorf("%w at %s", errLinkExpired, time.Unix(unix, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func (l *resultLinks) signature(object string, expires int64) string {
	mac := hmac.New(sha256.New, l.key)
	mac.Write([]byte(resultLinkContext + "\x00" + object + "\x00" + strconv.FormatInt(expires, 10)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// withLink returns the view of task, with a signed link to its stored
// result when it has one.
func (l *resultLinks) withLink(task *events.Task, now time.Time) events.View {
	v := task.View()
	if v.ResultRef != nil {
		url, expires := l.link(v.ResultRef.Object, now)
		v.ResultRef.URL = url
		v.ResultRef.ExpiresAt = &expires
	}
	return v
}

// validateResultLinks checks the result link fields of c.
func (c Config) validateResultLinks() error {
	if n := len(c.ResultSigningKey); n > 0 && n < MinResultSigningKeyLen {
		return fmt.Errorf("%w: ResultSigningKey is %d bytes long; it must be at least %d, such as the output of 'openssl rand -base64 32'", ErrInvalidConfig, n, MinResultSigningKeyLen)
	}
	if c.ResultLinkTTL < time.Second || c.ResultLinkTTL > maxResultLinkTTL {
		return fmt.Errorf("%w: ResultLinkTTL is %s; it must be between 1s and %s", ErrInvalidConfig, c.ResultLinkTTL, maxResultLinkTTL)
	}
	return nil
}
