package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogramQuantilesWithinResolution(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	values := make([]time.Duration, 10_000)
	for i := range values {
		// Log-uniform from 1µs to 1s, the range of the figures.
		values[i] = time.Duration(math.Exp(r.Float64()*math.Log(1e6)) * float64(time.Microsecond))
		h.Record(values[i])
	}
	slices.Sort(values)

	require.Equal(t, uint64(len(values)), h.Count())
	for _, q := range []float64{0.01, 0.5, 0.95, 0.99, 0.999} {
		exact := values[int(math.Ceil(q*float64(len(values))))-1]
		got := h.Quantile(q)
		require.GreaterOrEqual(t, got, exact, "q=%v", q)
		require.LessOrEqual(t, float64(got-exact), float64(exact)/64, "q=%v: got %s, exact %s", q, got, exact)
	}
	require.Equal(t, values[len(values)-1], h.Quantile(1))
	require.Equal(t, values[len(values)-1], h.Max())
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h Histogram
	for v := range 100 {
		h.Record(time.Duration(v))
	}
	require.Equal(t, time.Duration(49), h.Quantile(0.5))
	require.Equal(t, time.Duration(98), h.Quantile(0.99))
	require.Equal(t, time.Duration(0), h.Quantile(0))
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h Histogram
	require.Zero(t, h.Quantile(0.5))
	h.Record(-time.Second)
	require.Equal(t, uint64(1), h.Count())
	require.Zero(t, h.Quantile(0.5))
}

func TestBucketBoundsContinuous(t *testing.T) {
	for _, v := range []uint64{127, 128, 129, 255, 256, 1 << 20, 1<<40 + 12345, 1 << 62} {
		i := bucketOf(v)
		require.GreaterOrEqual(t, bucketUpper(i), v, "value %d", v)
		if i > 0 {
			require.Less(t, bucketUpper(i-1), v, "value %d", v)
		}
	}
	require.Less(t, bucketOf(1<<63-1), bucketCount)
}

func TestMedian(t *testing.T) {
	require.Zero(t, median(nil))
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
	values := []float64{3, 1, 2}
	median(values)
	require.Equal(t, []float64{3, 1, 2}, values, "median must not reorder its input")
}
