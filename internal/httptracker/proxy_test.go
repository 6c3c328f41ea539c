package httptracker

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"warden/internal/limit"
)

// TestProxyConnLimit is issue 14 item 4: behind a trusted proxy, which
// counts as one address, the tracker used to get max_conns_per_source
// connections in all. The proxy now has max_conns_per_proxy of its own,
// apart from the per-source and per-prefix caps, inside max_conns, and
// its connections are never closed to make room for direct clients.
func TestProxyConnLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies, cfg.ClientIPHeader = []string{"127.0.0.50"}, "X-Forwarded-For"
	cfg.MaxConns, cfg.MaxConnsPerSource, cfg.MaxConnsPerPrefix, cfg.MaxConnsPerProxy = 120, 8, 16, 100
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = time.Minute, time.Minute // the connections wait unused
	s := connServer(t, "", cfg, newGuard(t, limit.DefaultConfig(), ""))
	var proxied, direct []net.Conn
	defer func() { closeAll(proxied); closeAll(direct) }()
	proxyKey := netip.MustParsePrefix("127.0.0.50/32")
	for range 101 {
		proxied = append(proxied, dialFrom(t, s, "127.0.0.50"))
	}
	// The 101st is refused once the server has accepted it, after the others.
	if !isClosed(proxied[100]) {
		t.Fatal("the proxy's 101st connection is open")
	}
	if n := s.ln.held(proxyKey); n != 100 {
		t.Fatalf("the proxy holds %d connections, want 100", n)
	}
	// Direct clients fill the other 20 slots and then some: those closed
	// to make room are theirs, never the proxy's.
	for i := range 4 {
		for range 8 {
			direct = append(direct, dialFrom(t, s, fmt.Sprintf("127.0.%d.1", 60+i)))
		}
	}
	legitServed(t, s, "127.0.70.1")
	if st := s.Stats(); st.ConnsOpen > uint64(cfg.MaxConns) || st.ConnsEvicted == 0 {
		t.Errorf("conns_open = %d, conns_evicted = %d; want at most max_conns %d, and some evicted", st.ConnsOpen, st.ConnsEvicted, cfg.MaxConns)
	}
	if n := s.ln.held(proxyKey); n != 100 {
		t.Errorf("the proxy holds %d connections after direct clients filled the rest, want 100", n)
	}
	// The proxy's requests are served as its clients'.
	c := proxied[0]
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n", announceURL(1, 6881, 10, "&compact=0"))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	if !bytes.Contains(buf[:n], []byte("8:intervali")) {
		t.Fatalf("announce through a proxy connection: %q", buf[:n])
	}
}

// TestBadForwardCharged is issue 14 item 12c: a request from a trusted
// proxy whose client address header is unusable used to be answered
// with its failure reason without being charged to anyone, so it could be
// sent without limit. It is charged to the proxy's address, which is
// limited and then banned like any source, while the proxy's well-formed
// requests go on being charged to their clients.
func TestBadForwardCharged(t *testing.T) {
	lc := limit.DefaultConfig()
	lc.RatePerSec, lc.Burst, lc.BanAfter, lc.BanWindow = 1, 3, 5, time.Minute
	cfg := DefaultConfig()
	cfg.TrustedProxies, cfg.ClientIPHeader = []string{"10.0.0.0/8"}, "X-Forwarded-For"
	var logBuf bytes.Buffer
	h := newTestHandler(t, cfg, slog.New(slog.NewTextHandler(&logBuf, nil)))
	h.guard = newGuard(t, lc, "")
	var bodies []string
	for _, xff := range []string{"garbage", "", "198.51.100.1, unknown", "garbage", "garbage", "garbage", "garbage", "garbage", "garbage", "garbage", "garbage", "garbage"} {
		var hdr []string
		if xff != "" {
			hdr = []string{"X-Forwarded-For", xff}
		}
		bodies = append(bodies, get(h, "10.0.0.1:4000", announceURL(1, 6881, 0, ""), hdr...).Body.String())
	}
	for i, want := range []string{"x-forwarded-for: invalid address", "x-forwarded-for: missing", "x-forwarded-for: invalid address"} {
		if !strings.Contains(bodies[i], want) {
			t.Errorf("request %d: %q, want the failure %q", i, bodies[i], want)
		}
	}
	if !strings.Contains(bodies[3], "rate limit exceeded") || !strings.Contains(bodies[11], "banned") {
		t.Errorf("past the proxy's burst: %q ... %q; want limited, then banned", bodies[3], bodies[11])
	}
	if st := &h.stats; st.badForwards.n.Load() != 12 || st.limited.n.Load() == 0 || st.banned.n.Load() == 0 {
		t.Errorf("bad_forwards %d, limited %d, banned %d; want 12 and both others counted",
			st.badForwards.n.Load(), st.limited.n.Load(), st.banned.n.Load())
	}
	// The proxy's clients are charged to themselves: not banned.
	if b := get(h, "10.0.0.1:4000", announceURL(2, 6882, 0, ""), "X-Forwarded-For", "198.51.100.2").Body.String(); !strings.Contains(b, "8:intervali") {
		t.Errorf("a client through the banned proxy address: %q", b)
	}
	if n := strings.Count(logBuf.String(), "trusted proxy sent no usable client address"); n != 1 {
		t.Errorf("%d warnings for 12 bad forwards, want 1 (rate-limited):\n%s", n, logBuf.String())
	}
}

// TestListenWarnsWideTrust: a trusted range that lets the whole internet
// choose its address is reported at start.
func TestListenWarnsWideTrust(t *testing.T) {
	var logBuf bytes.Buffer
	cfg := DefaultConfig()
	cfg.TrustedProxies, cfg.ClientIPHeader = []string{"10.0.0.0/8", "0.0.0.0/0"}, "X-Real-IP"
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := logBuf.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "key=http.trusted_proxies[1] prefix=0.0.0.0/0") {
		t.Errorf("log at start:\n%s\nwant one warning naming http.trusted_proxies[1]", out)
	}
}
