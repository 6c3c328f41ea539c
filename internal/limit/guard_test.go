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
