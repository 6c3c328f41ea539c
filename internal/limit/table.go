package limit

import (
	"math"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// ways is the associativity of the rate table: the entries of one set,
// which together with its lock fill two cache lines.
const ways = 7

// setBytes is the size of a set; a test checks it against unsafe.Sizeof.
const setBytes = 128

// A set holds up to ways keys whose hashes chose it. It is guarded by its
// own spinlock, mu: critical sections are a few dozen instructions, so a
// full mutex would cost more than the work, and with one lock per set two
// goroutines contend only when they touch the same set.
//
// The fields are laid out as arrays so that the tag scan of a lookup reads
// the first cache line and the bucket times sit in the second.
type set struct {
	mu atomic.Uint32 // 1 while held; guards the fields below
	// tag identifies the key of each way: 0 is an empty way; otherwise bit
	// 1 is set, bit 0 is bannedBit and bits 2-31 come from the key hash.
	tag [ways]uint32
	// drop is the key's drop bucket, as its theoretical arrival time in
	// microseconds minus tat/1000 (see setTat and Limiter.dropLocked). While the way is
	// banned it is the index of the ban record instead.
	drop [ways]int32
	_    uint32
	// tat is the token bucket as a GCRA theoretical arrival time, a
	// reading of the Limiter's monotonic clock (Limiter.ns): the bucket is full when tat <= now and has no token
	// left when tat > now+limit-interval. While the way is banned it is
	// the ban's end.
	tat [ways]int64
	// line2 is never written: loading it pulls the second cache line in
	// before the lock is taken (see keyPair.touch) without a data race.
	line2 atomic.Uint64
}

var _ [setBytes - unsafe.Sizeof(set{})]byte // set must fit in setBytes...
var _ [unsafe.Sizeof(set{}) - setBytes]byte // ...and fill it exactly

const bannedBit = 1

// tagOf returns the tag stored for hash h, without bannedBit.
func tagOf(h uint64) uint32 { return uint32(h)&^bannedBit | 2 }

func (s *set) lock() {
	if s.mu.CompareAndSwap(0, 1) {
		return
	}
	s.lockSlow()
}

func (s *set) lockSlow() {
	for spins := 0; ; spins++ {
		if s.mu.Load() == 0 && s.mu.CompareAndSwap(0, 1) {
			return
		}
		if spins%16 == 15 {
			// The holder may have been descheduled; let it run.
			runtime.Gosched()
		}
	}
}

func (s *set) unlock() { s.mu.Store(0) }

// find returns the way holding tag, or -1.
func (s *set) find(tag uint32) int {
	for i := range ways {
		if s.tag[i]&^bannedBit == tag {
			return i
		}
	}
	return -1
}

// victim returns the way a new key should take, other than skip: an empty
// way, or else the way with the smallest tat. A small tat means a full
// bucket (tat <= now means a bucket exactly as a new key would get), so
// the way evicted is the one whose state is worth least; a heavy hitter,
// whose tat runs ahead of the clock, is evicted only by heavier ones.
func (s *set) victim(skip int) int {
	// Branch-free but for the loop: which way wins is unpredictable, and a
	// mispredicted branch per way would cost more than the scan.
	best, bestTat := 0, int64(math.MaxInt64)
	if skip == 0 {
		best = 1
	}
	for i := range ways {
		v := s.tat[i]
		if s.tag[i] == 0 {
			v = math.MinInt64
		}
		if i == skip {
			v = math.MaxInt64
		}
		if v < bestTat {
			best, bestTat = i, v
		}
	}
	return best
}

// index maps a key hash onto n sets by Lemire's multiply-shift reduction
// (no power of two needed). The result depends on the high bits of h and
// the tag on the low 32, so the two do not correlate.
func index(h, n uint64) uint64 {
	hi, _ := bits.Mul64(h, n)
	return hi
}
