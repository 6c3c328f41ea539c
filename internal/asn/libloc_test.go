package asn

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nestedNets is a small database with defaults for both families and
// networks nested several deep.
var nestedNets = []testNet{
	{"::/0", 1, "US"},             // IPv6 default: no IPv4 address falls in it
	{"0.0.0.0/0", 2, "GB"},        // ::ffff:0:0/96, depth 96
	{"10.0.0.0/8", 64500, "NL"},   //
	{"10.1.0.0/16", 64501, "DE"},  //
	{"10.1.2.0/24", 64502, ""},    // no country
	{"10.1.2.3/32", 64503, "FR"},  // a host
	{"255.255.255.255/32", 0, ""}, // no AS either
	{"2001:db8::/32", 64510, "SE"},
	{"2001:db8:1::/48", 64511, "NO"},
	{"2001:db8:1:2::/64", 64512, "FI"},
	{"2001:db8::1/128", 64513, "DK"},
	{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 64514, "IS"},
}

var nestedASes = []testAS{{1, "ONE"}, {2, "TWO"}, {64500, "EXAMPLE-8"}, {64501, "EXAMPLE-16"}, {64503, ""}, {64510, "DOC-32"}}

// strideModes runs f with and without stride tables and flat ranges,
// whatever the size of the tree.
func strideModes(t *testing.T, f func(t *testing.T)) {
	for _, min := range []int{0, 1 << 30} {
		name := "flat"
		if min != 0 {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			old := strideMinNodes
			strideMinNodes = min
			defer func() { strideMinNodes = old }()
			f(t)
		})
	}
}

func TestLocationLookup(t *testing.T) { strideModes(t, testLocationLookup) }

func testLocationLookup(t *testing.T) {
	db, err := openLocation(buildLocation(1700000000, nestedASes, nestedNets))
	if err != nil {
		t.Fatal(err)
	}
	if tables := strideMinNodes == 0; (db.v6 != nil) != tables {
		t.Fatalf("stride tables built: %v, want %v", db.v6 != nil, tables)
	}
	tests := []struct {
		addr    string
		prefix  string // "" means not found
		asn     uint32
		org, cc string
	}{
		{"10.1.2.3", "10.1.2.3/32", 64503, "", "FR"},
		{"10.1.2.4", "10.1.2.0/24", 64502, "", ""},
		{"10.1.3.0", "10.1.0.0/16", 64501, "EXAMPLE-16", "DE"},
		{"10.200.0.1", "10.0.0.0/8", 64500, "EXAMPLE-8", "NL"},
		{"11.0.0.0", "0.0.0.0/0", 2, "TWO", "GB"},
		{"0.0.0.0", "0.0.0.0/0", 2, "TWO", "GB"},
		{"255.255.255.255", "255.255.255.255/32", 0, "", ""},
		{"255.255.255.254", "0.0.0.0/0", 2, "TWO", "GB"},
		{"2001:db8::1", "2001:db8::1/128", 64513, "", "DK"},
		{"2001:db8::2", "2001:db8::/32", 64510, "DOC-32", "SE"},
		{"2001:db8:1:2::99", "2001:db8:1:2::/64", 64512, "", "FI"},
		{"2001:db8:1:3::", "2001:db8:1::/48", 64511, "", "NO"},
		{"2002::", "::/0", 1, "ONE", "US"},
		{"::", "::/0", 1, "ONE", "US"},
		{"::ffff:0:0", "0.0.0.0/0", 2, "TWO", "GB"}, // IPv4-mapped is IPv4, as in libloc
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 64514, "", "IS"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			p, nw, ok := db.lookup(netip.MustParseAddr(tt.addr))
			if tt.prefix == "" {
				if ok {
					t.Fatalf("lookup(%s) = %s, want none", tt.addr, p)
				}
				return
			}
			if !ok || p != netip.MustParsePrefix(tt.prefix) {
				t.Fatalf("lookup(%s) = %s, %v; want %s", tt.addr, p, ok, tt.prefix)
			}
			asn, cc := db.network(nw)
			if org := db.asNameOf(asn); asn != tt.asn || cc != tt.cc || org != tt.org {
				t.Errorf("lookup(%s): AS%d %q %q, want AS%d %q %q", tt.addr, asn, org, cc, tt.asn, tt.org, tt.cc)
			}
		})
	}
	if db.vendor != "Test Vendor" || db.description != "A test database\nsecond line" || db.license != "CC0-1.0" {
		t.Errorf("vendor, description, license = %q, %q, %q", db.vendor, db.description, db.license)
	}
	if want := time.Unix(1700000000, 0).UTC(); !db.created.Equal(want) {
		t.Errorf("created = %v, want %v", db.created, want)
	}
}

// edgeDatabases are small databases whose shapes Debian's file does not
// have, each checked against python3-location: the walk's handling of
// IPv4 below and above depth 96 is where a reader can go wrong.
var edgeDatabases = []struct {
	name string
	nets []testNet
}{
	{"nested", nestedNets},
	// An IPv6 network on the IPv4 path above depth 96: libloc cannot
	// give it in IPv4 form, so no IPv4 address is found in it (Python
	// raises ValueError; this package reports no network).
	{"ipv6 above ipv4", []testNet{{"::/0", 1, "US"}, {"::/80", 3, "CA"}, {"192.0.2.0/24", 64500, "NL"}}},
	// The IPv4 path leaves the tree at depth 2: libloc then finds the
	// IPv6 default, and says so in IPv6 form.
	{"tree ends early", []testNet{{"::/0", 1, "US"}, {"2001:db8::/32", 64510, "SE"}}},
	// Nothing at all.
	{"empty", nil},
	// IPv4 only, shallow and deep.
	{"ipv4 only", []testNet{{"128.0.0.0/1", 7, "JP"}, {"192.0.2.128/25", 8, "KR"}, {"192.0.2.129/32", 9, "CN"}}},
}

// TestLocationEdgesAgreeWithPython writes each edge database, asks
// python3-location about addresses in and around its networks, and
// requires the same answers. libloc 0.9.16 raises ValueError where its
// walk meets a network it cannot express (an IPv6 network for an IPv4
// address); that counts as "no network".
func TestLocationEdgesAgreeWithPython(t *testing.T) { strideModes(t, testLocationEdgesAgreeWithPython) }

func testLocationEdgesAgreeWithPython(t *testing.T) {
	py := debianPython(t)
	for _, ed := range edgeDatabases {
		t.Run(ed.name, func(t *testing.T) {
			data := buildLocation(1700000000, nestedASes, ed.nets)
			path := filepath.Join(t.TempDir(), "edge.db")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			db, err := openLocation(data)
			if err != nil {
				t.Fatal(err)
			}
			addrs := edgeAddrs(ed.nets)
			want := pythonLookup(t, py, path, addrs)
			for _, a := range addrs {
				w, seen := want[a]
				if !seen {
					t.Fatalf("locate.py said nothing of %s", a)
				}
				if w.err != "" {
					if !strings.HasPrefix(w.err, "ValueError: Invalid IP address") {
						t.Errorf("python3-location raised for %s: %s", a, w.err)
					}
					w = pyResult{}
				}
				var got pyResult
				if p, nw, ok := db.lookup(a); ok {
					got.found, got.prefix = true, p
					got.asn, got.country = db.network(nw)
				}
				if got != w {
					t.Errorf("lookup(%s) = %v, python3-location says %v", a, got, w)
				}
			}
		})
	}
}

// edgeAddrs returns, for each network, its first and last address, the
// addresses just outside it, and a few inside; and fixed addresses of
// both families.
func edgeAddrs(nets []testNet) []netip.Addr {
	r := rand.New(rand.NewPCG(3, 4))
	addrs := []netip.Addr{
		netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("::"), netip.MustParseAddr("::1"),
		netip.MustParseAddr("::ffff:0:1"), netip.MustParseAddr("::fffe:ffff:ffff"), netip.MustParseAddr("::1:0:0:0"),
		netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
	}
	for _, n := range nets {
		p := netip.MustParsePrefix(n.prefix)
		lo := to128(p.Addr())
		bits := p.Bits()
		if p.Addr().Is4() {
			lo = u128{0, 0xffff<<32 | lo.lo&0xffffffff}
			bits += 96
		}
		hi := lo
		if bits < 64 {
			hi = u128{lo.hi | ^uint64(0)>>bits, ^uint64(0)}
		} else if bits < 128 {
			hi.lo |= ^uint64(0) >> (bits - 64)
		}
		for _, x := range []u128{lo, hi, lo.dec(), hi.inc()} {
			addrs = append(addrs, from128(x))
		}
		for range 4 {
			x := u128{lo.hi | r.Uint64()&(hi.hi^lo.hi), lo.lo | r.Uint64()&(hi.lo^lo.lo)}
			addrs = append(addrs, from128(x))
		}
	}
	return addrs
}

func from128(x u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b).Unmap()
}

// TestLocationDamaged opens files that are not, or no longer, a valid
// location database, and requires an error saying what is wrong (never
// a panic, never an empty database).
func TestLocationDamaged(t *testing.T) {
	good := buildLocation(1700000000, nestedASes, nestedNets)
	hdr := func(field int) int { return 8 + field } // offset of a header field
	secOff := func(field int) int { return int(binary.BigEndian.Uint32(good[hdr(field):])) }
	const (
		fAS, fNets, fTree, fPool = 20, 28, 36, 52
	)
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	put32 := func(at int, v uint32) func(b []byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[at:], v); return b }
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, `not a location database (no "LOCDBXX" magic)`},
		{"other file", []byte("SQLite format 3\x00"), `not a location database`},
		{"version 2", edit(func(b []byte) []byte { b[7] = 2; return b }), "format version 2, this reader knows 1"},
		{"truncated header", good[:100], "truncated header: 100 bytes, need 4200"},
		{"truncated file", good[:len(good)-10], "string pool at "},
		{"section past the end", edit(put32(hdr(fTree), 1<<31)), "network tree at 2147483648"},
		{"length past the end", edit(put32(hdr(fTree+4), 0xfffffff0)), "runs past the end of the file"},
		{"ragged section", edit(put32(hdr(fTree+4), locNodeSize*2+1)), "network tree is 25 bytes, not a whole number of 12-byte records"},
		{"signature too long", edit(func(b []byte) []byte { binary.BigEndian.PutUint16(b[hdr(60):], 4000); return b }), "signature 1 length 4000 exceeds 2048"},
		{"implausible date", edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[8:], 1<<63); return b }), "created_at 9223372036854775808 is not a plausible time"},
		{"vendor outside pool", edit(put32(hdr(8), 1<<20)), "vendor: string pool offset 1048576 is outside the pool"},
		{"pool not terminated", edit(func(b []byte) []byte { b[len(b)-1] = 'x'; return b }), "is not terminated"},
		{"AS name outside pool", edit(put32(secOff(fAS)+4, 1<<20)), "AS1: string pool offset 1048576 is outside the pool"},
		{"AS list unsorted", edit(put32(secOff(fAS)+locASSize, 0)), "AS list is not sorted: AS0 follows AS1 at record 1"},
		{"bad country", edit(func(b []byte) []byte { copy(b[secOff(fNets):], "u\x00"); return b }), `network record 0: country code "u\x00" is not two letters A-Z`},
		{"child out of range", edit(put32(secOff(fTree)+4, 1000)), "network tree node 0: child 1000 is not one of the"},
		{"network out of range", edit(put32(secOff(fTree)+8, 1000)), "network tree node 0: network record 1000 is not one of the 12 records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := openLocation(tt.data)
			if err == nil {
				t.Fatalf("openLocation succeeded (%d nodes), want error %q", len(db.tree)/locNodeSize, tt.wantErr)
			}
			if _, ok := err.(*LocationError); !ok {
				t.Errorf("error %T, want *LocationError", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := openLocation(good); err != nil {
		t.Fatalf("the undamaged file: %v", err)
	}
}

// FuzzOpenLocation feeds openLocation damaged and hostile files: it
// must return an error or a database whose lookups neither panic nor
// leave the family they were asked about.
func FuzzOpenLocation(f *testing.F) {
	f.Add(buildLocation(1700000000, nestedASes, nestedNets))                             // every kind of record
	f.Add(buildLocation(0, nil, nil))                                                    // just a root
	f.Add(buildLocation(1, nil, []testNet{{"::/0", 1, "US"}, {"::/80", 3, "CA"}}))       // IPv6 above the IPv4 path
	f.Add(buildLocation(1, nil, []testNet{{"::/0", 1, "US"}, {"2001:db8::/32", 2, ""}})) // IPv4 path ends early
	f.Add([]byte("LOCDBXX\x01"))                                                         // header missing
	probes := []netip.Addr{
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::"), netip.MustParseAddr("ffff::1"),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := openLocation(data) // small: no flat ranges, the plain walk
		if err != nil {
			return
		}
		flat := *db
		flat.flat6 = flattenTree[uint64](db, 0, 0)
		if db.ipv4.depth == 96 {
			flat.flat4 = flattenTree[uint32](db, db.ipv4.node, 96)
		}
		for _, a := range probes {
			p, nw, ok := db.lookup(a)
			if fp, fnw, fok := flat.lookup(a); fp != p || fnw != nw || fok != ok {
				t.Fatalf("lookup(%s) = %s %d %v by the flat ranges, %s %d %v by the walk", a, fp, fnw, fok, p, nw, ok)
			}
			if !ok {
				continue
			}
			if !p.Contains(a) && !(a.Is4() && p.Addr().Is6()) {
				t.Fatalf("lookup(%s) = %s, which does not hold it", a, p)
			}
			asn, _ := db.network(nw)
			_ = db.asNameOf(asn)
		}
	})
}

// TestLocationNotATree: a hostile file whose "tree" has a node that is
// its own child has 2^128 paths below it. Lookups walk at most 128
// levels; flattening gives up after one visit per node, and the walk
// answers instead.
func TestLocationNotATree(t *testing.T) {
	data := buildLocation(1, nestedASes, []testNet{{"::/0", 1, "US"}, {"::/1", 2, "GB"}})
	tree := int(binary.BigEndian.Uint32(data[8+36:]))
	// node 1 is ::/1; make both its children itself
	binary.BigEndian.PutUint32(data[tree+locNodeSize:], 1)
	binary.BigEndian.PutUint32(data[tree+locNodeSize+4:], 1)
	old := strideMinNodes
	strideMinNodes = 0
	defer func() { strideMinNodes = old }()
	db, err := openLocation(data)
	if err != nil {
		t.Fatal(err)
	}
	if db.flat6 != nil || db.flat4 != nil {
		t.Fatal("flattened a graph with a cycle")
	}
	for _, s := range []string{"::1", "7fff::1", "1.2.3.4"} {
		p, _, ok := db.lookup(netip.MustParseAddr(s))
		if !ok || p.Bits() != 128 && p.Bits() != 32 {
			t.Errorf("lookup(%s) = %s %v, want the network at the bottom of the cycle", s, p, ok)
		}
	}
}
