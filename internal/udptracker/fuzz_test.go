package udptracker

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"warden/internal/bep15"
	"warden/internal/bittorrent"
	"warden/internal/ratelog"
)

// FuzzHandle feeds arbitrary datagrams to the codec, from an IPv4 or an
// IPv6 source, and checks that it never panics, never answers an
// unverified source with more bytes than it sent, and that every reply is
// well formed and within its size bound.
//
// The clock is frozen and the cookie key derives from a fixed seed, so the
// connection IDs in the seeds stay valid in every fuzz worker process and
// the fuzzer can reach the announce and scrape code.
func FuzzHandle(f *testing.F) {
	clk := newFakeClock()
	jar := newCookieJar(time.Hour, clk.now, nil, seededRandom(7))
	tr := newTestTracker(f)
	c := newCodec(context.Background(), tr, jar, new(counters), ratelog.New(discardLog(), slog.LevelError, time.Second, clk.now))
	cid4, cid6 := jar.issue(src4.Addr(), jar.now()), jar.issue(src6.Addr(), jar.now())

	f.Add(connectPkt(1), false)                    // connect
	f.Add(connectPkt(1), true)                     // connect over IPv6
	f.Add(append(connectPkt(1), 0, 0, 0), false)   // connect with trailing bytes
	f.Add(connectPkt(1)[:15], false)               // one byte short
	f.Add([]byte{}, false)                         // empty datagram
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), false) // not BEP 15 at all
	badMagic := connectPkt(1)
	badMagic[7] ^= 0x80
	f.Add(badMagic, false)                                                              // connect with the wrong magic
	f.Add(announce{cid: cid4, tid: 2, left: 1}.pkt(), false)                            // plain IPv4 announce
	f.Add(announce{cid: cid6, tid: 2, left: 1}.pkt(), true)                             // plain IPv6 announce
	f.Add(announce{cid: cid4, tid: 2}.pkt(), false)                                     // seeder
	f.Add(announce{cid: cid4, event: 3}.pkt(), false)                                   // stopped
	f.Add(announce{cid: cid4, event: 4}.pkt(), false)                                   // event out of range: error reply
	f.Add(announce{cid: cid4, portSet: true}.pkt(), false)                              // port 0: tracker error
	f.Add(announce{cid: cid4, numWantSet: true, numWant: 1 << 30}.pkt(), false)         // huge numwant
	f.Add(announce{cid: cid4, ip: [4]byte{1, 2, 3, 4}}.pkt(), false)                    // IP field set (ignored)
	f.Add(announce{cid: cid4 ^ 1}.pkt(), false)                                         // forged connection ID
	f.Add(announce{cid: cid4}.pkt(), true)                                              // IPv4's ID from an IPv6 source
	f.Add(announce{cid: cid4}.pkt()[:97], false)                                        // announce one byte short
	f.Add(announce{cid: cid4, options: []byte{2, 3, '/', 'a', '?', 1, 0}}.pkt(), false) // BEP 41 URLData, NOP, End
	f.Add(announce{cid: cid4, options: []byte{2, 255, '/'}}.pkt(), false)               // BEP 41 URLData cut short
	f.Add(announce{cid: cid4, options: []byte{9}}.pkt(), false)                         // BEP 41 unknown type, no length
	f.Add(scrapePkt(cid4, 3, testHash(1)), false)                                       // scrape one
	f.Add(scrapePkt(cid6, 3, testHash(1), testHash(2), testHash(3)), true)              // scrape three over IPv6
	f.Add(scrapePkt(cid4, 3, make([]bittorrent.InfoHash, 65)...), false)                // more than the tracker allows
	f.Add(scrapePkt(cid4, 3), false)                                                    // scrape of nothing
	f.Add(scrapePkt(cid4, 3, testHash(1))[:30], false)                                  // partial hash
	f.Add(withAction(scrapePkt(cid4, 3, testHash(1)), bep15.ActionError), false)        // client sends an error action

	out := make([]byte, 0, c.maxReply())
	runs := 0
	f.Fuzz(func(t *testing.T, pkt []byte, v6 bool) {
		if runs++; runs%10000 == 0 {
			c.tr = newTestTracker(t) // bound the memory random announces fill
		}
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
			if _, f := bep15.CheckConnect(r); f != bep15.NoFault || h.Action != bep15.ActionConnect {
				t.Fatalf("connect reply %x to %x: %v", r, pkt, f)
			}
		case bep15.ActionAnnounce:
			if _, f := bep15.CheckAnnounce(r, v6, int32(c.maxPeers)); !verified || f != bep15.NoFault {
				t.Fatalf("announce reply %x to %x: %v", r, pkt, f)
			}
		case bep15.ActionScrape:
			if f := bep15.CheckScrape(r, (len(pkt)-bep15.HeaderLen)/bep15.HashLen); !verified || f != bep15.NoFault || len(r) > len(pkt) {
				t.Fatalf("scrape reply %x to %x: %v", r, pkt, f)
			}
		case bep15.ActionError:
			if !verified || len(r) > max(len(pkt), errorCap) {
				t.Fatalf("error reply of %d bytes to a %d-byte request", len(r), len(pkt))
			}
		default:
			t.Fatalf("reply with action %d", action)
		}
	})
}

// checkCounted fails unless every datagram received has been counted as
// exactly one outcome.
func checkCounted(t *testing.T, c *counters) {
	var st Stats
	c.addTo(&st)
	outcomes := st.Connects + st.AnnouncesOK + st.AnnouncesFailed + st.ScrapesOK + st.ScrapesFailed +
		st.DroppedBadPacket + st.DroppedBadCookie + st.DroppedUnknownAction +
		st.DroppedBlocked + st.DroppedLimited + st.DroppedConnectLimited + st.DroppedBanned + st.ShedRefusals
	if outcomes != st.Received {
		t.Fatalf("%d datagrams received, %d outcomes counted: %+v", st.Received, outcomes, st)
	}
}
