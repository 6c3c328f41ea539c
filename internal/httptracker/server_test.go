package httptracker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/bencode"
	"warden/internal/ratelog"
)

// startServer listens on 127.0.0.1:0 and runs the server until the test
// ends. It returns the server, the context's cancel and Run's result.
func startServer(t *testing.T, cfg Config) (*Server, context.CancelFunc, <-chan error) {
	t.Helper()
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx)
		close(done) // so that both a test and the cleanup can wait
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s, cancel, done
}

func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestServerKeepAlive(t *testing.T) {
	s, cancel, done := startServer(t, DefaultConfig())
	if !s.Addr().Addr().IsLoopback() || s.Addr().Port() == 0 {
		t.Fatalf("Addr() = %v, want 127.0.0.1 and a chosen port", s.Addr())
	}
	base := "http://" + s.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()

	reused := 0
	for i := range 10 {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
			if ci.Reused {
				reused++
			}
		}}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+announceURL(byte(i), uint16(6881+i), 100, ""), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" || resp.ContentLength != int64(len(body)) {
			t.Fatalf("status %d, Content-Type %q, Content-Length %d for %d bytes", resp.StatusCode,
				resp.Header.Get("Content-Type"), resp.ContentLength, len(body))
		}
		var m map[string]any
		if err := bencode.Unmarshal(body, &m); err != nil {
			t.Fatalf("reply %q: %v", body, err)
		}
		// The source address is the real socket's, 127.0.0.1, with the
		// announced port: every announce is a new leecher.
		if m["incomplete"] != int64(i+1) || len(m["peers"].(string)) != 6*i {
			t.Fatalf("announce %d: %q", i, m)
		}
	}
	if reused != 9 {
		t.Errorf("%d of 9 later requests reused the connection", reused)
	}

	// HEAD: the same headers, no body.
	resp, err := client.Head(base + announceURL(0, 6881, 100, ""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := s.Stats().AnnouncesOK; got != 11 {
		t.Errorf("AnnouncesOK = %d, want 11", got)
	}

	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Errorf("still accepting after Run returned")
	}
}

// TestServerShutdownFinishesInFlight stops the server while a handler is
// running: the request is answered, then Run returns nil.
func TestServerShutdownFinishesInFlight(t *testing.T) {
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	s.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		s.h.ServeHTTP(w, r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr().String() + announceURL(1, 6881, 0, ""))
		if err != nil {
			got <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp, body, err}
	}()
	<-entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.StatusCode != 200 || !strings.HasPrefix(string(r.body), "d8:complete") {
		t.Errorf("in-flight request: %d %q", r.resp.StatusCode, r.body)
	}
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// TestServerShutdownClosesIdle checks that an idle keep-alive connection
// does not hold up the stop.
func TestServerShutdownClosesIdle(t *testing.T) {
	s, cancel, done := startServer(t, DefaultConfig())
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET "+announceURL(1, 6881, 0, "")+" HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("stop took %v with one idle connection", d)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("idle connection still open after Run returned")
	}
}

// TestServerShutdownHalfRequest: a client that never finishes its request
// header does not hold up the stop; its connection is closed.
func TestServerShutdownHalfRequest(t *testing.T) {
	s, cancel, done := startServer(t, DefaultConfig())
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	silent, err := net.Dial("tcp", s.Addr().String()) // sends nothing at all
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	io.WriteString(conn, "GET /announce HTTP/1.1\r\n") // and never the rest
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("stop took %v", d)
	}
	for _, c := range []net.Conn{conn, silent} {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("half-open connection after stop: read = %v, want EOF", err)
		}
	}
}

// TestServerShutdownDeadline: a handler that does not return holds the
// stop up to ShutdownTimeout, no longer, and Run says so.
func TestServerShutdownDeadline(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ShutdownTimeout = 200 * time.Millisecond
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	s.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	go func() {
		if resp, err := http.Get("http://" + s.Addr().String() + "/announce"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	start := time.Now()
	cancel()
	err = waitRun(t, done)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want a shutdown deadline error", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("stop took %v, want about 200ms", d)
	}
}

func TestListenErrors(t *testing.T) {
	tr := newTestTracker(t)
	log := slog.New(slog.DiscardHandler)
	s, err := Listen("127.0.0.1:0", tr, nil, DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Listen(s.Addr().String(), tr, nil, DefaultConfig(), log); err == nil ||
		!strings.Contains(err.Error(), "httptracker: listen "+s.Addr().String()) {
		t.Errorf("second Listen on %v = %v, want an address-in-use error", s.Addr(), err)
	}
	bad := DefaultConfig()
	bad.MaxHeaderBytes = 0
	if _, err := Listen("127.0.0.1:0", tr, nil, bad, log); err == nil || !strings.Contains(err.Error(), "max_header_bytes") {
		t.Errorf("Listen with a bad config = %v", err)
	}
	if _, err := Listen("", tr, nil, Config{}, log); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Listen with no address = %v", err)
	}
}

func TestServerCloseWithoutRun(t *testing.T) {
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Run(context.Background()); err != nil {
		t.Errorf("Run after Close = %v, want nil", err)
	}
	// The port is free again.
	s2, err := Listen(addr, newTestTracker(t), nil, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	s2.Close()
}

func TestServerRunTwice(t *testing.T) {
	s, _, _ := startServer(t, DefaultConfig())
	time.Sleep(10 * time.Millisecond)
	if err := s.Run(context.Background()); err == nil {
		t.Errorf("second Run = nil, want an error")
	}
}

// BenchmarkAnnounceHTTP is the whole path over keep-alive loopback
// connections, net/http's request parsing and response writing included.
// The client is a raw socket that allocates nothing, so B/op and allocs/op
// are the server's. "serial" is one connection, one request at a time
// (latency); "parallel" is one connection per goroutine (throughput).
func BenchmarkAnnounceHTTP(b *testing.B) {
	s, err := Listen("127.0.0.1:0", newTestTracker(b), nil, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// A swarm of 1000, so that each reply carries 50 peers.
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		get(s.Handler(), netip.AddrPortFrom(a, 1).String(), announceURL(byte(i), 6881, i%2, ""))
	}
	var seq atomic.Uint32
	client := func(b *testing.B) (conn net.Conn, roundTrip func()) {
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		n := seq.Add(1)
		req := []byte("GET " + announceURL(byte(n), uint16(10000+n), 100, "&key=1A2B3C4D&compact=1&numwant=50") +
			" HTTP/1.1\r\nHost: bench\r\nUser-Agent: qBittorrent/4.6.5\r\nAccept-Encoding: gzip\r\n\r\n")
		br := bufio.NewReaderSize(conn, 16<<10)
		return conn, func() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readRawResponse(br); err != nil {
				b.Error(err)
			}
		}
	}
	b.Run("serial", func(b *testing.B) {
		conn, rt := client(b)
		defer conn.Close()
		b.ReportAllocs()
		for b.Loop() {
			rt()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			conn, rt := client(b)
			defer conn.Close()
			for pb.Next() {
				rt()
			}
		})
	})
}

// readRawResponse reads one HTTP/1.1 response with a Content-Length and
// checks its status, without allocating.
func readRawResponse(br *bufio.Reader) error {
	clen := -1
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return fmt.Errorf("status line %q", line)
			}
			first = false
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			clen = 0
			for _, c := range bytes.TrimSpace(v) {
				clen = clen*10 + int(c-'0')
			}
		}
	}
	if clen < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(clen)
	return err
}

func TestHTTPErrorLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	l := httpErrorLog{ratelog.New(slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelWarn, time.Hour, nil)}
	for range 3 {
		l.Write([]byte("http: Accept error: too many open files; retrying in 5ms\n"))
	}
	if n := strings.Count(buf.String(), "Accept error"); n != 1 {
		t.Errorf("%d lines for 3 errors, want 1:\n%s", n, buf.String())
	}
}
