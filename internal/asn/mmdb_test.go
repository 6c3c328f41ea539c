package asn

import (
	"net/netip"
	"strings"
	"testing"
)

var testMMDBNets = []mmdbNet{
	{"0.0.0.0/1", 64600, "LOW HALF"},
	{"192.0.2.0/24", 64601, "DOC NET 1"},
	{"192.0.2.128/25", 64602, "DOC NET 1 UPPER"},
	{"198.51.100.7/32", 64603, "ONE HOST"},
	{"2001:db8::/32", 64610, "DOC SIX"},
	{"2001:db8:ffff::/48", 64611, ""}, // organisation unknown
}

func TestMMDBLookup(t *testing.T) {
	db, err := openMMDB(buildMMDB(1700000000, "GeoLite2-ASN", testMMDBNets))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr   string
		prefix string // "" means not found
		asn    uint32
		org    string
	}{
		{"10.0.0.1", "0.0.0.0/1", 64600, "LOW HALF"},
		{"192.0.2.1", "192.0.2.0/25", 64601, "DOC NET 1"}, // the /24's lower half: MaxMind trees hold no nesting
		{"192.0.2.200", "192.0.2.128/25", 64602, "DOC NET 1 UPPER"},
		{"198.51.100.7", "198.51.100.7/32", 64603, "ONE HOST"},
		{"198.51.100.8", "", 0, ""},
		{"::ffff:10.0.0.1", "0.0.0.0/1", 64600, "LOW HALF"},
		{"2001:db8::1", "2001:db8::/33", 64610, "DOC SIX"},
		{"2001:db8:ffff::1", "2001:db8:ffff::/48", 64611, ""},
		{"2001:db9::", "", 0, ""},
	}
	all, err := openMMDB(buildMMDB(1, "x", []mmdbNet{{"::/0", 1, "ALL"}}))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, ok := all.lookup(netip.MustParseAddr("192.0.2.1")); !ok || p != netip.MustParsePrefix("0.0.0.0/0") {
		t.Errorf("lookup(192.0.2.1) in a database of ::/0 = %s %v, want 0.0.0.0/0", p, ok)
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr).Unmap() // as DB.Lookup passes it
		p, rec, ok := db.lookup(a)
		if tt.prefix == "" {
			if ok {
				t.Errorf("lookup(%s) = %s %+v, want none", tt.addr, p, rec)
			}
			continue
		}
		if !ok || p != netip.MustParsePrefix(tt.prefix) || rec.ASN != tt.asn || rec.Org != tt.org {
			t.Errorf("lookup(%s) = %s %+v %v, want %s AS%d %q", tt.addr, p, rec, ok, tt.prefix, tt.asn, tt.org)
		}
	}
	if db.networks == 0 || len(db.records) != 6 {
		t.Errorf("%d networks, %d records; want some networks and 6 records", db.networks, len(db.records))
	}
}

func TestMMDBDamaged(t *testing.T) {
	good := buildMMDB(1700000000, "GeoLite2-ASN", testMMDBNets)
	flip := func(at int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[at] = v
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"not a MaxMind DB", []byte("LOCDBXX\x01 and then some"), "invalid MaxMind DB file"},
		{"truncated", good[:len(good)/2], "invalid MaxMind DB file"},
		{"record points past the data", flip(0, 0xff), "damaged"},
		{"no ASN records", buildMMDB(1, "GeoLite2-City", []mmdbNet{{"192.0.2.0/24", 0, ""}}), `no record has an autonomous_system_number: not an ASN database (type "GeoLite2-City")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openMMDB(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("openMMDB: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzOpenMMDB: a damaged or hostile MaxMind DB is an error at open, and
// an accepted one answers lookups without panicking, with a network that
// holds the address. testdata/fuzz/FuzzOpenMMDB/ipv4-under-ipv6-record
// (one record for ::/0) found IPv4 addresses answered with ::/1.
func FuzzOpenMMDB(f *testing.F) {
	f.Add(buildMMDB(1700000000, "GeoLite2-ASN", testMMDBNets))   // nested networks, both families
	f.Add(buildMMDB(1, "x", []mmdbNet{{"192.0.2.0/24", 0, ""}})) // an empty map
	f.Add([]byte("\xab\xcd\xefMaxMind.com\xe0"))                 // metadata marker, empty map
	probes := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::")}
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := openMMDB(data)
		if err != nil {
			return
		}
		for _, a := range probes {
			if p, _, ok := db.lookup(a); ok && !p.Contains(a) {
				t.Fatalf("lookup(%s) = %s, which does not hold it", a, p)
			}
		}
	})
}
