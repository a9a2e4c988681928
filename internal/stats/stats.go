// Package stats holds the summary statistics Warden's measuring commands
// share: nearest-rank percentiles of latencies and medians across runs.
package stats

import (
	"cmp"
	"slices"
	"time"
)

// PercentileUS is the nearest-rank percentile p (0 < p ≤ 1) of d, in
// microseconds; 0 when d is empty. It sorts d in place.
func PercentileUS(d []time.Duration, p float64) float64 {
	return float64(Percentile(d, p).Nanoseconds()) / 1e3
}

// Percentile is the nearest-rank percentile p (0 < p ≤ 1) of v; the zero
// value when v is empty. It sorts v in place.
func Percentile[T cmp.Ordered](v []T, p float64) T {
	var zero T
	if len(v) == 0 {
		return zero
	}
	slices.Sort(v)
	i := int(float64(len(v))*p+0.999999) - 1
	i = min(max(i, 0), len(v)-1)
	return v[i]
}

// Median is the median of v (the mean of the middle two when len(v) is
// even); 0 when v is empty. v is left as it was.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MedianOf is the median of f over xs: the median across runs of one
// measurement.
func MedianOf[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return Median(v)
}
