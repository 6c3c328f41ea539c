package udptracker

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"

	"warden/internal/bittorrent"
)

// A calmTable remembers, in a fixed amount of memory, which clients were
// told recently why a torrent is refused, so that their next refusals can
// be answered with an empty announce reply carrying the refusal interval
// instead of an error (see Config.RefusalReply).
//
// A client is the source address and the port it announces for the
// torrent, so that users behind one NAT are each told once. The table is
// an array of buckets of calmWays entries, allocated once; an entry is a
// 32-bit fingerprint of the (address, port, info hash) under a secret
// seed and the time it was told, in seconds. A new pair takes an empty or
// expired entry of its bucket, or else the one told longest ago, so an
// attacker with millions of sources can only push pairs out early: their
// clients are then told again, as every refusal was before. Two pairs
// with the same bucket and fingerprint share an entry (one new pair in a
// billion, with a full bucket): the second is calmed without being told.
//
// It is safe for concurrent use: entries are read and written whole,
// atomically. Two workers inserting into one bucket at once may lose or
// duplicate an entry, which costs a client one more error reply; no race
// calms a client that was not told.
type calmTable struct {
	seed    maphash.Seed
	buckets []calmBucket
	base    time.Time // the table's clock starts here (monotonic reading)
	window  uint32    // seconds a pair stays told: the refusal interval
}

// calmWays is the entries of one bucket: 32 bytes, half a cache line.
const calmWays = 4

type calmBucket struct {
	e [calmWays]atomic.Uint64 // fingerprint<<32 | stamp when told (see stamp); 0 is empty; newest first
}

// calmBucketBytes is the size of a bucket.
const calmBucketBytes = calmWays * 8

// newCalmTable returns a table of size bytes (rounded down to whole
// buckets, at least one) whose pairs stay told for window.
func newCalmTable(size int, window time.Duration) *calmTable {
	return &calmTable{
		seed:    maphash.MakeSeed(),
		buckets: make([]calmBucket, max(size/calmBucketBytes, 1)),
		base:    time.Now(),
		window:  uint32(min(max(window/time.Second, 1), math.MaxUint32/2)),
	}
}

// told reports whether the client at ip announcing port was told the
// refusal for ih less than the window before now. If it was not, told
// records it as told at now: the caller is about to tell it. It does not
// allocate.
func (t *calmTable) told(ip netip.Addr, port uint16, ih bittorrent.InfoHash, now time.Time) bool {
	var key [16 + 2 + 20]byte
	a := ip.As16()
	copy(key[:16], a[:])
	binary.BigEndian.PutUint16(key[16:], port)
	copy(key[18:], ih[:])
	h := maphash.Bytes(t.seed, key[:])
	hi, _ := bits.Mul64(h, uint64(len(t.buckets)))
	b := &t.buckets[hi]
	fp := uint32(h)
	now32 := t.stamp(now)
	// The ways are kept newest first: a new pair goes in way 0, and the
	// ways before the one it takes (the first empty or expired, else the
	// last, the oldest) move down one. Stamps cannot order the ways, since
	// a flood fills a bucket within one second.
	victim := -1
	for i := range b.e {
		e := b.e[i].Load()
		fresh := e != 0 && now32-uint32(e) < t.window // a stamp after now32 (a test's clock ran back) wraps: not fresh
		if fresh && uint32(e>>32) == fp {
			return true
		}
		if !fresh && victim < 0 {
			victim = i
		}
	}
	if victim < 0 {
		victim = calmWays - 1
	}
	for i := victim; i > 0; i-- {
		b.e[i].Store(b.e[i-1].Load())
	}
	b.e[0].Store(uint64(fp)<<32 | uint64(now32))
	return false
}

// stamp returns now in the table's seconds: since base on the monotonic
// clock (time.Now's readings carry it, so a wall clock stepped back cannot
// make a told pair look fresh, nor the reverse), offset by 2^31 so that a
// time before base (a test's clock) still counts, and never 0, which
// marks an empty entry.
func (t *calmTable) stamp(now time.Time) uint32 {
	s := int64(now.Sub(t.base)/time.Second) + 1<<31
	return uint32(min(max(s, 1), math.MaxUint32))
}

// bytes returns the memory the table holds.
func (t *calmTable) bytes() int { return len(t.buckets) * calmBucketBytes }
