package limit

import (
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"
)

// dropLog is a Sink that counts what it is told, per source and verdict.
type dropLog map[netip.Addr]map[Verdict]int

func (d dropLog) Dropped(src netip.Addr, v Verdict, now time.Time) {
	if d[src] == nil {
		d[src] = map[Verdict]int{}
	}
	d[src][v]++
}

func TestGuardReportsDrops(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.RatePerSec, cfg.Burst = 1, 1
	cfg.BanAfter = 0
	cfg.BlocklistFile = dir + "/block"
	writeFile(t, cfg.BlocklistFile, "203.0.113.0/24\n")
	g, err := NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	log := dropLog{}
	g.ReportDrops(log)
	now := time.Unix(1_800_000_000, 0)
	flooder := netip.MustParseAddr("198.51.100.7")
	calm := netip.MustParseAddr("192.0.2.1")
	blocked := netip.MustParseAddr("::ffff:203.0.113.5") // mapped: reported unmapped
	for i := range 1000 {
		g.Check(flooder, now.Add(time.Duration(i)*time.Microsecond))
		g.Check(calm, now.Add(time.Duration(i)*time.Second)) // within its rate
	}
	g.Check(blocked, now)
	if got := log[flooder][Limited]; got != 999 {
		t.Errorf("flooder: %d drops reported as Limited, want 999 (all but the first)", got)
	}
	if log[calm] != nil {
		t.Errorf("source within its rate reported: %v", log[calm])
	}
	if got := log[blocked.Unmap()][Blocked]; got != 1 {
		t.Errorf("blocklisted source: %v, want one Blocked drop under its IPv4 form", log)
	}
	var nilGuard *Guard
	if nilGuard.Check(flooder, now) != Allowed || nilGuard.Blocked(flooder) {
		t.Fatal("a nil Guard refused a request")
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGuardConnects checks the connect bucket: per address only (a
// network's other addresses are not held back by one that floods), it
// only drops, it reports nothing, and it leaves the announce buckets and
// the ban table alone.
func TestGuardConnects(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConnectRatePerSec, cfg.ConnectBurst = 10, 20
	g, err := NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	log := dropLog{}
	g.ReportDrops(log)
	now := time.Unix(1_800_000_000, 0)
	// The whole of 198.51.100.0/24 floods connects, 1,000 each at once.
	var answered [256]int
	for i := range 256 {
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		for range 1000 {
			if g.AllowConnect(src, now) {
				answered[i]++
			}
		}
	}
	for i, n := range answered {
		if n != cfg.ConnectBurst {
			t.Fatalf("198.51.100.%d: %d connects answered, want its burst of %d (no prefix bucket)", i, n, cfg.ConnectBurst)
		}
	}
	if len(log) != 0 || len(g.Limiter().Bans(now)) != 0 {
		t.Fatalf("connect drops reported %v or banned %v", log, g.Limiter().Bans(now))
	}
	if st := g.Limiter().Stats(); st != (Stats{}) {
		t.Fatalf("announce limiter charged by connects: %+v", st)
	}
	// A second later, each address has its rate again.
	src := netip.MustParseAddr("198.51.100.1")
	n := 0
	for range 100 {
		if g.AllowConnect(src, now.Add(time.Second)) {
			n++
		}
	}
	if n != int(cfg.ConnectRatePerSec) {
		t.Errorf("a second later: %d connects answered, want %g", n, cfg.ConnectRatePerSec)
	}
	if st := g.conn.Stats(); st.Banned != 0 || st.BansImposed != 0 {
		t.Errorf("connect limiter banned: %+v", st)
	}
	// Memory: fixed at New.
	if m := g.conn.MemoryBytes(); m > cfg.ConnectTableBytes {
		t.Errorf("connect table %d bytes, over connect_table_bytes %d", m, cfg.ConnectTableBytes)
	}
	var nilGuard *Guard
	if !nilGuard.AllowConnect(src, now) {
		t.Error("a nil Guard refused a connect")
	}
}
