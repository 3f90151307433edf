// Package stats holds the small amount of arithmetic the benchmark harness needs:
// percentiles of latency samples and medians of per-round figures.
package stats

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the q-quantile (0 ≤ q ≤ 1) of sorted by the nearest-rank method: the
// smallest sample such that at least q of all samples are at or below it. It returns 0 for no
// samples. Nearest rank never invents a value between two samples, so a p99 is always a
// latency some request really had.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	switch {
	case q <= 0:
		return sorted[0]
	case q >= 1:
		return sorted[n-1]
	}
	rank := int(math.Ceil(q * float64(n))) // 1-based
	return sorted[max(rank, 1)-1]
}

// Sort sorts durations in place and returns them, for Percentile.
func Sort(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

// Median returns the median of xs (the mean of the two middle values for an even count),
// ignoring NaN values; NaN when there is nothing left. xs is not modified.
func Median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// PerRequest divides a counter delta by a request count; NaN when no request was counted, so
// that a figure with no basis is shown as missing rather than as zero.
func PerRequest(delta float64, requests int64) float64 {
	if requests <= 0 {
		return math.NaN()
	}
	return delta / float64(requests)
}
