package bep15

import (
	"bytes"
	"math"
	"testing"

	"warden/internal/bittorrent"
)

// FuzzRoundTrip runs each exchange through both sides: the client's
// request encoder, the tracker's parsers, the tracker's reply encoder and
// the client's check. Whatever the fields, the tracker must read what the
// client wrote, and the client must accept what the tracker answered, or
// name the fault the fields put there (an interval that is not positive,
// more peers than asked for).
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(0x1122334455667788), uint32(7), []byte("0123456789abcdefghij"), uint64(1), uint64(2), uint64(3),
		uint32(2), uint32(0xcafe), int32(-1), uint16(6881), false, uint16(5), uint32(1800), "") // a started leecher, five peers
	f.Add(uint64(1), uint32(0), []byte{}, uint64(0), uint64(0), uint64(0),
		uint32(9), uint32(0), int32(3), uint16(0), true, uint16(3), uint32(60), "") // an IPv6 requester; event out of range
	f.Add(uint64(math.MaxUint64), uint32(math.MaxUint32), bytes.Repeat([]byte{0xff}, 60), uint64(math.MaxUint64), uint64(0), uint64(math.MaxUint64),
		uint32(math.MaxUint32), uint32(math.MaxUint32), int32(math.MaxInt32), uint16(math.MaxUint16), false, uint16(0), uint32(math.MaxUint32), "x") // every field at its maximum; three hashes; an interval negative as int32
	f.Add(uint64(5), uint32(5), bytes.Repeat([]byte{1}, 25), uint64(0), uint64(0), uint64(0),
		uint32(0), uint32(0), int32(2), uint16(1), false, uint16(3), uint32(60), "torrent not registered\x00") // more peers than asked for; a NUL-ended message
	f.Fuzz(func(t *testing.T, connID uint64, txid uint32, raw []byte, down, left, up uint64,
		event, key uint32, numWant int32, port uint16, v6 bool, npeers uint16, interval uint32, msg string) {
		// Connect.
		h, ok := ParseHeader(AppendConnect(nil, txid))
		if !ok || h != (Header{ConnID: ProtocolID, Action: ActionConnect, TxID: txid}) {
			t.Fatalf("connect header = %+v, %v", h, ok)
		}
		r := AppendConnectReply(nil, h.TxID, connID)
		if id, fault := CheckConnect(r); fault != NoFault || id != connID || !echoes(r, ActionConnect, txid) {
			t.Fatalf("connect reply %x: %x, %v; want %x", r, id, fault, connID)
		}

		// Announce.
		want := Announce{Downloaded: down, Left: left, Uploaded: up, Event: event, Key: key, NumWant: numWant, Port: port}
		copy(want.InfoHash[:], raw)
		copy(want.PeerID[:], raw[min(len(raw), 20):])
		copy(want.IP[:], raw[min(len(raw), 40):])
		pkt := AppendAnnounce(nil, connID, txid, &want)
		var got Announce
		h, _ = ParseHeader(pkt)
		if opts, ok := ParseAnnounce(pkt, &got); !ok || got != want || len(opts) != 0 ||
			h != (Header{ConnID: connID, Action: ActionAnnounce, TxID: txid}) {
			t.Fatalf("announce %x parsed as %+v %+v, want %+v", pkt, h, got, want)
		}
		peerLen := bittorrent.CompactLen4
		if v6 {
			peerLen = bittorrent.CompactLen6
		}
		peers := make([]byte, int(npeers%400)*peerLen)
		fields := AnnounceReply{Interval: interval, Leechers: key, Seeders: event}
		r = AppendAnnounceReply(nil, h.TxID, fields, peers)
		wantFault := NoFault
		switch {
		case interval == 0 || interval > math.MaxInt32:
			wantFault = FaultInterval
		case got.NumWant >= 0 && len(peers)/peerLen > int(got.NumWant):
			wantFault = FaultPeers
		}
		if ar, fault := CheckAnnounce(r, v6, got.NumWant); fault != wantFault || ar != fields || !echoes(r, ActionAnnounce, txid) ||
			!bytes.Equal(r[AnnounceReplyLen:], peers) {
			t.Fatalf("announce reply %x: %+v, %v; want %+v, %v", r, ar, fault, fields, wantFault)
		}

		// Scrape: the raw bytes as whole info hashes.
		hashes := make([]bittorrent.InfoHash, len(raw)/HashLen)
		for i := range hashes {
			hashes[i] = bittorrent.InfoHash(raw[i*HashLen:])
		}
		pkt = AppendScrape(nil, connID, txid, hashes)
		h, _ = ParseHeader(pkt)
		parsed, ok := ParseScrape(pkt, nil)
		if ok != (len(hashes) > 0) || len(parsed) != len(hashes) || h != (Header{ConnID: connID, Action: ActionScrape, TxID: txid}) {
			t.Fatalf("scrape %x parsed as %+v %x, %v; want %x", pkt, h, parsed, ok, hashes)
		}
		scrapes := make([]bittorrent.Scrape, len(parsed))
		for i := range parsed {
			if parsed[i] != hashes[i] {
				t.Fatalf("scrape hash %d = %x, want %x", i, parsed[i], hashes[i])
			}
			scrapes[i] = bittorrent.Scrape{InfoHash: parsed[i], Complete: key, Incomplete: event, Downloaded: uint32(i)}
		}
		r = AppendScrapeReply(nil, h.TxID, scrapes)
		if fault := CheckScrape(r, len(hashes)); fault != NoFault || !echoes(r, ActionScrape, txid) {
			t.Fatalf("scrape reply %x: %v", r, fault)
		}
		for i, s := range scrapes {
			e := r[ReplyHeaderLen+i*ScrapeEntryLen:]
			if be.Uint32(e) != s.Complete || be.Uint32(e[4:]) != s.Downloaded || be.Uint32(e[8:]) != s.Incomplete {
				t.Fatalf("scrape entry %d = %x, want %+v", i, e[:ScrapeEntryLen], s)
			}
		}

		// Error.
		r = AppendError(nil, txid, msg)
		if got, want := ErrorMessage(r), bytes.TrimRight([]byte(msg), "\x00"); !bytes.Equal(got, want) || !echoes(r, ActionError, txid) {
			t.Fatalf("error reply %x: message %q, want %q", r, got, want)
		}
	})
}

// echoes reports whether reply r has the action and transaction ID.
func echoes(r []byte, action, txid uint32) bool {
	a, tx, ok := ParseReplyHeader(r)
	return ok && a == action && tx == txid
}

// FuzzParse gives the parsers and checks arbitrary bytes: they must not
// panic, and a request they accept must encode back to the same bytes.
func FuzzParse(f *testing.F) {
	var a Announce
	f.Add(AppendConnect(nil, 1))                                                     // connect
	f.Add(append(AppendAnnounce(nil, 1, 2, &a), OptURLData, 1, '/', 0))              // announce with options
	f.Add(AppendScrape(nil, 1, 2, make([]bittorrent.InfoHash, 2)))                   // scrape of two
	f.Add(AppendAnnounceReply(nil, 1, AnnounceReply{Interval: 1}, make([]byte, 18))) // announce reply, one IPv6 peer
	f.Add([]byte{0, 0, 0, 3, 0, 0})                                                  // part of an error reply
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseReplyHeader(b)
		CheckConnect(b)
		CheckAnnounce(b, false, -1)
		CheckAnnounce(b, true, 3)
		CheckScrape(b, len(b)/ScrapeEntryLen)
		ErrorMessage(b)
		h, ok := ParseHeader(b)
		if !ok {
			return
		}
		if got := AppendHeader(nil, h); !bytes.Equal(got, b[:HeaderLen]) {
			t.Fatalf("header %x encodes back as %x", b[:HeaderLen], got)
		}
		var a Announce
		if opts, ok := ParseAnnounce(b, &a); ok {
			ValidOptions(opts)
			if got := append(AppendAnnounce(nil, h.ConnID, h.TxID, &a), opts...); !bytes.Equal(got[HeaderLen:], b[HeaderLen:]) {
				t.Fatalf("announce %x encodes back as %x", b, got)
			}
		}
		if hashes, ok := ParseScrape(b, nil); ok {
			if got := AppendScrape(nil, h.ConnID, h.TxID, hashes); !bytes.Equal(got[HeaderLen:], b[HeaderLen:]) {
				t.Fatalf("scrape %x encodes back as %x", b, got)
			}
		}
	})
}
