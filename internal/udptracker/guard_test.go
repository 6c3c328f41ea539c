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
	"warden/internal/swarm"
	"warden/internal/swarm/memswarm"
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
	tr := tracker.New(memswarm.New(swarm.DefaultConfig()), emptyRegistry{}, cfg, discardLog())
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
