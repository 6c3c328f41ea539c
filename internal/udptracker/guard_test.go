package udptracker

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

func newTestGuard(t *testing.T, cfg limit.Config, blocklist string) *limit.Guard {
	t.Helper()
	if blocklist != "" {
		cfg.BlocklistFile = filepath.Join(t.TempDir(), "blocklist.txt")
		os.WriteFile(cfg.BlocklistFile, []byte(blocklist), 0o600)
	}
	g, err := limit.NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardLimitsVerifiedSources(t *testing.T) {
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst = 1, 5
	c := newTestCodec(t, newTestTracker(t))
	c.guard = newTestGuard(t, cfg, "")
	src := netip.MustParseAddrPort("10.0.0.1:5000")
	cid := c.connect(t, src)
	answered := 0
	for range 20 {
		if r := c.do(src, announce{cid: cid, tid: 1}.pkt()); r != nil {
			answered++
		}
	}
	if answered != 5 || c.stat(cDroppedLimited) != 15 {
		t.Fatalf("20 announces with burst 5: %d answered, %d limited; want 5 and 15", answered, c.stat(cDroppedLimited))
	}
	// Another source is not affected.
	other := netip.MustParseAddrPort("10.0.9.1:5000")
	if r := c.do(other, announce{cid: c.connect(t, other), tid: 1}.pkt()); r == nil {
		t.Fatal("an unrelated source was limited")
	}
	// Connects are not charged: nothing is kept for an unverified source.
	for range 50 {
		c.connect(t, src)
	}
}

func TestGuardBlocklist(t *testing.T) {
	c := newTestCodec(t, newTestTracker(t))
	c.guard = newTestGuard(t, limit.DefaultConfig(), "# abusers\n192.0.2.0/24\n2001:db8::/32\n")
	for _, src := range []string{"192.0.2.7:1000", "[::ffff:192.0.2.8]:1000", "[2001:db8::1]:1000"} {
		if r := c.do(netip.MustParseAddrPort(src), connectPkt(1)); r != nil {
			t.Errorf("connect from blocklisted %s answered", src)
		}
	}
	if c.stat(cDroppedBlocked) != 3 {
		t.Fatalf("dropped_blocked = %d, want 3", c.stat(cDroppedBlocked))
	}
	c.connect(t, netip.MustParseAddrPort("198.51.100.1:1000"))
}

func TestShedRefusalsWhenBehind(t *testing.T) {
	cfg := tracker.DefaultConfig() // allowlist mode, nothing registered
	tr := tracker.New(memswarm.New(swarmtest.Config()), emptyRegistry{}, cfg, discardLog())
	c := newTestCodec(t, tr)
	src := netip.MustParseAddrPort("10.0.0.1:5000")
	cid := c.connect(t, src)
	if r := c.do(src, announce{cid: cid, tid: 1}.pkt()); r == nil || errorText(t, r) == "" {
		t.Fatal("refusal not answered while the worker keeps up")
	}
	c.shed = true
	if r := c.do(src, announce{cid: cid, tid: 2}.pkt()); r != nil {
		t.Fatalf("refusal answered while the worker is behind: %x", r)
	}
	if c.stat(cShedRefusals) != 1 || c.stat(cAnnouncesFailed) != 1 {
		t.Fatalf("shed_refusals %d, announces_failed %d; want 1 and 1", c.stat(cShedRefusals), c.stat(cAnnouncesFailed))
	}
}

type emptyRegistry struct{}

func (emptyRegistry) Status(bittorrent.InfoHash) (bool, bool, string) { return false, false, "" }
func (emptyRegistry) Generation() uint64                              { return 0 }

func TestGuardAllocs(t *testing.T) {
	c := newTestCodec(t, newTestTracker(t))
	c.guard = newTestGuard(t, limit.DefaultConfig(), "192.0.2.0/24\n")
	src := netip.MustParseAddrPort("10.0.0.1:5000")
	c.clock.set(time.Unix(1_800_000_000, 0))
	pkt := announce{cid: c.connect(t, src), tid: 1}.pkt()
	out := make([]byte, 0, c.maxReply())
	if n := testing.AllocsPerRun(100, func() { c.handle(src, pkt, out) }); n != 0 {
		t.Fatalf("guarded announce allocates %v times", n)
	}
}

// TestReplayTheStory sends what the founding flood sent: one source, valid
// connection IDs, announces for foreign torrents at 8,000 a second. With
// the default limits the source must be banned within a second.
func TestReplayTheStory(t *testing.T) {
	cfg := tracker.DefaultConfig() // allowlist, nothing registered
	tr := tracker.New(memswarm.New(swarmtest.Config()), emptyRegistry{}, cfg, discardLog())
	c := newTestCodec(t, tr)
	c.guard = newTestGuard(t, limit.DefaultConfig(), "")
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	start := c.clock.now()
	cid := c.connect(t, src)
	const rate = 8000
	var bannedAt time.Duration = -1
	for i := range 2 * rate {
		at := time.Duration(i) * time.Second / rate
		c.clock.set(start.Add(at))
		if i%(rate/2) == 0 { // the flooder renews its connection ID
			cid = c.connect(t, src)
		}
		c.do(src, announce{cid: cid, tid: uint32(i), ih: testHash(100000 + i)}.pkt())
		if bannedAt < 0 && c.stat(cDroppedBanned) > 0 {
			bannedAt = at
		}
	}
	if bannedAt < 0 || bannedAt > time.Second {
		t.Fatalf("a source at 8,000 announces/s was banned after %v, want within 1s", bannedAt)
	}
	answered := c.stat(cAnnouncesFailed)
	t.Logf("banned after %v; %d of %d announces answered before that, %d limited, %d dropped as banned",
		bannedAt, answered, 2*rate, c.stat(cDroppedLimited), c.stat(cDroppedBanned))
	if answered > 600 {
		t.Fatalf("%d refusals sent to the flooder, want at most the burst", answered)
	}
}

// BenchmarkBannedSource is the per-datagram cost, in the codec, of a
// banned source's traffic: what shedding a flood costs once it is banned.
func BenchmarkBannedSource(b *testing.B) {
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst, cfg.BanAfter = 1, 1, 1
	g, err := limit.NewGuard(cfg, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	c := newTestCodec(b, newTestTracker(b))
	c.guard = g
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	pkt := announce{cid: c.connect(b, src), tid: 1}.pkt()
	out := make([]byte, 0, c.maxReply())
	for range 10 {
		c.handle(src, pkt, out)
	}
	if c.stat(cDroppedBanned) == 0 {
		b.Fatal("source not banned")
	}
	b.ReportAllocs()
	for b.Loop() {
		c.handle(src, pkt, out)
	}
}
