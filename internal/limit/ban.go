package limit

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Ban is one ban, as Bans reports it.
type Ban struct {
	// Prefix is what is banned: an address (an IPv4 /32 or an IPv6
	// /IPv6AddressLen) or a prefix (/IPv4PrefixLen, /IPv6PrefixLen).
	Prefix netip.Prefix `json:"prefix"`
	Since  time.Time    `json:"since"`
	Until  time.Time    `json:"until"`
	// Strikes counts the bans in a row, this one included: 1 for a first
	// ban; each strike doubled the duration, up to ban_max.
	Strikes int `json:"strikes"`
	// Dropped counts the requests refused as Banned during this ban.
	Dropped uint64 `json:"dropped"`
}

// banWays is the associativity of the ban table.
const banWays = 8

// banSet is the part of eight ban records that Allow reads without a
// lock: hash and until are written only under banTable.mu, hash last, so a
// reader that sees the same hash before and after reading until has read
// a consistent pair.
type banSet struct {
	hash  [banWays]atomic.Uint64 // key hash; 0 is an empty slot
	until [banWays]atomic.Int64  // Limiter.ns; a record whose until has passed is kept for its strikes
}

// banRec is the rest of a ban record, read and written under banTable.mu
// except dropped. It holds no pointer, so the GC never scans the table.
// Its times, like banSet.until, are readings of the Limiter's monotonic
// clock (Limiter.ns).
type banRec struct {
	since   int64
	dropped atomic.Uint64
	addr    [16]byte // the masked address, As16 form for IPv4
	bits    uint8    // prefix length, of the IPv4 address for IPv4
	is4     bool
	strikes uint16
}

// banTable holds the bans apart from the rate table, so that keys evicted
// from the rate table by a flood of new sources are still banned when
// they come back; a new key looks itself up here when it enters the rate
// table. It holds up to len(sets)*banWays records in sets of banWays, and
// only a ban can take a slot, which costs its source ban_after drops: a
// flood of spoofed one-off addresses never gets that far. When every
// record of a set holds a ban still running, a new ban for that set is
// refused (counted in Stats.BansRefused): the source stays rate limited,
// and no running ban is cut short.
type banTable struct {
	sets    []banSet
	recs    []banRec      // banWays per set
	records atomic.Int64  // nonempty slots; 0 lets lookups skip the table
	first   time.Duration // ban_duration
	max     time.Duration // ban_max
	mu      sync.Mutex    // guards writes to sets and the plain fields of recs
	imposed atomic.Uint64 // bans imposed
	refused atomic.Uint64 // bans refused because the set was full
	changed chan struct{} // a token when a ban is imposed or lifted (see Limiter.BansChanged)
}

// signal leaves a token in b.changed if there is none, without waiting.
func (b *banTable) signal() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func banSetsFor(maxBans int) int { return (maxBans + banWays - 1) / banWays }

func banBytes(maxBans int) int {
	return banSetsFor(maxBans) * int(unsafe.Sizeof(banSet{})+banWays*unsafe.Sizeof(banRec{}))
}

func newBanTable(c Config) *banTable {
	n := banSetsFor(c.MaxBans)
	return &banTable{
		sets:    make([]banSet, n),
		recs:    make([]banRec, n*banWays),
		first:   c.BanDuration,
		max:     c.BanMax,
		changed: make(chan struct{}, 1),
	}
}

// lookup returns the record of a running ban of the key with hash h. It
// takes no lock and does not allocate.
func (b *banTable) lookup(h uint64, now int64) (slot int32, until int64, ok bool) {
	if b.records.Load() == 0 {
		return 0, 0, false
	}
	si := index(h, uint64(len(b.sets)))
	s := &b.sets[si]
	for i := range banWays {
		if s.hash[i].Load() != h {
			continue
		}
		u := s.until[i].Load()
		if s.hash[i].Load() != h { // rewritten while we read until
			continue
		}
		if u > now {
			return int32(int(si)*banWays + i), u, true
		}
	}
	return 0, 0, false
}

// impose bans the key with hash h, prefix p, from now: for d, or, when d
// is 0, for ban_duration or twice its previous ban while that one is
// remembered. A running ban of the key is returned as it is, unless d
// would end it later: then it is extended to now+d, keeping its start,
// strikes and count. out, if not nil, receives the ban, its times placed
// on wallNow's wall clock. ok is false when the set is full of running
// bans.
func (b *banTable) impose(h uint64, p netip.Prefix, now int64, d time.Duration, out *Ban, wallNow time.Time) (slot int32, until int64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	si := int(index(h, uint64(len(b.sets))))
	s := &b.sets[si]
	recs := b.recs[si*banWays : (si+1)*banWays]
	pick := -1
	for i := range banWays {
		if s.hash[i].Load() == h && recs[i].prefix() == p {
			pick = i
			break
		}
	}
	strikes := 1
	if pick >= 0 {
		u := s.until[pick].Load()
		if u > now {
			if d > 0 && now+int64(d) > u {
				u = now + int64(d)
				s.until[pick].Store(u) // same key: lookup reads a consistent pair
			}
			recs[pick].fill(out, u, now, wallNow)
			return int32(si*banWays + pick), u, true
		}
		if now < u+int64(b.max) {
			strikes = int(recs[pick].strikes) + 1
		}
	} else {
		pick = b.freeLocked(s, now)
		if pick < 0 {
			b.refused.Add(1)
			return 0, 0, false
		}
		if s.hash[pick].Swap(0) == 0 {
			b.records.Add(1)
		}
	}
	if d == 0 {
		d = b.duration(strikes)
	}
	until = now + int64(d)
	r := &recs[pick]
	r.since = now
	r.dropped.Store(0)
	r.setPrefix(p)
	r.strikes = uint16(min(strikes, 1<<16-1))
	s.until[pick].Store(until)
	s.hash[pick].Store(h)
	b.imposed.Add(1)
	b.signal()
	r.fill(out, until, now, wallNow)
	return int32(si*banWays + pick), until, true
}

// freeLocked returns a slot of s for a new key: an empty one, or one whose
// record is forgotten, or else the one whose ban ended first; -1 when all
// hold running bans.
func (b *banTable) freeLocked(s *banSet, now int64) int {
	pick, pickUntil := -1, now
	for i := range banWays {
		if s.hash[i].Load() == 0 {
			return i
		}
		u := s.until[i].Load()
		if u+int64(b.max) <= now {
			return i
		}
		if u <= pickUntil {
			pick, pickUntil = i, u
		}
	}
	return pick
}

// duration is the length of the ban with the given number of strikes.
func (b *banTable) duration(strikes int) time.Duration {
	d := b.first
	for range strikes - 1 {
		if d >= b.max/2 {
			return b.max
		}
		d *= 2
	}
	return min(d, b.max)
}

// remove deletes the record of key h, prefix p, and reports whether there
// was one.
func (b *banTable) remove(h uint64, p netip.Prefix) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	si := int(index(h, uint64(len(b.sets))))
	s := &b.sets[si]
	for i := range banWays {
		if s.hash[i].Load() == h && b.recs[si*banWays+i].prefix() == p {
			s.hash[i].Store(0)
			s.until[i].Store(0)
			b.records.Add(-1)
			b.signal()
			return true
		}
	}
	return false
}

// countDrop adds a request refused by the ban in slot.
func (b *banTable) countDrop(slot int32) {
	if uint(slot) < uint(len(b.recs)) {
		b.recs[slot].dropped.Add(1)
	}
}

// running returns the bans still running at now, sorted by prefix, their
// times placed on wallNow's wall clock.
func (b *banTable) running(now int64, wallNow time.Time) []Ban {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Ban
	for si := range b.sets {
		s := &b.sets[si]
		for i := range banWays {
			u := s.until[i].Load()
			if s.hash[i].Load() == 0 || u <= now {
				continue
			}
			var ban Ban
			b.recs[si*banWays+i].fill(&ban, u, now, wallNow)
			out = append(out, ban)
		}
	}
	slices.SortFunc(out, func(x, y Ban) int { return x.Prefix.Compare(y.Prefix) })
	return out
}

// busiest returns the prefixes of the k running bans that have dropped the
// most requests, most first, and how many bans are running at now. Unlike
// running it keeps only k of them, so a table full of bans costs a scan
// and not a copy and a sort of every ban.
func (b *banTable) busiest(now int64, k int) ([]netip.Prefix, int) {
	type entry struct {
		dropped uint64
		slot    int
	}
	// top is a min-heap on dropped of at most k entries.
	top := make([]entry, 0, min(k, 1024))
	less := func(i, j int) bool { return top[i].dropped < top[j].dropped }
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(top) {
				return
			}
			if c+1 < len(top) && less(c+1, c) {
				c++
			}
			if !less(c, i) {
				return
			}
			top[i], top[c] = top[c], top[i]
			i = c
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	running := 0
	for si := range b.sets {
		s := &b.sets[si]
		for i := range banWays {
			if s.hash[i].Load() == 0 || s.until[i].Load() <= now {
				continue
			}
			running++
			e := entry{b.recs[si*banWays+i].dropped.Load(), si*banWays + i}
			switch {
			case len(top) < k:
				top = append(top, e)
				for j := len(top) - 1; j > 0 && less(j, (j-1)/2); j = (j - 1) / 2 {
					top[j], top[(j-1)/2] = top[(j-1)/2], top[j]
				}
			case k > 0 && e.dropped > top[0].dropped:
				top[0] = e
				down(0)
			}
		}
	}
	slices.SortFunc(top, func(x, y entry) int { return cmp.Compare(y.dropped, x.dropped) })
	out := make([]netip.Prefix, len(top))
	for i, e := range top {
		out[i] = b.recs[e.slot].prefix()
	}
	return out, running
}

// fill sets *out, if out is not nil, to r's ban ending at until, with
// wall-clock times relative to wallNow, whose reading is now.
func (r *banRec) fill(out *Ban, until, now int64, wallNow time.Time) {
	if out == nil {
		return
	}
	*out = Ban{
		Prefix:  r.prefix(),
		Since:   wall(r.since, now, wallNow),
		Until:   wall(until, now, wallNow),
		Strikes: int(r.strikes),
		Dropped: r.dropped.Load(),
	}
}

func (r *banRec) setPrefix(p netip.Prefix) {
	r.addr = p.Addr().As16()
	r.bits = uint8(p.Bits())
	r.is4 = p.Addr().Is4()
}

func (r *banRec) prefix() netip.Prefix {
	a := netip.AddrFrom16(r.addr)
	if r.is4 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(r.bits))
}
