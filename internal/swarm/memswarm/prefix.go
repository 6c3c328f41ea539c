package memswarm

import (
	"hash/maphash"
	"net/netip"
	"sync/atomic"
)

// The prefix sketch: sketchRows rows of sketchWidth counters, 1 MiB in all
// whatever the number of networks. sketchWidth is 2^16 so that each row
// takes its index from 16 bits of one 64-bit key.
const (
	sketchRows  = 4
	sketchWidth = 1 << 16
)

// prefixCounts estimates how many of the torrents held each network
// created, in fixed memory: a count-min sketch, where a network's estimate
// is the least of its counters, one per row. Other networks that share
// all of them can only raise it, so an estimate is never below the truth
// and a network is never let past its bound; an innocent one is refused
// early only if, in every row, it shares a counter with networks whose
// torrents fill it. The keys come from the store's secret seed, so a
// network cannot choose to share a victim's counters.
//
// The counters are atomic because networks create torrents in every shard
// at once; a torrent remembers its key (torrent.creator) to give its count
// back when it is deleted.
type prefixCounts [sketchRows][sketchWidth]atomic.Uint32

// rowMult spreads a 32-bit key over the rows: row r takes the top 16 bits
// of key times rowMult[r], a different odd number for each row.
var rowMult = [sketchRows]uint32{0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F}

func (p *prefixCounts) counter(r int, key uint32) *atomic.Uint32 {
	return &p[r][(key*rowMult[r])>>16]
}

// add counts one more torrent for key and reports whether the network's
// estimate stays within limit. If not, it counts nothing. Two racing adds
// at the bound may both be refused, never both let through.
func (p *prefixCounts) add(key uint32, limit int) bool {
	est := ^uint32(0)
	for r := range p {
		est = min(est, p.counter(r, key).Add(1))
	}
	if int64(est) <= int64(limit) {
		return true
	}
	p.remove(key)
	return false
}

// remove gives back one torrent counted for key.
func (p *prefixCounts) remove(key uint32) {
	for r := range p {
		p.counter(r, key).Add(^uint32(0))
	}
}

// prefixKey returns the sketch key of ip's network: its IPv4 /24 or its
// IPv6 /48, hashed with the store's seed. It is never 0, which stands for
// a torrent charged to no network.
func (s *Store) prefixKey(ip netip.Addr) uint32 {
	var k [8]byte // family, then the prefix
	if ip.Is4() {
		a := ip.As4()
		k[0] = 4
		copy(k[1:], a[:3])
	} else {
		a := ip.As16()
		k[0] = 6
		copy(k[1:], a[:6])
	}
	if h := uint32(maphash.Comparable(s.seed, k)); h != 0 {
		return h
	}
	return 1
}
