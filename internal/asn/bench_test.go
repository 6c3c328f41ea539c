package asn

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var sinkInfo Info

// benchAddrs returns n addresses inside networks of db (so that each
// lookup walks to a real network, the costly case), of one family.
func benchAddrs(db *locDB, n int, v4 bool) []netip.Addr {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = db.randomInside(r, v4)
	}
	return out
}

// BenchmarkLookupLocation looks up addresses in Debian's location
// database through DB.Lookup. "hot" repeats one address (the walk in
// cache); the others cycle through 64Ki addresses in random networks, so
// that most nodes below the top of the tree come from memory.
func BenchmarkLookupLocation(b *testing.B) {
	_, err := os.Stat(debianLocationDB)
	requireReal(b, err == nil, debianLocationDB)
	d, err := Open(Options{LocationDB: debianLocationDB})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		addrs []netip.Addr
	}{
		{"hot", []netip.Addr{netip.MustParseAddr("8.8.8.8")}},
		{"ipv4", benchAddrs(d.loc, 1<<16, true)},
		{"ipv6", benchAddrs(d.loc, 1<<16, false)},
		{"miss", []netip.Addr{netip.MustParseAddr("192.168.1.1")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkInfo, _ = d.Lookup(bc.addrs[i&(len(bc.addrs)-1)])
				i++
			}
		})
	}
}

// BenchmarkLocationWalk is BenchmarkLookupLocation's cold cases without
// the flat ranges (the stride tables and the walk), to show what the
// ranges are worth.
func BenchmarkLocationWalk(b *testing.B) {
	_, err := os.Stat(debianLocationDB)
	requireReal(b, err == nil, debianLocationDB)
	d, err := Open(Options{LocationDB: debianLocationDB})
	if err != nil {
		b.Fatal(err)
	}
	walk := *d.loc
	walk.flat4, walk.flat6 = nil, nil
	if walk.v4 == nil {
		walk.v4 = make([]locStart, 1<<strideBits)
		for i := range walk.v4 {
			s := walk.ipv4
			s.leaf = locNoNetwork
			walk.v4[i] = walk.walk(s, addrBits{0, 0xffff<<32 | uint64(i)<<(32-strideBits)}, 96+strideBits)
		}
	}
	for _, bc := range []struct {
		name  string
		addrs []netip.Addr
	}{
		{"ipv4", benchAddrs(d.loc, 1<<16, true)},
		{"ipv6", benchAddrs(d.loc, 1<<16, false)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_, sinkNet, _ = walk.lookup(bc.addrs[i&(len(bc.addrs)-1)])
				i++
			}
		})
	}
	runtime.KeepAlive(d) // walk reads d's mapping, which d's cleanup unmaps
}

var sinkNet uint32

// BenchmarkLookupNetworks looks up addresses in a networks file of
// 10,000 nested networks.
func BenchmarkLookupNetworks(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	var sb strings.Builder
	var addrs []netip.Addr
	seen := map[netip.Prefix]bool{}
	for len(seen) < 10_000 {
		a := netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		p, _ := a.Prefix(8 + r.IntN(25))
		if seen[p] {
			continue
		}
		seen[p] = true
		fmt.Fprintf(&sb, "%s\t%d\tnet %d\tNL\tabuse@example.net\n", p, r.Uint32(), len(seen))
		addrs = append(addrs, a)
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "networks.tsv")
	write(b, path, []byte(sb.String()))
	d, err := Open(Options{NetworksFile: path, LocationDB: LocationDBOff})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkInfo, _ = d.Lookup(addrs[i%len(addrs)])
		i++
	}
}

// BenchmarkLookupMMDB looks up addresses in a MaxMind DB of 10,000
// networks.
func BenchmarkLookupMMDB(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	var nets []mmdbNet
	var addrs []netip.Addr
	for i := range 10_000 {
		a := netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		p, _ := a.Prefix(16 + r.IntN(9))
		nets = append(nets, mmdbNet{p.String(), uint32(64512 + i%1000), fmt.Sprintf("ORG %d", i%1000)})
		addrs = append(addrs, a)
	}
	path := filepath.Join(b.TempDir(), "asn.mmdb")
	write(b, path, buildMMDB(1700000000, "GeoLite2-ASN", nets))
	d, err := Open(Options{MMDBFile: path, LocationDB: LocationDBOff})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkInfo, _ = d.Lookup(addrs[i%len(addrs)])
		i++
	}
}

// BenchmarkOpenLocation opens Debian's location database: mapping,
// hashing, checking every record, and building the ranges.
func BenchmarkOpenLocation(b *testing.B) {
	_, err := os.Stat(debianLocationDB)
	requireReal(b, err == nil, debianLocationDB)
	b.ReportAllocs()
	for b.Loop() {
		d, err := Open(Options{LocationDB: debianLocationDB})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
