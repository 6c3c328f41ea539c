package limit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"

	"warden/internal/confkey"
)

// Verdict is what Allow decided.
type Verdict uint8

const (
	// Allowed means serve the request.
	Allowed Verdict = iota
	// Limited means the source or its prefix is over its rate: drop the
	// request without replying.
	Limited
	// Banned means the source or its prefix is banned: drop the request.
	Banned
	// Blocked means the source is on the operator's static blocklist.
	Blocked
)

func (v Verdict) String() string {
	switch v {
	case Allowed:
		return "allowed"
	case Limited:
		return "limited"
	case Banned:
		return "banned"
	case Blocked:
		return "blocked"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Stats counts what a Limiter did since New.
type Stats struct {
	Allowed uint64 `json:"allowed"`
	Limited uint64 `json:"limited"`
	Banned  uint64 `json:"banned"`
	// Evictions counts keys pushed out of the rate table while their
	// bucket was not full (or they were banned), that is, state lost. A key
	// that takes the way of an idle key is not counted.
	Evictions uint64 `json:"evictions"`
	// BansImposed counts bans, repeats included.
	BansImposed uint64 `json:"bans_imposed"`
	// BansRefused counts bans not imposed because the ban table's set was
	// full of running bans.
	BansRefused uint64 `json:"bans_refused"`
	// KernelFilterPrefixes is how many banned or blocklisted prefixes the
	// kernel drops packets from (Guard.Filter), and KernelFilterLeftOut
	// how many did not fit and are turned away by the frontends (beyond
	// the 2,048 busiest bans and first 2,048 blocklist prefixes, counted
	// whether or not they lie inside one in the filter).
	KernelFilterPrefixes int `json:"kernel_filter_prefixes"`
	KernelFilterLeftOut  int `json:"kernel_filter_left_out"`
}

// Limiter decides whether to serve each request. It is safe for concurrent
// use; its memory is allocated by New and never grows.
type Limiter struct {
	sets    []set
	nsets   uint64
	lv      [4]level // indexed by v4Addr, v4Prefix, v6Addr, v6Prefix
	banStep int64    // drop bucket: µs per drop; 0 when bans are off
	banMax  int64    // drop bucket: µs of ban_after drops
	bans    *banTable
	stripes []stripe
	mem     int
	// inherit makes a newcomer that displaces live state inherit its tat;
	// always true outside tests that measure the alternative.
	inherit bool
	// base is New's time, with its monotonic reading: the Limiter's clock
	// is the time elapsed since base (see ns).
	base time.Time
	// mono, if set, replaces the monotonic reading of the callers' times
	// (tests: a monotonic clock they move apart from the wall clock).
	mono func() time.Duration
}

// clockBase is where the Limiter's clock starts at New, so that its
// readings stay positive (0 means "long ago" in tats and ban records)
// even for times before New, which a caller's fake clock may give.
// clockSpan bounds how far from New a reading may be; 2^61 ns is 73
// years, and 2^62+2^61 plus a year of ban still fits in an int64.
const (
	clockBase = int64(1) << 62
	clockSpan = time.Duration(1) << 61
)

// ns returns the Limiter's reading of now: nanoseconds since New on the
// monotonic clock, plus clockBase. A time.Time from time.Now carries a
// monotonic reading, which Sub uses, so a step of the wall clock (an NTP
// correction, a VM resumed) moves no bucket and lifts or imposes no ban;
// only a time without one (a test's, or one that went through Round(0))
// is measured by the wall clock. It does not allocate.
func (l *Limiter) ns(now time.Time) int64 {
	var d time.Duration
	if l.mono != nil {
		d = l.mono()
	} else {
		d = now.Sub(l.base)
	}
	return clockBase + int64(min(max(d, -clockSpan), clockSpan))
}

// wall returns the wall-clock time of the Limiter's reading t, given the
// caller's now and its reading tNow.
func wall(t, tNow int64, now time.Time) time.Time {
	return now.Add(time.Duration(t - tNow)).Round(0).UTC()
}

const (
	v4Addr = iota
	v4Prefix
	v6Addr
	v6Prefix
)

// level is one kind of key: its hash seeds, bucket and prefix length.
type level struct {
	seed, seed2 maphash.Seed
	interval    int64  // ns per token
	limit       int64  // burst*interval: how far tat may run ahead of now
	bits        int    // prefix length
	mask4       uint32 // IPv4 mask
	hi, lo      uint64 // IPv6 mask
}

// stripe is one of the counter stripes, spread so that cores counting
// different sets rarely write the same cache line.
type stripe struct {
	allowed, limited, banned, evictions atomic.Uint64
	_                                   cpu.CacheLinePad
}

const stripeCount = 32

// layout is how Config.TableBytes is divided.
type layout struct {
	sets     int // sets in the rate table
	minBytes int // smallest TableBytes for this MaxBans
	total    int // bytes allocated
}

func layoutFor(c Config) layout {
	fixed := int(unsafe.Sizeof(Limiter{}) + unsafe.Sizeof(banTable{}) + stripeCount*unsafe.Sizeof(stripe{}))
	fixed += banBytes(c.MaxBans)
	rate := c.TableBytes - fixed
	n := max(rate, 0) / setBytes
	return layout{sets: n, minBytes: fixed + setBytes, total: fixed + n*setBytes}
}

// New returns a Limiter for cfg, with the whole of its memory allocated
// (cfg.TableBytes at most). It panics if cfg.Validate fails or the system
// refuses the memory; NewGuard, which warden serve uses, returns both as
// errors. New starts nothing.
func New(cfg Config) *Limiter {
	l, err := newLimiter(cfg, "table_bytes")
	if err != nil {
		panic("limit: New: " + err.Error())
	}
	return l
}

// newLimiter is New, returning an error where New panics. key names the
// setting that sized cfg.TableBytes, for the error when the system
// refuses that much memory.
func newLimiter(cfg Config, key string) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lay := layoutFor(cfg)
	l := &Limiter{
		nsets:   uint64(lay.sets),
		bans:    newBanTable(cfg),
		stripes: make([]stripe, stripeCount),
		mem:     lay.total,
		inherit: true,
		base:    time.Now(),
	}
	var err error
	if l.sets, err = newSets(lay.sets, l); err != nil {
		return nil, confkey.Errorf(key, "%d bytes: the system refused a table that large (%v); lower it to what this machine and the process's limits (ulimit -v) allow",
			cfg.TableBytes, err)
	}
	l.lv[v4Addr] = newLevel(cfg.RatePerSec, cfg.Burst, 32, 32)
	l.lv[v4Prefix] = newLevel(cfg.PrefixRatePerSec, cfg.PrefixBurst, cfg.IPv4PrefixLen, 32)
	l.lv[v6Addr] = newLevel(cfg.RatePerSec, cfg.Burst, cfg.IPv6AddressLen, 128)
	l.lv[v6Prefix] = newLevel(cfg.PrefixRatePerSec, cfg.PrefixBurst, cfg.IPv6PrefixLen, 128)
	if cfg.BanAfter > 0 {
		l.banStep = int64(cfg.BanWindow/time.Duration(cfg.BanAfter)) / 1e3
		l.banMax = l.banStep * int64(cfg.BanAfter)
	}
	return l, nil
}

func newLevel(rate float64, burst, bits, width int) level {
	iv := max(int64(math.Round(1e9/rate)), 1)
	lv := level{
		seed:     maphash.MakeSeed(),
		seed2:    maphash.MakeSeed(),
		interval: iv,
		limit:    iv * int64(burst),
		bits:     bits,
	}
	if width == 32 {
		lv.mask4 = ^uint32(0) << (32 - bits)
		if bits == 0 {
			lv.mask4 = 0
		}
	} else {
		lv.hi, lv.lo = mask128(bits)
	}
	return lv
}

func mask128(bits int) (hi, lo uint64) {
	switch {
	case bits == 0:
		return 0, 0
	case bits <= 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 128:
		return ^uint64(0), ^uint64(0)
	}
	return ^uint64(0), ^uint64(0) << (128 - bits)
}

// hash4 and hash6 return the key hash of an address at this level; it is
// never 0, which the ban table uses for an empty slot.
func (lv *level) hash4(v uint32) uint64 {
	return maphash.Comparable(lv.seed, uint64(v&lv.mask4)) | 1
}

func (lv *level) hash6(hi, lo uint64) uint64 {
	k := hi & lv.hi
	if lv.lo != 0 {
		k ^= maphash.Comparable(lv.seed2, lo&lv.lo)
	}
	return maphash.Comparable(lv.seed, k) | 1
}

// prefix returns the key of a (unmapped) at this level as a prefix.
func (lv *level) prefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a.WithZone(""), lv.bits).Masked()
}

// MemoryBytes returns the bytes New allocated for l, at most
// Config.TableBytes. It never changes.
func (l *Limiter) MemoryBytes() int { return l.mem }

// Allow decides whether to serve a request from src at now, and charges
// it to src's address and prefix. An IPv4-mapped IPv6 address counts as
// the IPv4 address, a zone is ignored, and the zero Addr counts as "::".
// now is the caller's clock, normally time.Now, and may be coarse (a
// millisecond is plenty). Allow measures time by its monotonic reading
// (see Limiter.ns), so a wall clock stepped back or forward changes no
// verdict; a time without one is only stricter while it runs backwards.
//
// Allow is safe for concurrent use and does not allocate. It blocks only
// on the spinlocks of src's two sets, held for a few dozen instructions,
// and on the ban table's mutex when it imposes a ban. Its cost does not
// grow with the number of sources, but it is one memory round trip when
// its sets are not in the CPU's cache, as with many distinct sources and
// a table larger than the cache: use AllowBatch to overlap those.
func (l *Limiter) Allow(src netip.Addr, now time.Time) Verdict {
	var k keyPair
	src = l.keys(&k, src)
	k.touch()
	return l.allowKeys(&k, l.ns(now), src)
}

// batchWindow is how many sources AllowBatch looks up at once: enough to
// keep the CPU's outstanding cache misses busy.
const batchWindow = 16

// AllowBatch is Allow for each of srcs at the same now: verdicts[i] is the
// verdict for srcs[i]. It panics if verdicts is shorter than srcs. It
// finds the sets of up to 16 sources before it charges the first, so
// their cache misses overlap: with a table larger than the CPU caches and
// many distinct sources it costs a fraction of as many calls to Allow.
// It is meant for a frontend that reads datagrams in batches.
func (l *Limiter) AllowBatch(srcs []netip.Addr, now time.Time, verdicts []Verdict) {
	verdicts = verdicts[:len(srcs)]
	t := l.ns(now)
	var ks [batchWindow]keyPair
	var as [batchWindow]netip.Addr
	for len(srcs) > 0 {
		n := min(len(srcs), batchWindow)
		for i := range n {
			as[i] = l.keys(&ks[i], srcs[i])
			ks[i].touch()
		}
		for i := range n {
			verdicts[i] = l.allowKeys(&ks[i], t, as[i])
		}
		srcs, verdicts = srcs[n:], verdicts[n:]
	}
}

// keyPair is where a source's two keys live.
type keyPair struct {
	ha, hp uint64 // key hashes
	la, lp *level
	sa, sp *set
	ia, ip uint64 // set indexes
}

// keys fills k for src and returns src unmapped. The zero Addr counts as
// the IPv6 unspecified address.
func (l *Limiter) keys(k *keyPair, src netip.Addr) netip.Addr {
	src = src.Unmap()
	if !src.IsValid() {
		src = netip.IPv6Unspecified()
	}
	if src.Is4() {
		b := src.As4()
		v := binary.BigEndian.Uint32(b[:])
		k.la, k.lp = &l.lv[v4Addr], &l.lv[v4Prefix]
		k.ha, k.hp = k.la.hash4(v), k.lp.hash4(v)
	} else {
		b := src.As16()
		hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		k.la, k.lp = &l.lv[v6Addr], &l.lv[v6Prefix]
		k.ha, k.hp = k.la.hash6(hi, lo), k.lp.hash6(hi, lo)
	}
	k.ia, k.ip = index(k.ha, l.nsets), index(k.hp, l.nsets)
	k.sa, k.sp = &l.sets[k.ia], &l.sets[k.ip]
	return src
}

// touch loads both cache lines of both sets, so that their misses (or,
// in a batch, many) are under way at once: the first locked instruction
// would wait for its own line alone, and the second line would be
// fetched only when the set is scanned.
func (k *keyPair) touch() {
	_ = uint64(k.sa.mu.Load()+k.sp.mu.Load()) + k.sa.line2.Load() + k.sp.line2.Load()
}

// lock locks both sets, in index order so that two callers cannot wait
// for each other.
func (k *keyPair) lock() {
	switch {
	case k.ia == k.ip:
		k.sa.lock()
	case k.ia < k.ip:
		k.sa.lock()
		k.sp.lock()
	default:
		k.sp.lock()
		k.sa.lock()
	}
}

func (k *keyPair) unlock() {
	k.sa.unlock()
	if k.ia != k.ip {
		k.sp.unlock()
	}
}

// Charge takes n more tokens from the buckets of src's address and
// prefix, at most emptying them, for a request that cost more than the
// one token Allow took (a refused announce: see Config.RefusalCost). A
// key not in the table, or banned, is left as it is. It does not
// allocate.
func (l *Limiter) Charge(src netip.Addr, n int, now time.Time) {
	if n <= 0 {
		return
	}
	var k keyPair
	l.keys(&k, src)
	t := l.ns(now)
	k.lock()
	for _, c := range [2]struct {
		s  *set
		h  uint64
		lv *level
	}{{k.sa, k.ha, k.la}, {k.sp, k.hp, k.lp}} {
		if w := c.s.find(tagOf(c.h)); w >= 0 && c.s.tag[w]&bannedBit == 0 {
			setTat(c.s, w, min(max(c.s.tat[w], t)+int64(n)*c.lv.interval, t+c.lv.limit), t)
		}
	}
	k.unlock()
}

// allowKeys is Allow once the keys are known.
func (l *Limiter) allowKeys(k *keyPair, t int64, src netip.Addr) Verdict {
	sa, sp := k.sa, k.sp
	k.lock()
	v, evicted := l.decideLocked(sa, sp, k.ha, k.hp, k.la, k.lp, t, src)
	k.unlock()
	st := &l.stripes[k.ia%stripeCount]
	switch v {
	case Allowed:
		st.allowed.Add(1)
	case Limited:
		st.limited.Add(1)
	default:
		st.banned.Add(1)
	}
	if evicted > 0 {
		st.evictions.Add(uint64(evicted))
	}
	return v
}

// decideLocked finds or inserts both keys and charges the request. The
// caller holds sa and sp.
func (l *Limiter) decideLocked(sa, sp *set, ha, hp uint64, la, lp *level, t int64, src netip.Addr) (Verdict, int) {
	evicted := 0
	wa := sa.find(tagOf(ha))
	if wa < 0 {
		var ev bool
		wa, ev = l.insertLocked(sa, ha, la, t, -1)
		evicted += b2i(ev)
	}
	wp := sp.find(tagOf(hp))
	if wp < 0 {
		skip := -1
		if sa == sp {
			skip = wa
		}
		var ev bool
		wp, ev = l.insertLocked(sp, hp, lp, t, skip)
		evicted += b2i(ev)
	}
	if l.bannedLocked(sa, wa, t) || l.bannedLocked(sp, wp, t) {
		return Banned, evicted
	}
	ta := max(sa.tat[wa], t) + la.interval
	tp := max(sp.tat[wp], t) + lp.interval
	okA, okP := ta-t <= la.limit, tp-t <= lp.limit
	if okA && okP {
		setTat(sa, wa, ta, t)
		setTat(sp, wp, tp, t)
		return Allowed, evicted
	}
	if !okA {
		return l.dropLocked(sa, wa, ha, la, t, src), evicted
	}
	return l.dropLocked(sp, wp, hp, lp, t, src), evicted
}

// insertLocked puts the key with hash h into s, in place of the victim
// way (not skip), and reports whether live state was evicted: then the
// newcomer inherits the victim's tat, capped so that it may send one
// request at once (see the package doc). A key with a running ban comes
// back banned.
func (l *Limiter) insertLocked(s *set, h uint64, lv *level, t int64, skip int) (int, bool) {
	w := s.victim(skip)
	live := s.tag[w] != 0 && s.tat[w] > t
	nt := t
	if live && l.inherit {
		nt = min(s.tat[w], t+lv.limit-lv.interval)
	}
	s.tag[w] = tagOf(h)
	s.tat[w] = nt
	s.drop[w] = clamp32(t/1e3 - nt/1e3)
	if slot, until, ok := l.bans.lookup(h, t); ok {
		s.tag[w] |= bannedBit
		s.tat[w] = until
		s.drop[w] = slot
	}
	return w, live
}

// bannedLocked reports whether way w of s is banned at t, counting the
// request on the ban, and clears a ban that has ended.
func (l *Limiter) bannedLocked(s *set, w int, t int64) bool {
	if s.tag[w]&bannedBit == 0 {
		return false
	}
	if t < s.tat[w] {
		l.bans.countDrop(s.drop[w])
		return true
	}
	s.tag[w] &^= bannedBit // the ban is over: a full bucket again
	s.tat[w] = t
	s.drop[w] = 0
	return false
}

// setTat moves the token bucket of way w to nt, keeping its drop bucket
// where it was. The drop bucket is stored relative to tat in 32 bits of
// microseconds: between touches both are frozen, so the offset never goes
// stale, and at a touch at t the drop TAT lies in [t, t+ban_window] and
// tat in [t, t+fill], both at most 30 minutes, so it fits.
func setTat(s *set, w int, nt, t int64) {
	d := max(s.tat[w]/1e3+int64(s.drop[w]), t/1e3)
	s.tat[w] = nt
	s.drop[w] = clamp32(d - nt/1e3)
}

// dropLocked counts a refused request on way w of s, banning the key on
// its ban_after-th drop within ban_window.
func (l *Limiter) dropLocked(s *set, w int, h uint64, lv *level, t int64, src netip.Addr) Verdict {
	if l.banStep == 0 {
		return Limited
	}
	tu := t / 1e3
	d := max(s.tat[w]/1e3+int64(s.drop[w]), tu) + l.banStep
	if d-tu >= l.banMax {
		if slot, until, ok := l.bans.impose(h, lv.prefix(src), t, 0, nil, time.Time{}); ok {
			s.tag[w] |= bannedBit
			s.tat[w] = until
			s.drop[w] = slot
			l.bans.countDrop(slot)
			return Banned
		}
		d = tu // the ban table is full here: count afresh
	}
	s.drop[w] = clamp32(d - s.tat[w]/1e3)
	return Limited
}

func clamp32(v int64) int32 {
	return int32(min(max(v, math.MinInt32), math.MaxInt32))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Stats returns the counters. It takes no lock and does not allocate.
func (l *Limiter) Stats() Stats {
	var s Stats
	for i := range l.stripes {
		st := &l.stripes[i]
		s.Allowed += st.allowed.Load()
		s.Limited += st.limited.Load()
		s.Banned += st.banned.Load()
		s.Evictions += st.evictions.Load()
	}
	s.BansImposed = l.bans.imposed.Load()
	s.BansRefused = l.bans.refused.Load()
	return s
}

// Bans returns the bans running at now, sorted by prefix, for the admin
// API and firewall exporters. Their Since and Until are wall-clock times
// as now's wall clock has them: a ban measured on the monotonic clock,
// placed relative to now. It holds the ban table's mutex while it copies
// them (Allow does not wait for it unless it imposes a ban) and allocates
// the result.
func (l *Limiter) Bans(now time.Time) []Ban {
	return l.bans.running(l.ns(now), now)
}

// BusiestBans returns the prefixes of the k running bans that have
// dropped the most requests, most first, and how many bans are running at
// now. It holds the ban table's mutex while it scans it, and allocates
// only the result.
func (l *Limiter) BusiestBans(now time.Time, k int) ([]netip.Prefix, int) {
	return l.bans.busiest(l.ns(now), k)
}

// BansChanged returns a channel that holds a token once a ban has been
// imposed or lifted since it was last read (not when a ban runs out), so
// that whoever copies the bans elsewhere can do it at once.
func (l *Limiter) BansChanged() <-chan struct{} { return l.bans.changed }

// Unban lifts the ban of p, an address or prefix as Bans reports it, and
// forgets its strikes; the key starts again with a full bucket. It reports
// whether p had a ban record (running or remembered). A prefix of any
// other length than the Limiter's keys has none.
func (l *Limiter) Unban(p netip.Prefix) bool {
	h, key, ok := l.keyOf(p)
	if !ok {
		return false
	}
	found := l.bans.remove(h, key)
	s := &l.sets[index(h, l.nsets)]
	s.lock()
	if w := s.find(tagOf(h)); w >= 0 && (found || s.tag[w]&bannedBit != 0) {
		s.tag[w] &^= bannedBit
		s.tat[w] = 0
		s.drop[w] = 0
	}
	s.unlock()
	return found
}

// MaxBan is the longest ban Ban imposes.
const MaxBan = 366 * 24 * time.Hour

// ErrBanTableFull is returned by Ban when every record of the ban table
// that could hold the key holds a running ban (see Stats.BansRefused).
var ErrBanTableFull = errors.New("limit: ban table full for this key: every record that could hold it has a running ban")

// Ban bans p from now for d, as if p had earned it: the ban goes into the
// same table as the automatic ones, so Bans lists it, the socket filter
// copies an IPv4 one, and Allow refuses p's sources as Banned until it
// ends. It works whether or not automatic bans are on (ban_after).
//
// p must be a key of the Limiter, as Bans reports keys: an IPv4 /32 or
// /IPv4PrefixLen, or an IPv6 /IPv6AddressLen or /IPv6PrefixLen, without
// host bits. A ban is found by its key's hash, so a ban of any other
// prefix would never match a source; Ban refuses it with an error naming
// the two keys around its address, and wider ranges belong in the
// blocklist, which takes any prefix.
//
// A running ban of p is extended if d ends it later and is otherwise left
// as it is; to shorten one, Unban it first. A new ban counts as a strike,
// so an automatic ban of p while this one is remembered is doubled. d
// must be more than 0 and at most MaxBan. Ban returns the ban as Bans
// would list it, or ErrBanTableFull (wrapped). It takes the ban table's
// mutex and the spinlock of p's set, and allocates only when it fails.
func (l *Limiter) Ban(p netip.Prefix, d time.Duration, now time.Time) (Ban, error) {
	if d <= 0 || d > MaxBan {
		return Ban{}, fmt.Errorf("limit: ban %v: duration must be more than 0 and at most %v, got %v", p, MaxBan, d)
	}
	h, key, ok := l.keyOf(p)
	if !ok || key != p {
		return Ban{}, l.notAKey(p)
	}
	var b Ban
	slot, until, ok := l.bans.impose(h, key, l.ns(now), d, &b, now)
	if !ok {
		return Ban{}, fmt.Errorf("limit: ban %v: %w", p, ErrBanTableFull)
	}
	// A key already in the rate table is checked there, not in the ban
	// table: mark it. A ban only grows while it runs, so the later end
	// wins when two Bans race.
	s := &l.sets[index(h, l.nsets)]
	s.lock()
	if w := s.find(tagOf(h)); w >= 0 && (s.tag[w]&bannedBit == 0 || s.tat[w] < until) {
		s.tag[w] |= bannedBit
		s.tat[w] = until
		s.drop[w] = slot
	}
	s.unlock()
	return b, nil
}

// notAKey explains why p cannot be banned.
func (l *Limiter) notAKey(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("limit: ban: no prefix given")
	}
	a := p.Addr().Unmap()
	addr, prefix, family := &l.lv[v6Addr], &l.lv[v6Prefix], "IPv6"
	if a.Is4() {
		addr, prefix, family = &l.lv[v4Addr], &l.lv[v4Prefix], "IPv4"
	}
	return fmt.Errorf("limit: cannot ban %v: %s sources are counted by /%d and /%d, so ban %v or %v (wider ranges go in the blocklist)",
		p, family, addr.bits, prefix.bits, addr.prefix(a), prefix.prefix(a))
}

// keyOf returns the hash and canonical form of a key given as a prefix.
func (l *Limiter) keyOf(p netip.Prefix) (uint64, netip.Prefix, bool) {
	if !p.IsValid() {
		return 0, netip.Prefix{}, false
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return 0, netip.Prefix{}, false
		}
		a, bits = a.Unmap(), bits-96
	}
	for i := range l.lv {
		lv := &l.lv[i]
		if (i < v6Addr) != a.Is4() || lv.bits != bits {
			continue
		}
		key := lv.prefix(a)
		if a.Is4() {
			b := a.As4()
			return lv.hash4(binary.BigEndian.Uint32(b[:])), key, true
		}
		b := a.As16()
		return lv.hash6(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])), key, true
	}
	return 0, netip.Prefix{}, false
}
