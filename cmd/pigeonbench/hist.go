package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is an HDR-style latency histogram in nanoseconds: exact below 256
// ns, then 128 buckets per power of two (under 0.8% error), up to 2^63.
// Record is lock-free, so every receiver can record into one histogram.
type hist struct {
	counts [256 + 56*128]atomic.Uint64
	max    atomic.Int64
}

func bucket(v int64) int {
	if v < 256 {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - 8
	mant := int(uint64(v) >> shift) // 128..255
	return 256 + (shift-1)*128 + (mant - 128)
}

// lower is the smallest value that falls in bucket i.
func lower(i int) int64 {
	if i < 256 {
		return int64(i)
	}
	shift := (i-256)/128 + 1
	mant := int64((i-256)%128 + 128)
	return mant << shift
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucket(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *hist) total() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// quantile returns the value at quantile q (0..1): the upper end of the
// bucket that holds it, so it never understates.
func (h *hist) quantile(q float64) time.Duration {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(n)-1e-9)), 1) // nearest rank
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if i+1 < len(h.counts) {
				return min(time.Duration(lower(i+1)-1), time.Duration(h.max.Load()))
			}
			return time.Duration(h.max.Load())
		}
	}
	return time.Duration(h.max.Load())
}
