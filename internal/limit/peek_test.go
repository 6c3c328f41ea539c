package limit

import (
	"net/netip"
	"testing"
	"time"
)

func TestKeys(t *testing.T) {
	c := testConfig()
	c.IPv4PrefixLen, c.IPv6AddressLen, c.IPv6PrefixLen = 20, 56, 40
	l := New(c)
	tests := []struct{ src, addr, prefix string }{
		{"192.0.2.77", "192.0.2.77/32", "192.0.0.0/20"},
		{"::ffff:192.0.2.77", "192.0.2.77/32", "192.0.0.0/20"},
		{"2001:db8:aa:bbcc::1", "2001:db8:aa:bb00::/56", "2001:db8::/40"},
		{"fe80::1%eth0", "fe80::/56", "fe80::/40"},
	}
	for _, tt := range tests {
		a, p := l.Keys(netip.MustParseAddr(tt.src))
		if a != netip.MustParsePrefix(tt.addr) || p != netip.MustParsePrefix(tt.prefix) {
			t.Errorf("Keys(%s) = %v, %v; want %s, %s", tt.src, a, p, tt.addr, tt.prefix)
		}
	}
	if n := testing.AllocsPerRun(100, func() { l.Keys(mustAddr("2001:db8::1")) }); n != 0 {
		t.Errorf("Keys allocates %v times", n)
	}
}

// TestBannedPeek checks that Banned agrees with Allow about bans of
// addresses and prefixes, imposed or earned, and that asking charges
// nothing.
func TestBannedPeek(t *testing.T) {
	l := New(banConfig())
	now := time.Now()
	if l.Banned(mustAddr("192.0.2.1"), now) {
		t.Fatal("empty ban table: banned")
	}
	if _, err := l.Ban(netip.MustParsePrefix("192.0.2.1/32"), time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ban(netip.MustParsePrefix("198.51.100.0/24"), time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ban(netip.MustParsePrefix("2001:db8:1:2::/64"), time.Minute, now); err != nil {
		t.Fatal(err)
	}
	abuser := mustAddr("203.0.113.66")
	for l.Allow(abuser, now) != Banned {
	}
	tests := []struct {
		src  string
		at   time.Duration
		want bool
	}{
		{"192.0.2.1", 0, true},
		{"::ffff:192.0.2.1", 0, true},
		{"192.0.2.2", 0, false},
		{"198.51.100.200", 0, true}, // inside the banned /24
		{"198.51.101.1", 0, false},
		{"2001:db8:1:2::99", 0, true}, // the banned /64 is one address
		{"2001:db8:1:3::1", 0, false},
		{"203.0.113.66", 0, true}, // earned
		{"203.0.113.67", 0, false},
		{"192.0.2.1", 61 * time.Second, false}, // over
		{"203.0.113.66", 61 * time.Second, false},
	}
	for _, tt := range tests {
		src := mustAddr(tt.src)
		got := l.Banned(src, now.Add(tt.at))
		if got != tt.want {
			t.Errorf("Banned(%s, +%v) = %v, want %v", tt.src, tt.at, got, tt.want)
		}
		if tt.at == 0 && got != (l.Allow(src, now) == Banned) {
			t.Errorf("Banned(%s) = %v disagrees with Allow", tt.src, got)
		}
	}
	if !l.Unban(netip.MustParsePrefix("198.51.100.0/24")) || l.Banned(mustAddr("198.51.100.200"), now) {
		t.Error("still banned after Unban")
	}
	// Asking takes no token: a fresh source keeps its whole burst.
	fresh := mustAddr("192.0.2.50")
	for range 100 {
		l.Banned(fresh, now)
	}
	if a, _, _ := count(l, fresh, now, 10); a != banConfig().Burst {
		t.Errorf("after 100 Banned calls, %d of 10 requests allowed, want the burst of %d", a, banConfig().Burst)
	}
	if n := testing.AllocsPerRun(100, func() { l.Banned(abuser, now) }); n != 0 {
		t.Errorf("Banned allocates %v times", n)
	}
	var g *Guard
	if g.Banned(abuser, now) {
		t.Error("nil Guard bans")
	}
}
