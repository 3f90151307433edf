package stats

import (
	"math"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	samples := Sort(ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5)) // 1..10 ms
	cases := []struct {
		q    float64
		want int
	}{
		{0, 1}, {0.1, 1}, {0.11, 2}, {0.5, 5}, {0.51, 6}, {0.9, 9}, {0.99, 10}, {1, 10},
	}
	for _, c := range cases {
		if got := Percentile(samples, c.q); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("Percentile(1..10ms, %v) = %v, want %dms", c.q, got, c.want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
	if got := Percentile(ms(7), 0.99); got != 7*time.Millisecond {
		t.Errorf("Percentile of one sample = %v, want it", got)
	}
}

func TestPercentileP99OfThousand(t *testing.T) {
	s := make([]time.Duration, 1000)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Microsecond
	}
	if got := Percentile(s, 0.99); got != 990*time.Microsecond {
		t.Errorf("p99 of 1..1000µs = %v, want 990µs", got)
	}
	if got := Percentile(s, 0.5); got != 500*time.Microsecond {
		t.Errorf("p50 of 1..1000µs = %v, want 500µs", got)
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5}, 5},
		{[]float64{math.NaN(), 7, 1, math.NaN(), 4}, 4},
	}
	for _, c := range cases {
		in := append([]float64(nil), c.in...)
		if got := Median(in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		if len(in) > 0 && in[0] != c.in[0] && !math.IsNaN(c.in[0]) {
			t.Errorf("Median modified its input: %v", in)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
	if got := Median([]float64{math.NaN()}); !math.IsNaN(got) {
		t.Errorf("Median(NaN) = %v, want NaN", got)
	}
}

func TestPerRequest(t *testing.T) {
	if got := PerRequest(30, 10); got != 3 {
		t.Errorf("PerRequest(30, 10) = %v, want 3", got)
	}
	if got := PerRequest(30, 0); !math.IsNaN(got) {
		t.Errorf("PerRequest(30, 0) = %v, want NaN", got)
	}
}
