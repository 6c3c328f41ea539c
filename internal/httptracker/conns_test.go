package httptracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"warden/internal/limit"
)

// connServer runs a guarded server on addr (127.0.0.1:0 if empty) with cfg
// and short header timeouts left at their defaults.
func connServer(t *testing.T, addr string, cfg Config, guard *limit.Guard) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s, err := Listen(addr, newTestTracker(t), guard, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// openIdle opens a connection from local to s, announces on it and
// returns it open and idle; nil if the server closed it instead.
func openIdle(t *testing.T, s *Server, local string, port int) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", s.Addr().String())
	if errors.Is(err, unix.ECONNRESET) {
		return nil // refused before the connect returned
	}
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET "+announceURL(byte(port), uint16(port), 0, "")+" HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil
	}
	io.Copy(io.Discard, resp.Body)
	c.SetDeadline(time.Time{})
	return c
}

// isOpen reports whether the server still holds c: a read neither sees
// EOF nor a reset within 200 ms.
func isOpen(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return isTimeout(err)
}

// isClosed reports whether the server closes c within 2 s (EOF or reset).
func isClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// TestConnFloodFairShare is the attack of issue 14 item 1, scaled down:
// 40 addresses, each in its own /24, open 8 keep-alive connections each
// and go idle after one announce, more than max_conns. Every slot is
// taken, shared out evenly, no flooding source gets one back by
// redialling, and a client from another prefix is served within a
// second, every time, in place of the flood's idle connections.
func TestConnFloodFairShare(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConns, cfg.MaxConnsPerSource, cfg.MaxConnsPerPrefix = 256, 8, 64
	s := connServer(t, "", cfg, newGuard(t, limit.DefaultConfig(), ""))
	var flood []net.Conn
	defer func() { closeAll(flood) }()
	src := func(i int) string { return fmt.Sprintf("127.30.%d.1", i) }
	for i := range 40 {
		for j := range 8 {
			flood = append(flood, openIdle(t, s, src(i), 1000+8*i+j))
		}
	}
	lo, hi := cfg.MaxConns, 0
	for i := range 40 {
		n := s.ln.held(netip.MustParsePrefix(src(i) + "/32"))
		lo, hi = min(lo, n), max(hi, n)
	}
	if st := s.Stats(); st.ConnsOpen != uint64(cfg.MaxConns) || hi-lo > 1 {
		t.Fatalf("flood holds %d connections, %d to %d per source; want all %d, evenly", st.ConnsOpen, lo, hi, cfg.MaxConns)
	}
	for i := range 40 {
		if c := openIdle(t, s, src(i), 2000+i); c != nil {
			c.Close()
			t.Fatalf("flooding source %s got a connection back by redialling", src(i))
		}
	}
	for i := range 20 {
		start := time.Now()
		legitServed(t, s, "127.31.200.1")
		if d := time.Since(start); d > time.Second {
			t.Fatalf("legit request %d took %v during the flood", i, d)
		}
	}
	if st := s.Stats(); st.ConnsEvicted < 20 || st.ConnsOpen > uint64(cfg.MaxConns) {
		t.Fatalf("conns_evicted = %d, conns_open = %d; want at least 20 evicted and at most %d open", st.ConnsEvicted, st.ConnsOpen, cfg.MaxConns)
	}
}

// TestConnPrefixCap: many addresses of one /24 share max_conns_per_prefix.
func TestConnPrefixCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConns, cfg.MaxConnsPerSource, cfg.MaxConnsPerPrefix = 1000, 8, 20
	s := connServer(t, "", cfg, nil) // no guard: the default lengths
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	held := 0
	for i := range 10 {
		for j := range 4 {
			c := openIdle(t, s, fmt.Sprintf("127.32.0.%d", i+1), 100+4*i+j)
			conns = append(conns, c)
			if c != nil {
				held++
			}
		}
	}
	if held != cfg.MaxConnsPerPrefix {
		t.Fatalf("one /24 holds %d connections, want max_conns_per_prefix %d", held, cfg.MaxConnsPerPrefix)
	}
	legitServed(t, s, "127.32.1.1")
}

// TestConnEvictionOrder checks whom a newcomer displaces once every slot
// is taken: the connection idle longest in the prefix holding the most,
// only if that prefix holds two more than the newcomer's, and a request
// under way only once it has run for activeGrace.
func TestConnEvictionOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConns, cfg.MaxConnsPerSource, cfg.MaxConnsPerPrefix = 10, 8, 8
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			close(entered)
			<-release
			return
		}
		s.h.ServeHTTP(w, r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { close(release); cancel(); <-done }()

	// a: one request under way, then 7 idle connections; b: 2 idle.
	busy := dialFrom(t, s, "127.33.1.1")
	defer busy.Close()
	io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
	<-entered
	var a, b []net.Conn
	defer func() { closeAll(a); closeAll(b) }()
	for i := range 7 {
		a = append(a, openIdle(t, s, "127.33.1.1", 100+i))
		// The server marks a connection idle after the client has its
		// reply; a pause keeps the order of idling the order of opening.
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 2 {
		b = append(b, openIdle(t, s, "127.33.2.1", 200+i))
	}
	// Full. A newcomer takes the place of a's connection idle longest,
	// passing over the busy one.
	c1 := openIdle(t, s, "127.33.3.1", 300)
	if c1 == nil {
		t.Fatal("newcomer refused while the largest prefix holds 7 idle connections")
	}
	defer c1.Close()
	if !isClosed(a[0]) || !isOpen(busy) {
		t.Fatal("want a's connection idle longest closed, and the busy one open")
	}
	for i, c := range a[1:] {
		if !isOpen(c) {
			t.Errorf("a's connection %d closed, want only the oldest", i+1)
		}
	}
	// a (7) redials: no prefix holds 9, so it is refused.
	if c := openIdle(t, s, "127.33.1.1", 400); c != nil {
		c.Close()
		t.Error("a got a connection back by redialling")
	}
	// Once the request has run for activeGrace, it is fair game.
	time.Sleep(activeGrace + 100*time.Millisecond)
	c2 := openIdle(t, s, "127.33.4.1", 500)
	if c2 == nil {
		t.Fatal("second newcomer refused")
	}
	defer c2.Close()
	if !isClosed(busy) {
		t.Errorf("a request stuck for %v was not closed for a newcomer", activeGrace)
	}
	if st := s.Stats(); st.ConnsEvicted != 2 || st.ConnsOpen != 10 || st.ConnsRefused != 1 {
		t.Fatalf("evicted %d, open %d, refused %d; want 2, 10, 1", st.ConnsEvicted, st.ConnsOpen, st.ConnsRefused)
	}
}

// TestConnBannedRefusedAtAccept: a banned address and an address in a
// banned prefix get no connection, an unbanned neighbour does.
func TestConnBannedRefusedAtAccept(t *testing.T) {
	g := newGuard(t, limit.DefaultConfig(), "")
	for _, p := range []string{"127.34.0.1/32", "127.34.1.0/24"} {
		if _, err := g.Limiter().Ban(netip.MustParsePrefix(p), time.Hour, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s := connServer(t, "", DefaultConfig(), g)
	for _, src := range []string{"127.34.0.1", "127.34.1.77"} {
		for range 10 {
			if err := refusal(t, s, src); err == nil {
				t.Errorf("banned %s holds a connection", src)
			}
		}
	}
	if st := s.Stats(); st.ConnsRefused != 20 {
		t.Errorf("conns_refused = %d, want 20", st.ConnsRefused)
	}
	legitServed(t, s, "127.34.0.2")
}

// TestConnRefusedWithReset: a refused connection is reset, not closed
// with a FIN, so that the server keeps no TIME_WAIT socket for each
// connection of a flood it refuses.
func TestConnRefusedWithReset(t *testing.T) {
	g := newGuard(t, limit.DefaultConfig(), "")
	if _, err := g.Limiter().Ban(netip.MustParsePrefix("127.35.0.1/32"), time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	s := connServer(t, "", DefaultConfig(), g)
	for range 3 {
		if err := refusal(t, s, "127.35.0.1"); !errors.Is(err, unix.ECONNRESET) {
			t.Fatalf("refused connection: %v, want connection reset", err)
		}
	}
	if n := timeWaits(t, s.Addr().Port()); n != 0 {
		t.Errorf("%d TIME_WAIT sockets on the server's port, want none", n)
	}
}

// refusal connects from local to s and returns how the server ended the
// connection within 2 s (see dialFrom): the error of the first read, nil
// if the connection stays open.
func refusal(t *testing.T, s *Server, local string) error {
	t.Helper()
	c := dialFrom(t, s, local)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if isTimeout(err) {
		return nil
	}
	return err
}

// timeWaits counts the sockets in TIME_WAIT between 127.0.0.1:port and
// any port of 127.35.0.1 (other tests' and other programs' sockets may use
// the same port number on other addresses).
func timeWaits(t *testing.T, port uint16) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	local := fmt.Sprintf("0100007F:%04X", port) // 127.0.0.1, as the kernel prints it
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == local && strings.HasPrefix(f[2], "0100237F:") && f[3] == "06" {
			n++
		}
	}
	return n
}

// TestConnIPv6SourceIsSlash64 runs in a network namespace where the whole
// of 2001:db8::/32 is local: addresses of one /64 are one source, and
// /64s of one /48 one prefix, as the limiter counts them.
func TestConnIPv6SourceIsSlash64(t *testing.T) {
	ns := newNetns(t)
	cfg := DefaultConfig()
	cfg.MaxConns, cfg.MaxConnsPerSource, cfg.MaxConnsPerPrefix = 1000, 8, 20
	var s *Server
	ns.do(t, func() { s = connServer(t, "[2001:db8:ffff::1]:0", cfg, newGuard(t, limit.DefaultConfig(), "")) })
	if s == nil {
		t.FailNow()
	}
	var conns []net.Conn
	defer func() { closeAll(conns) }()
	count := func(srcs []string) (held int) {
		ns.do(t, func() {
			for i, src := range srcs {
				c := openIdle(t, s, src, 100+i)
				conns = append(conns, c)
				if c != nil {
					held++
				}
			}
		})
		return held
	}
	var one64 []string
	for i := range 50 {
		one64 = append(one64, fmt.Sprintf("2001:db8:1:1::%x", i+1))
	}
	if n := count(one64); n != cfg.MaxConnsPerSource {
		t.Errorf("50 addresses of one /64 hold %d connections, want max_conns_per_source %d", n, cfg.MaxConnsPerSource)
	}
	var one48 []string
	for i := range 10 {
		for j := range 8 {
			one48 = append(one48, fmt.Sprintf("2001:db8:1:%x::%x", 0x100+i, j+1))
		}
	}
	if n := count(one48); n != cfg.MaxConnsPerPrefix-cfg.MaxConnsPerSource {
		t.Errorf("ten more /64s of the same /48 hold %d connections, want the rest of max_conns_per_prefix, %d", n, cfg.MaxConnsPerPrefix-cfg.MaxConnsPerSource)
	}
	if n := count([]string{"2001:db8:2::1"}); n != 1 {
		t.Error("a source in another /48 was refused")
	}
}

// netns is a network namespace made for one test, with lo up and
// 2001:db8::/32 routed to it as local, and binding to addresses not
// assigned allowed, so that a socket may bind any address in it.
type netns struct{ name string }

// newNetns creates the namespace, or reports why it cannot: the test
// fails under CI=true, where root and ip(8) are expected, and is skipped
// elsewhere.
func newNetns(t *testing.T) *netns {
	t.Helper()
	need := func(err error) {
		if err == nil {
			return
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespace: %v (CI=true: root and ip(8) are required)", err)
		}
		t.Skipf("network namespace: %v", err)
	}
	if os.Geteuid() != 0 {
		need(errors.New("not root"))
	}
	_, err := exec.LookPath("ip")
	need(err)
	ns := &netns{name: fmt.Sprintf("warden-httptest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)}
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	need(run("netns", "add", ns.name))
	t.Cleanup(func() { run("netns", "del", ns.name) })
	for _, args := range [][]string{
		{"-n", ns.name, "link", "set", "lo", "up"},
		{"-n", ns.name, "-6", "route", "add", "local", "2001:db8::/32", "dev", "lo"},
		{"netns", "exec", ns.name, "sysctl", "-qw", "net.ipv6.ip_nonlocal_bind=1"},
	} {
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// do runs fn on a thread that has entered the namespace, so that the
// sockets fn opens belong to it; they stay there when used from other
// threads. The thread is thrown away afterwards.
func (ns *netns) do(t *testing.T, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		defer func() { errc <- nil }()
		fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// fakeConn is a net.Conn with a remote address and nothing else.
type fakeConn struct {
	net.Conn
	remote *net.TCPAddr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

// checkTable verifies the listener's bookkeeping against its lists.
func checkTable(t *testing.T, l *limitListener) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	sources := map[netip.Prefix]int{}
	total := 0
	walk := func(g *connGroup) {
		n := 0
		var prev *limitConn
		for c := g.head; c != nil; c = c.next {
			if c.prev != prev || c.g != g || c.gone {
				t.Fatalf("group %v: list broken at connection %d", g.key, n)
			}
			sources[c.source]++
			prev = c
			n++
		}
		if prev != g.tail || n != g.open {
			t.Fatalf("group %v: %d connections listed, open says %d", g.key, n, g.open)
		}
		total += n
	}
	for k, g := range l.groups {
		if g.key != k || g.open < 1 || g.open > l.lim.perPrefix {
			t.Fatalf("group %v (key %v) holds %d", g.key, k, g.open)
		}
		walk(g)
	}
	walk(&l.proxies)
	if total != l.open || int64(total) != l.openNow.Load() || total > l.lim.max {
		t.Fatalf("%d connections listed, open %d, openNow %d, max %d", total, l.open, l.openNow.Load(), l.lim.max)
	}
	for k, n := range l.sources {
		if sources[k] != n || n > max(l.lim.perSource, l.lim.perProxy) {
			t.Fatalf("source %v: %d listed, counted %d", k, sources[k], n)
		}
	}
	if len(sources) != len(l.sources) {
		t.Fatalf("%d sources listed, %d counted", len(sources), len(l.sources))
	}
	bucketed := 0
	for n, g := range l.bySize {
		var prev *connGroup
		for ; g != nil; g = g.next {
			if g.open != n || g.prev != prev || l.groups[g.key] != g || n > l.top {
				t.Fatalf("bucket %d (top %d) holds group %v of %d", n, l.top, g.key, g.open)
			}
			prev = g
			bucketed++
		}
	}
	if bucketed != len(l.groups) || l.top > 0 && l.bySize[l.top] == nil {
		t.Fatalf("%d groups bucketed of %d, top %d", bucketed, len(l.groups), l.top)
	}
}

// FuzzConnTable drives the listener's bookkeeping with arbitrary
// sequences of arrivals, state changes and closes, from a few proxies,
// sources and prefixes, and checks after each step that its counts, lists
// and buckets agree, that no cap is passed, and that a connection is
// closed for another only if its prefix held two more.
func FuzzConnTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})                                          // arrivals from many places
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x80, 0xc0, 0x41})                // one source floods, then changes and closes
	f.Add([]byte{0x3f, 0x3f, 0x3f, 0x3f, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 1, 2, 3, 4, 5, 6, 7}) // proxies up to their cap, then direct sources to max_conns
	f.Fuzz(func(t *testing.T, ops []byte) {
		lim := connLimits{max: 12, perSource: 3, perPrefix: 5, perProxy: 6}
		l := newLimitListener(nil, nil, []netip.Prefix{netip.MustParsePrefix("10.9.9.0/24")}, lim, &counters{})
		clock := time.Unix(0, 0)
		l.now = func() time.Time { return clock }
		var conns []*limitConn
		for _, op := range ops {
			clock = clock.Add(100 * time.Millisecond)
			arg := int(op & 0x3f)
			switch op >> 6 {
			case 0: // arrival from one of 64 places
				var ip netip.Addr
				switch {
				case arg >= 60:
					ip = netip.AddrFrom4([4]byte{10, 9, 9, byte(arg)}) // trusted proxies
				case arg >= 40:
					ip = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::%x", arg%3, arg%5, arg))
				default:
					ip = netip.AddrFrom4([4]byte{192, 0, byte(arg % 4), byte(arg)})
				}
				fc := &fakeConn{remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 1))}
				var before map[*connGroup]int
				if l.open >= lim.max {
					before = map[*connGroup]int{}
					for _, g := range l.groups {
						before[g] = g.open
					}
				}
				lc, victim := l.admit(fc)
				if victim != nil {
					if before == nil {
						t.Fatal("a connection was closed for another below max_conns")
					}
					held := 0
					if lc.g != &l.proxies {
						held = before[lc.g]
					}
					if before[victim.g] < held+2 {
						t.Fatalf("closed a connection of a prefix holding %d for one holding %d", before[victim.g], held)
					}
				}
				if lc != nil {
					conns = append(conns, lc)
				}
			case 1, 2: // a state change
				if len(conns) > 0 {
					st := []http.ConnState{http.StateActive, http.StateIdle, http.StateNew}[arg%3]
					l.track(conns[arg%len(conns)], st)
				}
			case 3: // a close, from either side, possibly twice
				if len(conns) > 0 {
					conns[arg%len(conns)].Close()
				}
			}
			checkTable(t, l)
		}
		for _, c := range conns {
			c.Close()
		}
		checkTable(t, l)
		if l.open != 0 || len(l.groups) != 0 || len(l.sources) != 0 || l.top != 0 {
			t.Fatalf("all closed: open %d, %d groups, %d sources, top %d", l.open, len(l.groups), len(l.sources), l.top)
		}
	})
}

// fullTable returns a listener holding max connections, 64 from each of
// 256 /24s, as in the flood of issue 14.
func fullTable(tb testing.TB) (*limitListener, []*limitConn) {
	lim := connLimits{max: 16384, perSource: 64, perPrefix: 1024, perProxy: 8192}
	l := newLimitListener(nil, nil, nil, lim, &counters{})
	var conns []*limitConn
	for i := range lim.max {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 14), byte(i >> 6), 1})
		lc, _ := l.admit(&fakeConn{remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 1))})
		if lc == nil {
			tb.Fatalf("connection %d refused", i)
		}
		conns = append(conns, lc)
	}
	return l, conns
}

// BenchmarkConnTrack is the bookkeeping of one request on a kept-alive
// connection, its two state changes, in a full table.
func BenchmarkConnTrack(b *testing.B) {
	l, conns := fullTable(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := conns[i%len(conns)]
		l.track(c, http.StateActive)
		l.track(c, http.StateIdle)
		i++
	}
}

// BenchmarkConnEvict is a newcomer let into a full table in place of an
// idle connection and closed again, and the victim's source taking its
// slot back: two admissions, one of them with an eviction, and a close.
func BenchmarkConnEvict(b *testing.B) {
	l, _ := fullTable(b)
	newcomer := &fakeConn{remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:1"))}
	b.ReportAllocs()
	for b.Loop() {
		lc, victim := l.admit(newcomer)
		if lc == nil || victim == nil {
			b.Fatal("newcomer refused")
		}
		lc.Close()
		if back, _ := l.admit(victim.Conn); back == nil {
			b.Fatal("victim's source refused")
		}
	}
}

// TestRefusedAtAcceptAllocatesNothing: a connection from a banned source
// is reset before it becomes a net.Conn, so a flood of them costs the
// server no allocation (and no poller registration, no goroutine). The
// client side is made of raw sockets, which allocate nothing either.
func TestRefusedAtAcceptAllocatesNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("acceptRaw is Linux only")
	}
	s, dial := bannedDialer(t)
	const n = 200
	dial() // the first of a kind may set things up
	waitRefused(t, s, 1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		dial()
	}
	waitRefused(t, s, n+1)
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / n; per >= 1 {
		t.Errorf("%.1f allocations per refused connection, want none", per)
	}
}

// bannedDialer runs a server on 127.0.0.1 that has banned 127.36.0.0/24,
// and returns it and a function that connects from 127.36.0.1 with a raw
// socket (refused: reset during or after the connect) and closes.
func bannedDialer(tb testing.TB) (*Server, func()) {
	g, err := limit.NewGuard(limit.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := g.Limiter().Ban(netip.MustParsePrefix("127.36.0.0/24"), time.Hour, time.Now()); err != nil {
		tb.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", newTestTracker(tb), g, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	to := &unix.SockaddrInet4{Port: int(s.Addr().Port()), Addr: s.Addr().Addr().As4()}
	from := &unix.SockaddrInet4{Addr: [4]byte{127, 36, 0, 1}}
	return s, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			tb.Fatal(err)
		}
		unix.Bind(fd, from)
		if err := unix.Connect(fd, to); err != nil && err != unix.ECONNRESET {
			tb.Fatal(err)
		}
		unix.Close(fd)
	}
}

// waitRefused waits up to 5 s for conns_refused to reach want.
func waitRefused(tb testing.TB, s *Server, want uint64) {
	for deadline := time.Now().Add(5 * time.Second); s.Stats().ConnsRefused < want; {
		if time.Now().After(deadline) {
			tb.Fatalf("conns_refused = %d, want %d", s.Stats().ConnsRefused, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkRefuseAtAccept is one connection from a banned source, made
// and refused: the client's connect and close and the server's accept and
// reset, over loopback. Allocations are the whole process's, per refusal.
func BenchmarkRefuseAtAccept(b *testing.B) {
	s, dial := bannedDialer(b)
	b.ReportAllocs()
	n := uint64(0)
	for b.Loop() {
		dial()
		n++
	}
	waitRefused(b, s, n)
}

// TestAcceptAfterClose: closing the listener wakes an Accept waiting for
// a connection, and it says so as net's own Accept does.
func TestAcceptAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ln, nil, nil, connLimits{max: 4, perSource: 4, perPrefix: 4, perProxy: 1}, new(counters))
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still waiting 2 s after Close")
	}
}
