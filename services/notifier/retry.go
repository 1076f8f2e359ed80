package notifier

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

// jitterFraction spreads each backoff delay uniformly over ±20%, so that
// retries to one receiver after an outage do not arrive in one burst.
const jitterFraction = 0.2

// verdict is the meaning of one attempt for its event.
type verdict int

const (
	// verdictDelivered: the receiver responded with 2xx.
	verdictDelivered verdict = iota
	// verdictRetry: a network error, a timeout, 408, 429 or 5xx, which a
	// later attempt may get past.
	verdictRetry
	// verdictGiveUp: a response that a retry would not change, such as 3xx
	// or another 4xx, or a request that cannot be sent.
	verdictGiveUp
)

// classify returns the verdict on one attempt.
func classify(res attemptResult) verdict {
	switch {
	case res.Err != nil:
		if errors.Is(res.Err, webhook.ErrAddressRejected) || errors.Is(res.Err, errUnsendable) {
			return verdictGiveUp
		}
		return verdictRetry
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return verdictDelivered
	case res.StatusCode == http.StatusRequestTimeout, res.StatusCode == http.StatusTooManyRequests, res.StatusCode >= 500:
		return verdictRetry
	default:
		return verdictGiveUp
	}
}

// describe returns why an attempt failed, for the delivery record and the
// log, or "" for a delivered one.
func describe(res attemptResult) string {
	switch {
	case res.Err != nil:
		return res.Err.Error()
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return ""
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return fmt.Sprintf("receiver returned HTTP %d %s; redirects are not followed", res.StatusCode, http.StatusText(res.StatusCode))
	default:
		return fmt.Sprintf("receiver returned HTTP %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	}
}

// retryPolicy spaces the attempts of one event.
type retryPolicy struct {
	backoff       []time.Duration
	maxRetryAfter time.Duration
}

// delay returns how long to wait after failed attempt number attempt (from
// 1), and false when the backoff schedule is used up. A retryAfter longer
// than the jittered delay wins, up to maxRetryAfter.
func (p retryPolicy) delay(attempt int, retryAfter time.Duration) (time.Duration, bool) {
	if attempt < 1 || attempt > len(p.backoff) {
		return 0, false
	}
	d := jitter(p.backoff[attempt-1])
	if ra := min(retryAfter, p.maxRetryAfter); ra > d {
		d = ra
	}
	return d, true
}

// jitter returns d scaled by a random factor in [1-jitterFraction,
// 1+jitterFraction).
func jitter(d time.Duration) time.Duration {
	factor := 1 - jitterFraction + 2*jitterFraction*rand.Float64()
	return time.Duration(float64(d) * factor)
}

// parseRetryAfter returns the delay that a Retry-After value requests: a number
// of seconds, or an HTTP date measured from now. It returns 0 for an empty
// or invalid value and for a date in the past.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(value, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
