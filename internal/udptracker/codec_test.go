package udptracker

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/tracker"
)

func TestHandleConnect(t *testing.T) {
	tests := []struct {
		name string
		src  netip.AddrPort
		pkt  []byte
	}{
		{"ipv4", src4, connectPkt(7)},
		{"ipv6", src6, connectPkt(7)},
		{"v4-mapped", src4mapped, connectPkt(7)},
		{"trailing bytes", src4, append(connectPkt(7), "extra"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCodec(t, newTestTracker(t))
			r := c.do(tt.src, tt.pkt)
			if len(r) != bep15.ConnectReplyLen {
				t.Fatalf("handle(connect) = %x, want 16 bytes", r)
			}
			if len(r) > len(tt.pkt) {
				t.Errorf("reply of %d bytes to an unverified %d-byte request", len(r), len(tt.pkt))
			}
			if got := binary.BigEndian.Uint32(r); got != bep15.ActionConnect {
				t.Errorf("action = %d, want 0", got)
			}
			if got := binary.BigEndian.Uint32(r[4:]); got != 7 {
				t.Errorf("transaction_id = %d, want 7", got)
			}
			if id := binary.BigEndian.Uint64(r[8:]); !c.jar.valid(tt.src.Addr(), id, c.jar.now()) {
				t.Errorf("connection ID %x not valid for %v", id, tt.src)
			}
			if got := c.stat(cConnects); got != 1 {
				t.Errorf("connects = %d, want 1", got)
			}
		})
	}
}

// TestHandleSilence covers every datagram that must get no reply, and the
// counter it lands in.
func TestHandleSilence(t *testing.T) {
	c := newTestCodec(t, newTestTracker(t))
	cid := c.connect(t, src4)
	badMagic := connectPkt(1)
	badMagic[0] ^= 1
	tests := []struct {
		name string
		src  netip.AddrPort
		pkt  []byte
		want counter
	}{
		{"empty", src4, nil, cDroppedBadPacket},
		{"15 bytes", src4, connectPkt(1)[:15], cDroppedBadPacket},
		{"too long", src4, append(connectPkt(1), make([]byte, maxPacket)...), cDroppedBadPacket},
		{"invalid source", netip.AddrPort{}, connectPkt(1), cDroppedBadPacket},
		{"source port 0", netip.AddrPortFrom(src4.Addr(), 0), connectPkt(1), cDroppedBadPacket},
		{"connect bad magic", src4, badMagic, cDroppedBadPacket},
		{"action error", src4, scrapePkt(cid, 1, testHash(1))[:12:12], cDroppedBadPacket},
		{"action 3 from client", src4, withAction(scrapePkt(cid, 1, testHash(1)), bep15.ActionError), cDroppedUnknownAction},
		{"action 4", src4, withAction(scrapePkt(cid, 1, testHash(1)), 4), cDroppedUnknownAction},
		{"action 0xffffffff", src4, withAction(scrapePkt(cid, 1, testHash(1)), 0xffffffff), cDroppedUnknownAction},
		{"announce forged cookie", src4, announce{cid: cid ^ 4}.pkt(), cDroppedBadCookie},
		{"announce cookie of another IP", src4b, announce{cid: cid}.pkt(), cDroppedBadCookie},
		{"announce cookie zero", src4, announce{}.pkt(), cDroppedBadCookie},
		{"announce with magic as cookie", src4, announce{cid: bep15.ProtocolID}.pkt(), cDroppedBadCookie},
		{"scrape forged cookie", src4, scrapePkt(cid+1, 1, testHash(1)), cDroppedBadCookie},
		{"announce 97 bytes", src4, announce{cid: cid}.pkt()[:97], cDroppedBadPacket},
		{"announce header only", src4, announce{cid: cid}.pkt()[:16], cDroppedBadPacket},
		{"scrape no hashes", src4, scrapePkt(cid, 1), cDroppedBadPacket},
		{"scrape partial hash", src4, scrapePkt(cid, 1, testHash(1))[:35], cDroppedBadPacket},
		{"scrape hash and a bit", src4, append(scrapePkt(cid, 1, testHash(1)), 0), cDroppedBadPacket},
		{"scrape over maxPacket", src4, scrapePkt(cid, 1, make([]bittorrent.InfoHash, maxScrapeHashes+1)...), cDroppedBadPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.stat(tt.want)
			if r := c.do(tt.src, tt.pkt); r != nil {
				t.Fatalf("handle(%x) = %x, want no reply", tt.pkt, r)
			}
			if got := c.stat(tt.want); got != before+1 {
				t.Errorf("counter %d = %d, want %d", tt.want, got, before+1)
			}
		})
	}
}

func withAction(pkt []byte, action uint32) []byte {
	binary.BigEndian.PutUint32(pkt[8:], action)
	return pkt
}

func TestHandleCookieExpiry(t *testing.T) {
	c := newTestCodec(t, newTestTracker(t))
	cid := c.connect(t, src4)
	c.clock.advance(cookieWindow + cookieWindow/2 + 1) // past the next window
	if r := c.do(src4, announce{cid: cid}.pkt()); r != nil {
		t.Fatalf("announce with expired connection ID got reply %x", r)
	}
	if got := c.stat(cDroppedBadCookie); got != 1 {
		t.Errorf("dropped_bad_cookie = %d, want 1", got)
	}
}

func TestHandleAnnounce(t *testing.T) {
	ih := testHash(1)
	var (
		peer4  = netip.MustParseAddrPort("192.0.2.1:1000")
		peer6  = netip.MustParseAddrPort("[2001:db8::1]:1000")
		seed4  = netip.MustParseAddrPort("192.0.2.2:2000")
		seed6  = netip.MustParseAddrPort("[2001:db8::2]:2000")
		others = []netip.AddrPort{peer4, peer6, seed4, seed6}
	)
	tests := []struct {
		name      string
		src       netip.AddrPort
		req       announce
		seeder    bool
		wantV6    bool
		wantPeers []netip.AddrPort
		wantSelf  netip.AddrPort // where the announcer is now stored
	}{
		{
			name:      "ipv4 leecher gets ipv4 peers",
			src:       src4,
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 6881),
		},
		{
			name:      "ipv6 leecher gets ipv6 peers, 18 bytes each",
			src:       src6,
			wantV6:    true,
			wantPeers: []netip.AddrPort{peer6, seed6},
			wantSelf:  netip.AddrPortFrom(src6.Addr(), 6881),
		},
		{
			name:      "v4-mapped source is an ipv4 peer",
			src:       src4mapped,
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4mapped.Addr().Unmap(), 6881),
		},
		{
			name:      "ipv4 seeder gets only leechers",
			src:       src4,
			req:       announce{event: uint32(bittorrent.EventCompleted)},
			seeder:    true,
			wantPeers: []netip.AddrPort{peer4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 6881),
		},
		{
			name:      "ip field is ignored",
			src:       src4,
			req:       announce{ip: [4]byte{203, 0, 113, 66}},
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 6881),
		},
		{
			name:      "port comes from the packet",
			src:       src4,
			req:       announce{port: 40000, portSet: true},
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 40000),
		},
		{
			name:     "numwant 0",
			src:      src4,
			req:      announce{numWantSet: true, numWant: 0},
			wantSelf: netip.AddrPortFrom(src4.Addr(), 6881),
		},
		{
			name:      "BEP 41 URLData, NOP, EndOfOptions",
			src:       src4,
			req:       announce{options: append(append([]byte{bep15.OptURLData, 9}, "/announce"...), bep15.OptNOP, bep15.OptEndOfOptions)},
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 6881),
		},
		{
			name:      "BEP 41 truncated URLData",
			src:       src4,
			req:       announce{options: []byte{bep15.OptURLData, 200, 'x'}},
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 6881),
		},
		{
			name:      "BEP 41 lone unknown type",
			src:       src4,
			req:       announce{options: []byte{0xff}},
			wantPeers: []netip.AddrPort{peer4, seed4},
			wantSelf:  netip.AddrPortFrom(src4.Addr(), 6881),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker(t)
			addPeer(t, tr, ih, peer4, false)
			addPeer(t, tr, ih, peer6, false)
			addPeer(t, tr, ih, seed4, true)
			addPeer(t, tr, ih, seed6, true)
			c := newTestCodec(t, tr)
			req := tt.req
			if !tt.seeder {
				req.left = 1
			}
			req.cid = c.connect(t, tt.src)
			req.tid = 99
			pkt := req.pkt()
			r := c.do(tt.src, pkt)
			ar := decodeAnnounce(t, r, tt.wantV6)
			if got := binary.BigEndian.Uint32(r[4:]); got != 99 {
				t.Errorf("transaction_id = %d, want 99", got)
			}
			if ar.interval != 1800 {
				t.Errorf("interval = %d, want 1800", ar.interval)
			}
			wantSeeders, wantLeechers := uint32(2), uint32(3)
			if tt.seeder {
				wantSeeders, wantLeechers = 3, 2
			}
			if ar.seeders != wantSeeders || ar.leechers != wantLeechers {
				t.Errorf("seeders, leechers = %d, %d, want %d, %d", ar.seeders, ar.leechers, wantSeeders, wantLeechers)
			}
			slices.SortFunc(ar.peers, netip.AddrPort.Compare)
			slices.SortFunc(tt.wantPeers, netip.AddrPort.Compare)
			if !slices.Equal(ar.peers, tt.wantPeers) {
				t.Errorf("peers = %v, want %v", ar.peers, tt.wantPeers)
			}
			// Where was the announcer stored? Another peer of its family
			// must be handed its address.
			probe := src4b
			if tt.wantV6 {
				probe = src6b
			}
			pr := decodeAnnounce(t, c.do(probe, announce{cid: c.connect(t, probe), left: 1}.pkt()), tt.wantV6)
			if !slices.Contains(pr.peers, tt.wantSelf) {
				t.Errorf("another peer got %v, want it to include the announcer at %v", pr.peers, tt.wantSelf)
			}
			for _, p := range pr.peers {
				if slices.Contains(others, p) || p == tt.wantSelf {
					continue
				}
				t.Errorf("unexpected peer %v (the ip field must not be used)", p)
			}
			if got := c.stat(cAnnouncesOK); got != 2 {
				t.Errorf("announces_ok = %d, want 2", got)
			}
		})
	}
}

func TestHandleAnnounceNumWant(t *testing.T) {
	ih := testHash(2)
	tr := newTestTracker(t)
	for i := range 300 {
		addPeer(t, tr, ih, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 6881), false)
	}
	tc := tr.Config()
	tests := []struct {
		name    string
		numWant int32
		want    int
	}{
		{"-1 is the default", -1, tc.DefaultNumWant},
		{"other negative is the default", -7, tc.DefaultNumWant},
		{"zero", 0, 0},
		{"five", 5, 5},
		{"large is capped", 1 << 30, tc.MaxNumWant},
		{"max int32 is capped", 1<<31 - 1, tc.MaxNumWant},
	}
	c := newTestCodec(t, tr)
	cid := c.connect(t, src4)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do(src4, announce{cid: cid, ih: ih, left: 1, numWant: tt.numWant, numWantSet: true}.pkt())
			ar := decodeAnnounce(t, r, false)
			if len(ar.peers) != tt.want {
				t.Errorf("numwant %d: got %d peers, want %d", tt.numWant, len(ar.peers), tt.want)
			}
			if len(r) != bep15.AnnounceReplyLen+tt.want*bittorrent.CompactLen4 {
				t.Errorf("reply is %d bytes, want %d", len(r), bep15.AnnounceReplyLen+tt.want*bittorrent.CompactLen4)
			}
		})
	}
}

func TestHandleAnnounceStopped(t *testing.T) {
	ih := testHash(3)
	c := newTestCodec(t, newTestTracker(t))
	cidA, cidB := c.connect(t, src4), c.connect(t, src4b)
	c.do(src4, announce{cid: cidA, ih: ih, left: 1, event: uint32(bittorrent.EventStarted)}.pkt())
	ar := decodeAnnounce(t, c.do(src4b, announce{cid: cidB, ih: ih, left: 1}.pkt()), false)
	if len(ar.peers) != 1 || ar.leechers != 2 {
		t.Fatalf("before stop: peers %v, leechers %d; want 1 peer, 2 leechers", ar.peers, ar.leechers)
	}
	stop := decodeAnnounce(t, c.do(src4, announce{cid: cidA, ih: ih, left: 1, event: uint32(bittorrent.EventStopped)}.pkt()), false)
	if len(stop.peers) != 0 {
		t.Errorf("stopped announce got peers %v, want none", stop.peers)
	}
	ar = decodeAnnounce(t, c.do(src4b, announce{cid: cidB, ih: ih, left: 1}.pkt()), false)
	if len(ar.peers) != 0 || ar.leechers != 1 {
		t.Errorf("after stop: peers %v, leechers %d; want none, 1 leecher", ar.peers, ar.leechers)
	}
}

func TestHandleAnnounceErrors(t *testing.T) {
	c := newTestCodec(t, newTestTracker(t))
	cid := c.connect(t, src4)
	tests := []struct {
		name string
		req  announce
		want string
	}{
		{"port 0", announce{port: 0, portSet: true}, string(tracker.ErrInvalidPort)},
		{"event 4", announce{event: 4}, textBadEvent},
		{"event max", announce{event: 0xffffffff}, textBadEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.cid, req.tid = cid, 5
			pkt := req.pkt()
			r := c.do(src4, pkt)
			if got := errorText(t, r); got != tt.want {
				t.Errorf("error text = %q, want %q", got, tt.want)
			}
			if got := binary.BigEndian.Uint32(r[4:]); got != 5 {
				t.Errorf("transaction_id = %d, want 5", got)
			}
			if len(r) > max(len(pkt), errorCap) {
				t.Errorf("error reply of %d bytes to a %d-byte request", len(r), len(pkt))
			}
		})
	}
	if got := c.stat(cAnnouncesFailed); got != uint64(len(tests)) {
		t.Errorf("announces_failed = %d, want %d", got, len(tests))
	}
	if got := c.stat(cErrorsSent); got != uint64(len(tests)) {
		t.Errorf("errors_sent = %d, want %d", got, len(tests))
	}
}

func TestHandleScrape(t *testing.T) {
	tr := newTestTracker(t)
	addPeer(t, tr, testHash(1), netip.MustParseAddrPort("192.0.2.1:1"), true)
	addPeer(t, tr, testHash(1), netip.MustParseAddrPort("192.0.2.2:1"), false)
	addPeer(t, tr, testHash(1), netip.MustParseAddrPort("[2001:db8::3]:1"), false)
	addPeer(t, tr, testHash(2), netip.MustParseAddrPort("192.0.2.1:1"), true)
	c := newTestCodec(t, tr)
	type entry struct{ seeders, completed, leechers uint32 }
	tests := []struct {
		name   string
		src    netip.AddrPort
		hashes []bittorrent.InfoHash
		want   []entry
	}{
		{"one", src4, []bittorrent.InfoHash{testHash(1)}, []entry{{1, 0, 2}}},
		{"both families counted", src6, []bittorrent.InfoHash{testHash(1)}, []entry{{1, 0, 2}}},
		{"several in order, unknown is zero", src4,
			[]bittorrent.InfoHash{testHash(2), testHash(9), testHash(1)},
			[]entry{{1, 0, 0}, {0, 0, 0}, {1, 0, 2}}},
		{"tracker maximum", src4, make([]bittorrent.InfoHash, tr.Config().MaxScrapeHashes),
			make([]entry, tr.Config().MaxScrapeHashes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := scrapePkt(c.connect(t, tt.src), 77, tt.hashes...)
			r := c.do(tt.src, pkt)
			if len(r) != bep15.ReplyHeaderLen+bep15.ScrapeEntryLen*len(tt.want) {
				t.Fatalf("scrape reply %x: %d bytes, want %d", r, len(r), bep15.ReplyHeaderLen+bep15.ScrapeEntryLen*len(tt.want))
			}
			if len(r) > len(pkt) {
				t.Errorf("scrape reply of %d bytes to a %d-byte request", len(r), len(pkt))
			}
			if a, tid := binary.BigEndian.Uint32(r), binary.BigEndian.Uint32(r[4:]); a != bep15.ActionScrape || tid != 77 {
				t.Errorf("action, transaction_id = %d, %d, want 2, 77", a, tid)
			}
			for i, w := range tt.want {
				e := r[bep15.ReplyHeaderLen+i*bep15.ScrapeEntryLen:]
				got := entry{binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:]), binary.BigEndian.Uint32(e[8:])}
				if got != w {
					t.Errorf("entry %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestHandleScrapeTooMany(t *testing.T) {
	tr := newTestTracker(t)
	c := newTestCodec(t, tr)
	pkt := scrapePkt(c.connect(t, src4), 3, make([]bittorrent.InfoHash, tr.Config().MaxScrapeHashes+1)...)
	r := c.do(src4, pkt)
	if got := errorText(t, r); got != string(tracker.ErrTooManyHashes) {
		t.Errorf("error text = %q, want %q", got, tracker.ErrTooManyHashes)
	}
	if c.stat(cScrapesFailed) != 1 || c.stat(cErrorsSent) != 1 {
		t.Errorf("scrapes_failed, errors_sent = %d, %d, want 1, 1", c.stat(cScrapesFailed), c.stat(cErrorsSent))
	}
}

func TestAppendError(t *testing.T) {
	long := strings.Repeat("x", 300)
	runes := strings.Repeat("é", 100) // 2 bytes each
	tests := []struct {
		name   string
		msg    string
		reqLen int
		want   string
	}{
		{"short kept", "invalid port", 98, "invalid port"},
		{"cut to errorCap", long, 16, long[:errorCap-bep15.ReplyHeaderLen]},
		{"cut to request length", long, 200, long[:200-bep15.ReplyHeaderLen]},
		{"fits request exactly", long[:150], 158, long[:150]},
		{"cut at a rune boundary", "a" + runes, 16, "a" + runes[:90]},
		{"empty", "", 16, ""},
	}
	c := newTestCodec(t, newTestTracker(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.appendError(nil, 0x01020304, tt.msg, max(tt.reqLen, errorCap))
			if got := string(r[bep15.ReplyHeaderLen:]); got != tt.want {
				t.Errorf("appendError(%d-byte msg, %d) text = %q (%d bytes), want %d bytes", len(tt.msg), tt.reqLen, got, len(got), len(tt.want))
			}
			if !utf8.Valid(r[bep15.ReplyHeaderLen:]) {
				t.Errorf("text is not valid UTF-8")
			}
			if len(r) > max(tt.reqLen, errorCap) {
				t.Errorf("reply %d bytes, over max(%d, %d)", len(r), tt.reqLen, errorCap)
			}
			if !bytes.Equal(r[:8], []byte{0, 0, 0, 3, 1, 2, 3, 4}) {
				t.Errorf("header = %x, want action 3 and the transaction ID", r[:8])
			}
		})
	}
}

func TestHandleAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tr := newTestTracker(t)
	for i := range 100 {
		addPeer(t, tr, testHash(1), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 6881), i%2 == 0)
		addPeer(t, tr, testHash(1), netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 15: byte(i)}), 6881), i%2 == 0)
	}
	c := newTestCodec(t, tr)
	out := make([]byte, 0, c.maxReply())
	cid4, cid6 := c.connect(t, src4), c.connect(t, src6)
	tests := []struct {
		name string
		src  netip.AddrPort
		pkt  []byte
	}{
		{"connect", src4, connectPkt(1)},
		{"announce v4", src4, announce{cid: cid4, left: 1}.pkt()},
		{"announce v6", src6, announce{cid: cid6, left: 1}.pkt()},
		{"announce with options", src4, announce{cid: cid4, left: 1, options: []byte{bep15.OptURLData, 1, '/', bep15.OptEndOfOptions}}.pkt()},
		{"announce error", src4, announce{cid: cid4, event: 9}.pkt()},
		{"scrape one", src4, scrapePkt(cid4, 1, testHash(1))},
		{"scrape many", src6, scrapePkt(cid6, 1, make([]bittorrent.InfoHash, 50)...)},
		{"bad cookie", src4, announce{cid: 1}.pkt()},
		{"garbage", src4, []byte("GET / HTTP/1.1\r\n\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.handle(tt.src, tt.pkt, out) // warm up
			if n := testing.AllocsPerRun(100, func() { c.handle(tt.src, tt.pkt, out) }); n != 0 {
				t.Errorf("handle allocates %v times per call, want 0", n)
			}
		})
	}
}

// TestAppendAnnounce checks the encoder alone, with peers the store would
// not return (the other family, more than maxPeers).
func TestAppendAnnounce(t *testing.T) {
	list := func(v6 bool, addrs ...string) bittorrent.CompactPeers {
		p := bittorrent.CompactPeers{V6: v6}
		for _, a := range addrs {
			if !p.Append(netip.MustParseAddrPort(a)) {
				t.Fatalf("%s is not of the list's family", a)
			}
		}
		return p
	}
	four := list(false, "192.0.2.1:1", "[::ffff:192.0.2.3]:3")
	six := list(true, "[2001:db8::1]:2", "[2001:db8::4]:4")
	tests := []struct {
		name     string
		peers    bittorrent.CompactPeers
		v4       bool
		maxPeers int
		want     []netip.AddrPort
	}{
		{"v4, mapped unmapped", four, true, 10, []netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.3:3")}},
		{"v6", six, false, 10, []netip.AddrPort{
			netip.MustParseAddrPort("[2001:db8::1]:2"), netip.MustParseAddrPort("[2001:db8::4]:4")}},
		{"v6 peers to a v4 requester", six, true, 10, nil},
		{"v4 peers to a v6 requester", four, false, 10, nil},
		{"maxPeers", six, false, 1, []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:2")}},
		{"maxPeers 0", four, true, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := bittorrent.AnnounceResponse{Interval: 90 * time.Second, Complete: 7, Incomplete: 9, Peers: tt.peers}
			r := appendAnnounce(nil, 1, &resp, tt.v4, tt.maxPeers)
			ar := decodeAnnounce(t, r, !tt.v4)
			if ar.interval != 90 || ar.seeders != 7 || ar.leechers != 9 {
				t.Errorf("header = %+v, want interval 90, 7 seeders, 9 leechers", ar)
			}
			if !slices.Equal(ar.peers, tt.want) {
				t.Errorf("peers = %v, want %v", ar.peers, tt.want)
			}
		})
	}
}
