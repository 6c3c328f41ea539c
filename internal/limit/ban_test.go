package limit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// banConfig bans an address on its 20th drop within 10s, for 1m doubling
// up to 4m.
func banConfig() Config {
	c := testConfig()
	c.RatePerSec, c.Burst = 10, 5
	c.PrefixRatePerSec, c.PrefixBurst = 1000, 1000
	c.BanAfter, c.BanWindow = 20, 10*time.Second
	c.BanDuration, c.BanMax = time.Minute, 4*time.Minute
	return c
}

// abuse sends from src at now until it is banned, at most n requests,
// and returns how many were sent.
func abuse(t *testing.T, l *Limiter, src netip.Addr, now time.Time, n int) int {
	t.Helper()
	for i := range n {
		if l.Allow(src, now) == Banned {
			return i + 1
		}
	}
	t.Fatalf("%v not banned after %d requests at %v", src, n, now)
	return 0
}

func TestBanAfterAbuse(t *testing.T) {
	l := New(banConfig())
	src := mustAddr("192.0.2.66")
	// 5 allowed, then drops 1..19 limited, the 20th drop bans.
	a, lim, ban := count(l, src, t0, 25)
	if a != 5 || lim != 19 || ban != 1 {
		t.Fatalf("25 at once: %d allowed, %d limited, %d banned; want 5, 19, 1", a, lim, ban)
	}
	if a, _, ban := count(l, src, sec(30), 10); a != 0 || ban != 10 {
		t.Fatalf("during the ban: %d allowed, %d banned; want 0, 10", a, ban)
	}
	// Its neighbours are not banned.
	if v := l.Allow(mustAddr("192.0.2.67"), sec(30)); v != Allowed {
		t.Fatalf("neighbour: %v", v)
	}
	want := Ban{Prefix: netip.MustParsePrefix("192.0.2.66/32"), Since: t0, Until: sec(60), Strikes: 1, Dropped: 11}
	bans := l.Bans(sec(30))
	if len(bans) != 1 || !equalBan(bans[0], want) {
		t.Fatalf("Bans = %+v, want [%+v]", bans, want)
	}
	if s := l.Stats(); s.BansImposed != 1 || s.Banned != 11 || s.Allowed != 6 || s.Limited != 19 {
		t.Fatalf("Stats = %+v", s)
	}
	// Expired: a full bucket again, and no longer listed.
	if got := l.Bans(sec(60)); len(got) != 0 {
		t.Fatalf("Bans at expiry = %+v, want none", got)
	}
	if a, _, _ := count(l, src, sec(60), 6); a != 5 {
		t.Fatalf("after the ban: %d allowed, want the burst 5", a)
	}
}

func equalBan(a, b Ban) bool {
	return a.Prefix == b.Prefix && a.Since.Equal(b.Since) && a.Until.Equal(b.Until) && a.Strikes == b.Strikes && a.Dropped == b.Dropped
}

// TestBanDoubling bans one source again and again: 1m, 2m, 4m, 4m, then
// after 4m of good behaviour 1m again.
func TestBanDoubling(t *testing.T) {
	l := New(banConfig())
	src := mustAddr("2001:db8:bad::1")
	key := netip.MustParsePrefix("2001:db8:bad::/64")
	now := t0
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
		abuse(t, l, src, now, 100)
		bans := l.Bans(now)
		if len(bans) != 1 || bans[0].Prefix != key || bans[0].Strikes != i+1 || bans[0].Until.Sub(bans[0].Since) != want {
			t.Fatalf("ban %d: %+v, want %v for %v, strike %d", i+1, bans, key, want, i+1)
		}
		now = bans[0].Until
		if v := l.Allow(src, now.Add(-time.Nanosecond)); v != Banned {
			t.Fatalf("ban %d: a nanosecond before it ends: %v", i+1, v)
		}
		if v := l.Allow(src, now); v != Allowed {
			t.Fatalf("ban %d: when it ends: %v", i+1, v)
		}
		now = now.Add(time.Second)
	}
	// Forgotten ban_max after the last one ended.
	now = now.Add(4 * time.Minute)
	abuse(t, l, src, now, 100)
	if bans := l.Bans(now); len(bans) != 1 || bans[0].Strikes != 1 || bans[0].Until.Sub(bans[0].Since) != time.Minute {
		t.Fatalf("after a clean ban_max: %+v, want a first ban again", bans)
	}
}

// TestBanLeakyWindow checks that drops at the rate ban_after/ban_window
// are tolerated and a faster rate is banned.
func TestBanLeakyWindow(t *testing.T) {
	c := banConfig() // 20 drops per 10s: 2 drops/s tolerated
	c.RatePerSec, c.Burst = 1, 1
	for _, tt := range []struct {
		perSec    int // requests a second; 1 allowed, the rest dropped
		wantBan   bool
		wantAfter time.Duration // at most
	}{
		{perSec: 3, wantBan: false},                             // 2 drops/s
		{perSec: 4, wantBan: true, wantAfter: 22 * time.Second}, // 3 drops/s: 1/s net, 20 in 20s
		{perSec: 100, wantBan: true, wantAfter: time.Second},
	} {
		l := New(c)
		src := mustAddr("192.0.2.10")
		var bannedAt time.Duration = -1
		for i := range 120 * tt.perSec {
			at := time.Duration(i) * time.Second / time.Duration(tt.perSec)
			if l.Allow(src, t0.Add(at)) == Banned {
				bannedAt = at
				break
			}
		}
		if banned := bannedAt >= 0; banned != tt.wantBan || banned && bannedAt > tt.wantAfter {
			t.Errorf("%d requests/s: banned at %v, want banned %v within %v", tt.perSec, bannedAt, tt.wantBan, tt.wantAfter)
		}
	}
}

// TestPrefixBan checks that a network that stays under the address limit
// on every address but floods as a whole is banned as a prefix.
func TestPrefixBan(t *testing.T) {
	c := banConfig()
	c.PrefixRatePerSec, c.PrefixBurst = 100, 100
	l := New(c)
	// 8,000 packets/s from 200 servers of one /24, 40/s each (over the 10/s
	// address rate too, but the prefix fills first).
	var banned netip.Addr
	for i := range 8000 {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 200)})
		if l.Allow(src, t0.Add(time.Duration(i)*time.Second/8000)) == Banned {
			banned = src
			break
		}
	}
	if !banned.IsValid() {
		t.Fatal("8000 packets/s from one /24: nobody banned in a second")
	}
	bans := l.Bans(sec(1))
	if len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("203.0.113.0/24") {
		t.Fatalf("Bans = %+v, want 203.0.113.0/24", bans)
	}
	if v := l.Allow(mustAddr("203.0.113.250"), sec(1)); v != Banned {
		t.Fatalf("a new address of the banned /24: %v", v)
	}
	if v := l.Allow(mustAddr("203.0.114.1"), sec(1)); v != Allowed {
		t.Fatalf("the next /24: %v", v)
	}
}

func TestUnban(t *testing.T) {
	l := New(banConfig())
	src := mustAddr("192.0.2.5")
	abuse(t, l, src, t0, 100)
	for _, p := range []string{"192.0.2.0/24", "192.0.2.5/31", "2001:db8::/64", "192.0.2.6/32"} {
		if l.Unban(netip.MustParsePrefix(p)) {
			t.Errorf("Unban(%s) = true, want false", p)
		}
	}
	if l.Unban(netip.Prefix{}) {
		t.Error("Unban(zero Prefix) = true")
	}
	if !l.Unban(netip.MustParsePrefix("192.0.2.5/32")) {
		t.Fatal("Unban(192.0.2.5/32) = false")
	}
	if l.Unban(netip.MustParsePrefix("192.0.2.5/32")) {
		t.Fatal("second Unban = true")
	}
	if a, _, _ := count(l, src, sec(1), 6); a != 5 {
		t.Fatalf("after Unban: %d allowed, want a full burst of 5", a)
	}
	// Strikes are forgotten: the next ban is a first one.
	abuse(t, l, src, sec(2), 100)
	if bans := l.Bans(sec(2)); len(bans) != 1 || bans[0].Strikes != 1 {
		t.Fatalf("Bans = %+v, want one first ban", bans)
	}
}

// TestBanTableFull fills the ban table (one set of 8) and checks that a
// ninth ban is refused, leaving its source limited and the others banned.
func TestBanTableFull(t *testing.T) {
	c := banConfig()
	c.MaxBans = 8
	l := New(c)
	if n := len(l.bans.sets); n != 1 {
		t.Fatalf("%d ban sets, want 1", n)
	}
	for i := range 8 {
		abuse(t, l, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), t0, 100)
	}
	ninth := mustAddr("198.51.100.9")
	_, lim, ban := count(l, ninth, t0, 100)
	if ban != 0 || lim != 95 {
		t.Fatalf("ninth source: %d limited, %d banned; want 95, 0", lim, ban)
	}
	if s := l.Stats(); s.BansRefused == 0 || s.BansImposed != 8 {
		t.Fatalf("Stats = %+v, want 8 imposed and some refused", s)
	}
	for i := range 8 {
		if v := l.Allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), sec(59)); v != Banned {
			t.Fatalf("ban %d was cut short: %v", i, v)
		}
	}
	// Once a ban has ended, its slot takes the next one.
	abuse(t, l, ninth, sec(61), 100)
	if bans := l.Bans(sec(61)); len(bans) != 1 || bans[0].Prefix.Addr() != ninth {
		t.Fatalf("Bans = %+v, want the ninth source only", bans)
	}
}

// TestBanOutlivesEviction empties the rate table under a banned source, as
// a flood would, and checks that it comes back banned.
func TestBanOutlivesEviction(t *testing.T) {
	l := New(banConfig())
	src := mustAddr("192.0.2.99")
	abuse(t, l, src, t0, 100)
	clear(l.sets)
	if v := l.Allow(src, sec(1)); v != Banned {
		t.Fatalf("after eviction: %v, want banned", v)
	}
	if bans := l.Bans(sec(1)); len(bans) != 1 || bans[0].Dropped != 2 {
		t.Fatalf("Bans = %+v, want one with 2 dropped", bans)
	}
}

func TestBanDuration(t *testing.T) {
	b := &banTable{first: time.Minute, max: time.Hour}
	for strikes, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 6: 32 * time.Minute, 7: time.Hour, 1000: time.Hour} {
		if got := b.duration(strikes); got != want {
			t.Errorf("duration(%d) = %v, want %v", strikes, got, want)
		}
	}
	b = &banTable{first: 3 * time.Minute, max: 5 * time.Minute}
	if got := b.duration(2); got != 5*time.Minute {
		t.Errorf("duration(2) capped = %v", got)
	}
}

func TestBanImposed(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		in, out  []string // sources banned, and neighbours not
		prewarm  bool     // the sources are in the rate table before the ban
		banAfter int      // the config's ban_after
	}{
		{name: "IPv4 address", prefix: "192.0.2.66/32", in: []string{"192.0.2.66"}, out: []string{"192.0.2.67"}},
		{name: "IPv4 address already counted", prefix: "192.0.2.66/32", in: []string{"192.0.2.66"}, out: []string{"192.0.2.67"}, prewarm: true},
		{name: "IPv4 prefix", prefix: "192.0.2.0/24", in: []string{"192.0.2.1", "192.0.2.255"}, out: []string{"192.0.3.1"}, prewarm: true},
		{name: "IPv4-mapped source", prefix: "192.0.2.66/32", in: []string{"::ffff:192.0.2.66"}, out: []string{"192.0.2.65"}},
		{name: "IPv6 address", prefix: "2001:db8:1:2::/64", in: []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"}, out: []string{"2001:db8:1:3::1"}, prewarm: true},
		{name: "IPv6 prefix", prefix: "2001:db8:1::/48", in: []string{"2001:db8:1:2::1", "2001:db8:1:ffff::1"}, out: []string{"2001:db8:2::1"}},
		{name: "automatic bans on", prefix: "192.0.2.66/32", in: []string{"192.0.2.66"}, out: []string{"192.0.2.67"}, prewarm: true, banAfter: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			c.BanAfter = tt.banAfter
			l := New(c)
			if tt.prewarm {
				for _, a := range append(tt.in, tt.out...) {
					if v := l.Allow(mustAddr(a), t0); v != Allowed {
						t.Fatalf("before the ban, Allow(%s) = %v", a, v)
					}
				}
			}
			p := netip.MustParsePrefix(tt.prefix)
			got, err := l.Ban(p, time.Hour, sec(1))
			want := Ban{Prefix: p, Since: sec(1), Until: sec(3601), Strikes: 1}
			if err != nil || !equalBan(got, want) {
				t.Fatalf("Ban(%v) = %+v, %v; want %+v", p, got, err, want)
			}
			if bans := l.Bans(sec(2)); len(bans) != 1 || !equalBan(bans[0], want) {
				t.Errorf("Bans = %+v, want [%+v]", bans, want)
			}
			for _, a := range tt.in {
				if v := l.Allow(mustAddr(a), sec(3600)); v != Banned {
					t.Errorf("during the ban, Allow(%s) = %v, want banned", a, v)
				}
			}
			for _, a := range tt.out {
				if v := l.Allow(mustAddr(a), sec(3600)); v != Allowed {
					t.Errorf("during the ban, Allow(neighbour %s) = %v, want allowed", a, v)
				}
			}
			for _, a := range tt.in {
				if v := l.Allow(mustAddr(a), sec(3601)); v != Allowed {
					t.Errorf("after the ban, Allow(%s) = %v, want allowed", a, v)
				}
			}
			if s := l.Stats(); s.BansImposed != 1 {
				t.Errorf("BansImposed = %d, want 1", s.BansImposed)
			}
		})
	}
}

func TestBanRefused(t *testing.T) {
	tests := []struct {
		name    string
		prefix  netip.Prefix
		d       time.Duration
		wantErr string
	}{
		{name: "wider than a key", prefix: netip.MustParsePrefix("10.0.0.0/8"), d: time.Hour,
			wantErr: "limit: cannot ban 10.0.0.0/8: IPv4 sources are counted by /32 and /24, so ban 10.0.0.0/32 or 10.0.0.0/24 (wider ranges go in the blocklist)"},
		{name: "narrower than an IPv6 address", prefix: netip.MustParsePrefix("2001:db8::1/128"), d: time.Hour,
			wantErr: "limit: cannot ban 2001:db8::1/128: IPv6 sources are counted by /64 and /48, so ban 2001:db8::/64 or 2001:db8::/48 (wider ranges go in the blocklist)"},
		{name: "host bits", prefix: netip.MustParsePrefix("192.0.2.7/24"), d: time.Hour,
			wantErr: "limit: cannot ban 192.0.2.7/24: IPv4 sources are counted by /32 and /24, so ban 192.0.2.7/32 or 192.0.2.0/24"},
		{name: "IPv4-mapped", prefix: netip.MustParsePrefix("::ffff:192.0.2.7/128"), d: time.Hour,
			wantErr: "limit: cannot ban ::ffff:192.0.2.7/128: IPv4 sources are counted by /32 and /24, so ban 192.0.2.7/32 or 192.0.2.0/24"},
		{name: "no prefix", d: time.Hour, wantErr: "limit: ban: no prefix given"},
		{name: "zero duration", prefix: netip.MustParsePrefix("192.0.2.7/32"),
			wantErr: "limit: ban 192.0.2.7/32: duration must be more than 0 and at most 8784h0m0s, got 0s"},
		{name: "too long", prefix: netip.MustParsePrefix("192.0.2.7/32"), d: MaxBan + 1,
			wantErr: "limit: ban 192.0.2.7/32: duration must be more than 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(testConfig())
			b, err := l.Ban(tt.prefix, tt.d, t0)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Ban(%v, %v) = %+v, %v; want error %q", tt.prefix, tt.d, b, err, tt.wantErr)
			}
			if bans := l.Bans(t0); len(bans) != 0 {
				t.Errorf("after a refused Ban, Bans = %+v", bans)
			}
		})
	}
}

// TestBanExtends checks that a second Ban only ever lengthens a running
// ban, on the hot path as well as in Bans.
func TestBanExtends(t *testing.T) {
	l := New(testConfig())
	src := mustAddr("192.0.2.9")
	p := netip.MustParsePrefix("192.0.2.9/32")
	l.Allow(src, t0) // in the rate table
	steps := []struct {
		at        float64
		d         time.Duration
		wantUntil float64
	}{
		{at: 0, d: time.Minute, wantUntil: 60},
		{at: 10, d: 10 * time.Minute, wantUntil: 610}, // extended
		{at: 20, d: time.Minute, wantUntil: 610},      // not shortened
	}
	for _, st := range steps {
		b, err := l.Ban(p, st.d, sec(st.at))
		if err != nil || !b.Until.Equal(sec(st.wantUntil)) || !b.Since.Equal(t0) || b.Strikes != 1 {
			t.Fatalf("Ban(%v) at +%vs = %+v, %v; want since +0s until +%vs, strike 1", st.d, st.at, b, err, st.wantUntil)
		}
	}
	if v := l.Allow(src, sec(609)); v != Banned {
		t.Errorf("Allow at +609s = %v, want banned by the extended ban", v)
	}
	if v := l.Allow(src, sec(610)); v != Allowed {
		t.Errorf("Allow at +610s = %v, want allowed", v)
	}
	if s := l.Stats(); s.BansImposed != 1 {
		t.Errorf("BansImposed = %d, want 1: an extension is not a new ban", s.BansImposed)
	}
}

// TestBanThenAutomatic checks that an imposed ban counts as a strike and
// that Unban lifts it.
func TestBanThenAutomatic(t *testing.T) {
	l := New(banConfig()) // 1m, doubling up to 4m
	src := mustAddr("192.0.2.66")
	p := netip.MustParsePrefix("192.0.2.66/32")
	if _, err := l.Ban(p, 30*time.Second, t0); err != nil {
		t.Fatal(err)
	}
	abuse(t, l, src, sec(40), 100)
	bans := l.Bans(sec(40))
	if len(bans) != 1 || bans[0].Strikes != 2 || bans[0].Until.Sub(bans[0].Since) != 2*time.Minute {
		t.Fatalf("automatic ban after an imposed one: %+v, want strike 2 for 2m", bans)
	}
	if !l.Unban(p) {
		t.Fatal("Unban of an imposed ban = false")
	}
	if v := l.Allow(src, sec(41)); v != Allowed {
		t.Errorf("after Unban, Allow = %v", v)
	}
}

func TestBanImposedTableFull(t *testing.T) {
	c := testConfig()
	c.MaxBans = banWays // one set: every key shares it
	l := New(c)
	for i := range banWays {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)
		if _, err := l.Ban(p, time.Hour, t0); err != nil {
			t.Fatalf("Ban %d of %d: %v", i+1, banWays, err)
		}
	}
	_, err := l.Ban(netip.MustParsePrefix("198.51.100.1/32"), time.Hour, t0)
	if !errors.Is(err, ErrBanTableFull) {
		t.Fatalf("Ban with the table full = %v, want ErrBanTableFull", err)
	}
	if s := l.Stats(); s.BansRefused != 1 {
		t.Errorf("BansRefused = %d, want 1", s.BansRefused)
	}
}

// TestBusiestBans checks that BusiestBans keeps the k bans that dropped
// the most, most first, counts every running ban, and leaves out ended
// ones.
func TestBusiestBans(t *testing.T) {
	c := banConfig()
	c.MaxBans = 64
	l := New(c)
	for i := range 20 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)
		d := time.Hour
		if i == 19 {
			d = time.Second // ended by the time of the query
		}
		if _, err := l.Ban(p, d, t0); err != nil {
			t.Fatal(err)
		}
		for range i * 3 { // ban i has dropped 3i requests
			if v := l.Allow(p.Addr(), t0); v != Banned {
				t.Fatalf("%v: %v, want banned", p, v)
			}
		}
	}
	got, running := l.BusiestBans(sec(10), 4)
	want := []string{"192.0.2.18/32", "192.0.2.17/32", "192.0.2.16/32", "192.0.2.15/32"}
	if running != 19 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("BusiestBans(4) = %v, %d running; want %v, 19", got, running, want)
	}
	if got, _ := l.BusiestBans(sec(10), 100); len(got) != 19 {
		t.Fatalf("BusiestBans(100) = %d bans, want the 19 running", len(got))
	}
	if got, running := l.BusiestBans(sec(10), 0); len(got) != 0 || running != 19 {
		t.Fatalf("BusiestBans(0) = %v, %d; want none, 19", got, running)
	}
}
