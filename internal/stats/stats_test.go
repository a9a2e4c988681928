package stats

import (
	"testing"
	"time"
)

func TestPercentileUS(t *testing.T) {
	us := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Microsecond
		}
		return d
	}
	for _, c := range []struct {
		d    []time.Duration
		p    float64
		want float64
	}{
		{nil, 0.5, 0},
		{us(7), 0.99, 7},
		{us(4, 1, 3, 2), 0.5, 2},  // nearest rank: the 2nd of 4
		{us(4, 1, 3, 2), 0.51, 3}, // rank rounds up
		{us(5, 4, 3, 2, 1), 0.99, 5},
		{us(5, 4, 3, 2, 1), 0.01, 1},
	} {
		if got := PercentileUS(c.d, c.p); got != c.want {
			t.Errorf("PercentileUS(%v, %v) = %v, want %v", c.d, c.p, got, c.want)
		}
	}
	// 1980 of 2000 samples is p99 exactly: float error in 0.99*2000 must not
	// push the rank to 1981 (the bench's published p99s use this rank).
	d := make([]time.Duration, 2000)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Microsecond
	}
	if got := PercentileUS(d, 0.99); got != 1980 {
		t.Errorf("p99 of 1..2000 µs = %v, want 1980", got)
	}
	if got := PercentileUS(us(1500), 0.5); got != 1500 {
		t.Errorf("unit: got %v µs, want 1500", got)
	}
}

func TestMedian(t *testing.T) {
	v := []float64{3, 1, 2, 10}
	if got := Median(v); got != 2.5 {
		t.Errorf("Median(%v) = %v, want 2.5", v, got)
	}
	if v[0] != 3 || v[3] != 10 {
		t.Errorf("Median reordered its input: %v", v)
	}
	if got := Median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("odd median = %v, want 3", got)
	}
	if got := Median(nil); got != 0 {
		t.Errorf("Median(nil) = %v, want 0", got)
	}
	type run struct{ p50 float64 }
	if got := MedianOf([]run{{9}, {1}, {4}}, func(r run) float64 { return r.p50 }); got != 4 {
		t.Errorf("MedianOf = %v, want 4", got)
	}
}

func TestPercentile(t *testing.T) {
	for _, c := range []struct {
		v    []int
		p    float64
		want int
	}{
		{nil, 0.5, 0},
		{[]int{3}, 0.5, 3},
		{[]int{0, 0, 0, 9}, 0.5, 0},
		{[]int{0, 0, 0, 9}, 0.99, 9},
		{[]int{4, 1, 3, 2}, 0.75, 3},
	} {
		if got := Percentile(c.v, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.v, c.p, got, c.want)
		}
	}
}
