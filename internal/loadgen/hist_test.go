package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexBounds(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<20 + 12345, histMaxValue - 1, histMaxValue} {
		i := histIndex(v)
		if i < prev {
			t.Errorf("histIndex(%d) = %d, below the index of a smaller value (%d)", v, i, prev)
		}
		prev = i
		lo, hi := histBounds(i)
		if v < lo || v > hi {
			t.Errorf("histIndex(%d) = %d, whose bounds are [%d, %d]", v, i, lo, hi)
		}
		if lo > 0 && float64(hi-lo) > float64(lo)/histSub {
			t.Errorf("bucket %d = [%d, %d] is wider than 1/%d of its lower bound", i, lo, hi, histSub)
		}
	}
	if got := histIndex(histMaxValue); got != histBuckets-1 {
		t.Errorf("histIndex(max) = %d, want the last bucket %d", got, histBuckets-1)
	}
	if got := histIndex(1 << 62); got != histBuckets-1 {
		t.Errorf("histIndex(2^62) = %d, want the last bucket %d", got, histBuckets-1)
	}
	// Every bucket's bounds map back to it, and buckets tile the range.
	next := uint64(0)
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if lo != next || histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d = [%d, %d]: want it to start at %d and map back to itself", i, lo, hi, next)
		}
		next = hi + 1
	}
}

func TestHistQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 100_000)
	for i := range vals {
		// log-uniform from 1µs to 1s, like latencies
		v := time.Duration(float64(time.Microsecond) * math.Pow(1e6, rng.Float64()))
		vals[i] = v
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(q*float64(len(vals))+0.999999999), 1)
		want := vals[rank-1]
		got := h.Quantile(q)
		if err := relErr(got, want); err > 1.0/64 {
			t.Errorf("Quantile(%v) = %v, want %v within 1/64 (off by %.4f)", q, got, want, err)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("Min, Max = %v, %v; want %v, %v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("Count() = %d, want %d", h.Count(), len(vals))
	}
}

func relErr(got, want time.Duration) float64 {
	if want == 0 {
		return float64(got)
	}
	d := float64(got - want)
	if d < 0 {
		d = -d
	}
	return d / float64(want)
}

func TestHistMergeAndEmpty(t *testing.T) {
	var a, b, empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Max() != 0 || empty.Mean() != 0 {
		t.Errorf("empty histogram: Quantile, Max, Mean = %v, %v, %v; want zeros", empty.Quantile(0.5), empty.Max(), empty.Mean())
	}
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i) * time.Millisecond)
		b.Record(time.Duration(i+100) * time.Millisecond)
	}
	a.Merge(&b)
	a.Merge(&empty)
	a.Merge(nil)
	if a.Count() != 200 || a.Min() != time.Millisecond || a.Max() != 200*time.Millisecond {
		t.Errorf("merged: Count, Min, Max = %d, %v, %v; want 200, 1ms, 200ms", a.Count(), a.Min(), a.Max())
	}
	if got := a.Quantile(0.5); relErr(got, 100*time.Millisecond) > 1.0/64 {
		t.Errorf("merged: Quantile(0.5) = %v, want about 100ms", got)
	}
	if got := a.Mean(); got != 100500*time.Microsecond {
		t.Errorf("merged: Mean() = %v, want 100.5ms", got)
	}
	a.Record(-time.Second)
	if a.Min() != 0 {
		t.Errorf("after Record(-1s): Min() = %v, want 0", a.Min())
	}
}

func TestHistRecordDoesNotAllocate(t *testing.T) {
	h := new(Histogram)
	d := time.Duration(0)
	if n := testing.AllocsPerRun(1000, func() { d += 7919; h.Record(d) }); n != 0 {
		t.Errorf("Record allocates %v times per call, want 0", n)
	}
}

func BenchmarkHistRecord(b *testing.B) {
	h := new(Histogram)
	d := time.Duration(0)
	for b.Loop() {
		d += 7919
		h.Record(d)
	}
}
