package asn

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The IPFire location database ("libloc", version 1), as Debian's
// libloc-database ships it. Everything is big-endian:
//
//	0     magic "LOCDBXX" and a version byte (1)
//	8     created_at (u64, Unix seconds); vendor, description, license
//	      (u32 string pool offsets); offset and length (u32 each) of the
//	      AS list, the network records, the network tree, the country
//	      list and the string pool; two signature lengths (u16) and
//	      their 2048-byte areas; 32 bytes reserved. 4200 bytes in all.
//	AS    8 bytes: number, name (pool offset); sorted by number
//	net   12 bytes: country code (2 bytes, NUL NUL for none), 2 unused,
//	      ASN (u32), flags (u16), 2 unused
//	node  12 bytes: child for bit 0, child for bit 1 (node indexes; 0,
//	      the root, means none), network record (0xffffffff for none)
//	pool  NUL-terminated strings
//
// The tree is a binary trie over 128-bit addresses, IPv4 as IPv4-mapped
// IPv6 (::ffff:a.b.c.d). A node at depth d whose network field is set
// holds the network of the first d bits of the path to it.
const (
	locMagic      = "LOCDBXX"
	locVersion    = 1
	locHeaderSize = 8 + 4192
	locSigMax     = 2048
	locASSize     = 8
	locNetSize    = 12
	locNodeSize   = 12
	locCountrySz  = 8
	locNoNetwork  = 0xffffffff
)

// LocationError reports a location database that is damaged or not one:
// what was being read and why it cannot be used.
type LocationError struct {
	Path string // the file, when known
	Msg  string
}

func (e *LocationError) Error() string {
	if e.Path == "" {
		return "location database: " + e.Msg
	}
	return "location database " + e.Path + ": " + e.Msg
}

// locDB is a checked view of a location database held in memory (usually
// mapped). openLocation checks every offset and index once, so lookups
// index within bounds by construction; Go's own bounds checks remain as
// the backstop.
type locDB struct {
	created                      time.Time
	vendor, description, license string

	tree []byte // nodes, locNodeSize bytes each
	nets []byte // network records, locNetSize bytes each

	asNum  []uint32 // sorted
	asName []string // asName[i] names asNum[i]

	// ipv4 is the walk's state at the end of the path of ::ffff:0:0/96
	// (depth 96, unless the tree ends before), shared by every IPv4
	// lookup.
	ipv4 locStart
	// v4, v6 hold the walk's state after the first strideBits bits of
	// an IPv4 address (from ipv4, without the networks above it) or of
	// an IPv6 address (from the root), indexed by those bits. They are
	// nil for a small tree; v4 is nil too when the tree has no node at
	// depth 96 on the IPv4 path.
	v4, v6 []locStart
	// flat4, flat6 are the tree flattened into ranges (libloc_flat.go):
	// IPv4 below ::ffff:0:0/96, and IPv6 to /64. Each is nil when the
	// tree is small, or not a tree.
	flat4 *locFlat[uint32]
	flat6 *locFlat[uint64]
}

// locStart is a walk's state at a node part way down the tree: 12 bytes,
// so that a table of 64Ki of them stays small.
type locStart struct {
	node  uint32
	leaf  uint32 // deepest network record on the path so far, or locNoNetwork
	depth uint8
	at    uint8 // the depth of leaf
	ended bool  // the path ends above depth: node is the last one
}

// strideBits is how many leading bits (of an IPv6 address, or of an IPv4
// address below ::ffff:0:0/96) a table lookup replaces, where the flat
// ranges cannot answer. The tree is laid out breadth first, so each
// level of a walk is a read from another part of the file; the table
// skips the first 16 of them for 768 KiB.
const strideBits = 16

// strideMinNodes is the smallest tree given stride tables and flat
// ranges: below it the whole tree is a few cache lines, and building
// them would cost more than it saves. A variable so that tests can cover
// both ways.
var strideMinNodes = 4096

func be16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }
func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }

// openLocation checks data as a version 1 location database and returns
// a view of it. The returned view keeps data; it copies only the string
// pool (a few MB), so names outlive nothing they point into.
func openLocation(data []byte) (*locDB, error) {
	bad := func(format string, args ...any) error {
		return &LocationError{Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) < 8 || string(data[:7]) != locMagic {
		return nil, bad("not a location database (no %q magic)", locMagic)
	}
	if v := data[7]; v != locVersion {
		return nil, bad("format version %d, this reader knows %d", v, locVersion)
	}
	if len(data) < locHeaderSize {
		return nil, bad("truncated header: %d bytes, need %d", len(data), locHeaderSize)
	}
	h := data[8:locHeaderSize]
	created := binary.BigEndian.Uint64(h)
	if created > 1<<40 {
		return nil, bad("created_at %d is not a plausible time", created)
	}
	type section struct {
		name        string
		off, length uint32
		size        uint32
	}
	secs := [...]section{
		{"AS list", be32(h, 20), be32(h, 24), locASSize},
		{"network records", be32(h, 28), be32(h, 32), locNetSize},
		{"network tree", be32(h, 36), be32(h, 40), locNodeSize},
		{"country list", be32(h, 44), be32(h, 48), locCountrySz},
		{"string pool", be32(h, 52), be32(h, 56), 1},
	}
	var part [len(secs)][]byte
	for i, s := range secs {
		end := uint64(s.off) + uint64(s.length)
		if end > uint64(len(data)) {
			return nil, bad("%s at %d, %d bytes, runs past the end of the file (%d bytes)", s.name, s.off, s.length, len(data))
		}
		if s.length%s.size != 0 {
			return nil, bad("%s is %d bytes, not a whole number of %d-byte records", s.name, s.length, s.size)
		}
		part[i] = data[s.off:end]
	}
	if n := be16(h, 60); n > locSigMax {
		return nil, bad("signature 1 length %d exceeds %d", n, locSigMax)
	}
	if n := be16(h, 62); n > locSigMax {
		return nil, bad("signature 2 length %d exceeds %d", n, locSigMax)
	}
	pool := string(part[4]) // one copy; every name is a substring of it
	// Where each string ends: found by binary search, since scanning
	// from each offset would let a file with many names pointing into
	// one long unterminated run cost quadratic time.
	var nuls []uint32 // the pool's length fits in 32 bits
	for i := 0; i < len(pool); {
		j := strings.IndexByte(pool[i:], 0)
		if j < 0 {
			break
		}
		nuls = append(nuls, uint32(i+j))
		i += j + 1
	}
	str := func(what string, off uint32) (string, error) {
		if uint64(off) >= uint64(len(pool)) {
			return "", bad("%s: string pool offset %d is outside the pool (%d bytes)", what, off, len(pool))
		}
		i, _ := slices.BinarySearch(nuls, off)
		if i == len(nuls) {
			return "", bad("%s: string at pool offset %d is not terminated", what, off)
		}
		return pool[off:nuls[i]], nil
	}

	db := &locDB{
		created: time.Unix(int64(created), 0).UTC(),
		tree:    part[2],
		nets:    part[1],
	}
	var err error
	if db.vendor, err = str("vendor", be32(h, 8)); err != nil {
		return nil, err
	}
	if db.description, err = str("description", be32(h, 12)); err != nil {
		return nil, err
	}
	if db.license, err = str("license", be32(h, 16)); err != nil {
		return nil, err
	}

	as := part[0]
	n := len(as) / locASSize
	db.asNum = make([]uint32, n)
	db.asName = make([]string, n)
	for i := range n {
		rec := as[i*locASSize:]
		db.asNum[i] = be32(rec, 0)
		if i > 0 && db.asNum[i] <= db.asNum[i-1] {
			return nil, bad("AS list is not sorted: AS%d follows AS%d at record %d", db.asNum[i], db.asNum[i-1], i)
		}
		if db.asName[i], err = str(fmt.Sprintf("AS%d", db.asNum[i]), be32(rec, 4)); err != nil {
			return nil, err
		}
	}

	nnets := uint32(len(db.nets) / locNetSize)
	for i := range nnets {
		cc := db.nets[i*locNetSize:][:2]
		if cc[0] == 0 && cc[1] == 0 || isUpper(cc[0]) && isUpper(cc[1]) {
			continue
		}
		return nil, bad("network record %d: country code %q is not two letters A-Z", i, cc)
	}
	nnodes := uint32(len(db.tree) / locNodeSize)
	if uint64(len(db.tree)/locNodeSize) > locNoNetwork {
		return nil, bad("network tree has too many nodes")
	}
	for i := range nnodes {
		rec := db.tree[i*locNodeSize:]
		for b := range 2 {
			if c := be32(rec, b*4); c >= nnodes {
				return nil, bad("network tree node %d: child %d is not one of the %d nodes", i, c, nnodes)
			}
		}
		if nw := be32(rec, 8); nw != locNoNetwork && nw >= nnets {
			return nil, bad("network tree node %d: network record %d is not one of the %d records", i, nw, nnets)
		}
	}

	db.ipv4 = db.walk(locStart{leaf: locNoNetwork}, addrBits{0, 0xffff << 32}, 96)
	if int(nnodes) < strideMinNodes {
		return db, nil
	}
	db.v6 = make([]locStart, 1<<strideBits)
	for i := range db.v6 {
		db.v6[i] = db.walk(locStart{leaf: locNoNetwork}, addrBits{uint64(i) << (64 - strideBits), 0}, strideBits)
	}
	db.flat6 = flattenTree[uint64](db, 0, 0)
	if db.ipv4.depth == 96 {
		db.flat4 = flattenTree[uint32](db, db.ipv4.node, 96)
	}
	if db.ipv4.depth == 96 && db.flat4 == nil {
		db.v4 = make([]locStart, 1<<strideBits)
		for i := range db.v4 {
			s := db.ipv4
			s.leaf = locNoNetwork // see lookup
			db.v4[i] = db.walk(s, addrBits{0, 0xffff<<32 | uint64(i)<<(32-strideBits)}, 96+strideBits)
		}
	}
	return db, nil
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// addrBits is a 128-bit address, most significant bit first.
type addrBits struct{ hi, lo uint64 }

func (a addrBits) bit(i int) uint32 {
	if i < 64 {
		return uint32(a.hi>>(63-i)) & 1
	}
	return uint32(a.lo>>(127-i)) & 1
}

// walk follows a's bits from s down to depth stop (at most 128), noting
// the deepest network on the way, and returns where it stopped.
func (db *locDB) walk(s locStart, a addrBits, stop int) locStart {
	tree := db.tree
	if len(tree) == 0 {
		s.ended = true
		return s
	}
	for {
		rec := tree[int(s.node)*locNodeSize:][:locNodeSize]
		if nw := be32(rec, 8); nw != locNoNetwork {
			s.leaf, s.at = nw, s.depth
		}
		if s.ended || int(s.depth) >= stop {
			return s
		}
		c := be32(rec, int(a.bit(int(s.depth)))*4)
		if c == 0 {
			s.ended = true
			return s
		}
		s.node = c
		s.depth++
	}
}

// lookup returns the network a falls in, and its network record, as
// libloc 0.9.16 (Debian 12) finds it: the deepest network on a's path.
// An IPv4-mapped address is IPv4. For an IPv4 address whose path reaches
// the IPv4 part of the tree, only networks within ::ffff:0:0/96 count,
// and the prefix is given in IPv4 form. It does not allocate.
func (db *locDB) lookup(a netip.Addr) (netip.Prefix, uint32, bool) {
	a = a.Unmap()
	var s locStart
	var bits addrBits
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:])
		if db.flat4 != nil {
			nw, depth := db.flat4.find(v)
			if nw == flatNone {
				return netip.Prefix{}, 0, false
			}
			p, _ := a.Prefix(int(depth) - 96)
			return p, nw, true
		}
		bits = addrBits{0, 0xffff<<32 | uint64(v)}
		switch {
		case db.v4 != nil:
			s = db.v4[v>>(32-strideBits)]
		case db.ipv4.depth == 96:
			// Networks above ::ffff:0:0/96 are IPv6, which no IPv4
			// address falls in (libloc cannot express them in IPv4
			// form). walk reads the start node's own network again.
			s = db.ipv4
			s.leaf = locNoNetwork
		default:
			s = db.ipv4 // the tree ends above depth 96
		}
	} else {
		b := a.As16()
		bits = addrBits{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
		if db.flat6 != nil {
			switch nw, depth := db.flat6.find(bits.hi); nw {
			case flatNone:
				return netip.Prefix{}, 0, false
			case flatWalk:
			default:
				p, _ := a.Prefix(int(depth))
				return p, nw, true
			}
		}
		s = locStart{leaf: locNoNetwork}
		if db.v6 != nil {
			s = db.v6[bits.hi>>(64-strideBits)]
		}
	}
	s = db.walk(s, bits, 128)
	if s.leaf == locNoNetwork {
		return netip.Prefix{}, 0, false
	}
	// libloc builds the network's address from the bits walked so far:
	// only once the walk has passed depth 95 do they spell an
	// IPv4-mapped address, and then a network above depth 96 cannot be
	// expressed (libloc skips it).
	if a.Is4() && s.depth >= 95 {
		if s.at < 96 {
			return netip.Prefix{}, 0, false
		}
		p, _ := a.Prefix(int(s.at) - 96)
		return p, s.leaf, true
	}
	p, _ := netip.AddrFrom16(a.As16()).Prefix(int(s.at))
	return p, s.leaf, true
}

// network returns the ASN and country code of network record i.
func (db *locDB) network(i uint32) (asn uint32, country string) {
	rec := db.nets[int(i)*locNetSize:][:locNetSize]
	return be32(rec, 4), countryCode(rec[0], rec[1])
}

// asNameOf returns the name of AS n, or "" when the database has none.
func (db *locDB) asNameOf(n uint32) string {
	lo, hi := 0, len(db.asNum)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if db.asNum[m] < n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(db.asNum) && db.asNum[lo] == n {
		return db.asName[lo]
	}
	return ""
}

// letterPairs holds every two-letter code, so that a code read from a
// file becomes a string without allocating.
var letterPairs = func() string {
	b := make([]byte, 0, 26*26*2)
	for x := byte('A'); x <= 'Z'; x++ {
		for y := byte('A'); y <= 'Z'; y++ {
			b = append(b, x, y)
		}
	}
	return string(b)
}()

// countryCode returns the code x, y as a string: "" for NUL NUL or
// anything that is not two letters A-Z.
func countryCode(x, y byte) string {
	if !isUpper(x) || !isUpper(y) {
		return ""
	}
	i := (int(x-'A')*26 + int(y-'A')) * 2
	return letterPairs[i : i+2]
}
