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

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/ratelog"
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
	jar := newCookieJar(time.Hour, clk.now, nil, seededRandom(1))
	c := newCodec(context.Background(), tr, jar, new(counters), ratelog.New(discardLog(), slog.LevelError, time.Second, clk.now))
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
	id, f := bep15.CheckConnect(r)
	if f != bep15.NoFault {
		tb.Fatalf("connect from %v: reply %x: %v", src, r, f)
	}
	return id
}

func connectPkt(tid uint32) []byte { return bep15.AppendConnect(nil, tid) }

// connectReplyLen is bep15.ConnectReplyLen under the name kernelban's
// test still uses.
const connectReplyLen = bep15.ConnectReplyLen

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
	req := bep15.Announce{InfoHash: a.ih, Left: a.left, Event: a.event, IP: a.ip, Key: 0xcafe, NumWant: -1, Port: 6881}
	if a.ih == (bittorrent.InfoHash{}) {
		req.InfoHash = testHash(1)
	}
	copy(req.PeerID[:], "-WD0001-")
	req.PeerID[19] = a.peerID
	if a.numWantSet {
		req.NumWant = a.numWant
	}
	if a.portSet {
		req.Port = a.port
	}
	return append(bep15.AppendAnnounce(nil, a.cid, a.tid, &req), a.options...)
}

func scrapePkt(cid uint64, tid uint32, hashes ...bittorrent.InfoHash) []byte {
	return bep15.AppendScrape(nil, cid, tid, hashes)
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

// decodeAnnounce checks r as a client would, and decodes it.
func decodeAnnounce(tb testing.TB, r []byte, v6 bool) announceReply {
	tb.Helper()
	fixed, f := bep15.CheckAnnounce(r, v6, -1)
	if f != bep15.NoFault {
		tb.Fatalf("announce reply %x (%q): %v", r, r, f)
	}
	ar := announceReply{interval: fixed.Interval, leechers: fixed.Leechers, seeders: fixed.Seeders}
	peers := bittorrent.CompactPeers{Bytes: r[bep15.AnnounceReplyLen:], V6: v6}
	for i := range peers.Len() {
		ar.peers = append(ar.peers, peers.At(i))
	}
	return ar
}

// errorText returns the message of an error reply, or fails.
func errorText(tb testing.TB, r []byte) string {
	tb.Helper()
	if a, _, ok := bep15.ParseReplyHeader(r); !ok || a != bep15.ActionError {
		tb.Fatalf("not an error reply: %x", r)
	}
	return string(r[bep15.ReplyHeaderLen:])
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
