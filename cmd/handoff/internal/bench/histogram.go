package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// subBucketBits sets the histogram's resolution: every power of two is
// split into 2^(subBucketBits-1) buckets, so a quantile is off by less
// than 1/64 of its value.
const subBucketBits = 7

const (
	subBuckets    = 1 << subBucketBits
	halfBuckets   = subBuckets / 2
	bucketCount   = (64-subBucketBits+1)*halfBuckets + halfBuckets
	exactBoundary = subBuckets
)

// Histogram records durations in log-linear buckets, as HdrHistogram does:
// exact below 128ns, and within 1/64 of the value above. It is safe for
// concurrent use.
type Histogram struct {
	mu      sync.Mutex
	counts  [bucketCount]uint64
	total   uint64
	minimum time.Duration
	maximum time.Duration
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	i := bucketOf(uint64(d))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[i]++
	if h.total == 0 || d < h.minimum {
		h.minimum = d
	}
	h.maximum = max(h.maximum, d)
	h.total++
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Quantile returns the duration below or at which the fraction q of the
// recorded durations lie, as the upper end of its bucket but never more
// than the maximum recorded. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketUpper(i)), h.maximum)
		}
	}
	return h.maximum
}

// Max returns the longest duration recorded.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maximum
}

// bucketOf returns the bucket of v. Values below 128 have a bucket each.
// Above, the bucket is the value's top seven bits and its power of two.
func bucketOf(v uint64) int {
	if v < exactBoundary {
		return int(v)
	}
	shift := bits.Len64(v) - subBucketBits
	mantissa := v >> shift
	return shift*halfBuckets + int(mantissa)
}

// bucketUpper returns the largest value in bucket i.
func bucketUpper(i int) uint64 {
	if i < exactBoundary {
		return uint64(i)
	}
	shift := i/halfBuckets - 1
	mantissa := uint64(i%halfBuckets + halfBuckets)
	return (mantissa+1)<<shift - 1
}
