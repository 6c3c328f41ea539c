package limit

import (
	"net/netip"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the prefix; "" when an error is wanted
		wantErr string
	}{
		{in: "192.0.2.0/24", want: "192.0.2.0/24"},
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: "192.0.2.7/32", want: "192.0.2.7/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::/0", want: "::/0"},
		{in: "::ffff:0:0/80", wantErr: `"::ffff:0:0/80" has host bits set; did you mean ::/80?`},
		{in: "", wantErr: `"" is not an address or CIDR prefix`},
		{in: "proxy.local", wantErr: `"proxy.local" is not an address or CIDR prefix`},
		{in: "10.0.0.0/", wantErr: `"10.0.0.0/" has a bad prefix length: must be 0-32`},
		{in: "10.0.0.0/33", wantErr: `"10.0.0.0/33" has a bad prefix length: must be 0-32`},
		{in: "10.0.0.0/08", wantErr: `"10.0.0.0/08" has a bad prefix length: must be 0-32`},
		{in: "10.0.0.0/+8", wantErr: `"10.0.0.0/+8" has a bad prefix length: must be 0-32`},
		{in: "10.0.0.0/8/8", wantErr: `"10.0.0.0/8/8" has a bad prefix length: must be 0-32`},
		{in: "2001:db8::/129", wantErr: `"2001:db8::/129" has a bad prefix length: must be 0-128`},
		{in: "10.0.0.1/8", wantErr: `"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{in: "2001:db8::1/64", wantErr: `"2001:db8::1/64" has host bits set; did you mean 2001:db8::/64?`},
		{in: "::ffff:192.0.2.7", wantErr: `"::ffff:192.0.2.7" is IPv4-mapped, which no source is; write the IPv4 form 192.0.2.7`},
		{in: "::ffff:192.0.2.0/120", wantErr: `"::ffff:192.0.2.0/120" is IPv4-mapped, which no source is; write the IPv4 form 192.0.2.0/24`},
		{in: "::ffff:0:0/96", wantErr: `"::ffff:0:0/96" is IPv4-mapped, which no source is; write the IPv4 form 0.0.0.0/0`},
		{in: "fe80::1%eth0", wantErr: `"fe80::1%eth0" has a zone, which names an interface, not a network`},
		{in: "fe80::%eth0/64", wantErr: `"fe80::%eth0/64" has a zone, which names an interface, not a network`},
		{in: " 10.0.0.0/8", wantErr: `" 10.0.0.0/8" has space around it`},
		{in: "10.0.0.0/8\n", wantErr: `"10.0.0.0/8\n" has space around it`},
		{in: "10.0.0.0 /8", wantErr: `"10.0.0.0 /8" is not an address or CIDR prefix`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != netip.MustParsePrefix(tt.want) {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestParsePrefixAgreesWithNetip checks that every prefix ParsePrefix
// accepts with a length is one netip.ParsePrefix reads the same way.
func TestParsePrefixAgreesWithNetip(t *testing.T) {
	for _, s := range []string{"1.2.3.0/24", "0.0.0.0/0", "255.255.255.255/32", "::/0", "2001:db8::/48", "::1/128"} {
		got, err := ParsePrefix(s)
		want, werr := netip.ParsePrefix(s)
		if err != nil || werr != nil || got != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; netip says %v, %v", s, got, err, want, werr)
		}
	}
}

func TestParsePrefixDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"192.0.2.0/24", "2001:db8::/128", "2001:db8::1"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParsePrefix(s) }); n != 0 {
			t.Errorf("ParsePrefix(%q) allocates %v times", s, n)
		}
	}
}

func FuzzParsePrefix(f *testing.F) {
	f.Add("192.0.2.0/24")         // IPv4 prefix
	f.Add("2001:db8::1")          // bare IPv6 address
	f.Add("10.0.0.1/8")           // host bits
	f.Add("::ffff:192.0.2.0/120") // IPv4-mapped
	f.Add("fe80::1%eth0/64")      // zone
	f.Add(" ::/0")                // space
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		// What it accepts is canonical and reads back the same.
		if p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() && p.Bits() >= 96 {
			t.Fatalf("ParsePrefix(%q) = %v, not canonical", s, p)
		}
		if q, err := ParsePrefix(p.String()); err != nil || q != p {
			t.Fatalf("ParsePrefix(%q) = %v, which reads back as %v, %v", s, p, q, err)
		}
	})
}
