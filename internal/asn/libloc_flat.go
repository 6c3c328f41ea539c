package asn

import "unsafe"

// The tree is written breadth first, so each level of a walk reads from
// another part of a 37 MB array: a walk to an IPv6 /48 is some thirty
// reads from memory when the tree is not in the cache. openLocation
// therefore also flattens the tree, once, into sorted address ranges,
// each with the network a walk would find for any address in it; a
// lookup is then a table read and a short binary search over a few
// cache lines. The walk stays the reference (TestFlatAgrees compares the
// two) and answers whatever the ranges cannot.

// Labels of a range besides a network record index.
const (
	flatNone = locNoNetwork     // no network
	flatWalk = locNoNetwork - 1 // the tree goes deeper than the key: walk
)

// flatBuckets is the number of leading key bits the bucket table resolves.
const flatBuckets = 16

// locFlat is the tree flattened for keys of one width: IPv4 addresses
// (K uint32, from the node at ::ffff:0:0/96) or the upper 64 bits of
// IPv6 addresses (K uint64, from the root). Range i starts at start[i] and ends where
// range i+1 starts; the ranges cover every key.
type locFlat[K uint32 | uint64] struct {
	start []K
	label []uint32 // network record, flatNone or flatWalk
	depth []uint8  // of the network in the tree (libloc's prefix length)
	// bucket[b] is the range holding key b<<(keyBits-flatBuckets): the
	// range holding any key with those leading bits is at most
	// bucket[b+1].
	bucket  []uint32
	keyBits int
}

// flattenTree builds a locFlat of the subtree at node (at depth base), or
// returns nil when the tree is not a tree (a
// node reached twice, which a hostile file can arrange so that the
// ranges would never end). Networks above node are not counted.
func flattenTree[K uint32 | uint64](db *locDB, node uint32, base int) *locFlat[K] {
	keyBits := int(unsafe.Sizeof(K(0))) * 8
	f := &locFlat[K]{keyBits: keyBits}
	budget := len(db.tree) / locNodeSize // visits allowed: each node once
	emit := func(start K, label uint32, depth uint8) {
		n := len(f.start)
		if n > 0 && f.label[n-1] == label && (f.depth[n-1] == depth || label == flatNone || label == flatWalk) {
			return // the same answer as the range before: one range
		}
		f.start = append(f.start, start)
		f.label = append(f.label, label)
		f.depth = append(f.depth, depth)
	}
	var visit func(node uint32, d int, key K, label uint32, depth uint8) bool
	visit = func(node uint32, d int, key K, label uint32, depth uint8) bool {
		if budget--; budget < 0 {
			return false
		}
		rec := db.tree[int(node)*locNodeSize:][:locNodeSize]
		if nw := be32(rec, 8); nw != locNoNetwork {
			label, depth = nw, uint8(base+d)
		}
		if d == keyBits {
			if base+d < 128 && (be32(rec, 0) != 0 || be32(rec, 4) != 0) {
				label = flatWalk // networks below the key's resolution
			}
			emit(key, label, depth)
			return true
		}
		for side := range 2 {
			k := key | K(side)<<(keyBits-1-d)
			if c := be32(rec, side*4); c != 0 {
				if !visit(c, d+1, k, label, depth) {
					return false
				}
			} else {
				emit(k, label, depth)
			}
		}
		return true
	}
	if !visit(node, 0, 0, flatNone, 0) {
		return nil
	}
	f.bucket = make([]uint32, 1<<flatBuckets+1)
	i := 0
	for b := range 1 << flatBuckets {
		key := K(b) << (keyBits - flatBuckets)
		for i+1 < len(f.start) && f.start[i+1] <= key {
			i++
		}
		f.bucket[b] = uint32(i)
	}
	f.bucket[1<<flatBuckets] = uint32(len(f.start) - 1)
	f.start = clipped(f.start)
	f.label = clipped(f.label)
	f.depth = clipped(f.depth)
	return f
}

func clipped[T any](s []T) []T { return append([]T(nil), s...) }

// find returns the label and network depth of key. It does not
// allocate.
func (f *locFlat[K]) find(key K) (uint32, uint8) {
	b := key >> (f.keyBits - flatBuckets)
	lo, hi := int(f.bucket[b]), int(f.bucket[b+1])
	// the last range in [lo, hi] starting at or before key; start[lo]
	// is at or before it
	for lo < hi {
		m := int(uint(lo+hi+1) >> 1)
		if f.start[m] <= key {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return f.label[lo], f.depth[lo]
}

// size returns the bytes the ranges take.
func (f *locFlat[K]) size() int {
	if f == nil {
		return 0
	}
	return len(f.start)*(int(unsafe.Sizeof(K(0)))+5) + len(f.bucket)*4
}
