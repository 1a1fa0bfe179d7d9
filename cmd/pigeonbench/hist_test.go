package main

import (
	"testing"
	"time"
)

// TestHistQuantile: the quantile is the nearest rank, never below it,
// and within the bucket error (under 0.8%) above it.
func TestHistQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 60; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 30 * time.Millisecond}, {0.9, 54 * time.Millisecond}, {0.99, 60 * time.Millisecond}, {1, 60 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.008 {
			t.Errorf("q%v = %v, want %v (+0.8%%)", c.q, got, c.want)
		}
	}
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1 << 40, 1<<62 + 12345} {
		i := bucket(v)
		if lower(i) > v || (i+1 < len(h.counts) && lower(i+1) <= v) {
			t.Errorf("value %d in bucket %d = [%d, %d)", v, i, lower(i), lower(i+1))
		}
	}
}
