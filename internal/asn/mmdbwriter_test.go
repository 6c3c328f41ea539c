package asn

import (
	"encoding/binary"
	"net/netip"
)

// The MaxMind DB writer is a separate module; this is the little of the
// format (spec v2.0) the tests need: an IPv6 tree with 24-bit records,
// IPv4 networks under ::/96, and a data section of maps.

// mmdbNet is a network for buildMMDB; a record of nil fields (asn 0 and
// org "") is written as an empty map, which is not an ASN record.
type mmdbNet struct {
	prefix string
	asn    uint32
	org    string
}

// mmdbEnc appends MaxMind DB data fields.
type mmdbEnc struct{ b []byte }

// ctrl writes a control byte for typ (1-15) and size.
func (e *mmdbEnc) ctrl(typ byte, size int) {
	first := len(e.b)
	if typ <= 7 {
		e.b = append(e.b, typ<<5)
	} else {
		e.b = append(e.b, 0, typ-7)
	}
	switch {
	case size < 29:
		e.b[first] |= byte(size)
	case size < 29+256:
		e.b[first] |= 29
		e.b = append(e.b, byte(size-29))
	default: // up to 29+256+65535: enough here
		e.b[first] |= 30
		e.b = binary.BigEndian.AppendUint16(e.b, uint16(size-285))
	}
}

func (e *mmdbEnc) str(s string) { e.ctrl(2, len(s)); e.b = append(e.b, s...) }

// uint writes v as an unsigned integer of type typ (5 uint16, 6 uint32,
// 9 uint64) in as few bytes as it needs.
func (e *mmdbEnc) uint(typ byte, v uint64) {
	var n int
	for x := v; x > 0; x >>= 8 {
		n++
	}
	e.ctrl(typ, n)
	for i := n - 1; i >= 0; i-- {
		e.b = append(e.b, byte(v>>(8*i)))
	}
}

type mmdbTrie struct {
	child [2]*mmdbTrie
	data  int // offset in the data section, or -1
}

// buildMMDB writes a MaxMind DB of GeoLite2-ASN records.
func buildMMDB(buildEpoch uint64, dbType string, nets []mmdbNet) []byte {
	var data mmdbEnc
	offsets := map[mmdbNet]int{}
	root := &mmdbTrie{data: -1}
	for _, n := range nets {
		key := mmdbNet{asn: n.asn, org: n.org}
		off, ok := offsets[key]
		if !ok {
			off = len(data.b)
			offsets[key] = off
			fields := 0
			if n.asn != 0 {
				fields++
			}
			if n.org != "" {
				fields++
			}
			data.ctrl(7, fields)
			if n.asn != 0 {
				data.str("autonomous_system_number")
				data.uint(6, uint64(n.asn))
			}
			if n.org != "" {
				data.str("autonomous_system_organization")
				data.str(n.org)
			}
		}
		p := netip.MustParsePrefix(n.prefix)
		b := p.Addr().As16()
		bits := p.Bits()
		if p.Addr().Is4() {
			b = [16]byte{} // IPv4 lives at ::a.b.c.d
			copy(b[12:], p.Addr().AsSlice())
			bits += 96
		}
		t := root
		for d := range bits {
			bit := b[d/8] >> (7 - d%8) & 1
			if t.child[bit] == nil {
				t.child[bit] = &mmdbTrie{data: -1}
			}
			t = t.child[bit]
		}
		t.data = off
	}

	// Number the nodes that have children, breadth first; a node
	// without children becomes its parent's data record, and data held
	// above a deeper network is pushed down to the sides without one.
	type item struct {
		t       *mmdbTrie
		inherit int
	}
	var order []item
	index := map[*mmdbTrie]int{}
	queue := []item{{root, -1}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		index[it.t] = len(order)
		order = append(order, it)
		inherit := it.inherit
		if it.t.data >= 0 {
			inherit = it.t.data
		}
		for _, c := range it.t.child {
			if c != nil && (c.child[0] != nil || c.child[1] != nil) {
				queue = append(queue, item{c, inherit})
			}
		}
	}
	nodeCount := len(order)
	record := func(it item, side int) uint32 {
		inherit := it.inherit
		if it.t.data >= 0 {
			inherit = it.t.data
		}
		c := it.t.child[side]
		switch {
		case c != nil && (c.child[0] != nil || c.child[1] != nil):
			return uint32(index[c])
		case c != nil && c.data >= 0:
			return uint32(nodeCount + 16 + c.data)
		case inherit >= 0:
			return uint32(nodeCount + 16 + inherit)
		}
		return uint32(nodeCount) // no data
	}
	var out []byte
	for _, it := range order {
		for side := range 2 {
			r := record(it, side)
			out = append(out, byte(r>>16), byte(r>>8), byte(r))
		}
	}
	out = append(out, make([]byte, 16)...) // the data section separator
	out = append(out, data.b...)
	out = append(out, "\xab\xcd\xefMaxMind.com"...)
	var md mmdbEnc
	md.ctrl(7, 9)
	md.str("node_count")
	md.uint(6, uint64(nodeCount))
	md.str("record_size")
	md.uint(5, 24)
	md.str("ip_version")
	md.uint(5, 6)
	md.str("database_type")
	md.str(dbType)
	md.str("languages")
	md.ctrl(11, 1)
	md.str("en")
	md.str("binary_format_major_version")
	md.uint(5, 2)
	md.str("binary_format_minor_version")
	md.uint(5, 0)
	md.str("build_epoch")
	md.uint(9, buildEpoch)
	md.str("description")
	md.ctrl(7, 1)
	md.str("en")
	md.str("Test ASN database\nwritten by asn's tests")
	return append(out, md.b...)
}
