package udptracker

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/limit"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

func newTestGuard(t testing.TB, cfg limit.Config, blocklist string) *limit.Guard {
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
	// Connects have their own bucket (TestConnectFlood): they leave the
	// announce bucket alone.
	for range 50 {
		c.connect(t, src)
	}
}

// countingSink counts what the guard reports.
type countingSink struct{ n int }

func (s *countingSink) Dropped(netip.Addr, limit.Verdict, time.Time) { s.n++ }

// TestConnectFlood replays one source sending connects at 4,000/s for 5s
// (20,000 connects, 80 times the announce rate per source), which used to
// get 20,000 replies. With the default limits it gets its connect burst
// and rate, is never banned or reported for it, and can still announce
// with its whole announce burst; other sources connect as usual.
func TestConnectFlood(t *testing.T) {
	cfg := limit.DefaultConfig()
	c := newTestCodec(t, newTestTracker(t))
	c.guard = newTestGuard(t, cfg, "")
	sink := &countingSink{}
	c.guard.ReportDrops(sink)
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	start := c.clock.now()
	const rate, secs = 4000, 5
	replies := 0
	for i := range rate * secs {
		c.clock.set(start.Add(time.Duration(i) * time.Second / rate))
		if c.do(src, connectPkt(uint32(i))) != nil {
			replies++
		}
	}
	want := cfg.ConnectBurst + int(cfg.ConnectRatePerSec*secs)
	t.Logf("%d connects in %ds: %d answered (burst %d + %g/s), %d dropped", rate*secs, secs, replies,
		cfg.ConnectBurst, cfg.ConnectRatePerSec, c.stat(cDroppedConnectLimited))
	if replies > want+1 || replies < want-1 {
		t.Fatalf("%d connects answered, want %d (the connect burst and rate)", replies, want)
	}
	if got := c.stat(cDroppedConnectLimited); got != uint64(rate*secs-replies) {
		t.Errorf("dropped_connect_limited = %d, want %d", got, rate*secs-replies)
	}
	if bans := c.guard.Limiter().Bans(c.clock.now()); len(bans) != 0 || sink.n != 0 {
		t.Fatalf("connects banned or reported their source: bans %+v, %d reports", bans, sink.n)
	}
	// Its announce bucket is untouched: a whole burst of announces passes.
	c.clock.advance(time.Second) // a connect token
	cid := c.connect(t, src)
	for i := range cfg.Burst {
		if c.do(src, announce{cid: cid, tid: uint32(i)}.pkt()) == nil {
			t.Fatalf("announce %d after the connect flood dropped; want the whole burst of %d", i, cfg.Burst)
		}
	}
	// Another address of the same /24 connects as usual: connects have no
	// prefix bucket, so forged connects cannot shut out a network.
	c.connect(t, netip.MustParseAddrPort("198.51.100.8:40000"))
}

// TestConnectAllocs checks that the connect bucket costs no allocation.
func TestConnectAllocs(t *testing.T) {
	c := newTestCodec(t, newTestTracker(t))
	c.guard = newTestGuard(t, limit.DefaultConfig(), "")
	src := netip.MustParseAddrPort("10.0.0.1:5000")
	pkt := connectPkt(1)
	out := make([]byte, 0, c.maxReply())
	if n := testing.AllocsPerRun(1000, func() { c.handle(src, pkt, out) }); n != 0 {
		t.Fatalf("guarded connect allocates %v times", n)
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

// TestServerConnectFlood is TestConnectFlood over a real socket: one
// client sends 20,000 connects as fast as it can (at most 5s), and gets no
// more replies than its connect burst and rate allow; then it connects
// and announces as usual.
func TestServerConnectFlood(t *testing.T) {
	lcfg := limit.DefaultConfig()
	s, _ := startServer(t, "127.0.0.1:0", testConfig(), options{guard: newTestGuard(t, lcfg, "")})
	cl := dial(t, netip.AddrPort{}, s.Addr())
	const n = 20000
	replies := 0
	var readDone sync.WaitGroup
	readDone.Go(func() {
		buf := make([]byte, 64)
		for {
			cl.conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := cl.conn.Read(buf); err != nil {
				return
			}
			replies++
		}
	})
	start := time.Now()
	pkt := connectPkt(7)
	sent := 0
	for ; sent < n && time.Since(start) < 5*time.Second; sent++ {
		if _, err := cl.conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	readDone.Wait()
	allowed := lcfg.ConnectBurst + int(lcfg.ConnectRatePerSec*elapsed.Seconds()) + 1
	st := s.Stats()
	t.Logf("%d connects sent in %v: %d answered (at most %d allowed), %d dropped by the connect limit",
		sent, elapsed.Round(time.Millisecond), replies, allowed, st.DroppedConnectLimited)
	if replies > allowed {
		t.Fatalf("%d connects answered, want at most %d", replies, allowed)
	}
	if st.DroppedConnectLimited == 0 || st.DroppedBanned != 0 {
		t.Fatalf("Stats = %+v: want connects dropped by their limit, none banned", st)
	}
	time.Sleep(100 * time.Millisecond) // two connect tokens
	cid := cl.connect()
	if r := cl.roundTrip(announce{cid: cid, tid: 1}.pkt(), 5*time.Second); r == nil {
		t.Fatal("announce after the connect flood got no reply")
	}
}

// BenchmarkConnectGuarded is the codec's cost of a connect with the
// default guard: "answered" from many sources within their connect rate,
// "dropped" from one source far over it.
func BenchmarkConnectGuarded(b *testing.B) {
	pkt := connectPkt(1)
	b.Run("answered", func(b *testing.B) {
		c := newTestCodec(b, newTestTracker(b))
		c.guard = newTestGuard(b, limit.DefaultConfig(), "")
		srcs := make([]netip.AddrPort, 1<<16) // few enough requests each to stay within the burst
		for i := range srcs {
			srcs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 6881)
		}
		out := make([]byte, 0, c.maxReply())
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			sinkReply = c.handle(srcs[i%len(srcs)], pkt, out)
			i++
		}
	})
	b.Run("dropped", func(b *testing.B) {
		c := newTestCodec(b, newTestTracker(b))
		c.guard = newTestGuard(b, limit.DefaultConfig(), "")
		out := make([]byte, 0, c.maxReply())
		b.ReportAllocs()
		for b.Loop() {
			sinkReply = c.handle(src4, pkt, out)
		}
	})
}
