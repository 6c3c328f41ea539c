package sensor

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"time"
)

// ways is the number of slots in a set of the table.
const ways = 8

// table holds the counts of one poll, per source, in fixed memory. It is
// used by one goroutine at a time (Run's) and holds no pointer, so the
// garbage collector does not scan it.
type table struct {
	seed    maphash.Seed
	slots   []slot
	sets    uint64  // a power of two
	used    []int32 // slots taken since the last flush, in order
	evicted uint64
}

// slot is one source's counts. addr is the address in 16 bytes, IPv4 as
// IPv4-mapped; taken tells a slot in use from an empty one.
type slot struct {
	addr  [16]byte
	n     [numKinds]uint64
	taken bool
}

// newTable returns a table of at least sources slots, rounded up to a
// power of two number of sets.
func newTable(sources int) *table {
	sets := uint64(1) << bits.Len64(uint64((sources+ways-1)/ways-1))
	return &table{
		seed:  maphash.MakeSeed(),
		slots: make([]slot, sets*ways),
		sets:  sets,
		used:  make([]int32, 0, sets*ways),
	}
}

// add counts n packets of kind from addr. If addr's set is full, the
// slot with the smallest count is reported to sink and given to addr. It
// does not allocate.
func (t *table) add(addr [16]byte, kind Kind, n uint64, sink Sink, now time.Time) {
	set := maphash.Bytes(t.seed, addr[:]) & (t.sets - 1)
	ss := t.slots[set*ways : (set+1)*ways : (set+1)*ways]
	free, low := -1, 0
	var lowN uint64 = 1<<64 - 1
	for i := range ss {
		s := &ss[i]
		if !s.taken {
			if free < 0 {
				free = i
			}
			continue
		}
		if s.addr == addr {
			s.n[kind] += n
			return
		}
		if total := s.n[SYN] + s.n[KernelDropped]; total < lowN {
			low, lowN = i, total
		}
	}
	if free < 0 {
		t.evicted++
		report(&ss[low], sink, now)
		free = low
	} else {
		t.used = append(t.used, int32(set*ways)+int32(free))
	}
	ss[free] = slot{addr: addr, taken: true}
	ss[free].n[kind] = n
}

// flush reports every source counted since the last flush to sink and
// empties the table.
func (t *table) flush(sink Sink, now time.Time) {
	for _, i := range t.used {
		report(&t.slots[i], sink, now)
		t.slots[i] = slot{}
	}
	t.used = t.used[:0]
}

// report hands s's counts to sink.
func report(s *slot, sink Sink, now time.Time) {
	src := netip.AddrFrom16(s.addr).Unmap()
	for k, n := range s.n {
		if n > 0 && sink != nil {
			sink.Sensed(src, Kind(k), n, now)
		}
	}
}
