package udptracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/confkey"
	"warden/internal/reqstat"
	"warden/internal/tracker"
)

// startServer listens on addr and runs the server until the test ends.
func startServer(t *testing.T, addr string, cfg Config, o options) (*Server, *tracker.Tracker) {
	t.Helper()
	tr := newTestTracker(t)
	s, err := listen(addr, tr, cfg, discardLog(), o)
	if err != nil {
		if strings.Contains(addr, "::") && (errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)) {
			t.Skipf("no IPv6: %v", err)
		}
		t.Fatalf("Listen(%q) = %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return s, tr
}

// client is a BEP 15 client on a connected UDP socket.
type client struct {
	t    *testing.T
	conn *net.UDPConn
	buf  []byte
}

func dial(t *testing.T, from, to netip.AddrPort) *client {
	t.Helper()
	var laddr *net.UDPAddr
	if from.IsValid() {
		laddr = net.UDPAddrFromAddrPort(from)
	}
	conn, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, buf: make([]byte, 65536)}
}

// roundTrip sends pkt and returns the reply, or nil if none comes within
// wait.
func (c *client) roundTrip(pkt []byte, wait time.Duration) []byte {
	c.t.Helper()
	if _, err := c.conn.Write(pkt); err != nil {
		c.t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := c.conn.Read(c.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		c.t.Fatal(err)
	}
	return append([]byte(nil), c.buf[:n]...)
}

func (c *client) connect() uint64 {
	c.t.Helper()
	r := c.roundTrip(connectPkt(42), 5*time.Second)
	id, f := bep15.CheckConnect(r)
	if _, txid, _ := bep15.ParseReplyHeader(r); f != bep15.NoFault || txid != 42 {
		c.t.Fatalf("connect reply = %x", r)
	}
	return id
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Workers = 2
	cfg.BatchSize = 8
	return cfg
}

func TestServerEndToEnd(t *testing.T) {
	tests := []struct {
		name     string
		addr     string
		portable bool
	}{
		{"ipv4", "127.0.0.1:0", false},
		{"ipv6", "[::1]:0", false},
		{"ipv4 x/net", "127.0.0.1:0", true},
		{"ipv6 x/net", "[::1]:0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := startServer(t, tt.addr, testConfig(), options{portable: tt.portable})
			if s.Addr().Port() == 0 {
				t.Fatalf("Addr() = %v, want the resolved port", s.Addr())
			}
			v6 := s.Addr().Addr().Is6()
			a, b := dial(t, netip.AddrPort{}, s.Addr()), dial(t, netip.AddrPort{}, s.Addr())
			cidA, cidB := a.connect(), b.connect()

			ih := testHash(5)
			ra := decodeAnnounce(t, a.roundTrip(announce{cid: cidA, tid: 1, ih: ih, left: 1, port: 7001, portSet: true}.pkt(), 5*time.Second), v6)
			if len(ra.peers) != 0 || ra.leechers != 1 {
				t.Errorf("first announce: %+v, want no peers and 1 leecher", ra)
			}
			rb := decodeAnnounce(t, b.roundTrip(announce{cid: cidB, tid: 2, ih: ih, port: 7002, portSet: true}.pkt(), 5*time.Second), v6)
			want := netip.AddrPortFrom(s.Addr().Addr(), 7001)
			if len(rb.peers) != 1 || rb.peers[0] != want || rb.seeders != 1 || rb.leechers != 1 {
				t.Errorf("second announce: %+v, want peer %v, 1 seeder, 1 leecher", rb, want)
			}

			r := a.roundTrip(scrapePkt(cidA, 3, ih, testHash(6)), 5*time.Second)
			wantScrape := []byte{0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			if string(r) != string(wantScrape) {
				t.Errorf("scrape reply = %x, want %x", r, wantScrape)
			}

			// Datagrams that get no reply, then one that does: the first
			// reply must be the last one's (one client's datagrams go to
			// one socket, in order).
			for _, pkt := range [][]byte{
				announce{cid: cidB ^ 4, ih: ih}.pkt(), // forged cookie
				[]byte("GET / HTTP/1.1\r\n\r\n"),      // unknown action
				[]byte("short"),                       // bad packet
			} {
				if _, err := a.conn.Write(pkt); err != nil {
					t.Fatal(err)
				}
			}
			r = a.roundTrip(scrapePkt(cidA, 4, ih), 5*time.Second)
			if len(r) < 8 || binary.BigEndian.Uint32(r[4:]) != 4 {
				t.Errorf("got reply %x, want only the reply to transaction 4", r)
			}

			want2 := Stats{Received: 9, Sent: 6, Connects: 2, AnnouncesOK: 2, ScrapesOK: 2,
				DroppedBadCookie: 1, DroppedUnknownAction: 1, DroppedBadPacket: 1}
			// A worker counts a reply just after sending it.
			// Requests (checked in TestRequestOutcomes) splits the same
			// datagrams: here it must sum to Received.
			var st Stats
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if st = s.Stats(); st.withoutRequests() == want2 {
					break
				}
			}
			if st.withoutRequests() != want2 {
				t.Errorf("Stats() = %+v\nwant      %+v", st, want2)
			}
			var n uint64
			for _, o := range st.Requests.ByOutcome() {
				n += o
			}
			if n != st.Received {
				t.Errorf("Stats().Requests counts %d datagrams, Received %d", n, st.Received)
			}
			if n := st.Requests.Latency.Count(); n != st.Received {
				t.Errorf("Stats().Requests.Latency times %d datagrams, Received %d", n, st.Received)
			}
		})
	}
}

// TestServerDualStack checks that a wildcard address serves IPv4 and IPv6
// on one socket, that IPv4 clients arrive v4-mapped and are unmapped, and
// that each family gets its own peers.
func TestServerDualStack(t *testing.T) {
	for _, portable := range []bool{false, true} {
		name := "recvmmsg"
		if portable {
			name = "x/net"
		}
		t.Run(name, func(t *testing.T) {
			s, _ := startServer(t, "[::]:0", testConfig(), options{portable: portable})
			if !s.Addr().Addr().Is6() {
				t.Skipf("not a dual-stack socket: %v", s.Addr())
			}
			port := s.Addr().Port()
			to4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
			to6 := netip.AddrPortFrom(netip.IPv6Loopback(), port)
			a4, b4 := dial(t, netip.AddrPort{}, to4), dial(t, netip.AddrPort{}, to4)
			a6 := dial(t, netip.AddrPort{}, to6)

			ih := testHash(7)
			a4.roundTrip(announce{cid: a4.connect(), ih: ih, left: 1, port: 7004, portSet: true}.pkt(), 5*time.Second)
			a6.roundTrip(announce{cid: a6.connect(), ih: ih, left: 1, port: 7006, portSet: true}.pkt(), 5*time.Second)

			r4 := b4.roundTrip(announce{cid: b4.connect(), ih: ih, left: 1}.pkt(), 5*time.Second)
			got4 := decodeAnnounce(t, r4, false)
			want4 := netip.MustParseAddrPort("127.0.0.1:7004")
			if len(got4.peers) != 1 || got4.peers[0] != want4 {
				t.Errorf("IPv4 client got peers %v, want [%v] as 6-byte entries", got4.peers, want4)
			}
			if got4.leechers != 3 {
				t.Errorf("leechers = %d, want 3 (both families)", got4.leechers)
			}
			b6 := dial(t, netip.AddrPort{}, to6)
			got6 := decodeAnnounce(t, b6.roundTrip(announce{cid: b6.connect(), ih: ih, left: 1}.pkt(), 5*time.Second), true)
			want6 := netip.AddrPortFrom(netip.IPv6Loopback(), 7006)
			if len(got6.peers) != 1 || got6.peers[0] != want6 {
				t.Errorf("IPv6 client got peers %v, want [%v]", got6.peers, want6)
			}
		})
	}
}

func TestListenAddressInUse(t *testing.T) {
	for _, workers := range []int{1, 2} {
		cfg := testConfig()
		cfg.Workers = workers
		s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, discardLog())
		if err != nil {
			t.Fatal(err)
		}
		_, err = Listen(s.Addr().String(), newTestTracker(t), nil, cfg, discardLog())
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("workers=%d: second Listen on %v = %v, want EADDRINUSE", workers, s.Addr(), err)
		}
		s.Close()
	}
}

func TestListenRejectsConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BatchSize = 0
	_, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, discardLog())
	var ce *confkey.Error
	if !errors.As(err, &ce) || ce.Key != "batch_size" {
		t.Errorf("Listen with batch_size 0 = %v, want a confkey.Error for batch_size", err)
	}
}

func TestServerCloseIdempotent(t *testing.T) {
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, testConfig(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	for range 3 {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Errorf("second Run = nil, want an error")
	}
}

// TestServeBatchAllocs checks the whole path (recvmmsg, codec, sendmmsg)
// allocates nothing per datagram.
func TestServeBatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	// Batches of 1 are always full, so each read also reads the queue.
	for _, batchSize := range []int{8, 1} {
		t.Run(fmt.Sprintf("batch %d", batchSize), func(t *testing.T) { testServeBatchAllocs(t, batchSize) })
	}
}

func testServeBatchAllocs(t *testing.T, batchSize int) {
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize = 1, batchSize
	s, err := Listen("127.0.0.1:0", newTestTracker(t), nil, cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.workers[0]
	c := dial(t, netip.AddrPort{}, s.Addr())
	step := func(pkt []byte) {
		if _, err := c.conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if err := w.serveBatch(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.conn.Read(c.buf); err != nil {
			t.Fatal(err)
		}
	}
	step(connectPkt(1))
	cid := s.jarForTest().issue(netip.MustParseAddr("127.0.0.1"), s.jarForTest().now())
	for _, tt := range []struct {
		name string
		pkt  []byte
	}{
		{"connect", connectPkt(1)},
		{"announce", announce{cid: cid, left: 1}.pkt()},
		{"scrape", scrapePkt(cid, 1, testHash(1), testHash(2))},
	} {
		step(tt.pkt)
		if n := testing.AllocsPerRun(100, func() { step(tt.pkt) }); n != 0 {
			t.Errorf("%s: %v allocations per datagram, want 0", tt.name, n)
		}
	}
}

func (s *Server) jarForTest() *cookieJar { return s.workers[0].codec.jar }

// TestDualStackSourceIsMapped looks below the codec: on a dual-stack socket
// an IPv4 source is reported as ::ffff:a.b.c.d, which handle unmaps.
func TestDualStackSourceIsMapped(t *testing.T) {
	for _, portable := range []bool{false, true} {
		cfg := testConfig()
		cfg.Workers = 1
		s, err := listen("[::]:0", newTestTracker(t), cfg, discardLog(), options{portable: portable})
		if err != nil {
			t.Skipf("no dual-stack socket: %v", err)
		}
		defer s.Close()
		c := dial(t, netip.AddrPort{}, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.Addr().Port()))
		if _, err := c.conn.Write(connectPkt(1)); err != nil {
			t.Fatal(err)
		}
		w := s.workers[0]
		if n, err := w.conn.Read(); n != 1 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		src, pkt := w.conn.Source(0), w.conn.Packet(0)
		if !src.Addr().Is4In6() || src.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") || len(pkt) != 16 {
			t.Errorf("portable=%v: datagram 0 from %v, %d bytes; want ::ffff:127.0.0.1, 16 bytes", portable, src, len(pkt))
		}
		if id := s.jarForTest().issue(netip.MustParseAddr("127.0.0.1"), s.jarForTest().now()); !s.jarForTest().valid(src.Addr(), id, s.jarForTest().now()) {
			t.Errorf("portable=%v: an ID issued to 127.0.0.1 is not valid for %v", portable, src.Addr())
		}
	}
}

// withoutRequests returns st with Requests zeroed.
func (st Stats) withoutRequests() Stats {
	st.Requests = reqstat.Table{}
	return st
}
