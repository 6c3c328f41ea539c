package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"warden/internal/sockfilter"
)

// TestGuardFiltersSYNs drives the kernel through Guard.Run: a ban and a
// blocklisted prefix reach the listener's SYN filter, so connection
// attempts from them get no answer while others connect, and a lifted
// ban leaves the filter again.
func TestGuardFiltersSYNs(t *testing.T) {
	dir := t.TempDir()
	blocklist := filepath.Join(dir, "blocklist")
	if err := os.WriteFile(blocklist, []byte("127.0.2.0/24\n127.0.3.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.TableBytes, cfg.MaxBans = 1<<20, 64
	cfg.BlocklistFile = blocklist
	g, err := NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := g.Filter(ln.(*net.TCPListener), sockfilter.SYNs); err != nil {
		t.Fatal(err)
	}
	// A trusted proxy inside the second blocklisted /24 keeps that /24
	// out of the filter.
	g.ExemptFromFilters([]netip.Prefix{netip.MustParsePrefix("127.0.3.7/32")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	banned := netip.MustParsePrefix("127.0.0.5/32")
	if _, err := g.Limiter().Ban(banned, time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFiltered(t, g, 2) // the ban and the first blocklisted /24
	for _, src := range []string{"127.0.0.5", "127.0.2.40"} {
		if connects(t, ln, src, 300*time.Millisecond) {
			t.Errorf("%s connected although its SYNs should be dropped", src)
		}
	}
	if !connects(t, ln, "127.0.0.6", time.Second) {
		t.Errorf("127.0.0.6, neither banned nor blocklisted, cannot connect")
	}
	if !connects(t, ln, "127.0.3.9", time.Second) {
		t.Errorf("127.0.3.9, in a blocklisted /24 holding an exempt proxy, was dropped in the kernel")
	}
	if !g.Limiter().Unban(banned) {
		t.Fatal("Unban found no ban")
	}
	waitFiltered(t, g, 1)
	if !connects(t, ln, "127.0.0.5", time.Second) {
		t.Errorf("127.0.0.5 cannot connect after its ban was lifted")
	}
}

// waitFiltered waits up to two seconds for the guard's kernel filter to hold
// n prefixes.
// TestBanReachesFilterAtOnce checks that a new ban does not wait for the
// periodic copy: with that an hour apart, the ban is in the filter within
// a second, and so is its lifting.
func TestBanReachesFilterAtOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TableBytes, cfg.MaxBans = 1<<20, 64
	g, err := NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g.every = time.Hour
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := g.Filter(pc.(*net.UDPConn), sockfilter.Datagrams); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	p := netip.MustParsePrefix("127.0.0.9/32")
	if _, err := g.Limiter().Ban(p, time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFilteredWithin(t, g, 1, time.Second)
	g.Limiter().Unban(p)
	waitFilteredWithin(t, g, 0, time.Second)
}

func waitFiltered(t *testing.T, g *Guard, n int) {
	t.Helper()
	waitFilteredWithin(t, g, n, 2*time.Second)
}

func waitFilteredWithin(t *testing.T, g *Guard, n int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); g.Stats().KernelFilterPrefixes != n; {
		if time.Now().After(deadline) {
			t.Fatalf("the filter holds %d prefixes after %v, want %d", g.Stats().KernelFilterPrefixes, d, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connects dials ln from src and reports whether the handshake completed
// within wait.
func connects(t *testing.T, ln net.Listener, src string, wait time.Duration) bool {
	t.Helper()
	d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", ln.Addr().String())
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	c.Close()
	return true
}

// BenchmarkRefreshFilters measures one copy of the bans into a socket's
// filter with the ban table holding n bans: a scan of the table for the
// busiest, not a copy and sort of all of them.
func BenchmarkRefreshFilters(b *testing.B) {
	for _, n := range []int{100, 10_000, 60_000} {
		b.Run(fmt.Sprintf("bans=%d", n), func(b *testing.B) {
			g, err := NewGuard(DefaultConfig(), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer pc.Close()
			if err := g.Filter(pc.(*net.UDPConn), sockfilter.Datagrams); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for i := range n {
				// A set full of bans refuses one more: the table holds
				// somewhat fewer than max_bans (65,536) in all.
				a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				g.Limiter().Ban(netip.PrefixFrom(a, 32), time.Hour, now)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.held = nil // as if the bans had changed: attach every time
				g.refreshFilters(now)
			}
			_, running := g.Limiter().BusiestBans(now, 0)
			b.ReportMetric(float64(running), "bans")
		})
	}
}
