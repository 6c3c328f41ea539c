package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"warden/internal/bep15"
)

// The attacks of issue 14 on the HTTP frontend, run against the warden
// binary with its default configuration (allowlist mode, max_conns 16384,
// max_conns_per_source 64), from many loopback addresses: every 127.x.y.z
// is local, so one test can speak from hundreds of /24s.

const (
	floodAddrs        = 258 // 258 × 64 > max_conns
	floodConnsPerAddr = 64  // max_conns_per_source
	// legitDeadline is how soon a legitimate client must be answered
	// during an attack, from its dial to the end of the reply.
	legitDeadline = time.Second
)

// floodAddr is the i-th attacking address: each in a /24 of its own, so
// that no per-prefix cap alone can stop the flood.
func floodAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(100 + i/250), byte(i % 250), 1})
}

// raiseFileLimit raises this process's descriptor limit to at least n or
// fails the test.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < n && rl.Max >= n {
		rl.Cur = n
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < n {
		t.Fatalf("this test needs %d file descriptors, have %d (%v)", n, rl.Cur, err)
	}
}

// announceRequest is a keep-alive HTTP announce for infoHash (hex) from
// peer port port.
func announceRequest(infoHash string, port int) []byte {
	ih, _ := hexBytes(infoHash)
	pid := fmt.Sprintf("-WE0001-%012d", port)
	return []byte("GET /announce?info_hash=" + url.QueryEscape(string(ih)) + "&peer_id=" + url.QueryEscape(pid) +
		"&port=" + strconv.Itoa(port) + "&uploaded=0&downloaded=0&left=0&compact=1 HTTP/1.1\r\nHost: tracker\r\n\r\n")
}

func hexBytes(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

// exchange writes req on c and reads one response, all before deadline,
// and returns its body.
func exchange(c net.Conn, br *bufio.Reader, req []byte, deadline time.Time) ([]byte, error) {
	c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("HTTP %s", resp.Status)
	}
	return body, nil
}

// served announces infoHash from local on a new connection to addr and
// returns how long the whole exchange took, or why it failed. A reply
// without an interval (a failure reason) is a failure.
func served(addr string, local netip.Addr, infoHash string, port int, within time.Duration) (time.Duration, error) {
	start := time.Now()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), Timeout: within}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return time.Since(start), err
	}
	defer c.Close()
	body, err := exchange(c, bufio.NewReader(c), announceRequest(infoHash, port), start.Add(within))
	if err == nil && !bytes.Contains(body, []byte("8:intervali")) {
		err = fmt.Errorf("reply without peers: %q", body)
	}
	return time.Since(start), err
}

// connFlood holds idle keep-alive connections to a tracker: each slot
// dials from its address, announces once, then stays silent until the
// server closes the connection, and dials again 200 ms later, until stop.
type connFlood struct {
	addr, infoHash string
	held           atomic.Int64 // connections answered and still open
	dials          atomic.Int64
	lastHeld       atomic.Int64 // Unix ns when a slot last got a connection held
	done           chan struct{}
	wg             sync.WaitGroup
	mu             sync.Mutex // guards conns
	conns          map[net.Conn]struct{}
}

func startConnFlood(addr, infoHash string, addrs []netip.Addr, perAddr int) *connFlood {
	f := &connFlood{addr: addr, infoHash: infoHash, done: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	for i, a := range addrs {
		// One goroutine per address dials its slots one after another,
		// so that the SYNs do not all arrive at once; then every slot
		// keeps its own connection.
		f.wg.Go(func() {
			var slots sync.WaitGroup
			for j := range perAddr {
				ready := make(chan struct{})
				slots.Go(func() { f.slot(a, 20000+i*perAddr+j, ready) })
				select {
				case <-ready:
				case <-f.done:
				}
			}
			slots.Wait()
		})
	}
	return f
}

func (f *connFlood) slot(local netip.Addr, port int, ready chan struct{}) {
	req := announceRequest(f.infoHash, port)
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), Timeout: 5 * time.Second}
	answered := sync.OnceFunc(func() { close(ready) })
	for {
		select {
		case <-f.done:
			return
		default:
		}
		f.dials.Add(1)
		if c, err := d.Dial("tcp", f.addr); err == nil {
			f.hold(c, req, answered)
		}
		answered()
		select {
		case <-f.done:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// hold announces on c and, if answered, calls answered and keeps c open
// and silent until the server closes it or the flood stops.
func (f *connFlood) hold(c net.Conn, req []byte, answered func()) {
	f.mu.Lock()
	select {
	case <-f.done:
		f.mu.Unlock()
		c.Close()
		return
	default:
	}
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.Close()
	}()
	if _, err := exchange(c, bufio.NewReader(c), req, time.Now().Add(5*time.Second)); err != nil {
		return
	}
	f.held.Add(1)
	f.lastHeld.Store(time.Now().UnixNano())
	defer f.held.Add(-1)
	answered()
	c.SetDeadline(time.Time{})
	c.Read(make([]byte, 1)) // until the server closes it, or stop does
}

// settle waits until no slot has got a connection held for quiet, or for
// at most max.
func (f *connFlood) settle(quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if last := f.lastHeld.Load(); last != 0 && time.Since(time.Unix(0, last)) > quiet {
			return
		}
	}
}

// stop ends the flood and closes every connection it holds.
func (f *connFlood) stop() {
	f.mu.Lock()
	close(f.done)
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// rssKB returns the resident set size of process pid in KiB.
func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmRSS")
}

// httpConnStats is the part of GET /stats about HTTP connections.
type httpConnStats struct {
	HTTP struct {
		ConnsOpen    int64 `json:"conns_open"`
		ConnsRefused int64 `json:"conns_refused"`
		ConnsEvicted int64 `json:"conns_evicted"`
	} `json:"http"`
}

// TestHTTPConnFloodLegitServed is issue 14 item 1: 258 IPv4 addresses,
// each in its own /24 and each holding 64 idle keep-alive connections
// after one announce (far under every rate limit), try to hold every
// connection slot of a default warden. A legitimate client from another
// prefix must be answered within a second, every time, while the flood
// keeps redialling whatever is closed.
func TestHTTPConnFloodLegitServed(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden and opens 16,512 connections; skipped in -short mode")
	}
	raiseFileLimit(t, floodAddrs*floodConnsPerAddr+1000)
	w := startWardenWith(t, wardenOpts{admin: true})
	ih := randomHashes(1)[0]
	w.register(t, ih, "flooded")
	pid := w.cmd.Process.Pid
	rssBefore, err := rssKB(pid)
	if err != nil {
		t.Fatal(err)
	}

	addrs := make([]netip.Addr, floodAddrs)
	for i := range addrs {
		addrs[i] = floodAddr(i)
	}
	start := time.Now()
	f := startConnFlood(w.httpAddr, ih, addrs, floodConnsPerAddr)
	defer f.stop()
	f.settle(2*time.Second, 60*time.Second)
	held := f.held.Load()
	rss, _ := rssKB(pid)
	var st httpConnStats
	if err := w.adminJSON(http.MethodGet, "/stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("flood settled after %v: %d of %d connections held (%d dials), server reports %d open; warden RSS %d -> %d KiB (%.1f KiB per held connection)",
		time.Since(start).Round(time.Millisecond), held, floodAddrs*floodConnsPerAddr, f.dials.Load(), st.HTTP.ConnsOpen,
		rssBefore, rss, float64(rss-rssBefore)/float64(max(held, 1)))

	// A legitimate client from a prefix of its own, again and again while
	// the flood holds on and redials.
	legit := netip.MustParseAddr("127.250.7.1")
	var took []time.Duration
	var failures []string
	for i := range 30 {
		d, err := served(w.httpAddr, legit, ih, 7000+i, legitDeadline)
		took = append(took, d)
		if err != nil || d > legitDeadline {
			failures = append(failures, fmt.Sprintf("probe %d after %v: %v", i, d.Round(time.Millisecond), err))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := w.adminJSON(http.MethodGet, "/stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	slices.Sort(took)
	t.Logf("legitimate client during the flood: median %v, 90th percentile %v, worst %v; flood still holds %d; server: %d open, %d refused, %d evicted",
		took[len(took)/2].Round(time.Microsecond), took[len(took)*9/10].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond), f.held.Load(),
		st.HTTP.ConnsOpen, st.HTTP.ConnsRefused, st.HTTP.ConnsEvicted)
	if len(failures) > 0 {
		t.Fatalf("%d of 30 legitimate announces not served within %v during the flood:\n%s",
			len(failures), legitDeadline, strings.Join(failures, "\n"))
	}
}

// TestHTTPBannedSourceRefusedAtAccept is issue 14 item 1's second half,
// and issue 10's kernel filter: a banned address, and an address inside a
// banned prefix, get no connection at all. By default (http.kernel_bans)
// the kernel drops their connection attempts, so a dial gets no answer;
// with it off warden resets each connection as it accepts it, where they
// used to hold max_conns_per_source idle connections each.
func TestHTTPBannedSourceRefusedAtAccept(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden; skipped in -short mode")
	}
	for _, tc := range []struct {
		name   string
		config string
		inSYN  bool // dropped before the handshake
	}{
		{"kernel filter", "", true},
		{"at accept", "[http]\nkernel_bans = false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startWardenWith(t, wardenOpts{admin: true, config: tc.config})
			ih := randomHashes(1)[0]
			w.register(t, ih, "bans")
			for _, p := range []string{"127.0.77.1/32", "127.0.78.0/24"} {
				if err := w.adminJSON(http.MethodPost, "/api/guard/ban", map[string]string{"prefix": p, "duration": "1h"}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if tc.inSYN {
				var st struct {
					Guard struct {
						InFilter int `json:"kernel_filter_prefixes"`
					} `json:"guard"`
				}
				for deadline := time.Now().Add(3 * time.Second); st.Guard.InFilter < 2; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("the bans did not reach the kernel filter within 3 s: %+v", st)
					}
					if err := w.adminJSON(http.MethodGet, "/stats", nil, &st); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, src := range []string{"127.0.77.1", "127.0.78.9"} {
				local := netip.MustParseAddr(src)
				var open []net.Conn
				dials := floodConnsPerAddr
				if tc.inSYN {
					dials = 4 // each waits out its timeout
				}
				for range dials {
					d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), Timeout: time.Second}
					if tc.inSYN {
						d.Timeout = 300 * time.Millisecond
					}
					c, err := d.Dial("tcp", w.httpAddr)
					var ne net.Error
					if tc.inSYN && (err == nil || !errors.As(err, &ne) || !ne.Timeout()) {
						t.Errorf("banned source %s: dial %v, want no answer (dropped in the kernel)", src, err)
					}
					if err != nil {
						continue // refused before the handshake completed: fine
					}
					defer c.Close()
					open = append(open, c)
				}
				// A connection the server closed at accept reads EOF or a reset
				// at once; one it holds times out.
				// All are read at once: the header timeout (5 s) would close
				// them anyway.
				var held atomic.Int64
				var wg sync.WaitGroup
				for _, c := range open {
					wg.Go(func() {
						c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
						var ne net.Error
						if _, err := c.Read(make([]byte, 1)); errors.As(err, &ne) && ne.Timeout() {
							held.Add(1)
						}
					})
				}
				wg.Wait()
				if n := held.Load(); n > 0 {
					t.Errorf("banned source %s holds %d of %d idle connections, want 0", src, n, len(open))
				}
			}
			if d, err := served(w.httpAddr, netip.MustParseAddr("127.0.79.1"), ih, 6881, legitDeadline); err != nil {
				t.Fatalf("unbanned neighbour not served (%v): %v", d, err)
			}
		})
	}
}

// nginxLikeProxy is a reverse proxy to target that behaves like the common
// nginx setup `proxy_set_header X-Real-IP $remote_addr;`: it sets
// X-Real-IP to the client's address and passes the client's own
// X-Forwarded-For through untouched. It connects to target from local.
func nginxLikeProxy(t *testing.T, target, local string) string {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			host, _, _ := net.SplitHostPort(pr.In.RemoteAddr)
			pr.Out.Header.Set("X-Real-IP", host)
		},
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// clientFrom is an HTTP client whose connections come from local.
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// getBody sends GET url with the header pairs from c and returns the body.
func getBody(c *http.Client, url string, hdr ...string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// udpConnectAnswered reports whether warden's UDP tracker at addr answers
// a BEP 15 connect from local within a second: the kernel filter drops
// banned sources' datagrams before warden sees them.
func udpConnectAnswered(local, addr string) (bool, error) {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return false, err
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, ra)
	if err != nil {
		return false, err
	}
	defer c.Close()
	for tx := range uint32(3) {
		if _, err := c.Write(bep15.AppendConnect(nil, 0x5eed0000+tx)); err != nil {
			return false, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second / 3))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err == nil {
			if _, f := bep15.CheckConnect(buf[:n]); f == bep15.NoFault {
				return true, nil
			}
		}
	}
	return false, nil
}

// TestHTTPProxyHeaderSpoof is issue 14 item 3: behind a trusted proxy that
// sets only X-Real-IP, a client writes its own X-Forwarded-For. It must
// neither place the address it wrote in a swarm nor get it banned (over
// HTTP, or over UDP through the kernel filter) by flooding in its name:
// what counts is the address the proxy vouched for.
func TestHTTPProxyHeaderSpoof(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden; skipped in -short mode")
	}
	const proxyLocal, attacker, victim, observer = "127.0.0.50", "127.0.0.60", "127.0.0.70", "127.0.0.80"
	w := startWardenWith(t, wardenOpts{admin: true, config: `
[http]
trusted_proxies = ["127.0.0.50"]
client_ip_header = "X-Real-IP"

[limit]
rate_per_sec = 5
burst = 10
ban_after = 50
ban_window = "10s"
`})
	ih := randomHashes(1)[0]
	w.register(t, ih, "proxied")
	ihb, _ := hexBytes(ih)
	announce := func(base string, port int, extra string) string {
		return base + "/announce?info_hash=" + url.QueryEscape(string(ihb)) + "&peer_id=-WE0001-" +
			fmt.Sprintf("%012d", port) + "&port=" + strconv.Itoa(port) + "&left=100" + extra
	}
	proxy := nginxLikeProxy(t, w.httpAddr, proxyLocal)
	atk := clientFrom(attacker)

	// Placement: the address the client wrote is not put in the swarm;
	// the one the proxy saw is.
	if body, err := getBody(atk, announce(proxy, 6001, ""), "X-Forwarded-For", "203.0.113.9"); err != nil || !strings.Contains(body, "8:interval") {
		t.Fatalf("announce through the proxy: %q, %v", body, err)
	}
	body, err := getBody(clientFrom(observer), announce("http://"+w.httpAddr, 6002, "&compact=0"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, "203.0.113.9") || !strings.Contains(body, "2:ip10:"+attacker) {
		t.Fatalf("swarm seen by a peer: %q; want %s (the proxy's word), not 203.0.113.9 (the client's)", body, attacker)
	}

	// Ban: flood through the proxy in the victim's name until banned.
	banned := false
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 2000 && !banned && time.Now().Before(deadline); i++ {
		body, err := getBody(atk, announce(proxy, 6001, ""), "X-Forwarded-For", victim)
		if err != nil {
			t.Fatal(err)
		}
		banned = strings.Contains(body, "banned")
	}
	if !banned {
		t.Fatal("flood through the proxy was never banned")
	}
	time.Sleep(time.Second) // the kernel filter is refreshed four times a second
	var bans struct {
		Bans []struct {
			Prefix string `json:"prefix"`
		} `json:"bans"`
	}
	if err := w.adminJSON(http.MethodGet, "/api/guard/bans", nil, &bans); err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, b := range bans.Bans {
		list = append(list, b.Prefix)
	}
	if slices.Contains(list, victim+"/32") || !slices.Contains(list, attacker+"/32") {
		t.Fatalf("bans %v: want %s (who flooded) and not %s (whom the header named)", list, attacker, victim)
	}
	if ok, err := udpConnectAnswered(attacker, w.udpAddr); err != nil || ok {
		t.Fatalf("UDP from the banned flooder answered (%v): the kernel filter check proves nothing", err)
	}
	if ok, err := udpConnectAnswered(victim, w.udpAddr); err != nil || !ok {
		t.Fatalf("UDP from %s, named in the flood's header, not answered (%v)", victim, err)
	}
	if d, err := served(w.httpAddr, netip.MustParseAddr(victim), ih, 6003, legitDeadline); err != nil {
		t.Fatalf("HTTP from %s, named in the flood's header, not served (%v): %v", victim, d, err)
	}
}
