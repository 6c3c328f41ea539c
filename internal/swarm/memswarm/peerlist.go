package memswarm

import (
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

// indexMin is the swarm size from which a peer list keeps a map from
// address to position; below it a linear scan is faster and smaller.
const indexMin = 32

// peerList holds one address family's peers of one torrent as two parallel
// arrays, partitioned: keys[:seeders] are seeders, keys[seeders:] leechers.
// A stored IPv4 peer costs 8 bytes (address and port, last-seen stamp)
// and nothing else below indexMin peers: no peer ID, no per-peer
// allocation. The shard's lock guards it.
type peerList[K addrKey] struct {
	keys    []K
	seen    []stamp // parallel to keys
	seeders int32
	index   map[K]int32 // nil while len(keys) < indexMin
}

func (l *peerList[K]) len() int      { return len(l.keys) }
func (l *peerList[K]) leechers() int { return len(l.keys) - int(l.seeders) }

func (l *peerList[K]) find(k K) int {
	if l.index != nil {
		if i, ok := l.index[k]; ok {
			return int(i)
		}
		return -1
	}
	for i := range l.keys {
		if l.keys[i] == k {
			return i
		}
	}
	return -1
}

func (l *peerList[K]) swap(i, j int) {
	if i == j {
		return
	}
	l.keys[i], l.keys[j] = l.keys[j], l.keys[i]
	l.seen[i], l.seen[j] = l.seen[j], l.seen[i]
	if l.index != nil {
		l.index[l.keys[i]] = int32(i)
		l.index[l.keys[j]] = int32(j)
	}
}

// hostPeers counts the peers in l from k's host (its IPv4 address, or its
// IPv6 /64), stopping at limit.
func (l *peerList[K]) hostPeers(k K, limit int) int {
	n := 0
	for i := range l.keys {
		if sameHost(&l.keys[i], &k) {
			if n++; n >= limit {
				break
			}
		}
	}
	return n
}

// sameHost reports whether a and b are ports of one host: the same IPv4
// address, or the same IPv6 /64, which one subscriber usually holds whole.
func sameHost[K addrKey](a, b *K) bool {
	if unsafe.Sizeof(*a) == unsafe.Sizeof(addr4{}) {
		return *(*[4]byte)(unsafe.Pointer(a)) == *(*[4]byte)(unsafe.Pointer(b))
	}
	return *(*[8]byte)(unsafe.Pointer(a)) == *(*[8]byte)(unsafe.Pointer(b))
}

// update applies an announce from the peer at k, found at position i (-1
// if l does not hold it). It returns the peer's position afterwards (-1
// once stopped), the change in seeders and leechers, whether this announce
// completes a download (a completed event from a peer not already known
// as a seeder), and whether the peer, already known, announced with no
// event within throttle seconds of its last announce.
func (l *peerList[K]) update(i int, k K, seeder bool, ev bittorrent.Event, now, throttle uint32) (pos, dSeeders, dLeechers int, completed, tooSoon bool) {
	if ev == bittorrent.EventStopped {
		if i < 0 {
			return -1, 0, 0, false, false
		}
		if i < int(l.seeders) {
			dSeeders = -1
		} else {
			dLeechers = -1
		}
		l.remove(i)
		return -1, dSeeders, dLeechers, false, false
	}
	if i < 0 {
		l.append(k, now)
		i = len(l.keys) - 1
		if seeder {
			l.swap(i, int(l.seeders))
			l.seeders++
			return int(l.seeders) - 1, 1, 0, ev == bittorrent.EventCompleted, false
		}
		return i, 0, 1, false, false
	}
	tooSoon = ev == bittorrent.EventNone && age(now, l.seen[i]) < throttle
	l.seen[i] = stamp(now)
	wasSeeder := i < int(l.seeders)
	switch {
	case seeder && !wasSeeder:
		l.swap(i, int(l.seeders))
		l.seeders++
		return int(l.seeders) - 1, 1, -1, ev == bittorrent.EventCompleted, false
	case !seeder && wasSeeder:
		l.seeders--
		l.swap(i, int(l.seeders))
		return int(l.seeders), -1, 1, false, false
	}
	return i, 0, 0, false, tooSoon
}

// append grows the list by about a quarter at a time, not double: most
// swarms are small and their arrays are most of the store's memory.
func (l *peerList[K]) append(k K, now uint32) {
	if len(l.keys) == cap(l.keys) {
		n := cap(l.keys) + cap(l.keys)/4 + 2
		keys := make([]K, len(l.keys), n)
		copy(keys, l.keys)
		seen := make([]stamp, len(l.seen), n)
		copy(seen, l.seen)
		l.keys, l.seen = keys, seen
	}
	l.keys = append(l.keys, k)
	l.seen = append(l.seen, stamp(now))
	if l.index != nil {
		l.index[k] = int32(len(l.keys) - 1)
	} else if len(l.keys) >= indexMin {
		l.index = make(map[K]int32, len(l.keys))
		for i, k := range l.keys {
			l.index[k] = int32(i)
		}
	}
}

// remove deletes the peer at i, keeping the partition.
func (l *peerList[K]) remove(i int) {
	if i < int(l.seeders) {
		l.seeders--
		l.swap(i, int(l.seeders))
		i = int(l.seeders)
	}
	last := len(l.keys) - 1
	l.swap(i, last)
	if l.index != nil {
		delete(l.index, l.keys[last])
	}
	l.keys = l.keys[:last]
	l.seen = l.seen[:last]
	if l.index != nil && len(l.keys) < indexMin/2 {
		l.index = nil
	}
	if cap(l.keys) > 16 && len(l.keys) < cap(l.keys)/4 {
		l.keys = append([]K(nil), l.keys...)
		l.seen = append([]stamp(nil), l.seen...)
	}
}

// expire removes peers last seen more than ttl seconds before now and
// returns how many seeders and leechers went.
func (l *peerList[K]) expire(now, ttl uint32) (seeders, leechers int) {
	// Walking down keeps remove's swaps on positions already visited.
	for i := len(l.keys) - 1; i >= 0; i-- {
		if i >= len(l.keys) || age(now, l.seen[i]) <= ttl {
			continue
		}
		if i < int(l.seeders) {
			seeders++
		} else {
			leechers++
		}
		l.remove(i)
	}
	return seeders, leechers
}

// pick appends up to n peers other than the one at position self (-1 for
// none) to out, in compact form, taking consecutive peers from a random
// place and wrapping around. A seeder is offered only leechers.
func (l *peerList[K]) pick(self int, seeder bool, n int, r uint64, out []byte) []byte {
	lo := 0
	if seeder {
		lo = int(l.seeders)
	}
	m := len(l.keys) - lo
	if m <= 0 || n <= 0 {
		return out
	}
	if self >= lo {
		n = min(n, m-1) // self is in the window and is skipped
	} else {
		n = min(n, m)
	}
	start := lo + randN(r, m)
	// At most two runs, [start, end) then from lo, each copied whole
	// except for self.
	for n > 0 {
		end := min(start+n, lo+m)
		if self >= start && self < end {
			out = appendKeys(out, l.keys[start:self])
			n -= self - start
			start = self + 1
			if start == lo+m {
				start = lo
			}
			continue
		}
		out = appendKeys(out, l.keys[start:end])
		n -= end - start
		start = end
		if start == lo+m {
			start = lo
		}
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
