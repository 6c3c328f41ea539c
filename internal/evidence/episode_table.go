package evidence

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// The table of sources: what each source (an IPv4 address, an IPv6 /64)
// and each prefix (an IPv4 /24, an IPv6 /48) sent in the current second,
// exactly, in a fixed array allocated at start, so that memory does not
// depend on how many sources appear. It is set-associative like the
// guard's table (internal/limit): a key's set and tag come from
// hash/maphash under seeds drawn at start, so no one outside can aim keys
// at one set. A new key takes an empty way or the way that sent least
// lately; a way whose key has an episode open is never taken, so a flood
// of one-off spoofed sources cannot push an abuser out (nor can it open
// episodes: one request a second is no threshold).

// ways is the associativity of the table.
const ways = 7

// setBytes is the size of a set, a multiple of the cache line.
const setBytes = 448

// numCombos indexes window counts by kind and verified: kind*2+verified.
const numCombos = 2 * int(numReqKinds)

// A tentry is one key's counts in the current one-second window (sec).
// Counts saturate at 65535: past any threshold.
type tentry struct {
	sec     uint32 // unix second of the window (low 32 bits)
	first   uint32 // nanoseconds into sec of the window's first event
	n       uint32 // events in the window
	addrs   uint32 // prefix keys: a bitmap of the sources seen in the window
	ep      uint32 // the open episode: slot+1, generation << 16; 0 for none
	refused uint16
	limited uint16
	combos  [numCombos]uint16
}

// A tset is one set, guarded by its spinlock mu: critical sections are a
// few dozen instructions.
type tset struct {
	mu  atomic.Uint32
	tag [ways]uint32 // 0: empty way
	e   [ways]tentry
	_   [setBytes - 4 - 4*ways - ways*unsafe.Sizeof(tentry{})]byte
}

var _ [setBytes - unsafe.Sizeof(tset{})]byte // tset fills setBytes exactly
var _ [unsafe.Sizeof(tset{}) - setBytes]byte

func (s *tset) lock() {
	if s.mu.CompareAndSwap(0, 1) {
		return
	}
	for spins := 0; ; spins++ {
		if s.mu.Load() == 0 && s.mu.CompareAndSwap(0, 1) {
			return
		}
		if spins%16 == 15 {
			runtime.Gosched() // the holder may have been descheduled
		}
	}
}

func (s *tset) unlock() { s.mu.Store(0) }

// The kinds of key, each hashed under its own seed.
const (
	keyV4Source = iota
	keyV4Prefix
	keyV6Source
	keyV6Prefix
)

type table struct {
	sets  []tset
	nsets uint64
	seeds [4]maphash.Seed
}

func newTable(bytes int) table {
	n := max(bytes/setBytes, 1)
	t := table{sets: make([]tset, n), nsets: uint64(n)}
	for i := range t.seeds {
		t.seeds[i] = maphash.MakeSeed()
	}
	return t
}

// keyRef locates one key: its hash, set and tag.
type keyRef struct {
	h   uint64
	idx uint64
	tag uint32
}

func (t *table) ref(kind int, v uint64) keyRef {
	h := maphash.Comparable(t.seeds[kind], v)
	hi, _ := bits.Mul64(h, t.nsets)
	return keyRef{h: h, idx: hi, tag: uint32(h) | 1}
}

// refs returns the source and prefix keys of a (unmapped, without zone).
func (t *table) refs(a netip.Addr) (src, pfx keyRef) {
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:]))
		return t.ref(keyV4Source, v), t.ref(keyV4Prefix, v&^0xff)
	}
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	return t.ref(keyV6Source, hi), t.ref(keyV6Prefix, hi&^0xffff)
}

// slot returns the way holding tag in s, inserting it at second sec if
// it is not there (in an empty way, else in place of the way that sent
// least lately and has no episode open), or -1 if every way holds an
// episode. The caller holds s.
func (s *tset) slot(tag uint32, sec uint32) int {
	for i := range ways {
		if s.tag[i] == tag {
			return i
		}
	}
	victim, least := -1, uint64(1<<63)
	for i := range ways {
		if s.tag[i] == 0 {
			victim = i
			break
		}
		e := &s.e[i]
		if e.ep != 0 {
			continue
		}
		var w uint64 // what the key sent lately: this second, then half of the last
		switch sec - e.sec {
		case 0:
			w = uint64(e.n) << 1
		case 1:
			w = uint64(e.n)
		}
		if w < least {
			victim, least = i, w
		}
	}
	if victim >= 0 {
		s.tag[victim] = tag
		s.e[victim] = tentry{sec: sec - 2} // an old window: rolled on first use
	}
	return victim
}

// roll starts a new window at sec if e's is another second.
func (e *tentry) roll(sec, ns uint32) {
	if e.sec == sec {
		return
	}
	ep := e.ep
	*e = tentry{sec: sec, first: ns, ep: ep}
}

func add16(p *uint16, n uint64) {
	*p = uint16(min(uint64(*p)+n, 0xffff))
}

// count adds n events of k to the window.
func (e *tentry) count(k *Knock, n uint64) {
	e.n = uint32(min(uint64(e.n)+n, 0xffffffff))
	add16(&e.combos[combo(k.Kind, k.Verified)], n)
	switch k.Action {
	case ActRefused:
		add16(&e.refused, n)
	case ActLimited:
		add16(&e.limited, n)
	}
}

func combo(k ReqKind, verified bool) int {
	c := int(k) * 2
	if verified {
		c++
	}
	return c
}

// dominant returns the episode kind of a window that crossed a rate
// threshold: what most of its events were.
func (e *tentry) dominant() string {
	half := (e.n + 1) / 2
	sum := func(ks ...ReqKind) uint32 {
		var s uint32
		for _, k := range ks {
			s += uint32(e.combos[combo(k, false)]) + uint32(e.combos[combo(k, true)])
		}
		return s
	}
	switch {
	case sum(ReqGarbage, ReqForgedCookie) >= half:
		return EpisodeGarbage
	case uint32(e.combos[combo(ReqConnect, false)]) >= half:
		return EpisodeConnect
	case sum(ReqSYN) >= half:
		return EpisodeSYN
	}
	return EpisodeRate
}

// syns is the window's SYN count.
func (e *tentry) syns() uint32 {
	return uint32(e.combos[combo(ReqSYN, false)]) + uint32(e.combos[combo(ReqSYN, true)])
}
