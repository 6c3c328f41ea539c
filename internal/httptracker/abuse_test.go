package httptracker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"warden/internal/limit"
)

// abuseServer runs a guarded server with short timeouts on 127.0.0.1:0.
func abuseServer(t *testing.T) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.IdleTimeout = 500*time.Millisecond, time.Second, time.Second
	s, err := Listen("127.0.0.1:0", newTestTracker(t), newGuard(t, limit.DefaultConfig(), ""), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// dialFrom connects from local to s. A connection the server refused
// may be reset before the connect returns: it comes back as a resetConn.
func dialFrom(t *testing.T, s *Server, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", s.Addr().String())
	if errors.Is(err, unix.ECONNRESET) {
		return resetConn{err}
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// resetConn is a connection the server reset while it was being made:
// every read and write returns the reset.
type resetConn struct{ err error }

func (c resetConn) Read([]byte) (int, error)         { return 0, c.err }
func (c resetConn) Write([]byte) (int, error)        { return 0, c.err }
func (c resetConn) Close() error                     { return nil }
func (c resetConn) LocalAddr() net.Addr              { return nil }
func (c resetConn) RemoteAddr() net.Addr             { return nil }
func (c resetConn) SetDeadline(time.Time) error      { return nil }
func (c resetConn) SetReadDeadline(time.Time) error  { return nil }
func (c resetConn) SetWriteDeadline(time.Time) error { return nil }

// legitServed checks that a fresh source gets a tracker reply in time.
func legitServed(t *testing.T, s *Server, local string) time.Duration {
	t.Helper()
	start := time.Now()
	c := dialFrom(t, s, local)
	defer c.Close()
	io.WriteString(c, "GET "+testAnnounce+" HTTP/1.1\r\nHost: t\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("legit request from %s not served: %v", local, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if !strings.Contains(string(body), "8:intervali") {
		t.Fatalf("legit request from %s: %d %q", local, resp.StatusCode, body)
	}
	return time.Since(start)
}

// TestSlowloris: connections that trickle a header are closed at the
// header timeout, and a legitimate peer is served meanwhile.
func TestSlowloris(t *testing.T) {
	s := abuseServer(t)
	var conns []net.Conn
	for range 40 {
		c := dialFrom(t, s, "127.0.0.5")
		io.WriteString(c, "GET /announce?info_hash=")
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	stop := time.After(1500 * time.Millisecond)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
trickle:
	for {
		select {
		case <-stop:
			break trickle
		case <-tick.C:
			for _, c := range conns {
				c.Write([]byte("a"))
			}
		}
	}
	if d := legitServed(t, s, "127.0.0.6"); d > 500*time.Millisecond {
		t.Errorf("legit request took %v during slowloris", d)
	}
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); isTimeout(err) {
			open++
		}
	}
	if open != 0 {
		t.Fatalf("%d of 40 slowloris connections still open 1.5 s after the 500 ms header timeout", open)
	}
}

// TestHugeHeader: a megabyte of header is refused once max_header_bytes
// is passed, without reading the rest.
func TestHugeHeader(t *testing.T) {
	s := abuseServer(t)
	c := dialFrom(t, s, "127.0.0.7")
	defer c.Close()
	go func() {
		io.WriteString(c, "GET "+testAnnounce+" HTTP/1.1\r\nHost: t\r\nX-Junk: ")
		junk := strings.Repeat("x", 64<<10)
		for range 16 { // 1 MiB
			if _, err := io.WriteString(c, junk); err != nil {
				return
			}
		}
		io.WriteString(c, "\r\n\r\n")
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a 1 MiB header: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("1 MiB header: status %d, want 431", resp.StatusCode)
	}
	legitServed(t, s, "127.0.0.8")
}

// TestTenThousandIdleConnections: one source opens 10,000 connections and
// sends nothing. At most max_conns_per_source stay open, the server's
// goroutines stay bounded, and another source is served.
func TestTenThousandIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 sockets")
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 12000 && rl.Max >= 12000 {
		rl.Cur = 12000
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 12000 {
		t.Fatalf("need 12000 file descriptors for this test, have %d (%v)", rl.Cur, err)
	}
	s := abuseServer(t)
	before := runtime.NumGoroutine()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 10_000 {
		conns = append(conns, dialFrom(t, s, "127.0.0.9"))
	}
	time.Sleep(200 * time.Millisecond)
	if g := runtime.NumGoroutine() - before; g > DefaultConfig().MaxConnsPerSource+20 {
		t.Errorf("10,000 idle connections from one source raised goroutines by %d", g)
	}
	if d := legitServed(t, s, "127.0.0.10"); d > 500*time.Millisecond {
		t.Errorf("legit request took %v beside 10,000 idle connections", d)
	}
	open := s.ln.held(netip.MustParsePrefix("127.0.0.9/32"))
	if open > DefaultConfig().MaxConnsPerSource {
		t.Fatalf("%d connections from one source open, cap %d", open, DefaultConfig().MaxConnsPerSource)
	}
	// Idle connections are closed at the header timeout, freeing slots for
	// more of the same; the rest were closed at accept.
	refused := s.Stats().ConnsRefused
	if refused < 9000 {
		t.Fatalf("conns_refused = %d, want most of the 10,000", refused)
	}
	t.Logf("10,000 idle connections: %d refused at accept, goroutines +%d", refused, runtime.NumGoroutine()-before)
}
