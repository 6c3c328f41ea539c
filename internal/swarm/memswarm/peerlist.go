package memswarm

import (
	"encoding/binary"
	"unsafe"

	"warden/internal/bittorrent"
)

// addrKey is a peer's contact address in the compact wire form of one
// family (addr4 or addr6): comparable, small, and copied into replies as it
// is.
type addrKey interface {
	addr4 | addr6
}

// stamp is a time in seconds since the store's epoch, modulo 2^16: ages
// computed from it are right up to about 18 hours, and a peer is never
// kept that long (swarm.Config caps peer_ttl and sweep_interval so that
// the sweep removes it first).
type stamp uint16

func age(now uint32, seen stamp) uint32 { return uint32(stamp(now) - seen) }

// Buckets: a list splits its peers into 2^k buckets by a keyed hash, so
// that finding a peer scans one bucket of about splitAt/2 to splitAt
// peers, and no index is kept. The hash is of the peer's host alone while
// a host may hold only a few ports of a swarm (swarm.max_peers_per_address,
// 4 by default), so that counting a host's ports scans one bucket too;
// where hosts may hold many, they would crowd their buckets, and the hash
// takes the port as well.
const (
	splitAt = 128 // a list with more peers than this per bucket doubles its buckets
	mergeAt = 32  // one with fewer halves them
)

// bucket holds some peers of one family in an arena chunk: their compact
// addresses, keys[:len], and after cap(keys) of them, their last-seen
// stamps, partitioned: keys[:seeders] are seeders, keys[seeders:]
// leechers. A stored IPv4 peer costs 8 bytes and nothing else: no peer
// ID, no index, no per-peer allocation.
type bucket[K addrKey] struct {
	keys    []K
	seeders int32
}

// seen returns the bucket's stamps, parallel to keys.
func (b *bucket[K]) seen() []stamp {
	if cap(b.keys) == 0 {
		return nil
	}
	var k K
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b.keys)), uintptr(cap(b.keys))*unsafe.Sizeof(k))
	return unsafe.Slice((*stamp)(p), cap(b.keys))[:len(b.keys)]
}

// peerList holds one address family's peers of one torrent: one bucket,
// kept in the list itself, until there are more than splitAt, then a
// power of two of them. It lives in the arena, as does everything it
// points to. The shard's lock guards it.
type peerList[K addrKey] struct {
	one [1]bucket[K]
	big *buckets[K] // nil while the list has one bucket; one is then unused
}

type buckets[K addrKey] struct {
	b          []bucket[K]
	n, seeders int
	shift      uint8 // 64 - log2(len(b))
}

// lists is what every list of a store shares: the arena its chunks come
// from, and the hash that spreads peers over buckets, keyed with a secret
// so that no one can choose addresses that crowd one bucket.
type lists struct {
	arena  *arena
	mult   uint64 // odd
	byHost bool   // buckets by host alone: a host's ports share one
}

// byHostMax is the most ports per host for which buckets are by host.
const byHostMax = 64

// bucketKey returns the bits the bucket hash is taken of.
func bucketKey[K addrKey](ls *lists, k *K) uint64 {
	h := host(k)
	if !ls.byHost {
		p := (*[2]byte)(unsafe.Add(unsafe.Pointer(k), unsafe.Sizeof(*k)-2))
		h ^= uint64(binary.BigEndian.Uint16(p[:])) * 0x9E3779B97F4A7C15
	}
	return h
}

func (l *peerList[K]) buckets() []bucket[K] {
	if l.big != nil {
		return l.big.b
	}
	return l.one[:]
}

func (l *peerList[K]) len() int {
	if l.big != nil {
		return l.big.n
	}
	return len(l.one[0].keys)
}

func (l *peerList[K]) seeders() int {
	if l.big != nil {
		return l.big.seeders
	}
	return int(l.one[0].seeders)
}

func (l *peerList[K]) leechers() int { return l.len() - l.seeders() }

// pos is where a peer is: bucket b, index i; i is -1 for no peer.
type pos struct{ b, i int }

var none = pos{i: -1}

// host returns the bits that name k's host: its IPv4 address, or its IPv6
// /64, which one subscriber usually holds whole.
func host[K addrKey](k *K) uint64 {
	if unsafe.Sizeof(*k) == unsafe.Sizeof(addr4{}) {
		return uint64(binary.BigEndian.Uint32((*[4]byte)(unsafe.Pointer(k))[:]))
	}
	return binary.BigEndian.Uint64((*[8]byte)(unsafe.Pointer(k))[:])
}

// sameHost reports whether a and b are ports of one host.
func sameHost[K addrKey](a, b *K) bool {
	if unsafe.Sizeof(*a) == unsafe.Sizeof(addr4{}) {
		return *(*[4]byte)(unsafe.Pointer(a)) == *(*[4]byte)(unsafe.Pointer(b))
	}
	return *(*[8]byte)(unsafe.Pointer(a)) == *(*[8]byte)(unsafe.Pointer(b))
}

// bucketOf returns the index of the bucket that holds, or would hold, k.
func (l *peerList[K]) bucketOf(ls *lists, k *K) int {
	if l.big == nil {
		return 0
	}
	return int(bucketKey(ls, k) * ls.mult >> l.big.shift)
}

// find returns where k is, or {b, -1} with b its bucket if absent.
func (l *peerList[K]) find(ls *lists, k K) pos {
	bi := l.bucketOf(ls, &k)
	keys := l.buckets()[bi].keys
	for i := range keys {
		if keys[i] == k {
			return pos{bi, i}
		}
	}
	return pos{bi, -1}
}

// hostPeers counts the peers from k's host, stopping at limit: in bucket
// bi, k's, if buckets are by host, else in every bucket.
func (l *peerList[K]) hostPeers(ls *lists, bi int, k K, limit int) int {
	bs := l.buckets()
	if ls.byHost {
		bs = bs[bi : bi+1]
	}
	n := 0
	for _, b := range bs {
		for i := range b.keys {
			if sameHost(&b.keys[i], &k) {
				if n++; n >= limit {
					return n
				}
			}
		}
	}
	return n
}

// update applies an announce from the peer at k, found at p (p.i is -1 if
// the list does not hold it; p.b is then its bucket). It returns the
// peer's position afterwards (none once stopped), the change in seeders
// and leechers, whether this announce completes a download (a completed
// event from a peer not already known as a seeder), and whether the
// peer, already known, announced with no event within throttle seconds of
// its last announce.
func (l *peerList[K]) update(ls *lists, p pos, k K, seeder bool, ev bittorrent.Event, now, throttle uint32) (at pos, dSeeders, dLeechers int, completed, tooSoon bool) {
	if ev == bittorrent.EventStopped {
		if p.i < 0 {
			return none, 0, 0, false, false
		}
		if p.i < int(l.buckets()[p.b].seeders) {
			dSeeders = -1
		} else {
			dLeechers = -1
		}
		l.remove(ls, p)
		return none, dSeeders, dLeechers, false, false
	}
	if p.i < 0 {
		return l.add(ls, p.b, k, seeder, stamp(now), ev == bittorrent.EventCompleted)
	}
	b := &l.buckets()[p.b]
	seen := b.seen()
	tooSoon = ev == bittorrent.EventNone && age(now, seen[p.i]) < throttle
	seen[p.i] = stamp(now)
	wasSeeder := p.i < int(b.seeders)
	switch {
	case seeder && !wasSeeder:
		b.swap(p.i, int(b.seeders))
		b.seeders++
		l.countSeeders(1)
		return pos{p.b, int(b.seeders) - 1}, 1, -1, ev == bittorrent.EventCompleted, false
	case !seeder && wasSeeder:
		b.seeders--
		b.swap(p.i, int(b.seeders))
		l.countSeeders(-1)
		return pos{p.b, int(b.seeders)}, -1, 1, false, false
	}
	return p, 0, 0, false, tooSoon
}

func (l *peerList[K]) countSeeders(d int) {
	if l.big != nil {
		l.big.seeders += d
	}
}

func (b *bucket[K]) swap(i, j int) {
	if i == j {
		return
	}
	seen := b.seen()
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
	seen[i], seen[j] = seen[j], seen[i]
}

// add stores a new peer in bucket bi and returns its position and the
// change in counts; a list that outgrows its buckets then doubles them,
// and the position is looked up again.
func (l *peerList[K]) add(ls *lists, bi int, k K, seeder bool, seen stamp, completed bool) (at pos, dSeeders, dLeechers int, _, _ bool) {
	b := &l.buckets()[bi]
	b.push(ls, k, seen)
	at = pos{bi, len(b.keys) - 1}
	dLeechers = 1
	if seeder {
		b.swap(at.i, int(b.seeders))
		at.i = int(b.seeders)
		b.seeders++
		dSeeders, dLeechers = 1, 0
	}
	if l.big != nil {
		l.big.n++
		l.big.seeders += dSeeders
	}
	if l.len() > splitAt*len(l.buckets()) {
		l.rebucket(ls, len(l.buckets())*2)
		at = l.find(ls, k)
	}
	return at, dSeeders, dLeechers, completed && seeder, false
}

// push appends a peer, moving the bucket to a larger chunk if it is full.
func (b *bucket[K]) push(ls *lists, k K, seen stamp) {
	if len(b.keys) == cap(b.keys) {
		b.resize(ls, len(b.keys)+1)
	}
	b.keys = b.keys[:len(b.keys)+1]
	b.keys[len(b.keys)-1] = k
	s := b.seen()
	s[len(s)-1] = seen
}

// resize moves the bucket to a chunk with room for at least n peers, or
// releases its chunk if n is 0.
func (b *bucket[K]) resize(ls *lists, n int) {
	old, oldSeen := b.keys, b.seen()
	var k K
	per := int(unsafe.Sizeof(k)) + int(unsafe.Sizeof(stamp(0)))
	if n == 0 {
		b.keys = nil
	} else {
		chunk := ls.arena.alloc(n*per, false)
		room := cap(chunk) / per
		b.keys = unsafe.Slice((*K)(unsafe.Pointer(unsafe.SliceData(chunk[:1]))), room)[:len(old)]
		copy(b.keys, old)
		copy(b.seen(), oldSeen)
	}
	if cap(old) > 0 {
		ls.arena.free(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(old[:1]))), cap(old)*per))
	}
}

// compact moves the list's buckets out of sparse slabs (see
// arena.sparse) into chunks of the same room.
func (l *peerList[K]) compact(ls *lists) {
	var k K
	per := int(unsafe.Sizeof(k)) + int(unsafe.Sizeof(stamp(0)))
	for i := range l.buckets() {
		b := &l.buckets()[i]
		if n := cap(b.keys); n > 0 && ls.arena.sparse(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b.keys[:1]))), n*per)) {
			b.resize(ls, n)
		}
	}
}

// remove deletes the peer at p, keeping the partition, and gives memory
// back: a bucket down to half its room moves to a smaller chunk, and a
// list with too few peers per bucket halves its buckets.
func (l *peerList[K]) remove(ls *lists, p pos) {
	b := &l.buckets()[p.b]
	i := p.i
	if i < int(b.seeders) {
		b.seeders--
		b.swap(i, int(b.seeders))
		i = int(b.seeders)
		l.countSeeders(-1)
	}
	b.swap(i, len(b.keys)-1)
	b.keys = b.keys[:len(b.keys)-1]
	if l.big != nil {
		l.big.n--
	}
	if len(b.keys) <= cap(b.keys)/2 {
		b.resize(ls, len(b.keys))
	}
	if nb := len(l.buckets()); nb > 1 && l.len() < mergeAt*nb {
		l.rebucket(ls, nb/2)
	}
}

// rebucket spreads the list's peers over n buckets, n a power of two,
// each in a chunk of its exact size.
func (l *peerList[K]) rebucket(ls *lists, n int) {
	old := l.buckets()
	var next []bucket[K]
	var shift uint8
	if n == 1 {
		next = l.one[:] // empty: a list with one bucket keeps it here
	} else {
		next = makeIn[bucket[K]](ls.arena, n)
		shift = uint8(64 - bitsLen(n-1))
	}
	at := func(k *K) int {
		if n == 1 {
			return 0
		}
		return int(bucketKey(ls, k) * ls.mult >> shift)
	}
	// Size each new bucket (counting in its seeders field), then fill it:
	// seeders first, from every old bucket, then leechers, which keeps
	// each partitioned.
	for i := range old {
		for j := range old[i].keys {
			next[at(&old[i].keys[j])].seeders++
		}
	}
	for i := range next {
		if c := int(next[i].seeders); c > 0 {
			next[i].seeders = 0
			next[i].resize(ls, c)
		}
	}
	for _, seeders := range []bool{true, false} {
		for i := range old {
			ob := &old[i]
			lo, hi := int(ob.seeders), len(ob.keys)
			if seeders {
				lo, hi = 0, int(ob.seeders)
			}
			seen := ob.seen()
			for j := lo; j < hi; j++ {
				nb := &next[at(&ob.keys[j])]
				nb.keys = nb.keys[:len(nb.keys)+1]
				nb.keys[len(nb.keys)-1] = ob.keys[j]
				s := nb.seen()
				s[len(s)-1] = seen[j]
				if seeders {
					nb.seeders++
				}
			}
		}
	}
	total, seeders := l.len(), l.seeders()
	for i := range old {
		old[i].resize(ls, 0)
	}
	if big := l.big; big != nil {
		freeSlice(ls.arena, big.b)
		freeIn(ls.arena, big)
		l.big = nil
	}
	if n > 1 {
		l.one[0] = bucket[K]{}
		l.big = newIn[buckets[K]](ls.arena)
		*l.big = buckets[K]{b: next, n: total, seeders: seeders, shift: shift}
	}
}

func bitsLen(x int) int {
	n := 0
	for ; x > 0; x >>= 1 {
		n++
	}
	return n
}

// release gives back every chunk of the list, which must not be used
// again.
func (l *peerList[K]) release(ls *lists) {
	for i := range l.buckets() {
		l.buckets()[i].resize(ls, 0)
	}
	if l.big != nil {
		freeSlice(ls.arena, l.big.b)
		freeIn(ls.arena, l.big)
		l.big = nil
	}
}

// expire removes peers last seen more than ttl seconds before now and
// returns how many seeders and leechers went.
func (l *peerList[K]) expire(ls *lists, now, ttl uint32) (seeders, leechers int) {
	// Bucket by bucket, walking down so that remove's swaps land on
	// positions already visited; a rebucket starts the walk over.
	for bi := 0; bi < len(l.buckets()); bi++ {
		nb := len(l.buckets())
		for i := len(l.buckets()[bi].keys) - 1; i >= 0; i-- {
			b := &l.buckets()[bi]
			if i >= len(b.keys) || age(now, b.seen()[i]) <= ttl {
				continue
			}
			if i < int(b.seeders) {
				seeders++
			} else {
				leechers++
			}
			l.remove(ls, pos{bi, i})
			if len(l.buckets()) != nb {
				bi = -1
				break
			}
		}
	}
	return seeders, leechers
}

// pick appends up to n peers other than the one at self to out, in
// compact form, taking consecutive peers from a random place and going on
// through the following buckets, wrapping around. A seeder is offered
// only leechers.
func (l *peerList[K]) pick(self pos, seeder bool, n int, r uint64, out []byte) []byte {
	bs := l.buckets()
	m := l.len()
	if seeder {
		m = l.leechers()
	}
	selfIn := self.i >= 0 && (!seeder || self.i >= int(bs[self.b].seeders))
	if selfIn {
		m--
	}
	n = min(n, m)
	if n <= 0 {
		return out
	}
	// A random bucket, a random place in its window, then on.
	first := randN(r, len(bs))
	window := func(b *bucket[K]) int {
		if seeder {
			return int(b.seeders)
		}
		return 0
	}
	fb := &bs[first]
	start := window(fb)
	if w := len(fb.keys) - start; w > 0 {
		start += randN(r*0x9E3779B97F4A7C15, w)
	}
	take := func(bi, lo, hi int) {
		keys := bs[bi].keys
		if bi == self.b && self.i >= lo && self.i < hi {
			out = appendKeys(out, keys[lo:min(self.i, lo+n)])
			n -= min(self.i-lo, n)
			lo = self.i + 1
		}
		hi = min(hi, lo+n)
		if hi > lo {
			out = appendKeys(out, keys[lo:hi])
			n -= hi - lo
		}
	}
	take(first, start, len(fb.keys))
	for j := 1; j < len(bs) && n > 0; j++ {
		bi := (first + j) % len(bs)
		take(bi, window(&bs[bi]), len(bs[bi].keys))
	}
	if n > 0 {
		take(first, window(fb), start)
	}
	return out
}

// appendKeys appends keys as their bytes: an array of compact addresses is
// already a compact peer string.
func appendKeys[K addrKey](out []byte, keys []K) []byte {
	if len(keys) == 0 {
		return out
	}
	var k K
	return append(out, unsafe.Slice((*byte)(unsafe.Pointer(&keys[0])), len(keys)*int(unsafe.Sizeof(k)))...)
}
