package memswarm

import (
	"hash/maphash"
	"math/bits"

	"warden/internal/bittorrent"
)

// table is one shard's index from info hash to torrent, in the arena:
// open addressing with Robin Hood probing (a slot goes to whichever of two
// entries sits further from its home, so a lookup stops early, found or
// not) and backward-shift deletion, at most 7/8 full and grown by a
// quarter at a time; the sweep, which deletes, shrinks it. A torrent costs
// about 40 bytes of it, where a Go map cost about 55 and left its old
// tables to the collector. The shard's lock guards it.
type table struct {
	slots []slot // in the arena; len is the capacity, 0 while empty
	n     int
}

// slot is 32 bytes: the info hash, how far the entry sits past its home
// slot plus one (0 for an empty slot), and the torrent.
type slot struct {
	ih   bittorrent.InfoHash
	dist uint32
	t    *torrent
}

const minSlots = 8

// home returns the slot where an entry with hash h is first looked for.
// The shard was chosen by h's low bits; this uses its high ones.
func (tb *table) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(tb.slots)))
	return int(hi)
}

func (tb *table) next(i int) int {
	if i++; i == len(tb.slots) {
		return 0
	}
	return i
}

// find returns the slot holding ih, whose hash is h, or -1.
func (tb *table) find(h uint64, ih bittorrent.InfoHash) int {
	if tb.n == 0 {
		return -1
	}
	for i, d := tb.home(h), uint32(1); ; i, d = tb.next(i), d+1 {
		sl := &tb.slots[i]
		if sl.dist < d { // empty, or an entry nearer its home: ih would be here
			return -1
		}
		if sl.ih == ih {
			return i
		}
	}
}

// get returns the torrent for ih, whose hash is h, or nil.
func (tb *table) get(h uint64, ih bittorrent.InfoHash) *torrent {
	if i := tb.find(h, ih); i >= 0 {
		return tb.slots[i].t
	}
	return nil
}

// put adds t for ih, whose hash is h; ih must not be in the table. seed
// hashes the entries again when the table grows.
func (tb *table) put(a *arena, seed maphash.Seed, h uint64, ih bittorrent.InfoHash, t *torrent) {
	if (tb.n+1)*8 > len(tb.slots)*7 {
		tb.resize(a, seed, max(minSlots, len(tb.slots)+len(tb.slots)/4))
	}
	tb.insert(slot{ih: ih, t: t}, h)
	tb.n++
}

// insert places e, whose hash is h, taking the slot of the first entry
// nearer its home and placing that one on.
func (tb *table) insert(e slot, h uint64) {
	e.dist = 1
	i := tb.home(h)
	for tb.slots[i].dist != 0 {
		if tb.slots[i].dist < e.dist {
			tb.slots[i], e = e, tb.slots[i]
		}
		i = tb.next(i)
		e.dist++
	}
	tb.slots[i] = e
}

// removeAt empties slot i, pulling back the entries after it that sit
// past their home.
func (tb *table) removeAt(i int) {
	for j := tb.next(i); tb.slots[j].dist > 1; i, j = j, tb.next(j) {
		tb.slots[i] = tb.slots[j]
		tb.slots[i].dist--
	}
	tb.slots[i] = slot{}
	tb.n--
}

// resize moves every entry to a table of at least n slots; n must exceed
// the entries held, or be 0 for a table that holds none.
func (tb *table) resize(a *arena, seed maphash.Seed, n int) {
	old := tb.slots
	tb.slots = nil
	if n > 0 {
		tb.slots = makeIn[slot](a, n)
		tb.slots = tb.slots[:cap(tb.slots)] // the chunk's whole room
	}
	for i := range old {
		if old[i].dist != 0 {
			tb.insert(old[i], maphash.Comparable(seed, old[i].ih))
		}
	}
	freeSlice(a, old)
}
