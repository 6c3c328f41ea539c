package limit

import (
	"math"
	"time"

	"warden/internal/confkey"
)

// Config sets the rates, the ban policy and the memory cap of a Limiter.
//
// Every source is charged to two keys: its address and its prefix. The
// address is an IPv4 address (/32) or an IPv6 /IPv6AddressLen (a /64 by
// default: one host or LAN can pick any address in its /64, so counting
// /128s apart would only let it multiply its allowance). The prefix is the
// IPv4 /IPv4PrefixLen or IPv6 /IPv6PrefixLen around it. A request passes
// only if both keys have a token.
type Config struct {
	// RatePerSec is the sustained rate each address may send, in requests
	// per second; fractions are allowed (0.5 is one request every 2s).
	RatePerSec float64 `toml:"rate_per_sec"`
	// Burst is how many requests an idle address may send at once.
	// Burst/RatePerSec, the time an empty bucket takes to fill, is at most
	// 30 minutes.
	Burst int `toml:"burst"`
	// PrefixRatePerSec and PrefixBurst are the same for a whole prefix: all
	// the addresses of one IPv4 /IPv4PrefixLen or IPv6 /IPv6PrefixLen share
	// them.
	PrefixRatePerSec float64 `toml:"prefix_rate_per_sec"`
	PrefixBurst      int     `toml:"prefix_burst"`
	// IPv4PrefixLen is the length of the IPv4 prefix key, 0-31 (24).
	IPv4PrefixLen int `toml:"ipv4_prefix_len"`
	// IPv6AddressLen is the length at which IPv6 sources are counted as one
	// address, 1-128 (64).
	IPv6AddressLen int `toml:"ipv6_address_len"`
	// IPv6PrefixLen is the length of the IPv6 prefix key, 0 to
	// IPv6AddressLen-1 (48).
	IPv6PrefixLen int `toml:"ipv6_prefix_len"`
	// TableBytes caps all the memory a Limiter holds: the rate table, the
	// ban table and its counters are allocated once by New and never grow.
	// MemoryBytes reports what was allocated, which is at most TableBytes,
	// itself at most 4 GiB. It is mapped at start, and a memory map the
	// system refuses stops NewGuard with an error naming this key; but a
	// flood of new sources touches every page, so it must also fit, with
	// the rest of warden, under a cgroup's limit (systemd's MemoryMax),
	// which the map does not check.
	TableBytes int `toml:"table_bytes"`
	// BanAfter bans a key (an address or a prefix) on its BanAfter-th
	// dropped request within BanWindow. Drops are counted in a leaky
	// bucket that drains BanAfter per BanWindow, so BanAfter drops in quick
	// succession ban, and so does a sustained drop rate above
	// BanAfter/BanWindow once the excess reaches BanAfter. 0 disables bans.
	BanAfter int `toml:"ban_after"`
	// BanWindow is the window of BanAfter, at most 30 minutes, and
	// BanWindow/BanAfter is at least 1µs.
	BanWindow time.Duration `toml:"ban_window"`
	// BanDuration is the length of a first ban. A key banned again while
	// its previous ban is remembered (until BanMax after it ended) is
	// banned for twice as long as the last time, up to BanMax.
	BanDuration time.Duration `toml:"ban_duration"`
	// BanMax is the longest ban, and how long a ban is remembered after it
	// ends for the doubling of repeat offenders.
	BanMax time.Duration `toml:"ban_max"`
	// MaxBans is the number of ban records the ban table holds (rounded up
	// to a multiple of 8); it is carved out of TableBytes.
	MaxBans int `toml:"max_bans"`
	// ConnectRatePerSec and ConnectBurst limit the UDP connects of each
	// address (an IPv4 address or an IPv6 /IPv6AddressLen), in a bucket
	// of their own. A connect proves nothing about its source, so
	// anyone can spend a victim's bucket by forging its address: this
	// bucket therefore only drops connects over the rate, never bans, is
	// never reported as a knock, and is not charged to the address's
	// announce bucket or to any prefix. A client connects about once a
	// minute per tracker (a connection ID lasts one to two minutes), so
	// the default of 20/s (burst 200) serves a thousand clients behind one
	// address.
	ConnectRatePerSec float64 `toml:"connect_rate_per_sec"`
	ConnectBurst      int     `toml:"connect_burst"`
	// ConnectTableBytes is the memory of the connect buckets, allocated
	// once beside TableBytes and never grown, as the rate table is.
	ConnectTableBytes int `toml:"connect_table_bytes"`
	// RefusalCost is how many requests a request the tracker refuses (an
	// announce or scrape of a torrent it does not track) counts for, in
	// both of its source's buckets. A client is told why and when to come
	// back, so one that asks again and again is not a client obeying
	// the protocol: this makes such a flood reach the rate limits, and then
	// a ban, sooner than the same rate of ordinary announces. 0 or 1: as
	// any other request.
	RefusalCost int `toml:"refusal_cost"`
	// BlocklistFile names a file of CIDRs (one per line, # comments) whose
	// sources are dropped before anything else; it is reloaded when it
	// changes. Empty: no blocklist.
	BlocklistFile string `toml:"blocklist_file"`
}

// DefaultConfig returns the settings warden serve uses when the config file
// has none: 50 requests/s (burst 500) per address, 500/s (burst 5000) per
// IPv4 /24 or IPv6 /48, with IPv6 /64s counted as addresses; a refused
// request counts for 10; a ban of 1m, doubling up to 1h, on the 1000th
// drop within 10s; 64 MiB in all; and 20 UDP connects/s (burst 200) per
// address, in 8 MiB.
func DefaultConfig() Config {
	return Config{
		RatePerSec:       50,
		Burst:            500,
		PrefixRatePerSec: 500,
		PrefixBurst:      5000,
		IPv4PrefixLen:    24,
		IPv6AddressLen:   64,
		IPv6PrefixLen:    48,
		TableBytes:       64 << 20,
		BanAfter:         1000,
		BanWindow:        10 * time.Second,
		BanDuration:      time.Minute,
		BanMax:           time.Hour,
		MaxBans:          65536,
		RefusalCost:      10,

		ConnectRatePerSec: 20,
		ConnectBurst:      200,
		ConnectTableBytes: 8 << 20,
	}
}

// Limits enforced by Validate.
const (
	maxRate      = 1e9 // one token per nanosecond
	maxFill      = 30 * time.Minute
	maxBanWindow = 30 * time.Minute
	minBanStep   = time.Microsecond
	maxMaxBans   = 1 << 24
	// maxRefusalCost: beyond a burst's worth, a higher cost changes
	// nothing.
	maxRefusalCost = 10000
	// maxTableBytes (4 GiB, about 220 million keys, 64 times the default)
	// is far more than any count of sources needs; the table is mapped at
	// start and filled as sources arrive, so all of it must fit in memory.
	maxTableBytes = 4 << 30
)

// Validate returns a *confkey.Error naming the first field that cannot
// work by its key in the [limit] table. It never adjusts a value.
func (c Config) Validate() error {
	if err := checkRate("rate_per_sec", "burst", c.RatePerSec, c.Burst); err != nil {
		return err
	}
	if err := checkRate("prefix_rate_per_sec", "prefix_burst", c.PrefixRatePerSec, c.PrefixBurst); err != nil {
		return err
	}
	switch {
	case c.IPv4PrefixLen < 0 || c.IPv4PrefixLen > 31:
		return confkey.Errorf("ipv4_prefix_len", "must be 0-31, got %d", c.IPv4PrefixLen)
	case c.IPv6AddressLen < 1 || c.IPv6AddressLen > 128:
		return confkey.Errorf("ipv6_address_len", "must be 1-128, got %d", c.IPv6AddressLen)
	case c.IPv6PrefixLen < 0 || c.IPv6PrefixLen >= c.IPv6AddressLen:
		return confkey.Errorf("ipv6_prefix_len", "must be 0-%d (shorter than ipv6_address_len), got %d", c.IPv6AddressLen-1, c.IPv6PrefixLen)
	case c.BanAfter < 0:
		return confkey.Errorf("ban_after", "must be 0 (no bans) or more, got %d", c.BanAfter)
	case c.BanWindow <= 0 || c.BanWindow > maxBanWindow:
		return confkey.Errorf("ban_window", "must be more than 0 and at most %v, got %v", maxBanWindow, c.BanWindow)
	case c.BanAfter > 0 && c.BanWindow/time.Duration(c.BanAfter) < minBanStep:
		return confkey.Errorf("ban_after", "must be at most ban_window/%v = %d, got %d", minBanStep, c.BanWindow/minBanStep, c.BanAfter)
	case c.BanDuration <= 0:
		return confkey.Errorf("ban_duration", "must be positive, got %v", c.BanDuration)
	case c.BanMax < c.BanDuration:
		return confkey.Errorf("ban_max", "must be at least ban_duration (%v), got %v", c.BanDuration, c.BanMax)
	case c.RefusalCost < 0 || c.RefusalCost > maxRefusalCost:
		return confkey.Errorf("refusal_cost", "must be 0-%d, got %d", maxRefusalCost, c.RefusalCost)
	case c.MaxBans < 1 || c.MaxBans > maxMaxBans:
		return confkey.Errorf("max_bans", "must be 1-%d, got %d", maxMaxBans, c.MaxBans)
	case int64(c.TableBytes) > maxTableBytes:
		return confkey.Errorf("table_bytes", "must be at most %d (4 GiB), got %d", int64(maxTableBytes), c.TableBytes)
	}
	if lay := layoutFor(c); lay.sets < 1 {
		return confkey.Errorf("table_bytes", "must be at least %d to hold max_bans=%d and one set, got %d", lay.minBytes, c.MaxBans, c.TableBytes)
	}
	if err := checkRate("connect_rate_per_sec", "connect_burst", c.ConnectRatePerSec, c.ConnectBurst); err != nil {
		return err
	}
	cc := c.connectConfig()
	if int64(cc.TableBytes) > maxTableBytes {
		return confkey.Errorf("connect_table_bytes", "must be at most %d (4 GiB), got %d", int64(maxTableBytes), c.ConnectTableBytes)
	}
	if lay := layoutFor(cc); lay.sets < 1 {
		return confkey.Errorf("connect_table_bytes", "must be at least %d, got %d", lay.minBytes, c.ConnectTableBytes)
	}
	return nil
}

func checkRate(rateField, burstField string, rate float64, burst int) error {
	if !(rate > 0 && rate <= maxRate) { // also rejects NaN
		return confkey.Errorf(rateField, "must be more than 0 and at most %g, got %g", float64(maxRate), rate)
	}
	if burst < 1 {
		return confkey.Errorf(burstField, "must be at least 1, got %d", burst)
	}
	if fill := float64(burst) / rate; fill > maxFill.Seconds() {
		return confkey.Errorf(burstField, "must fill within %v at %s=%g (at most %d), got %d",
			maxFill, rateField, rate, int64(math.Floor(maxFill.Seconds()*rate)), burst)
	}
	return nil
}
