package udptracker

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/ratelog"
	"warden/internal/reqstat"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

// revokingRegistry registers nothing and has revoked testHash(1).
type revokingRegistry struct{}

const testRevokeReason = "licence ended"

func (revokingRegistry) Status(ih bittorrent.InfoHash) (bool, bool, string) {
	if ih == testHash(1) {
		return true, true, testRevokeReason
	}
	return false, false, ""
}
func (revokingRegistry) Generation() uint64 { return 1 }

// newRefusingCodec returns a codec over a tracker in allowlist mode that
// refuses every torrent (testHash(1) as revoked), answering refusals as
// reply says.
func newRefusingCodec(tb testing.TB, reply RefusalReply, contact string) *testCodec {
	tb.Helper()
	cfg := tracker.DefaultConfig()
	cfg.AbuseContact = contact
	tr := tracker.New(memswarm.New(swarmtest.Config()), revokingRegistry{}, cfg, discardLog())
	c := newTestCodec(tb, tr)
	if reply == ReplyCalm {
		c.calm = newCalmTable(DefaultConfig().RefusalTableBytes, cfg.RefusalInterval)
	}
	return c
}

// calmed checks that r is the calm answer to a refused announce: an
// announce reply with no peers, zero counts and the refusal interval.
func calmed(tb testing.TB, r []byte, v6 bool) {
	tb.Helper()
	ar := decodeAnnounce(tb, r, v6)
	if len(r) != bep15.AnnounceReplyLen || ar.interval != uint32(tracker.DefaultConfig().RefusalInterval/time.Second) ||
		ar.leechers != 0 || ar.seeders != 0 || len(ar.peers) != 0 {
		tb.Fatalf("calm reply %x = %+v, want 20 bytes, interval %v, no counts, no peers", r, ar, tracker.DefaultConfig().RefusalInterval)
	}
}

// TestCalmRefusals checks who is told and who is calmed: the first
// refusal of a client (address and announced port) for a torrent is an
// error with the reason, its next ones within the refusal interval an
// empty announce reply carrying that interval; any other client, port or
// torrent is told first, and so is the client again once the interval
// has passed.
func TestCalmRefusals(t *testing.T) {
	const notReg = "torrent not registered on this tracker; contact abuse@example.org"
	c := newRefusingCodec(t, ReplyCalm, "abuse@example.org")
	cidA, cidB, cid6 := c.connect(t, src4), c.connect(t, src4b), c.connect(t, src6)
	ann := func(src netip.AddrPort, cid uint64, ih int, port uint16) []byte {
		t.Helper()
		return c.do(src, announce{cid: cid, tid: 9, ih: testHash(ih), port: port, portSet: true}.pkt())
	}
	told := func(r []byte, want string) {
		t.Helper()
		if got := errorText(t, r); got != want {
			t.Fatalf("error text %q, want %q", got, want)
		}
	}
	told(ann(src4, cidA, 2, 6881), notReg)
	calmed(t, ann(src4, cidA, 2, 6881), false)
	calmed(t, ann(src4, cidA, 2, 6881), false)
	told(ann(src4, cidA, 3, 6881), notReg)  // another torrent
	told(ann(src4b, cidB, 2, 6881), notReg) // another address
	told(ann(src4, cidA, 2, 7000), notReg)  // another client behind the same address
	told(ann(src6, cid6, 2, 6881), notReg)  // IPv6
	calmed(t, ann(src6, cid6, 2, 6881), true)
	revoked := "revoked: " + testRevokeReason + "; contact abuse@example.org"
	told(ann(src4, cidA, 1, 6881), revoked)
	calmed(t, ann(src4, cidA, 1, 6881), false)

	// A day later (the refusal interval) the client is told again, once.
	c.clock.advance(tracker.DefaultConfig().RefusalInterval - time.Second)
	cidA = c.connect(t, src4)
	calmed(t, ann(src4, cidA, 2, 6881), false)
	c.clock.advance(time.Second)
	cidA = c.connect(t, src4)
	told(ann(src4, cidA, 2, 6881), notReg)
	calmed(t, ann(src4, cidA, 2, 6881), false)

	want := map[counter]uint64{cAnnouncesFailed: 13, cRefusalsCalmed: 6, cErrorsSent: 7, cAnnouncesOK: 0}
	for k, n := range want {
		if got := c.stat(k); got != n {
			t.Errorf("counter %d = %d, want %d", k, got, n)
		}
	}
	checkCounted(t, c.stats)
}

// TestCalmRefusalsShed: while the worker is behind, refusals get no reply,
// and a client that was not told is not marked told, so that its next
// refusal, once the worker keeps up, tells it.
func TestCalmRefusalsShed(t *testing.T) {
	c := newRefusingCodec(t, ReplyCalm, "")
	cid := c.connect(t, src4)
	pkt := announce{cid: cid, tid: 1, ih: testHash(2)}.pkt()
	c.shed = true
	if r := c.do(src4, pkt); r != nil {
		t.Fatalf("refusal answered while shedding: %x", r)
	}
	c.shed = false
	if got := errorText(t, c.do(src4, pkt)); got != "torrent not registered on this tracker" {
		t.Fatalf("first refusal after shedding: %q, want the error", got)
	}
	calmed(t, c.do(src4, pkt), false)
	if c.stat(cShedRefusals) != 1 || c.stat(cRefusalsCalmed) != 1 {
		t.Fatalf("shed %d, calmed %d; want 1 and 1", c.stat(cShedRefusals), c.stat(cRefusalsCalmed))
	}
}

// TestErrorRefusals: with refusal_reply = "error", every refusal is an
// error, as before calm replies.
func TestErrorRefusals(t *testing.T) {
	c := newRefusingCodec(t, ReplyError, "")
	cid := c.connect(t, src4)
	for i := range 5 {
		r := c.do(src4, announce{cid: cid, tid: uint32(i), ih: testHash(2)}.pkt())
		if got := errorText(t, r); got != "torrent not registered on this tracker" {
			t.Fatalf("refusal %d: %q", i, got)
		}
	}
	if c.stat(cRefusalsCalmed) != 0 {
		t.Fatal("calmed with refusal_reply = error")
	}
}

// TestRefusalTextWhole: a refusal's error carries its whole text, the
// contact included, however short the request; other errors stay within
// max(request, 100 bytes).
func TestRefusalTextWhole(t *testing.T) {
	contact := "https://publisher.example.org/contact/abuse-and-takedown-requests?lang=en"
	c := newRefusingCodec(t, ReplyCalm, contact)
	cid := c.connect(t, src4)
	want := "torrent not registered on this tracker; contact " + contact
	r := c.do(src4, announce{cid: cid, tid: 1, ih: testHash(2)}.pkt())
	if got := errorText(t, r); got != want {
		t.Fatalf("announce refusal text %q, want %q", got, want)
	}
	sr := c.do(src4, scrapePkt(cid, 2, testHash(2)))
	if got := errorText(t, sr); got != want {
		t.Fatalf("scrape refusal text %q (%d-byte reply to a 36-byte scrape), want %q", got, len(sr), want)
	}
	long := strings.Repeat("é", 800) // 1600 bytes: cut to maxRefusalText at a rune boundary
	r = c.fail(nil, 1, &bittorrent.Refusal{Reason: long}, 98, reqstat.Announce, cAnnouncesFailed)
	if len(r) > bep15.ReplyHeaderLen+maxRefusalText || !strings.HasPrefix(long, errorText(t, r)) || len(r) < maxRefusalText {
		t.Fatalf("a %d-byte refusal text became a %d-byte reply", len(long), len(r))
	}
}

// TestCalmTableBounded pours a million distinct clients into a small
// table: its memory stays what it was, the pairs told last are
// remembered, and the one told first was pushed out, so it is told again
// (what every refusal got before calm replies), never refused silence.
func TestCalmTableBounded(t *testing.T) {
	tab := newCalmTable(64<<10, 24*time.Hour)
	size := tab.bytes()
	now := time.Now()
	first := netip.MustParseAddr("192.0.2.1")
	if tab.told(first, 6881, testHash(1), now) {
		t.Fatal("a new client was told already")
	}
	var last [100]netip.Addr
	for i := range 1_000_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tab.told(a, 6881, testHash(1), now)
		last[i%len(last)] = a
	}
	if tab.bytes() != size || len(tab.buckets) != size/calmBucketBytes {
		t.Fatalf("table grew from %d to %d bytes", size, tab.bytes())
	}
	remembered := 0
	for _, a := range last {
		if tab.told(a, 6881, testHash(1), now) {
			remembered++
		}
	}
	// All within one second: the bucket's order, not the stamps, says
	// which is oldest. A newer client evicts one of these only if four
	// newer ones share its bucket, about 1 in 5 million.
	if remembered != len(last) {
		t.Errorf("%d of the last %d clients remembered, want all", remembered, len(last))
	}
	if tab.told(first, 6881, testHash(1), now) {
		t.Error("the first client survived a million newer ones in a table of 8,192")
	}
}

// TestCalmAllocs: refusing, told or calmed, allocates nothing.
func TestCalmAllocs(t *testing.T) {
	c := newRefusingCodec(t, ReplyCalm, "abuse@example.org")
	cid := c.connect(t, src4)
	out := make([]byte, 0, c.maxReply())
	// A client per run, so each is told: the error path.
	pkts := make([][]byte, 1001)
	for i := range pkts {
		pkts[i] = announce{cid: cid, tid: 1, ih: testHash(2), port: uint16(1000 + i), portSet: true}.pkt()
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		c.handle(src4, pkts[i], out)
		i++
	}); n != 0 {
		t.Fatalf("told refusal allocates %v times", n)
	}
	if c.stat(cRefusalsCalmed) != 0 {
		t.Fatal("calmed a new client")
	}
	if n := testing.AllocsPerRun(1000, func() { c.handle(src4, pkts[0], out) }); n != 0 {
		t.Fatalf("calmed announce allocates %v times", n)
	}
	if c.stat(cRefusalsCalmed) == 0 {
		t.Fatal("did not calm a told client")
	}
}

// BenchmarkRefusal is the codec's cost of a refused announce answered
// with an error every time, or calmed.
func BenchmarkRefusal(b *testing.B) {
	for _, reply := range []RefusalReply{ReplyError, ReplyCalm} {
		b.Run(reply.String(), func(b *testing.B) {
			c := newRefusingCodec(b, reply, "abuse@example.org")
			cid := c.connect(b, src4)
			pkt := announce{cid: cid, tid: 1, ih: testHash(2)}.pkt()
			out := make([]byte, 0, c.maxReply())
			b.ReportAllocs()
			for b.Loop() {
				c.handle(src4, pkt, out)
			}
		})
	}
}

// FuzzHandleRefusals is FuzzHandle against a tracker that refuses every
// torrent, with calm replies: no panic, every datagram counted, no reply
// to an unverified source longer than its request, and every answer to a
// verified announce either the refusal's error (whole) or the calm reply.
func FuzzHandleRefusals(f *testing.F) {
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, nil, seededRandom(7))
	cfg := tracker.DefaultConfig()
	cfg.AbuseContact = "abuse@example.org"
	tr := tracker.New(memswarm.New(swarmtest.Config()), revokingRegistry{}, cfg, discardLog())
	c := newCodec(context.Background(), tr, jar, new(counters), ratelog.New(discardLog(), slog.LevelError, time.Second, clk.now))
	c.calm = newCalmTable(64<<10, cfg.RefusalInterval)
	cid4, cid6 := jar.issue(src4.Addr(), jar.now()), jar.issue(src6.Addr(), jar.now())
	texts := map[string]bool{
		"torrent not registered on this tracker; contact abuse@example.org":       true,
		"revoked: " + testRevokeReason + "; contact abuse@example.org":            true,
		string(tracker.ErrInvalidPort):                                            true,
		textBadEvent:                                                              true,
		string(tracker.ErrTooManyHashes)[:min(len(tracker.ErrTooManyHashes), 92)]: true,
	}

	f.Add(announce{cid: cid4, tid: 2, left: 1, ih: testHash(2)}.pkt(), false)            // unregistered
	f.Add(announce{cid: cid4, tid: 3, left: 1, ih: testHash(1)}.pkt(), false)            // revoked
	f.Add(announce{cid: cid6, tid: 2, left: 1, ih: testHash(2)}.pkt(), true)             // unregistered over IPv6
	f.Add(announce{cid: cid4, event: 3, ih: testHash(2)}.pkt(), false)                   // stopped
	f.Add(announce{cid: cid4, portSet: true, ih: testHash(2)}.pkt(), false)              // port 0
	f.Add(announce{cid: cid4, event: 9, ih: testHash(2)}.pkt(), false)                   // bad event
	f.Add(announce{cid: cid4 ^ 1, ih: testHash(2)}.pkt(), false)                         // forged connection ID
	f.Add(scrapePkt(cid4, 3, testHash(2)), false)                                        // scrape refused
	f.Add(scrapePkt(cid4, 3, testHash(1), testHash(2)), false)                           // scrape of two refused
	f.Add(connectPkt(1), false)                                                          // connect
	f.Add(announce{cid: cid4, ih: testHash(2), options: []byte{2, 1, '/'}}.pkt(), false) // with BEP 41 options

	out := make([]byte, 0, c.maxReply())
	f.Fuzz(func(t *testing.T, pkt []byte, v6 bool) {
		src := src4
		if v6 {
			src = src6
		}
		r := c.handle(src, pkt, out[:0])
		checkCounted(t, c.stats)
		if r == nil {
			return
		}
		h, _ := bep15.ParseHeader(pkt)
		verified := len(pkt) >= bep15.HeaderLen && jar.valid(src.Addr(), h.ConnID, jar.now()) &&
			(h.Action == bep15.ActionAnnounce || h.Action == bep15.ActionScrape)
		if !verified && len(r) > len(pkt) {
			t.Fatalf("unverified %d-byte request got a %d-byte reply %x", len(pkt), len(r), r)
		}
		action, txid, ok := bep15.ParseReplyHeader(r)
		if !ok || txid != h.TxID {
			t.Fatalf("reply %x does not echo the transaction ID of %x", r, pkt)
		}
		switch action {
		case bep15.ActionConnect:
		case bep15.ActionAnnounce:
			if !verified || h.Action != bep15.ActionAnnounce {
				t.Fatalf("announce reply %x to %x", r, pkt)
			}
			calmed(t, r, v6)
		case bep15.ActionError:
			if !verified || len(r) > bep15.ReplyHeaderLen+maxRefusalText || !texts[string(r[bep15.ReplyHeaderLen:])] {
				t.Fatalf("error reply %q (%d bytes) to %x", r[bep15.ReplyHeaderLen:], len(r), pkt)
			}
		case bep15.ActionScrape:
			t.Fatalf("scrape reply %x from a tracker that refuses everything", r)
		default:
			t.Fatalf("reply with action %d", action)
		}
	})
}
