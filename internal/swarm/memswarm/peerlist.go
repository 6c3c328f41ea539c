package memswarm

import (
	"net/netip"

	"warden/internal/bittorrent"
)

// addrKey is the compact address of one family.
type addrKey interface {
	addr4 | addr6
	addrPort() netip.AddrPort
}

// peer is one stored peer: 32 bytes for IPv4, 44 for IPv6.
type peer[K addrKey] struct {
	key  K
	id   bittorrent.PeerID
	seen uint32 // seconds since the store's epoch
}

// indexMin is the swarm size from which a peer list keeps a map from
// address to position; below it a linear scan is faster and smaller.
const indexMin = 32

// peerList holds one address family's peers of one torrent, partitioned:
// peers[:seeders] are seeders, peers[seeders:] leechers. The shard's lock
// guards it.
type peerList[K addrKey] struct {
	peers   []peer[K]
	seeders int
	index   map[K]int32 // nil while len(peers) < indexMin
}

func (l *peerList[K]) leechers() int { return len(l.peers) - l.seeders }

func (l *peerList[K]) find(k K) int {
	if l.index != nil {
		if i, ok := l.index[k]; ok {
			return int(i)
		}
		return -1
	}
	for i := range l.peers {
		if l.peers[i].key == k {
			return i
		}
	}
	return -1
}

func (l *peerList[K]) swap(i, j int) {
	if i == j {
		return
	}
	l.peers[i], l.peers[j] = l.peers[j], l.peers[i]
	if l.index != nil {
		l.index[l.peers[i].key] = int32(i)
		l.index[l.peers[j].key] = int32(j)
	}
}

// update applies an announce from the peer at k. It returns the change in
// seeders and leechers, whether this announce completes a download (a
// completed event from a peer not already known as a seeder), and whether
// the peer, already known, announced with no event within throttle seconds
// of its last announce.
func (l *peerList[K]) update(k K, req *bittorrent.AnnounceRequest, now, throttle uint32) (dSeeders, dLeechers int, completed, tooSoon bool) {
	i := l.find(k)
	if req.Event == bittorrent.EventStopped {
		if i < 0 {
			return 0, 0, false, false
		}
		if i < l.seeders {
			dSeeders = -1
		} else {
			dLeechers = -1
		}
		l.remove(i)
		return dSeeders, dLeechers, false, false
	}
	seeder := req.Seeder()
	if i < 0 {
		l.append(peer[K]{key: k, id: req.PeerID, seen: now})
		i = len(l.peers) - 1
		if seeder {
			l.swap(i, l.seeders)
			l.seeders++
			return 1, 0, req.Event == bittorrent.EventCompleted, false
		}
		return 0, 1, false, false
	}
	p := &l.peers[i]
	tooSoon = req.Event == bittorrent.EventNone && now-p.seen < throttle
	p.id = req.PeerID
	p.seen = now
	wasSeeder := i < l.seeders
	switch {
	case seeder && !wasSeeder:
		l.swap(i, l.seeders)
		l.seeders++
		return 1, -1, req.Event == bittorrent.EventCompleted, false
	case !seeder && wasSeeder:
		l.seeders--
		l.swap(i, l.seeders)
		return -1, 1, false, false
	}
	return 0, 0, false, tooSoon
}

// append grows the list by about a quarter at a time, not double: most
// swarms are small and their slices are most of the store's memory.
func (l *peerList[K]) append(p peer[K]) {
	if len(l.peers) == cap(l.peers) {
		grown := make([]peer[K], len(l.peers), cap(l.peers)+cap(l.peers)/4+2)
		copy(grown, l.peers)
		l.peers = grown
	}
	l.peers = append(l.peers, p)
	if l.index != nil {
		l.index[p.key] = int32(len(l.peers) - 1)
	} else if len(l.peers) >= indexMin {
		l.index = make(map[K]int32, len(l.peers))
		for i := range l.peers {
			l.index[l.peers[i].key] = int32(i)
		}
	}
}

// remove deletes the peer at i, keeping the partition.
func (l *peerList[K]) remove(i int) {
	if i < l.seeders {
		l.seeders--
		l.swap(i, l.seeders)
		i = l.seeders
	}
	last := len(l.peers) - 1
	l.swap(i, last)
	if l.index != nil {
		delete(l.index, l.peers[last].key)
	}
	l.peers[last] = peer[K]{}
	l.peers = l.peers[:last]
	if l.index != nil && len(l.peers) < indexMin/2 {
		l.index = nil
	}
	if cap(l.peers) > 16 && len(l.peers) < cap(l.peers)/4 {
		l.peers = append([]peer[K](nil), l.peers...)
	}
}

// expire removes peers last seen before cutoff and returns how many
// seeders and leechers went.
func (l *peerList[K]) expire(cutoff uint32) (seeders, leechers int) {
	// Walking down keeps remove's swaps on positions already visited.
	for i := len(l.peers) - 1; i >= 0; i-- {
		if i >= len(l.peers) || l.peers[i].seen >= cutoff {
			continue
		}
		if i < l.seeders {
			seeders++
		} else {
			leechers++
		}
		l.remove(i)
	}
	return seeders, leechers
}

// pick appends up to n peers other than self to out, starting at a random
// place. A seeder is offered only leechers.
func (l *peerList[K]) pick(self K, seeder bool, n int, r uint64, out []bittorrent.Peer) []bittorrent.Peer {
	lo := 0
	if seeder {
		lo = l.seeders
	}
	m := len(l.peers) - lo
	if m <= 0 || n <= 0 {
		return out
	}
	start := randN(r, m)
	want := len(out) + n
	for c := 0; c < m && len(out) < want; c++ {
		j := start + c
		if j >= m {
			j -= m
		}
		p := &l.peers[lo+j]
		if p.key == self {
			continue
		}
		out = append(out, bittorrent.Peer{ID: p.id, Addr: p.key.addrPort()})
	}
	return out
}
