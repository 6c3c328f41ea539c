package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawServer is a TCP server for the HTTP flood's tests, simple enough to
// see what the flood does on the wire: it reads requests up to their empty
// line and answers each at once with a fixed reply.
type rawServer struct {
	ln                net.Listener
	reply, closeReply []byte
	// closeEach closes the connection after every reply, saying so
	// (opentracker answers HTTP/1.0, warden a banned source with
	// "Connection: close") unless silent; headerTimeout, if set, closes a
	// connection that has not sent a whole header within it.
	closeEach, silent bool
	headerTimeout     time.Duration

	mu         sync.Mutex // guards the fields below
	conns      int
	requests   int
	pipelined  int // requests that found the next one already sent
	closeAsked int // requests with "Connection: close"
	unread     int // connections closed by closeEach with bytes unread
	partial    int // connections that ended inside a header
	idle       int // connections that ended without a byte
	perConn    map[net.Conn]int
	wg         sync.WaitGroup
}

const refusalBody = "d14:failure reason38:torrent not registered on this tracker8:intervali86400ee"

func httpReply(body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func newRawServer(tb testing.TB, closeEach bool, headerTimeout time.Duration) *rawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &rawServer{ln: ln, reply: httpReply(refusalBody), closeEach: closeEach, headerTimeout: headerTimeout,
		closeReply: fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(refusalBody), refusalBody)}
	s.wg.Go(s.accept)
	tb.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/announce" }

func (s *rawServer) accept() {
	var conns sync.WaitGroup
	defer conns.Wait()
	var open []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			mu.Lock()
			for _, c := range open {
				c.Close()
			}
			mu.Unlock()
			return
		}
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		conns.Go(func() { s.serve(c) })
	}
}

func (s *rawServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		if s.headerTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(s.headerTimeout))
		}
		lines, closeAsked := 0, false
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				s.mu.Lock()
				if lines > 0 || len(line) > 0 {
					s.partial++
				} else if s.requestsOn(c) == 0 {
					s.idle++
				}
				s.mu.Unlock()
				return
			}
			lines++
			if bytes.EqualFold(bytes.TrimSpace(line), []byte("Connection: close")) {
				closeAsked = true
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
		s.mu.Lock()
		s.requests++
		s.count(c)
		if closeAsked {
			s.closeAsked++
		}
		if br.Buffered() > 0 {
			s.pipelined++
			if s.closeEach {
				s.unread++
			}
		}
		s.mu.Unlock()
		reply := s.reply
		if s.closeEach && !s.silent {
			reply = s.closeReply
		}
		if _, err := c.Write(reply); err != nil || s.closeEach || closeAsked {
			return
		}
	}
}

// count and requestsOn count requests by connection; s.mu is held.
func (s *rawServer) count(c net.Conn) {
	if s.perConn == nil {
		s.perConn = map[net.Conn]int{}
	}
	s.perConn[c]++
}

func (s *rawServer) requestsOn(c net.Conn) int { return s.perConn[c] }

func (s *rawServer) snapshot() rawServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rawServer{conns: s.conns, requests: s.requests, pipelined: s.pipelined, closeAsked: s.closeAsked,
		unread: s.unread, partial: s.partial, idle: s.idle}
}

// testHTTPFloodConfig is a flood alone, without a warm-up, so that the
// server's counts and the report's can be compared.
func testHTTPFloodConfig(url, mix string, conns int) Config {
	cfg := testFloodConfig("")
	cfg.Protocol, cfg.UDP, cfg.HTTP = HTTP, "", url
	cfg.LegitRate, cfg.LegitSources = 0, netip.Prefix{}
	cfg.FloodRate = 0
	cfg.FloodConns = conns
	cfg.FloodPipeline = 8
	m, err := ParseFloodMix(mix)
	if err != nil {
		panic(err)
	}
	cfg.FloodMix = m
	cfg.Warmup, cfg.Duration, cfg.Timeout = 0, 300*time.Millisecond, 2*time.Second
	return cfg
}

// modeReport returns the report of one mode, failing the test if it is
// missing, after checking that each request it sent is counted once.
func modeReport(t *testing.T, rep Report, mode string) HTTPModeReport {
	t.Helper()
	if rep.Flood == nil || rep.Flood.Flood == nil {
		t.Fatalf("no flood report")
	}
	for _, m := range rep.Flood.Flood.Modes {
		if m.Mode != mode {
			continue
		}
		if m.Sent != m.Replies+m.Unanswered+m.Timeouts {
			t.Errorf("%s: sent %d != replies %d + unanswered %d + timeouts %d", mode, m.Sent, m.Replies, m.Unanswered, m.Timeouts)
		}
		if m.Connects != m.ConnectsOK+m.ConnectFailures+m.ConnectTimeouts {
			t.Errorf("%s: connects %d != made %d + failed %d + timed out %d", mode, m.Connects, m.ConnectsOK, m.ConnectFailures, m.ConnectTimeouts)
		}
		return m
	}
	t.Fatalf("no report for mode %s in %+v", mode, rep.Flood.Flood.Modes)
	return HTTPModeReport{}
}

func TestFloodHTTPPipelineKeepAlive(t *testing.T) {
	s := newRawServer(t, false, 0)
	cfg := testHTTPFloodConfig(s.url(), "pipeline", 4)
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := modeReport(t, rep, "pipeline")
	got := s.snapshot()
	// One connection each, kept; every request the server read was sent
	// and answered, and many were pipelined.
	if got.conns != 4 || m.ConnectsOK != 4 || m.ServerClosed != 0 {
		t.Errorf("server saw %d connections, flood made %d (%d closed by the server); want 4, kept alive", got.conns, m.ConnectsOK, m.ServerClosed)
	}
	if m.Sent == 0 || uint64(got.requests) != m.Sent || m.Replies != m.Sent {
		t.Errorf("flood sent %d, answered %d; server read %d", m.Sent, m.Replies, got.requests)
	}
	if got.pipelined < got.requests/2 {
		t.Errorf("%d of %d requests pipelined, want most", got.pipelined, got.requests)
	}
	fl := rep.Flood.Flood
	if fl.Sent != m.Sent || fl.Replies != m.Replies || fl.Kinds[kindNotRegistered].Count != m.Replies {
		t.Errorf("flood totals %+v, want the pipeline's %d sent, all refused as not registered", fl, m.Sent)
	}
	if m.Latency.P50 <= 0 || m.SentPerSec <= 0 {
		t.Errorf("pipeline latency %+v, sent/s %v", m.Latency, m.SentPerSec)
	}
}

// A server that closes the connection after each reply, as opentracker
// does, gets one request per connection: nothing is written that it would
// not read.
func TestFloodHTTPPipelineClosingServer(t *testing.T) {
	s := newRawServer(t, true, 0)
	cfg := testHTTPFloodConfig(s.url(), "pipeline", 4)
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := modeReport(t, rep, "pipeline")
	got := s.snapshot()
	if got.unread != 0 || got.pipelined != 0 {
		t.Errorf("server closed %d connections with requests unread (%d pipelined), want none", got.unread, got.pipelined)
	}
	if m.Sent == 0 || m.Replies != m.Sent || m.Unanswered != 0 || uint64(got.requests) != m.Sent {
		t.Errorf("sent %d, answered %d, unanswered %d; server read %d", m.Sent, m.Replies, m.Unanswered, got.requests)
	}
	if got.conns != got.requests || m.ConnectsOK != uint64(got.conns) || m.ServerClosed != m.Replies {
		t.Errorf("%d connections for %d requests (flood: %d made, %d closed by the server), want one each", got.conns, got.requests, m.ConnectsOK, m.ServerClosed)
	}
}

// A server that closes after each reply without saying so costs the
// flood a few batches of unread requests, then it stops pipelining.
func TestFloodHTTPPipelineSilentlyClosingServer(t *testing.T) {
	s := newRawServer(t, true, 0)
	s.silent = true
	cfg := testHTTPFloodConfig(s.url(), "pipeline", 4)
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := modeReport(t, rep, "pipeline")
	got := s.snapshot()
	// oneShotAfter connections, and those the other 3 had already sent.
	if got.unread > oneShotAfter*4 || m.Unanswered > uint64((oneShotAfter+3)*cfg.FloodPipeline) {
		t.Errorf("server closed %d connections with requests unread, %d requests unanswered; want at most %d connections' worth\n%+v\n%+v", got.unread, m.Unanswered, oneShotAfter*4, m, rep.Flood.Flood)
	}
	if got.requests < 10*oneShotAfter*4 || got.closeAsked < got.requests-oneShotAfter*4 {
		t.Errorf("server read %d requests, %d asking to close; want many, nearly all asking", got.requests, got.closeAsked)
	}
}

func TestFloodHTTPChurn(t *testing.T) {
	s := newRawServer(t, false, 0)
	cfg := testHTTPFloodConfig(s.url(), "churn", 4)
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := modeReport(t, rep, "churn")
	got := s.snapshot()
	if m.Sent == 0 || got.requests != got.conns || got.closeAsked != got.requests || uint64(got.requests) != m.Sent {
		t.Errorf("server: %d connections, %d requests, %d asking to close; flood sent %d; want a connection and a close per request", got.conns, got.requests, got.closeAsked, m.Sent)
	}
	if m.Replies != m.Sent || m.ConnectsOK != m.Sent {
		t.Errorf("churn %+v, want every request answered on a connection of its own", m)
	}
}

// Idle and partial connections are held until the server closes them,
// and the report says how long it took.
func TestFloodHTTPHoldUntilServerCloses(t *testing.T) {
	const headerTimeout = 100 * time.Millisecond
	s := newRawServer(t, false, headerTimeout)
	cfg := testHTTPFloodConfig(s.url(), "idle,partial", 4)
	cfg.Duration = 700 * time.Millisecond
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := s.snapshot()
	for _, mode := range []string{"idle", "partial"} {
		m := modeReport(t, rep, mode)
		if m.Conns != 2 || m.Sent != 0 {
			t.Errorf("%s: %d connections, %d requests sent; want 2, none", mode, m.Conns, m.Sent)
		}
		// Each connection lasts the timeout: about 7 each in 700 ms. The
		// histogram's quantiles are within 1.6%, and the server's timer
		// may start a little before the client's.
		if m.ServerClosed < 6 || m.Held.P50 < headerTimeout*9/10 || m.Held.P50 > 3*headerTimeout {
			t.Errorf("%s: %d closed by the server, held p50 %v; want more than 6, about %v\n%+v", mode, m.ServerClosed, m.Held.P50, headerTimeout, m)
		}
	}
	if got.requests != 0 || got.partial < 6 || got.idle < 6 {
		t.Errorf("server saw %d requests, %d partial and %d idle connections; want none, more than 6, more than 6", got.requests, got.partial, got.idle)
	}
}

// FloodHold ends held connections the server keeps, and opens others.
func TestFloodHTTPHoldLimit(t *testing.T) {
	s := newRawServer(t, false, 0)
	cfg := testHTTPFloodConfig(s.url(), "idle", 2)
	cfg.Duration, cfg.FloodHold = 500*time.Millisecond, 100*time.Millisecond
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > cfg.Duration+time.Second {
		t.Errorf("Run took %v", d)
	}
	m := modeReport(t, rep, "idle")
	if m.HeldToEnd < 6 || m.ServerClosed != 0 || m.ConnectsOK < 6 {
		t.Errorf("idle %+v; want about 10 connections, each held for 100 ms", m)
	}
}

// A canceled run ends at once, even with connections held for an hour.
func TestFloodHTTPCanceled(t *testing.T) {
	s := newRawServer(t, false, 0)
	cfg := testHTTPFloodConfig(s.url(), "pipeline,idle,partial,churn", 8)
	cfg.Duration, cfg.FloodHold = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second || rep.StoppedBy != "canceled" {
		t.Errorf("canceled run took %v, stopped by %s", d, rep.StoppedBy)
	}
}

// The request budget ends held connections too.
func TestFloodHTTPBudget(t *testing.T) {
	s := newRawServer(t, false, 0)
	cfg := testHTTPFloodConfig(s.url(), "pipeline,idle", 4)
	cfg.Duration, cfg.MaxRequests = time.Hour, 200
	start := time.Now()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second || rep.StoppedBy != "max-requests" {
		t.Errorf("run took %v, stopped by %s", d, rep.StoppedBy)
	}
	if m := modeReport(t, rep, "pipeline"); m.Sent > 200 || m.Replies != m.Sent {
		t.Errorf("pipeline %+v, want at most 200 requests, all answered", m)
	}
}

// Refused connections are counted, and do not spin.
func TestFloodHTTPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := testHTTPFloodConfig("http://"+addr+"/announce", "churn", 2)
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := modeReport(t, rep, "churn")
	// dialBackoff (10 ms) after each: about 30 per connection in 300 ms.
	if m.ConnectFailures == 0 || m.ConnectFailures > 2*uint64(cfg.Duration/dialBackoff)+4 || m.Sent != 0 {
		t.Errorf("churn %+v, want some refused connections, at most one per %v each", m, dialBackoff)
	}
	if msgs := rep.Flood.Flood.IOErrorMsg; len(msgs) == 0 || !strings.Contains(msgs[0].Message, "refused") {
		t.Errorf("socket errors %v, want connection refused", msgs)
	}
}

// A pipelined connection's requests and replies cost no allocation once
// its buffers have grown.
func TestFloodHTTPDoesNotAllocate(t *testing.T) {
	s := newRawServer(t, false, 0)
	c := newTestFloodConn(t, s.url())
	step := func() {
		if !c.send(len(c.ring)) {
			t.Fatal("send failed")
		}
		c.readReplies(true)
		if c.inflight != 0 || c.live == nil {
			t.Fatal("replies not read")
		}
	}
	step()
	if allocs := testing.AllocsPerRun(100, step); allocs != 0 {
		t.Errorf("a pipelined batch allocates %v times, want 0", allocs)
	}
}

// newTestFloodConn returns a pipelined flood connection to url, connected,
// with 8 requests in flight at most.
func newTestFloodConn(tb testing.TB, url string) *floodConn {
	tb.Helper()
	cfg := testHTTPFloodConfig(url, "pipeline", 1)
	rs := newRunState(&cfg, &population{hashes: GenerateHashes(1)})
	rs.base = time.Now()
	t, err := parseHTTPTarget(url, false)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := newFloodHTTP(rs, t, []netip.Addr{netip.MustParseAddr("127.7.0.1")}, newFloodPacer(0))
	if err != nil {
		tb.Fatal(err)
	}
	c := f.conns[0]
	if !c.dial(tb.Context()) {
		tb.Fatal("dial failed")
	}
	tb.Cleanup(c.closeConn)
	c.persistent = true
	return c
}

// BenchmarkFloodHTTPPipeline measures what a pipelined flood connection
// costs the generator: batches of 8 requests and their replies against an
// in-process server on loopback (whose work is in the time too).
func BenchmarkFloodHTTPPipeline(b *testing.B) {
	s := newRawServer(b, false, 0)
	c := newTestFloodConn(b, s.url())
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		if !c.send(len(c.ring)) {
			b.Fatal("send failed")
		}
		c.readReplies(true)
		n += len(c.ring)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "requests/s")
}
