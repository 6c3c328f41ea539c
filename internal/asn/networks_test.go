package asn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Network
		wantErr string // "" means no error
	}{
		{name: "empty"},
		{name: "comments and blanks", in: "# CIDR\tASN\tORG\tCOUNTRY\tABUSE_EMAIL\n\n   \n  # indented comment\n"},
		{name: "one line",
			in:   "192.0.2.0/24\tAS64500\tExample Transit\tNL\tabuse@example.net\n",
			want: []Network{{netip.MustParsePrefix("192.0.2.0/24"), 64500, "Example Transit", "NL", "abuse@example.net"}}},
		{name: "optional fields, bare address, spaces, CRLF, BOM",
			in: "\ufeff2001:db8::1 \t 64501 \t Example Hosting B.V. \t - \t -\r\n10.0.0.0/8\t-\tlab\tde\t\n",
			want: []Network{
				{netip.MustParsePrefix("2001:db8::1/128"), 64501, "Example Hosting B.V.", "", ""},
				{netip.MustParsePrefix("10.0.0.0/8"), 0, "lab", "DE", ""},
			}},
		{name: "org with hash", in: "192.0.2.0/24\t1\tNo. #1 ISP\tUS\t\n",
			want: []Network{{netip.MustParsePrefix("192.0.2.0/24"), 1, "No. #1 ISP", "US", ""}}},
		{name: "largest ASN", in: "192.0.2.0/24\tas4294967295\tx\t\t\n",
			want: []Network{{netip.MustParsePrefix("192.0.2.0/24"), 4294967295, "x", "", ""}}},

		{name: "spaces not tabs", in: "# header\n192.0.2.0/24 64500 Example NL abuse@example.net\n",
			wantErr: "networks file: line 2: has 1 tab-separated fields, want 5: CIDR ASN ORG COUNTRY ABUSE_EMAIL"},
		{name: "too many fields", in: "192.0.2.0/24\t1\tx\tNL\ta@b.example\textra\n",
			wantErr: "networks file: line 1: has 6 tab-separated fields, want 5"},
		{name: "host bits", in: "10.0.0.1/8\t1\tx\t\t\n",
			wantErr: `networks file: line 1: CIDR: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{name: "mapped", in: "::ffff:192.0.2.0/120\t1\tx\t\t\n",
			wantErr: `networks file: line 1: CIDR: "::ffff:192.0.2.0/120" is IPv4-mapped, which no source is; write the IPv4 form 192.0.2.0/24`},
		{name: "not a prefix", in: "example.net\t1\tx\t\t\n",
			wantErr: `networks file: line 1: CIDR: "example.net" is not an address or CIDR prefix`},
		{name: "ASN too large", in: "192.0.2.0/24\t4294967296\tx\t\t\n",
			wantErr: `networks file: line 1: ASN: "4294967296" is not an AS number (0-4294967295, optionally after "AS")`},
		{name: "ASN sign", in: "192.0.2.0/24\t+1\tx\t\t\n", wantErr: `line 1: ASN: "+1" is not an AS number`},
		{name: "ASN leading zero", in: "192.0.2.0/24\tAS01\tx\t\t\n", wantErr: `line 1: ASN: "AS01" is not an AS number`},
		{name: "ASN alone", in: "192.0.2.0/24\tAS\tx\t\t\n", wantErr: `line 1: ASN: "AS" is not an AS number`},
		{name: "no org", in: "192.0.2.0/24\t1\t \t\t\n", wantErr: "networks file: line 1: ORG: is empty: name the network's owner"},
		{name: "org control", in: "192.0.2.0/24\t1\ta\x1bb\t\t\n", wantErr: `line 1: ORG: "a\x1bb" has control characters`},
		{name: "country", in: "192.0.2.0/24\t1\tx\tNLD\t\n", wantErr: `networks file: line 1: COUNTRY: "NLD" is not a two-letter country code`},
		{name: "email with name", in: "192.0.2.0/24\t1\tx\t\tAbuse <abuse@example.net>\n",
			wantErr: `networks file: line 1: ABUSE_EMAIL: "Abuse <abuse@example.net>" is not a bare mail address (abuse@example.net)`},
		{name: "email without domain", in: "192.0.2.0/24\t1\tx\t\tabuse\n", wantErr: `line 1: ABUSE_EMAIL: "abuse" is not a bare mail address`},
		{name: "duplicate", in: "192.0.2.0/24\t1\tx\t\t\n# again\n192.0.2.0/24\t2\ty\t\t\n",
			wantErr: "networks file: line 3: CIDR: 192.0.2.0/24 is already on line 1"},
		{name: "line too long", in: "192.0.2.0/24\t1\t" + strings.Repeat("x", 5000) + "\t\t\n",
			wantErr: "networks file: line 1: longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseNetworks(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseNetworks(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				if _, ok := errors.AsType[*NetworksError](err); !ok {
					t.Errorf("error is %T, want *NetworksError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNetworks(%q): %v", tt.in, err)
			}
			if n.Len() != len(tt.want) {
				t.Fatalf("ParseNetworks(%q) has %d networks, want %d", tt.in, n.Len(), len(tt.want))
			}
			for i, w := range tt.want {
				if got := n.list[i]; got != w {
					t.Errorf("network %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestNetworksLookup(t *testing.T) {
	n, err := ParseNetworks(strings.NewReader(strings.Join([]string{
		"0.0.0.0/0\t1\tall of IPv4\t\t",
		"10.0.0.0/8\t2\tten\t\t",
		"10.1.0.0/16\t3\tten-one\t\t",
		"10.1.0.0/24\t4\tten-one-zero\t\t",
		"10.255.255.255\t5\tlast of ten\t\t",
		"255.255.255.255\t6\tbroadcast\t\t",
		"2001:db8::/32\t7\tdoc\t\tabuse@doc.example",
		"2001:db8::/48\t8\tdoc-zero\t\t",
		"ffff::/16\t9\ttop\t\t",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ addr, org string }{
		{"0.0.0.0", "all of IPv4"},
		{"9.255.255.255", "all of IPv4"},
		{"10.0.0.0", "ten"},
		{"10.1.0.0", "ten-one-zero"},
		{"10.1.0.255", "ten-one-zero"},
		{"10.1.1.0", "ten-one"},
		{"10.1.255.255", "ten-one"},
		{"10.2.0.0", "ten"},
		{"10.255.255.254", "ten"},
		{"10.255.255.255", "last of ten"},
		{"11.0.0.0", "all of IPv4"},
		{"255.255.255.254", "all of IPv4"},
		{"255.255.255.255", "broadcast"},
		{"::ffff:10.1.0.1", "ten-one-zero"}, // mapped is IPv4
		{"::", ""},
		{"2001:db8::", "doc-zero"},
		{"2001:db8:0:ffff::", "doc-zero"},
		{"2001:db8:1::", "doc"},
		{"2001:db9::", ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "top"},
	}
	for _, tt := range tests {
		nw, ok := n.Lookup(netip.MustParseAddr(tt.addr))
		got := ""
		if ok {
			got = nw.Org
		}
		if got != tt.org {
			t.Errorf("Lookup(%s) = %q, want %q", tt.addr, got, tt.org)
		}
	}
	var nilNets *Networks
	if _, ok := nilNets.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("nil *Networks found something")
	}
}

// slowLookup is the obvious longest-prefix match, for checking Lookup.
func slowLookup(n *Networks, a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	best := netip.Prefix{}
	for _, nw := range n.list {
		if nw.Prefix.Contains(a) && (!best.IsValid() || nw.Prefix.Bits() > best.Bits()) {
			best = nw.Prefix
		}
	}
	return best, best.IsValid()
}

// TestNetworksLookupRandom compares Lookup with slowLookup on random
// nested networks, probing each network's edges and random addresses.
func TestNetworksLookupRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 50 {
		var b strings.Builder
		for range 1 + r.IntN(60) {
			var p netip.Prefix
			if r.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{byte(r.IntN(4)) * 64, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
				p, _ = a.Prefix(r.IntN(33))
			} else {
				a := from128(u128{0x2001_0db8_0000_0000 | r.Uint64()&0xffff_ffff | uint64(r.IntN(2))<<63, r.Uint64()})
				p, _ = a.Prefix(r.IntN(129))
			}
			fmt.Fprintf(&b, "%s\t%d\tnet %s\t\t\n", p, r.Uint32(), p)
		}
		n, err := parseUnique(b.String())
		if err != nil {
			t.Fatal(err)
		}
		var probes []netip.Addr
		for _, nw := range n.list {
			probes = append(probes, nw.Prefix.Addr(), lastAddr(nw.Prefix), nw.Prefix.Addr().Prev(), lastAddr(nw.Prefix).Next())
		}
		for range 200 {
			probes = append(probes, netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), 0, 1}))
		}
		for _, a := range probes {
			if !a.IsValid() {
				continue
			}
			want, wok := slowLookup(n, a)
			got, gok := n.Lookup(a)
			if wok != gok || gok && got.Prefix != want {
				t.Fatalf("round %d: Lookup(%s) = %v %v, want %s %v\n%s", round, a, got, gok, want, wok, b.String())
			}
		}
	}
}

// parseUnique parses text after dropping repeated prefixes.
func parseUnique(text string) (*Networks, error) {
	seen := map[string]bool{}
	var keep []string
	for line := range strings.Lines(text) {
		p, _, _ := strings.Cut(line, "\t")
		if !seen[p] {
			seen[p] = true
			keep = append(keep, line)
		}
	}
	return ParseNetworks(strings.NewReader(strings.Join(keep, "")))
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// FuzzParseNetworks: any input gives networks or a *NetworksError, never
// a panic; what parses looks up as the obvious longest match does.
func FuzzParseNetworks(f *testing.F) {
	f.Add("192.0.2.0/24\tAS64500\tExample Transit\tNL\tabuse@example.net\n")          // every field
	f.Add("# comment\n\n2001:db8::/32\t-\tdoc\t-\t-\r\n2001:db8::/48\t1\tdoc0\t\t\n") // nested, CRLF
	f.Add("0.0.0.0/0\t1\tall\t\t\n255.255.255.255\t2\tlast\t\t\n::/0\t3\tall6\t\t\n") // the extremes
	f.Add("10.0.0.1/8\t1\tx\t\t\n")                                                   // host bits
	f.Add("192.0.2.0/24\t1\tx\t\tAbuse <a@b.example>\n")                              // not bare
	f.Fuzz(func(t *testing.T, in string) {
		n, err := ParseNetworks(strings.NewReader(in))
		if err != nil {
			if _, ok := errors.AsType[*NetworksError](err); !ok {
				t.Fatalf("error %T %v, want *NetworksError", err, err)
			}
			return
		}
		for _, nw := range n.list {
			for _, a := range []netip.Addr{nw.Prefix.Addr(), lastAddr(nw.Prefix), nw.Prefix.Addr().Prev(), lastAddr(nw.Prefix).Next()} {
				if !a.IsValid() {
					continue
				}
				want, wok := slowLookup(n, a)
				got, gok := n.Lookup(a)
				if wok != gok || gok && got.Prefix != want {
					t.Fatalf("Lookup(%s) = %v %v, want %s %v", a, got, gok, want, wok)
				}
			}
		}
	})
}
