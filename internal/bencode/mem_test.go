package bencode

import (
	"runtime"
	"runtime/metrics"
)

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocBytes returns the bytes allocated on the heap so far. Unlike
// runtime.ReadMemStats it does not stop the world, so a fuzz target can call
// it on every input. Large allocations show at once; small ones show only
// when their span is flushed, so a reading may include earlier allocations
// or other goroutines' work.
func heapAllocBytes() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// allocBytes reports roughly the bytes f allocates (see heapAllocBytes).
func allocBytes(f func()) uint64 {
	before := heapAllocBytes()
	f()
	return heapAllocBytes() - before
}

// allocBytesOver reports whether f allocates more than limit bytes, and how
// many. A cheap reading over the limit is confirmed by running f three more
// times under runtime.ReadMemStats, which flushes every cache, and taking the
// least, so noise from the fuzzing machinery is not blamed on f. f must
// allocate the same on every call.
func allocBytesOver(f func(), limit uint64) (uint64, bool) {
	n := allocBytes(f)
	if n <= limit {
		return n, false
	}
	var before, after runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		n = min(n, after.TotalAlloc-before.TotalAlloc)
	}
	return n, n > limit
}
