package ingest

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Bounds of the rate limits of Config and of tokens file entries.
const (
	maxRateLimit = 1_000_000
	maxRateBurst = 1_000_000
)

// rateSpec is a token bucket: limit tokens per second, up to burst at
// once. A zero limit means unlimited.
type rateSpec struct {
	limit float64
	burst int
}

// forEntry returns the bucket of a tokens file entry: its own rate and
// burst where it sets them, else the defaults.
func (d rateSpec) forEntry(e TokenEntry) rateSpec {
	spec := d
	if e.Rate != nil {
		spec.limit = *e.Rate
		spec.burst = max(1, int(math.Ceil(spec.limit)))
	}
	if e.Burst > 0 {
		spec.burst = e.Burst
	}
	return spec
}

// limiter returns a limiter for the bucket, or nil when it is unlimited.
// The bucket starts full.
func (d rateSpec) limiter() *rate.Limiter {
	if d.limit <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(d.limit), max(1, d.burst))
}

// allowSubmission takes one submission from p's bucket, or returns a 429
// problem whose Retry-After gives the seconds until the bucket has one
// again.
//
// NOTE: buckets live in each instance, so N instances behind a load
// balancer allow up to N times a token's rate.
func (s *Server) allowSubmission(p *principal, now time.Time) *Problem {
	if p.limiter == nil {
		return nil
	}
	res := p.limiter.ReserveN(now, 1)
	if !res.OK() {
		// Only a burst below 1 refuses outright, and bursts are at least 1.
		return s.rateLimited(p, time.Second)
	}
	delay := res.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	res.CancelAt(now)
	return s.rateLimited(p, delay)
}

func (s *Server) rateLimited(p *principal, delay time.Duration) *Problem {
	seconds := max(1, int(math.Ceil(delay.Seconds())))
	s.log.Debug("submission over the rate limit", append(tokenFields(p), zap.Duration("delay", delay))...)
	problem := newProblem(ProblemRateLimited, http.StatusTooManyRequests,
		fmt.Sprintf("the rate limit allows %g submissions per second with a burst of %d; retry after %d s", float64(p.limiter.Limit()), p.limiter.Burst(), seconds))
	problem.retryAfter = seconds
	return problem
}
