package limit

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

func TestGuardTopOffenders(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RatePerSec, cfg.Burst = 1, 1
	g, err := NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	flooder := netip.MustParseAddr("198.51.100.7")
	for i := range 10_000 {
		g.Check(flooder, now.Add(time.Duration(i)*time.Microsecond))
		g.Check(netip.MustParseAddr("192.0.2.1"), now.Add(time.Duration(i)*time.Second)) // within its rate
	}
	top := g.TopOffenders(5)
	if len(top) != 1 || top[0].Key != flooder || top[0].Count < 10_000/overSample-2 {
		t.Fatalf("TopOffenders = %+v, want only %v with about %d samples", top, flooder, 10_000/overSample)
	}
	var nilGuard *Guard
	if nilGuard.Check(flooder, now) != Allowed || nilGuard.Blocked(flooder) {
		t.Fatal("a nil Guard refused a request")
	}
}
