package limit

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseBlocklist checks that any input either fails with a line
// number or gives a list whose merged ranges are sorted and disjoint and
// whose Contains agrees with a linear scan of its prefixes.
func FuzzParseBlocklist(f *testing.F) {
	f.Add(sampleBlocklist)                                              // every feature at once
	f.Add("")                                                           // nothing
	f.Add("0.0.0.0/0\n::/0\n")                                          // everything
	f.Add("10.0.0.0/25\n10.0.0.128/25\n10.0.1.0/24\n")                  // adjacent ranges merge
	f.Add("255.255.255.255\nffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n") // top of both ranges
	f.Add("::ffff:0.0.0.0/96\n::ffff:0:0/95\n")                         // mapped at and below /96
	f.Add("fe80::1%eth0\n")                                             // zone: an error
	f.Add("1.2.3.4/33\n")                                               // bad length: an error
	f.Add("# comment only\r\n\t \n")                                    // blank lines of every kind
	f.Fuzz(func(t *testing.T, in string) {
		b, err := ParseBlocklist(strings.NewReader(in))
		if err != nil {
			be, ok := err.(*BlocklistError)
			if !ok || be.Line < 1 || be.Line > strings.Count(in, "\n")+1 {
				t.Fatalf("error %v is not a BlocklistError with a line of the input", err)
			}
			return
		}
		ps := b.Prefixes()
		if len(ps) != b.Len() {
			t.Fatalf("Len %d, %d prefixes", b.Len(), len(ps))
		}
		for i := 1; i < len(b.v4); i++ {
			if b.v4[i-1].hi >= b.v4[i].lo || b.v4[i-1].hi+1 == b.v4[i].lo {
				t.Fatalf("v4 spans %d and %d overlap or touch: %+v", i-1, i, b.v4)
			}
		}
		for i := 1; i < len(b.v6); i++ {
			if !b.v6[i-1].hi.less(b.v6[i].lo) || b.v6[i-1].hi.inc() == b.v6[i].lo {
				t.Fatalf("v6 spans %d and %d overlap or touch", i-1, i)
			}
		}
		for _, p := range ps {
			if p != p.Masked() {
				t.Fatalf("prefix %v not masked", p)
			}
			if !b.Contains(p.Addr()) {
				t.Fatalf("Contains(%v) = false, its own prefix %v", p.Addr(), p)
			}
		}
		// Probe addresses made of the input's bytes and around each prefix.
		var probes []netip.Addr
		raw := []byte(in + strings.Repeat("\x00", 16))
		probes = append(probes, netip.AddrFrom4([4]byte(raw[:4])), netip.AddrFrom16([16]byte(raw[:16])))
		for _, p := range ps {
			probes = append(probes, p.Addr().Prev(), p.Addr().Next())
			if p.Addr().Is4() {
				_, hi := range4(p)
				var x [4]byte
				binary.BigEndian.PutUint32(x[:], hi)
				probes = append(probes, netip.AddrFrom4(x), netip.AddrFrom4(x).Next())
			}
		}
		for _, a := range probes {
			if !a.IsValid() {
				continue
			}
			if got, want := b.Contains(a), reference(ps, a); got != want {
				t.Fatalf("Contains(%v) = %v, a scan of %v says %v", a, got, ps, want)
			}
		}
	})
}
