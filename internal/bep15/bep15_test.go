package bep15

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"warden/internal/bittorrent"
)

// unhex decodes a hex string written with spaces between the fields.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func testAnnounce() Announce {
	a := Announce{
		Downloaded: 1, Left: 2, Uploaded: 3, Event: uint32(bittorrent.EventStarted),
		IP: [4]byte{192, 0, 2, 1}, Key: 0xaabbccdd, NumWant: -1, Port: 6881,
	}
	copy(a.InfoHash[:], bytes.Repeat([]byte{0x11}, 20))
	copy(a.PeerID[:], "-WL0001-000000000042")
	return a
}

// The encoders against the layout of BEP 15, written out field by field.
func TestEncoders(t *testing.T) {
	a := testAnnounce()
	ih2 := bittorrent.InfoHash(bytes.Repeat([]byte{0x22}, 20))
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"connect", AppendConnect(nil, 0x01020304), "0000041727101980 00000000 01020304"},
		{"announce", AppendAnnounce(nil, 0x0102030405060708, 9, &a),
			"0102030405060708 00000001 00000009" + " " + strings.Repeat("11", 20) + " " + hex.EncodeToString([]byte("-WL0001-000000000042")) +
				" 0000000000000001 0000000000000002 0000000000000003 00000002 c0000201 aabbccdd ffffffff 1ae1"},
		{"scrape", AppendScrape(nil, 7, 8, []bittorrent.InfoHash{a.InfoHash, ih2}),
			"0000000000000007 00000002 00000008 " + strings.Repeat("11", 20) + strings.Repeat("22", 20)},
		{"scrape of nothing", AppendScrape(nil, 7, 8, nil), "0000000000000007 00000002 00000008"},
		{"connect reply", AppendConnectReply(nil, 5, 0x1122334455667788), "00000000 00000005 1122334455667788"},
		{"announce reply", AppendAnnounceReply(nil, 5, AnnounceReply{Interval: 1800, Leechers: 3, Seeders: 4}, []byte{10, 0, 0, 1, 0x1a, 0xe1}),
			"00000001 00000005 00000708 00000003 00000004 0a000001 1ae1"},
		{"scrape reply", AppendScrapeReply(nil, 5, []bittorrent.Scrape{{Complete: 1, Downloaded: 2, Incomplete: 3}, {Complete: 4}}),
			"00000002 00000005 00000001 00000002 00000003 00000004 00000000 00000000"},
		{"error", AppendError(nil, 5, "no"), "00000003 00000005 6e6f"},
	}
	for _, tt := range tests {
		if want := unhex(t, tt.want); !bytes.Equal(tt.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", tt.name, tt.got, want)
		}
	}
	if n := len(AppendAnnounce(nil, 0, 0, &a)); n != AnnounceLen {
		t.Errorf("announce is %d bytes, want AnnounceLen = %d", n, AnnounceLen)
	}
	// Append-style: what b held stays.
	if got := AppendConnect([]byte("x"), 1); got[0] != 'x' || len(got) != 1+HeaderLen {
		t.Errorf("AppendConnect(\"x\") = %q, want x and the request", got)
	}
}

func TestParseHeader(t *testing.T) {
	h, ok := ParseHeader(unhex(t, "0000041727101980 00000000 01020304 ff"))
	if want := (Header{ConnID: ProtocolID, Action: ActionConnect, TxID: 0x01020304}); !ok || h != want {
		t.Errorf("ParseHeader = %+v, %v; want %+v, true", h, ok, want)
	}
	if _, ok := ParseHeader(make([]byte, HeaderLen-1)); ok {
		t.Errorf("ParseHeader(15 bytes) ok, want not")
	}
}

func TestParseAnnounce(t *testing.T) {
	want := testAnnounce()
	pkt := AppendAnnounce(nil, 1, 2, &want)
	var got Announce
	opts, ok := ParseAnnounce(append(pkt, OptNOP), &got)
	if !ok || got != want || !bytes.Equal(opts, []byte{OptNOP}) {
		t.Errorf("ParseAnnounce = %+v, %x, %v\nwant %+v, 01, true", got, opts, ok, want)
	}
	got = Announce{Port: 9}
	if _, ok := ParseAnnounce(pkt[:AnnounceLen-1], &got); ok || got.Port != 9 {
		t.Errorf("ParseAnnounce(97 bytes) = %+v, %v; want a untouched, false", got, ok)
	}
}

func TestParseScrape(t *testing.T) {
	h1, h2 := bittorrent.InfoHash{1}, bittorrent.InfoHash{2}
	pkt := AppendScrape(nil, 1, 2, []bittorrent.InfoHash{h1, h2})
	tests := []struct {
		name string
		pkt  []byte
		want []bittorrent.InfoHash
		ok   bool
	}{
		{"two", pkt, []bittorrent.InfoHash{h1, h2}, true},
		{"one", pkt[:HeaderLen+HashLen], []bittorrent.InfoHash{h1}, true},
		{"none", pkt[:HeaderLen], nil, false},
		{"a hash and a bit", pkt[:HeaderLen+HashLen+1], nil, false},
		{"part of a header", pkt[:3], nil, false},
	}
	for _, tt := range tests {
		keep := []bittorrent.InfoHash{{0xff}}
		got, ok := ParseScrape(tt.pkt, keep)
		if ok != tt.ok || got[0] != keep[0] || len(got) != 1+len(tt.want) {
			t.Errorf("%s: ParseScrape = %v, %v; want the first kept, %v, %v", tt.name, got, ok, tt.want, tt.ok)
			continue
		}
		for i, h := range tt.want {
			if got[1+i] != h {
				t.Errorf("%s: hash %d = %x, want %x", tt.name, i, got[1+i], h)
			}
		}
	}
}

func TestValidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []byte
		want bool
	}{
		{"none", nil, true},
		{"end", []byte{OptEndOfOptions}, true},
		{"end then garbage", []byte{OptEndOfOptions, 0xff, 0xff}, true},
		{"nops", []byte{OptNOP, OptNOP}, true},
		{"urldata", append([]byte{OptURLData, 3}, "/an"...), true},
		{"urldata empty", []byte{OptURLData, 0}, true},
		{"two urldata", append(append([]byte{OptURLData, 2}, "/a"...), OptURLData, 1, '?'), true},
		{"unknown with length", []byte{0x7f, 1, 0, OptEndOfOptions}, true},
		{"urldata missing length", []byte{OptURLData}, false},
		{"urldata short", []byte{OptURLData, 5, 'a'}, false},
		{"unknown short", []byte{0x80, 255}, false},
	}
	for _, tt := range tests {
		if got := ValidOptions(tt.opts); got != tt.want {
			t.Errorf("%s: ValidOptions(%x) = %v, want %v", tt.name, tt.opts, got, tt.want)
		}
	}
}

func TestParseReplyHeader(t *testing.T) {
	if a, tx, ok := ParseReplyHeader(unhex(t, "00000003 00000009")); !ok || a != ActionError || tx != 9 {
		t.Errorf("ParseReplyHeader = %d, %d, %v; want 3, 9, true", a, tx, ok)
	}
	if _, _, ok := ParseReplyHeader(make([]byte, 7)); ok {
		t.Errorf("ParseReplyHeader(7 bytes) ok, want not")
	}
}

func TestCheckAnnounce(t *testing.T) {
	reply := func(interval uint32, peerBytes int) []byte {
		return AppendAnnounceReply(nil, 5, AnnounceReply{Interval: interval, Leechers: 1, Seeders: 2}, make([]byte, peerBytes))
	}
	tests := []struct {
		name    string
		b       []byte
		v6      bool
		numWant int32
		want    Fault
	}{
		{"no peers", reply(1800, 0), false, 50, NoFault},
		{"two v4 peers", reply(1800, 12), false, 50, NoFault},
		{"one v6 peer", reply(1800, 18), true, 50, NoFault},
		{"18 bytes are 3 v4 peers", reply(1800, 18), false, 50, NoFault},
		{"partial peer", reply(1800, 7), false, 50, FaultLength},
		{"v4 peer on v6", reply(1800, 6), true, 50, FaultLength},
		{"header only (opentracker's refusal)", reply(1800, 0)[:ReplyHeaderLen], false, 50, FaultShort},
		{"not even a header", []byte{0, 0, 0, 1}, false, 50, FaultShort},
		{"zero interval", reply(0, 0), false, 50, FaultInterval},
		{"negative interval", reply(0x80000000, 0), false, 50, FaultInterval},
		{"too many peers", reply(1800, 18), false, 2, FaultPeers},
		{"numwant 0", reply(1800, 6), false, 0, FaultPeers},
		{"numwant default", reply(1800, 600), false, -1, NoFault},
		{"scrape action", AppendScrapeReply(nil, 5, make([]bittorrent.Scrape, 1)), false, 50, FaultAction},
		{"error reply", AppendError(nil, 5, "no"), false, 50, FaultAction},
	}
	for _, tt := range tests {
		r, f := CheckAnnounce(tt.b, tt.v6, tt.numWant)
		if f != tt.want {
			t.Errorf("%s: CheckAnnounce = %v, want %v", tt.name, f, tt.want)
		}
		if f == NoFault && r != (AnnounceReply{Interval: 1800, Leechers: 1, Seeders: 2}) {
			t.Errorf("%s: CheckAnnounce = %+v, want interval 1800, 1 leecher, 2 seeders", tt.name, r)
		}
	}
}

func TestCheckConnectAndScrape(t *testing.T) {
	if id, f := CheckConnect(AppendConnectReply(nil, 1, 0x0102030405060708)); f != NoFault || id != 0x0102030405060708 {
		t.Errorf("CheckConnect = %x, %v; want 0102030405060708, no fault", id, f)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want Fault
	}{
		{"short", AppendConnectReply(nil, 1, 2)[:11], FaultLength},
		{"long", append(AppendConnectReply(nil, 1, 2), 0), FaultLength},
		{"tiny", []byte{0, 0, 0}, FaultShort},
		{"error", AppendError(nil, 1, "12345678"), FaultAction},
	} {
		if _, f := CheckConnect(tt.b); f != tt.want {
			t.Errorf("CheckConnect(%s) = %v, want %v", tt.name, f, tt.want)
		}
	}
	two := AppendScrapeReply(nil, 1, make([]bittorrent.Scrape, 2))
	for _, tt := range []struct {
		name   string
		b      []byte
		hashes int
		want   Fault
	}{
		{"two of two", two, 2, NoFault},
		{"two of three", two, 3, FaultLength},
		{"one of two", two[:ReplyHeaderLen+ScrapeEntryLen], 2, FaultLength},
		{"connect reply", AppendConnectReply(nil, 1, 2), 1, FaultAction},
		{"tiny", two[:4], 2, FaultShort},
	} {
		if f := CheckScrape(tt.b, tt.hashes); f != tt.want {
			t.Errorf("CheckScrape(%s) = %v, want %v", tt.name, f, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	for _, tt := range []struct{ b, want []byte }{
		{AppendError(nil, 1, "not registered\x00"), []byte("not registered")},
		{AppendError(nil, 1, "x\x00\x00"), []byte("x")},
		{AppendError(nil, 1, ""), []byte{}},
		{[]byte{0, 0, 0, 3}, nil},
	} {
		if got := ErrorMessage(tt.b); !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("ErrorMessage(%x) = %q, want %q", tt.b, got, tt.want)
		}
	}
}

var sinkBytes []byte

// TestAllocs guards the promise that nothing allocates once the buffer has
// room.
func TestAllocs(t *testing.T) {
	a := testAnnounce()
	hashes := make([]bittorrent.InfoHash, 0, 74)
	scrapes := make([]bittorrent.Scrape, 3)
	buf := make([]byte, 0, 2048)
	ann := AppendAnnounce(nil, 1, 2, &a)
	scr := AppendScrape(nil, 1, 2, numberedHashes(3))
	reply := AppendAnnounceReply(nil, 2, AnnounceReply{Interval: 1}, make([]byte, 60))
	tests := []struct {
		name string
		f    func()
	}{
		{"AppendConnect", func() { sinkBytes = AppendConnect(buf[:0], 1) }},
		{"AppendAnnounce", func() { sinkBytes = AppendAnnounce(buf[:0], 1, 2, &a) }},
		{"AppendScrape", func() { sinkBytes = AppendScrape(buf[:0], 1, 2, hashes[:3]) }},
		{"AppendConnectReply", func() { sinkBytes = AppendConnectReply(buf[:0], 1, 2) }},
		{"AppendAnnounceReply", func() { sinkBytes = AppendAnnounceReply(buf[:0], 1, AnnounceReply{}, ann[:60]) }},
		{"AppendScrapeReply", func() { sinkBytes = AppendScrapeReply(buf[:0], 1, scrapes) }},
		{"AppendError", func() { sinkBytes = AppendError(buf[:0], 1, "torrent not registered") }},
		{"ParseHeader", func() { ParseHeader(ann) }},
		{"ParseAnnounce", func() { ParseAnnounce(ann, &a) }},
		{"ParseScrape", func() { hashes, _ = ParseScrape(scr, hashes[:0]) }},
		{"ValidOptions", func() { ValidOptions([]byte{OptURLData, 1, '/', OptEndOfOptions}) }},
		{"CheckConnect", func() { CheckConnect(ann[:16]) }},
		{"CheckAnnounce", func() { CheckAnnounce(reply, false, 50) }},
		{"CheckScrape", func() { CheckScrape(reply, 1) }},
		{"ErrorMessage", func() { sinkBytes = ErrorMessage(reply) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", tt.name, n)
		}
	}
}

func numberedHashes(n int) []bittorrent.InfoHash {
	h := make([]bittorrent.InfoHash, n)
	for i := range h {
		h[i][0] = byte(i + 1)
	}
	return h
}
