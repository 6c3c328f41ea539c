package asn

import (
	"encoding/binary"
	"net/netip"
)

// testNet is a network for buildLocation: prefix in IPv4 or IPv6 form.
type testNet struct {
	prefix  string
	asn     uint32
	country string // "" or two letters
}

type testAS struct {
	num  uint32
	name string
}

// trieNode is buildLocation's in-memory tree.
type trieNode struct {
	child [2]*trieNode
	net   int // index into the networks given, or -1
}

// buildLocation writes a version 1 location database holding nets and
// ases, laid out as libloc's writer lays it out (the tree breadth first,
// network records in the order their nodes are numbered), for tests that
// need a small file, a damaged one, or one with networks Debian's file
// lacks. It panics on a bad prefix: test input only.
func buildLocation(created uint64, ases []testAS, nets []testNet) []byte {
	root := &trieNode{net: -1}
	for i, n := range nets {
		p := netip.MustParsePrefix(n.prefix)
		b := p.Addr().As16() // IPv4 becomes ::ffff:a.b.c.d
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		t := root
		for d := range bits {
			bit := b[d/8] >> (7 - d%8) & 1
			if t.child[bit] == nil {
				t.child[bit] = &trieNode{net: -1}
			}
			t = t.child[bit]
		}
		t.net = i
	}
	var nodes, netRecs []byte
	queue := []*trieNode{root}
	index := map[*trieNode]uint32{root: 0}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		var rec [locNodeSize]byte
		for b, c := range t.child {
			if c != nil {
				index[c] = uint32(len(index))
				queue = append(queue, c)
				binary.BigEndian.PutUint32(rec[b*4:], index[c])
			}
		}
		binary.BigEndian.PutUint32(rec[8:], locNoNetwork)
		if t.net >= 0 {
			n := nets[t.net]
			binary.BigEndian.PutUint32(rec[8:], uint32(len(netRecs)/locNetSize))
			var nr [locNetSize]byte
			copy(nr[:2], n.country)
			binary.BigEndian.PutUint32(nr[4:], n.asn)
			netRecs = append(netRecs, nr[:]...)
		}
		nodes = append(nodes, rec[:]...)
	}

	pool := []byte("Test Vendor\x00A test database\nsecond line\x00CC0-1.0\x00")
	var asRecs []byte
	for _, a := range ases {
		var r [locASSize]byte
		binary.BigEndian.PutUint32(r[:], a.num)
		binary.BigEndian.PutUint32(r[4:], uint32(len(pool)))
		pool = append(append(pool, a.name...), 0)
		asRecs = append(asRecs, r[:]...)
	}

	out := make([]byte, locHeaderSize)
	copy(out, locMagic)
	out[7] = locVersion
	h := out[8:]
	binary.BigEndian.PutUint64(h, created)
	binary.BigEndian.PutUint32(h[8:], 0)   // vendor
	binary.BigEndian.PutUint32(h[12:], 12) // description
	binary.BigEndian.PutUint32(h[16:], 40) // license
	put := func(field int, sec []byte) {
		for len(out)%16 != 0 {
			out = append(out, 0)
		}
		binary.BigEndian.PutUint32(out[8+field:], uint32(len(out)))
		binary.BigEndian.PutUint32(out[8+field+4:], uint32(len(sec)))
		out = append(out, sec...)
	}
	put(20, asRecs)
	put(28, netRecs)
	put(36, nodes)
	put(44, nil) // no countries
	put(52, pool)
	return out
}
