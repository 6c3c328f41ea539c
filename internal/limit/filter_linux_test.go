package limit

import (
	"context"
	"errors"
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
func waitFiltered(t *testing.T, g *Guard, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); g.Stats().KernelFilterPrefixes != n; {
		if time.Now().After(deadline) {
			t.Fatalf("the SYN filter holds %d prefixes after 2 s, want %d", g.Stats().KernelFilterPrefixes, n)
		}
		time.Sleep(20 * time.Millisecond)
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
