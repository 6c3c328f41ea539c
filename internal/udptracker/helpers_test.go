package udptracker

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

// Sources used throughout the tests (documentation prefixes).
var (
	src4       = netip.MustParseAddrPort("198.51.100.7:51413")
	src4b      = netip.MustParseAddrPort("198.51.100.8:51413")
	src4mapped = netip.MustParseAddrPort("[::ffff:198.51.100.9]:51413")
	src6       = netip.MustParseAddrPort("[2001:db8::7]:51413")
	src6b      = netip.MustParseAddrPort("[2001:db8::8]:51413")
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// newFakeClock starts 30 seconds into a cookie window, so that an ID issued
// at the start stays valid for 90 seconds.
func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.now().Add(d)) }

// seededRandom returns a deterministic key source, so that fuzz workers in
// other processes issue the same connection IDs as the seeds.
func seededRandom(seed uint64) func([]byte) {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	var mu sync.Mutex
	return func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = r.Read(b)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestTracker(tb testing.TB) *tracker.Tracker {
	tb.Helper()
	return tracker.New(memswarm.New(swarmtest.Config()), nil, openConfig(), discardLog())
}

type testCodec struct {
	*codec
	clock *fakeClock
	jar   *cookieJar
}

func newTestCodec(tb testing.TB, tr *tracker.Tracker) *testCodec {
	tb.Helper()
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, seededRandom(1))
	c := newCodec(context.Background(), tr, jar, new(counters), newRateLog(discardLog(), slog.LevelError, "tracker error", time.Second))
	return &testCodec{codec: c, clock: clk, jar: jar}
}

func (c *testCodec) stat(k counter) uint64 { return c.stats.c[k].Load() }

// do handles pkt into a fresh buffer of maxReply capacity.
func (c *testCodec) do(src netip.AddrPort, pkt []byte) []byte {
	return c.handle(src, pkt, make([]byte, 0, c.maxReply()))
}

// connect performs a connect from src and returns the connection ID.
func (c *testCodec) connect(tb testing.TB, src netip.AddrPort) uint64 {
	tb.Helper()
	r := c.do(src, connectPkt(0x1234))
	if len(r) != connectReplyLen {
		tb.Fatalf("connect from %v: reply %x, want 16 bytes", src, r)
	}
	return binary.BigEndian.Uint64(r[8:])
}

func connectPkt(tid uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, protocolID)
	b = binary.BigEndian.AppendUint32(b, actionConnect)
	return binary.BigEndian.AppendUint32(b, tid)
}

// announce describes an announce request; the zero value is a started
// leecher on port 6881 of info hash ih(1) that wants the default number of
// peers.
type announce struct {
	cid        uint64
	tid        uint32
	ih         bittorrent.InfoHash
	peerID     byte
	left       uint64
	event      uint32
	ip         [4]byte // the field warden ignores
	numWant    int32
	numWantSet bool
	port       uint16
	portSet    bool
	options    []byte // BEP 41, appended after byte 98
}

func (a announce) pkt() []byte {
	b := binary.BigEndian.AppendUint64(nil, a.cid)
	b = binary.BigEndian.AppendUint32(b, actionAnnounce)
	b = binary.BigEndian.AppendUint32(b, a.tid)
	ih := a.ih
	if ih == (bittorrent.InfoHash{}) {
		ih = testHash(1)
	}
	b = append(b, ih[:]...)
	var id bittorrent.PeerID
	copy(id[:], "-WD0001-")
	id[19] = a.peerID
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, 0) // downloaded
	b = binary.BigEndian.AppendUint64(b, a.left)
	b = binary.BigEndian.AppendUint64(b, 0) // uploaded
	b = binary.BigEndian.AppendUint32(b, a.event)
	b = append(b, a.ip[:]...)
	b = binary.BigEndian.AppendUint32(b, 0xcafe) // key
	nw := int32(-1)
	if a.numWantSet {
		nw = a.numWant
	}
	b = binary.BigEndian.AppendUint32(b, uint32(nw))
	port := uint16(6881)
	if a.portSet {
		port = a.port
	}
	b = binary.BigEndian.AppendUint16(b, port)
	return append(b, a.options...)
}

func scrapePkt(cid uint64, tid uint32, hashes ...bittorrent.InfoHash) []byte {
	b := binary.BigEndian.AppendUint64(nil, cid)
	b = binary.BigEndian.AppendUint32(b, actionScrape)
	b = binary.BigEndian.AppendUint32(b, tid)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

func testHash(n int) bittorrent.InfoHash {
	var h bittorrent.InfoHash
	// Spread like real (SHA) hashes: the store shards by the first bytes.
	binary.BigEndian.PutUint64(h[:], uint64(n+1)*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint32(h[8:], uint32(n))
	h[19] = 0x5a
	return h
}

// announceReply is a decoded announce reply.
type announceReply struct {
	interval, leechers, seeders uint32
	peers                       []netip.AddrPort
}

func decodeAnnounce(tb testing.TB, r []byte, v6 bool) announceReply {
	tb.Helper()
	if len(r) < announceReplyLen || binary.BigEndian.Uint32(r) != actionAnnounce {
		tb.Fatalf("not an announce reply: %x (%q)", r, r)
	}
	ar := announceReply{
		interval: binary.BigEndian.Uint32(r[8:]),
		leechers: binary.BigEndian.Uint32(r[12:]),
		seeders:  binary.BigEndian.Uint32(r[16:]),
	}
	size := peer4Len
	if v6 {
		size = peer6Len
	}
	body := r[announceReplyLen:]
	if len(body)%size != 0 {
		tb.Fatalf("announce reply has %d bytes of peers, not a multiple of %d", len(body), size)
	}
	for ; len(body) > 0; body = body[size:] {
		a, _ := netip.AddrFromSlice(body[:size-2])
		ar.peers = append(ar.peers, netip.AddrPortFrom(a, binary.BigEndian.Uint16(body[size-2:])))
	}
	return ar
}

// errorText returns the message of an error reply, or fails.
func errorText(tb testing.TB, r []byte) string {
	tb.Helper()
	if len(r) < errorReplyLen || binary.BigEndian.Uint32(r) != actionError {
		tb.Fatalf("not an error reply: %x", r)
	}
	return string(r[errorReplyLen:])
}

// addPeer announces a peer straight to the tracker, skipping the codec.
func addPeer(tb testing.TB, tr *tracker.Tracker, ih bittorrent.InfoHash, ap netip.AddrPort, seeder bool) {
	tb.Helper()
	req := bittorrent.AnnounceRequest{InfoHash: ih, Addr: ap, Event: bittorrent.EventStarted, Left: 1, NumWant: 0}
	if seeder {
		req.Left = 0
	}
	var resp bittorrent.AnnounceResponse
	if err := tr.Announce(context.Background(), &req, &resp); err != nil {
		tb.Fatal(err)
	}
}

// openConfig is the default tracker policy in open mode, which needs no
// registry.
func openConfig() tracker.Config {
	cfg := tracker.DefaultConfig()
	cfg.Mode = tracker.ModeOpen
	return cfg
}
