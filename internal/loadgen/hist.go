package loadgen

import (
	"math/bits"
	"time"
)

// The histogram keeps histSubBits bits of precision: values below
// 2<<histSubBits nanoseconds have a bucket each, and every power of two
// above that is split into 1<<histSubBits equal buckets, so a bucket spans at
// most 1/32 of its lower bound. Values of 2^histMaxBits ns (about 137 s) and
// more share the last bucket.
const (
	histSubBits  = 5
	histSub      = 1 << histSubBits
	histMaxBits  = 37
	histBuckets  = 2*histSub + (histMaxBits-histSubBits-1)*histSub
	histMaxValue = 1<<histMaxBits - 1
)

// Histogram records durations in log-spaced buckets, like HdrHistogram with
// about 1.5 significant digits: a quantile is reported as the middle of its
// bucket, within 1.6% of a recorded value. Its memory is fixed (about 8 KiB)
// and Record does not allocate. The zero value is empty and ready to use.
// A Histogram is not safe for concurrent use; give each goroutine its own
// and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64 // nanoseconds, saturating
	min    time.Duration
	max    time.Duration
}

func histIndex(v uint64) int {
	if v > histMaxValue {
		v = histMaxValue
	}
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1) // ≥ 1
	top := v >> shift                          // in [histSub, 2*histSub)
	return 2*histSub + (shift-1)*histSub + int(top-histSub)
}

// histBounds returns the smallest and largest value that fall in bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	shift := (i-2*histSub)/histSub + 1
	top := uint64((i-2*histSub)%histSub + histSub)
	lo = top << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	if s := h.sum + uint64(d); s >= h.sum {
		h.sum = s
	}
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	if s := h.sum + o.sum; s >= h.sum {
		h.sum = s
	}
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest value recorded, exactly; 0 if none.
func (h *Histogram) Max() time.Duration { return h.max }

// Min returns the smallest value recorded, exactly; 0 if none.
func (h *Histogram) Min() time.Duration { return h.min }

// Mean returns the average of the values recorded; 0 if none.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the value below or at which a fraction q (0 to 1) of the
// recorded values lie: the middle of the bucket holding the ⌈q·n⌉-th
// smallest value, clamped to [Min, Max]. It returns 0 for an empty
// histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q*float64(h.n) + 0.999999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			v := time.Duration(lo + (hi-lo)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
