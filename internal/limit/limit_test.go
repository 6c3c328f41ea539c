package limit

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"warden/internal/confkey"
)

var t0 = time.Unix(1_700_000_000, 0)

// testConfig is small and has bans off; tests turn on what they check.
func testConfig() Config {
	c := DefaultConfig()
	c.TableBytes = 1 << 20
	c.MaxBans = 64
	c.BanAfter = 0
	return c
}

// sec returns t0 plus s seconds.
func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// count sends n requests from src at now and counts the verdicts.
func count(l *Limiter, src netip.Addr, now time.Time, n int) (allowed, limited, banned int) {
	for range n {
		switch l.Allow(src, now) {
		case Allowed:
			allowed++
		case Limited:
			limited++
		case Banned:
			banned++
		}
	}
	return
}

func TestSetLayout(t *testing.T) {
	if got := unsafe.Sizeof(set{}); got != setBytes {
		t.Fatalf("sizeof(set) = %d, want %d", got, setBytes)
	}
	if got := unsafe.Offsetof(set{}.tat); got != 64 {
		t.Errorf("tat at offset %d, want 64 (the second cache line)", got)
	}
}

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	l := New(DefaultConfig())
	if m := l.MemoryBytes(); m > DefaultConfig().TableBytes || m < DefaultConfig().TableBytes-setBytes {
		t.Errorf("MemoryBytes = %d, want just under %d", m, DefaultConfig().TableBytes)
	}
	if got := len(l.sets) * ways; got < 3_000_000 {
		t.Errorf("default table holds %d keys, want over 3M", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"rate zero", func(c *Config) { c.RatePerSec = 0 }, "rate_per_sec"},
		{"rate NaN", func(c *Config) { c.RatePerSec = nanFloat() }, "rate_per_sec"},
		{"burst zero", func(c *Config) { c.Burst = 0 }, "burst"},
		{"burst too slow to fill", func(c *Config) { c.RatePerSec, c.Burst = 1, 3600 }, "burst"},
		{"prefix rate negative", func(c *Config) { c.PrefixRatePerSec = -1 }, "prefix_rate_per_sec"},
		{"prefix burst zero", func(c *Config) { c.PrefixBurst = 0 }, "prefix_burst"},
		{"ipv4 prefix 32", func(c *Config) { c.IPv4PrefixLen = 32 }, "ipv4_prefix_len"},
		{"ipv6 address 0", func(c *Config) { c.IPv6AddressLen = 0 }, "ipv6_address_len"},
		{"ipv6 address 129", func(c *Config) { c.IPv6AddressLen = 129 }, "ipv6_address_len"},
		{"ipv6 prefix not shorter", func(c *Config) { c.IPv6PrefixLen = 64 }, "ipv6_prefix_len"},
		{"ban_after negative", func(c *Config) { c.BanAfter = -1 }, "ban_after"},
		{"ban_window zero", func(c *Config) { c.BanWindow = 0 }, "ban_window"},
		{"ban_window too long", func(c *Config) { c.BanWindow = time.Hour }, "ban_window"},
		{"ban_after too many for window", func(c *Config) { c.BanWindow, c.BanAfter = time.Millisecond, 10_000 }, "ban_after"},
		{"ban_duration zero", func(c *Config) { c.BanDuration = 0 }, "ban_duration"},
		{"ban_max below duration", func(c *Config) { c.BanMax = 30 * time.Second }, "ban_max"},
		{"max_bans zero", func(c *Config) { c.MaxBans = 0 }, "max_bans"},
		{"refusal_cost negative", func(c *Config) { c.RefusalCost = -1 }, "refusal_cost"},
		{"refusal_cost too high", func(c *Config) { c.RefusalCost = maxRefusalCost + 1 }, "refusal_cost"},
		{"table too small", func(c *Config) { c.TableBytes = 1 << 10 }, "table_bytes"},
		{"table negative", func(c *Config) { c.TableBytes = -1 }, "table_bytes"},
		{"table too large", func(c *Config) { big := int64(1) << 41; c.TableBytes = int(big) }, "table_bytes"},
		{"table 1 TiB", func(c *Config) { big := int64(1) << 40; c.TableBytes = int(big) }, "table_bytes"},
		{"table over 4 GiB", func(c *Config) { c.TableBytes = maxTableBytes + 1 }, "table_bytes"},
		{"connect rate zero", func(c *Config) { c.ConnectRatePerSec = 0 }, "connect_rate_per_sec"},
		{"connect rate NaN", func(c *Config) { c.ConnectRatePerSec = nanFloat() }, "connect_rate_per_sec"},
		{"connect burst zero", func(c *Config) { c.ConnectBurst = 0 }, "connect_burst"},
		{"connect burst too slow to fill", func(c *Config) { c.ConnectRatePerSec, c.ConnectBurst = 0.1, 1000 }, "connect_burst"},
		{"connect table too small", func(c *Config) { c.ConnectTableBytes = 1 << 8 }, "connect_table_bytes"},
		{"connect table too large", func(c *Config) { big := int64(1) << 41; c.ConnectTableBytes = int(big) }, "connect_table_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			var ce *confkey.Error
			if !errors.As(err, &ce) || ce.Key != tt.field {
				t.Fatalf("Validate() = %v, want a confkey.Error for %s", err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("error %q does not start with the field name", err)
			}
		})
	}
	t.Run("bans off ignores nothing else", func(t *testing.T) {
		c := DefaultConfig()
		c.BanAfter = 0
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("smallest table", func(t *testing.T) {
		c := DefaultConfig()
		c.MaxBans = 8
		c.TableBytes = layoutFor(c).minBytes
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if l := New(c); len(l.sets) != 1 || l.MemoryBytes() != c.TableBytes {
			t.Fatalf("sets = %d, MemoryBytes = %d, want 1 and %d", len(l.sets), l.MemoryBytes(), c.TableBytes)
		}
		c.TableBytes--
		if err := c.Validate(); err == nil {
			t.Fatal("one byte less validated")
		}
	})
}

func nanFloat() float64 { var z float64; return z / z }

func TestNewPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "burst") {
			t.Fatalf("recover() = %v, want a panic naming burst", r)
		}
	}()
	c := DefaultConfig()
	c.Burst = 0
	New(c)
}

// TestRateAndBurst checks the address bucket to the request: burst at
// once, then one per interval, and no more than burst after idling.
func TestRateAndBurst(t *testing.T) {
	tests := []struct {
		rate  float64
		burst int
	}{
		{10, 5},
		{0.5, 1},
		{1000, 1},
		{3, 7},
		{50, 500},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate=%g/burst=%d", tt.rate, tt.burst), func(t *testing.T) {
			c := testConfig()
			c.RatePerSec, c.Burst = tt.rate, tt.burst
			c.PrefixRatePerSec, c.PrefixBurst = 1e6, 1e6
			l := New(c)
			src := mustAddr("192.0.2.1")
			iv := 1 / tt.rate
			if a, lim, _ := count(l, src, t0, tt.burst+3); a != tt.burst || lim != 3 {
				t.Fatalf("at once: %d allowed, %d limited; want %d, 3", a, lim, tt.burst)
			}
			for k := 1; k <= 5; k++ {
				now := sec(float64(k) * iv)
				if a, _, _ := count(l, src, now, 3); a != 1 {
					t.Fatalf("after %d intervals: %d allowed, want 1", k, a)
				}
			}
			// Just before the next token: nothing.
			if a, _, _ := count(l, src, sec(6*iv-1e-6), 1); a != 0 {
				t.Fatalf("a microsecond early: %d allowed, want 0", a)
			}
			// Idle for twice the fill time: a full burst, no more.
			if a, _, _ := count(l, src, sec(5*iv+2*float64(tt.burst)*iv), tt.burst+3); a != tt.burst {
				t.Fatalf("after idling: %d allowed, want %d", a, tt.burst)
			}
		})
	}
}

// TestSustainedRate floods one address for a minute at ten times its rate
// and counts what passed: the burst plus one per interval, exactly.
func TestSustainedRate(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 20, 10
	c.PrefixRatePerSec, c.PrefixBurst = 1e6, 1e6
	l := New(c)
	src := mustAddr("192.0.2.7")
	allowed := 0
	const seconds, perSec = 60, 200
	for i := range seconds * perSec {
		if l.Allow(src, t0.Add(time.Duration(i)*time.Second/perSec)) == Allowed {
			allowed++
		}
	}
	// Requests at 0..59.995s: 10 at once, then one per 50ms up to 59.95s.
	if want := 10 + 20*60 - 1; allowed != want {
		t.Fatalf("allowed %d in a minute, want %d", allowed, want)
	}
	if s := l.Stats(); s.Allowed != uint64(allowed) || s.Limited != uint64(seconds*perSec-allowed) {
		t.Fatalf("Stats = %+v", s)
	}
}

// TestPrefixAggregation checks that the addresses of one prefix share the
// prefix bucket, and that neighbouring prefixes do not.
func TestPrefixAggregation(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 100, 100
	c.PrefixRatePerSec, c.PrefixBurst = 10, 10
	l := New(c)
	allowed := 0
	for i := range 200 {
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if l.Allow(src, t0) == Allowed {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("200 addresses of one /24: %d allowed, want the prefix burst 10", allowed)
	}
	if v := l.Allow(mustAddr("198.51.101.1"), t0); v != Allowed {
		t.Fatalf("the next /24: %v, want allowed", v)
	}
	if v := l.Allow(mustAddr("198.51.100.77"), sec(0.1)); v != Allowed {
		t.Fatalf("after one prefix interval: %v, want allowed", v)
	}

	t.Run("ipv4 /16", func(t *testing.T) {
		c := c
		c.IPv4PrefixLen = 16
		l := New(c)
		a, _, _ := count(l, mustAddr("10.1.2.3"), t0, 5)
		b, _, _ := count(l, mustAddr("10.1.200.3"), t0, 10)
		d, _, _ := count(l, mustAddr("10.2.0.1"), t0, 10)
		if a+b != 10 || d != 10 {
			t.Fatalf("one /16: %d+%d allowed, want 10 together; another /16: %d, want 10", a, b, d)
		}
	})
}

func TestCharge(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 10, 100
	c.PrefixRatePerSec, c.PrefixBurst = 1000, 1000
	tests := []struct {
		name   string
		charge int
		want   int // allowed of 200 requests after one request and the charge
	}{
		{"none", 0, 99},
		{"nine", 9, 90},
		{"more than the burst", 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(c)
			src := mustAddr("192.0.2.1")
			if v := l.Allow(src, t0); v != Allowed {
				t.Fatalf("first request: %v", v)
			}
			l.Charge(src, tt.charge, t0)
			if a, _, _ := count(l, src, t0, 200); a != tt.want {
				t.Fatalf("after a charge of %d: %d allowed, want %d", tt.charge, a, tt.want)
			}
			// A charge empties the bucket at most: it refills as usual.
			if a, _, _ := count(l, src, sec(10), 200); a != 100 {
				t.Fatalf("10 s later: %d allowed, want the whole burst of 100", a)
			}
		})
	}
	t.Run("prefix", func(t *testing.T) {
		c := c
		c.RatePerSec, c.Burst = 1000, 1000
		c.PrefixRatePerSec, c.PrefixBurst = 10, 100
		l := New(c)
		l.Allow(mustAddr("198.51.100.1"), t0)
		l.Charge(mustAddr("198.51.100.1"), 50, t0)
		if a, _, _ := count(l, mustAddr("198.51.100.2"), t0, 200); a != 49 {
			t.Fatalf("a neighbour after a charge of 50 to the /24: %d allowed, want 49", a)
		}
	})
	t.Run("unknown source", func(t *testing.T) {
		l := New(c)
		l.Charge(mustAddr("192.0.2.9"), 1000, t0)
		if a, _, _ := count(l, mustAddr("192.0.2.9"), t0, 200); a != 100 {
			t.Fatalf("a charge to a source never seen: %d allowed, want the burst of 100 (nothing to charge)", a)
		}
	})
}

func TestIPv6Keys(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 1, 3
	c.PrefixRatePerSec, c.PrefixBurst = 1, 5
	l := New(c)
	// Two addresses of one /64 are one address.
	a1, _, _ := count(l, mustAddr("2001:db8:1:1::1"), t0, 2)
	a2, _, _ := count(l, mustAddr("2001:db8:1:1:ffff::2"), t0, 5)
	if a1+a2 != 3 {
		t.Fatalf("one /64: %d+%d allowed, want 3 (the address burst)", a1, a2)
	}
	// Another /64 of the same /48 has its own address bucket but shares
	// the /48's: 2 left of 5.
	if a, _, _ := count(l, mustAddr("2001:db8:1:2::1"), t0, 5); a != 2 {
		t.Fatalf("second /64 of the /48: %d allowed, want 2", a)
	}
	if a, _, _ := count(l, mustAddr("2001:db8:1:ffff::1"), t0, 5); a != 0 {
		t.Fatalf("third /64 of the /48: %d allowed, want 0", a)
	}
	if a, _, _ := count(l, mustAddr("2001:db8:2::1"), t0, 5); a != 3 {
		t.Fatalf("another /48: %d allowed, want 3", a)
	}
	// Zones do not make another key.
	if a, _, _ := count(l, mustAddr("2001:db8:3::1%eth0"), t0, 2); a != 2 {
		t.Fatalf("zoned: %d allowed", a)
	}
	if a, _, _ := count(l, mustAddr("2001:db8:3::1"), t0, 5); a != 1 {
		t.Fatalf("zoned then unzoned: %d more allowed, want 1", a)
	}

	t.Run("/128 addresses", func(t *testing.T) {
		c := c
		c.IPv6AddressLen, c.IPv6PrefixLen = 128, 64
		c.PrefixBurst = 100
		l := New(c)
		a, _, _ := count(l, mustAddr("2001:db8::1"), t0, 5)
		b, _, _ := count(l, mustAddr("2001:db8::2"), t0, 5)
		if a != 3 || b != 3 {
			t.Fatalf("/128 keys: %d and %d allowed, want 3 each", a, b)
		}
	})
}

func TestIPv4MappedIsIPv4(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 1, 4
	c.BanAfter, c.BanWindow = 3, 10*time.Second
	l := New(c)
	a, _, _ := count(l, mustAddr("192.0.2.9"), t0, 2)
	b, _, _ := count(l, mustAddr("::ffff:192.0.2.9"), t0, 2)
	d, lim, ban := count(l, mustAddr("::ffff:192.0.2.9"), t0, 3)
	if a != 2 || b != 2 || d != 0 || lim != 2 || ban != 1 {
		t.Fatalf("mapped shares the IPv4 bucket: %d, %d, %d/%d/%d", a, b, d, lim, ban)
	}
	bans := l.Bans(t0)
	if len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("192.0.2.9/32") {
		t.Fatalf("Bans = %+v, want 192.0.2.9/32", bans)
	}
	if !l.Unban(netip.MustParsePrefix("::ffff:192.0.2.9/128")) {
		t.Fatal("Unban of the mapped form found nothing")
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Allowed: "allowed", Limited: "limited", Banned: "banned", 7: "Verdict(7)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", v, got, want)
		}
	}
}

// TestCoarseClock checks that a clock that runs backwards a little (as
// goroutines with one coarse clock do) neither panics nor mints tokens.
func TestCoarseClock(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 10, 5
	c.PrefixRatePerSec, c.PrefixBurst = 1e6, 1e6
	l := New(c)
	src := mustAddr("192.0.2.3")
	allowed := 0
	for i := range 1000 {
		now := t0.Add(time.Duration(i)*time.Millisecond - time.Duration(i%7)*3*time.Millisecond)
		if l.Allow(src, now) == Allowed {
			allowed++
		}
	}
	if allowed > 5+10+1 {
		t.Fatalf("%d allowed in one second, want at most 16", allowed)
	}
}

func TestZeroAddr(t *testing.T) {
	c := testConfig()
	c.RatePerSec, c.Burst = 1, 2
	c.BanAfter = 2
	l := New(c)
	if _, lim, ban := count(l, netip.Addr{}, t0, 4); lim != 1 || ban != 1 {
		t.Fatalf("zero Addr: %d limited, %d banned; want 1, 1", lim, ban)
	}
	if bans := l.Bans(t0); len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("::/64") {
		t.Fatalf("Bans = %+v, want ::/64", bans)
	}
	if v := l.Allow(netip.IPv6Unspecified(), t0); v != Banned {
		t.Fatalf(":: after the zero Addr was banned: %v", v)
	}
}

// TestConfigTOMLNames pins the config keys, which operators write in the
// config file.
func TestConfigTOMLNames(t *testing.T) {
	want := []string{"rate_per_sec", "burst", "prefix_rate_per_sec", "prefix_burst", "ipv4_prefix_len",
		"ipv6_address_len", "ipv6_prefix_len", "table_bytes", "ban_after", "ban_window", "ban_duration", "ban_max", "max_bans",
		"connect_rate_per_sec", "connect_burst", "connect_table_bytes", "refusal_cost", "blocklist_file"}
	typ := reflect.TypeFor[Config]()
	var got []string
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Tag.Get("toml"))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("toml keys = %v, want %v", got, want)
	}
}
