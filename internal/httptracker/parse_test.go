package httptracker

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"warden/internal/bittorrent"
)

// Test fixtures: an info hash using every kind of byte a client escapes,
// and a peer ID in the usual Azureus style.
var (
	testHash = bittorrent.InfoHash{0x00, 0x01, 0x7f, 0x80, 0xff, ' ', '+', '%', '&', '=',
		'a', 'Z', '0', '~', '.', '-', '_', 0x13, 0xfe, 0x42}
	testPeerID = bittorrent.PeerID([]byte("-qB4650-abcdefghijkl"))
	testSrc    = netip.MustParseAddr("198.51.100.7")
)

// escapeAll percent-encodes every byte, as libtorrent does for binary.
func escapeAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// escapeMin percent-encodes only what must be, leaving unreserved bytes
// raw, as most clients do.
func escapeMin(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			sb.WriteByte(c)
		default:
			fmt.Fprintf(&sb, "%%%02x", c)
		}
	}
	return sb.String()
}

var (
	qHash = "info_hash=" + escapeAll(testHash[:])
	qPeer = "peer_id=" + escapeMin(testPeerID[:])
	// qMin is the smallest valid announce.
	qMin = qHash + "&" + qPeer + "&port=6881&left=0"
)

// wantReq is the request qMin parses to, changed by fn.
func wantReq(fn func(a *announce)) announce {
	a := announce{
		req: bittorrent.AnnounceRequest{
			InfoHash: testHash,
			PeerID:   testPeerID,
			Addr:     netip.AddrPortFrom(testSrc, 6881),
			NumWant:  -1,
		},
		compact: true,
	}
	if fn != nil {
		fn(&a)
	}
	return a
}

func TestParseAnnounce(t *testing.T) {
	hash19 := escapeAll(testHash[:19])
	tests := []struct {
		name    string
		query   string
		src     netip.Addr // testSrc if zero
		want    announce
		wantErr string
	}{
		{name: "minimal", query: qMin, want: wantReq(nil)},
		{
			name: "libtorrent style",
			query: qHash + "&" + qPeer + "&port=51413&uploaded=1024&downloaded=2048&left=4096" +
				"&corrupt=0&key=1A2B3C4D&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0",
			want: wantReq(func(a *announce) {
				a.req.Addr = netip.AddrPortFrom(testSrc, 51413)
				a.req.Uploaded, a.req.Downloaded, a.req.Left = 1024, 2048, 4096
				a.req.Key = 0x1A2B3C4D
				a.req.Event = bittorrent.EventStarted
				a.req.NumWant = 200
				a.noPeerID = true
			}),
		},
		{
			name:  "fields in any order, raw and lowercase escapes",
			query: "left=0&port=6881&" + qPeer + "&" + "info_hash=" + escapeMin(testHash[:]),
			want:  wantReq(nil),
		},
		{
			name:  "plus is a space",
			query: "info_hash=" + hash19 + "+&" + qPeer + "&port=6881&left=0",
			want:  wantReq(func(a *announce) { a.req.InfoHash[19] = ' ' }),
		},
		{
			name:  "escaped plus is a plus",
			query: "info_hash=" + hash19 + "%2B&" + qPeer + "&port=6881&left=0",
			want:  wantReq(func(a *announce) { a.req.InfoHash[19] = '+' }),
		},
		{name: "empty pairs skipped", query: "&&" + qMin + "&&", want: wantReq(nil)},
		{name: "IPv6 source", query: qMin, src: netip.MustParseAddr("2001:db8::1"),
			want: wantReq(func(a *announce) { a.req.Addr = netip.MustParseAddrPort("[2001:db8::1]:6881") })},
		{name: "port max", query: qHash + "&" + qPeer + "&port=65535&left=0",
			want: wantReq(func(a *announce) { a.req.Addr = netip.AddrPortFrom(testSrc, 65535) })},
		{name: "uint64 max", query: qMin + "&uploaded=18446744073709551615",
			want: wantReq(func(a *announce) { a.req.Uploaded = math.MaxUint64 })},
		{name: "escaped digits", query: qMin + "&downloaded=%31%32",
			want: wantReq(func(a *announce) { a.req.Downloaded = 12 })},
		{name: "leading zeros", query: qMin + "&downloaded=007",
			want: wantReq(func(a *announce) { a.req.Downloaded = 7 })},

		// Events.
		{name: "event completed", query: qMin + "&event=completed",
			want: wantReq(func(a *announce) { a.req.Event = bittorrent.EventCompleted })},
		{name: "event stopped", query: qMin + "&event=stopped",
			want: wantReq(func(a *announce) { a.req.Event = bittorrent.EventStopped })},
		{name: "event paused is none", query: qMin + "&event=paused", want: wantReq(nil)},
		{name: "event empty is none", query: qMin + "&event=", want: wantReq(nil)},
		{name: "event bare key is none", query: qMin + "&event", want: wantReq(nil)},

		// numwant.
		{name: "numwant zero", query: qMin + "&numwant=0", want: wantReq(func(a *announce) { a.req.NumWant = 0 })},
		{name: "numwant huge is capped", query: qMin + "&numwant=99999999999",
			want: wantReq(func(a *announce) { a.req.NumWant = math.MaxInt32 })},

		// key: lenient.
		{name: "key 8 hex digits", query: qMin + "&key=deadBEEF", want: wantReq(func(a *announce) { a.req.Key = 0xdeadbeef })},
		{name: "key short hex", query: qMin + "&key=ff", want: wantReq(func(a *announce) { a.req.Key = 0xff })},
		{name: "key decimal", query: qMin + "&key=123456789", want: wantReq(func(a *announce) { a.req.Key = 123456789 })},
		{name: "key 8 digits read as hex", query: qMin + "&key=12345678", want: wantReq(func(a *announce) { a.req.Key = 0x12345678 })},
		{name: "key other is hashed", query: qMin + "&key=xyz", want: wantReq(func(a *announce) { a.req.Key = fnv32("xyz") })},
		{name: "key too big for decimal is hashed", query: qMin + "&key=4294967296",
			want: wantReq(func(a *announce) { a.req.Key = fnv32("4294967296") })},
		{name: "key bad escape is hashed", query: qMin + "&key=%zz", want: wantReq(func(a *announce) { a.req.Key = fnv32("%zz") })},

		// compact and no_peer_id.
		{name: "compact=0", query: qMin + "&compact=0", want: wantReq(func(a *announce) { a.compact = false })},
		{name: "compact other is compact", query: qMin + "&compact=yes", want: wantReq(nil)},
		{name: "no_peer_id=0", query: qMin + "&compact=0&no_peer_id=0", want: wantReq(func(a *announce) { a.compact = false })},
		{name: "no_peer_id=1", query: qMin + "&compact=0&no_peer_id=1",
			want: wantReq(func(a *announce) { a.compact, a.noPeerID = false, true })},

		// Ignored: claimed addresses and everything unknown, even repeated
		// or malformed.
		{name: "ip ignored", query: qMin + "&ip=203.0.113.1&ipv4=203.0.113.2&ipv6=2001:db8::9", want: wantReq(nil)},
		{name: "ip ignored when escaped", query: qMin + "&ip=%32%30%33.0.113.1", want: wantReq(nil)},
		{name: "unknown keys ignored", query: qMin + "&trackerid=abc&trackerid=def&passkey=%zz&x", want: wantReq(nil)},
		{name: "escaped key not matched", query: qMin + "&info%5Fhash=xx", want: wantReq(nil)},

		// Errors: required fields.
		{name: "empty query", query: "", wantErr: "announce: info_hash: missing"},
		{name: "missing info_hash", query: qPeer + "&port=1&left=0", wantErr: "announce: info_hash: missing"},
		{name: "missing peer_id", query: qHash + "&port=1&left=0", wantErr: "announce: peer_id: missing"},
		{name: "missing port", query: qHash + "&" + qPeer + "&left=0", wantErr: "announce: port: missing"},
		{name: "missing left", query: qHash + "&" + qPeer + "&port=1", wantErr: "announce: left: missing"},

		// Errors: binary fields.
		{name: "short info_hash", query: "info_hash=" + hash19 + "&" + qPeer + "&port=1&left=0", wantErr: "announce: info_hash: must be 20 bytes"},
		{name: "long info_hash", query: qHash + "00&" + qPeer + "&port=1&left=0", wantErr: "announce: info_hash: must be 20 bytes"},
		{name: "empty info_hash", query: "info_hash=&" + qPeer + "&port=1&left=0", wantErr: "announce: info_hash: must be 20 bytes"},
		{name: "hex info_hash", query: "info_hash=" + testHash.String() + "&" + qPeer + "&port=1&left=0", wantErr: "announce: info_hash: must be 20 bytes"},
		{name: "short peer_id", query: qHash + "&peer_id=abc&port=1&left=0", wantErr: "announce: peer_id: must be 20 bytes"},
		{name: "bad escape", query: "info_hash=" + hash19 + "%G0&" + qPeer + "&port=1&left=0", wantErr: "announce: info_hash: invalid percent-encoding"},
		{name: "truncated escape", query: qPeer + "&port=1&left=0&info_hash=" + hash19 + "%4", wantErr: "announce: info_hash: invalid percent-encoding"},
		{name: "lone percent", query: qPeer + "&port=1&left=0&info_hash=" + hash19 + "%", wantErr: "announce: info_hash: invalid percent-encoding"},
		{name: "bad escape after too long", query: qHash + "ab%zz&" + qPeer, wantErr: "announce: info_hash: invalid percent-encoding"},
		{name: "repeated info_hash", query: qMin + "&" + qHash, wantErr: "announce: info_hash: given more than once"},
		{name: "repeated peer_id", query: qMin + "&" + qPeer, wantErr: "announce: peer_id: given more than once"},

		// Errors: numbers.
		{name: "port zero", query: qHash + "&" + qPeer + "&port=0&left=0", wantErr: "announce: port: must be 1-65535"},
		{name: "port too big", query: qHash + "&" + qPeer + "&port=65536&left=0", wantErr: "announce: port: must be 1-65535"},
		{name: "port negative", query: qHash + "&" + qPeer + "&port=-1&left=0", wantErr: "announce: port: must be 1-65535"},
		{name: "port word", query: qHash + "&" + qPeer + "&port=http&left=0", wantErr: "announce: port: must be 1-65535"},
		{name: "port empty", query: qHash + "&" + qPeer + "&port=&left=0", wantErr: "announce: port: must be 1-65535"},
		{name: "port overflow", query: qHash + "&" + qPeer + "&port=18446744073709558881&left=0", wantErr: "announce: port: must be 1-65535"},
		{name: "repeated port", query: qMin + "&port=6882", wantErr: "announce: port: given more than once"},
		{name: "left negative", query: qHash + "&" + qPeer + "&port=1&left=-5", wantErr: "announce: left: must not be negative"},
		{name: "left overflow", query: qHash + "&" + qPeer + "&port=1&left=18446744073709551616", wantErr: "announce: left: out of range"},
		{name: "left very long", query: qHash + "&" + qPeer + "&port=1&left=" + strings.Repeat("9", 40), wantErr: "announce: left: out of range"},
		{name: "left very long word", query: qHash + "&" + qPeer + "&port=1&left=" + strings.Repeat("x", 40), wantErr: "announce: left: must be a decimal number"},
		{name: "left float", query: qHash + "&" + qPeer + "&port=1&left=1.5", wantErr: "announce: left: must be a decimal number"},
		{name: "left exponent", query: qHash + "&" + qPeer + "&port=1&left=1e9", wantErr: "announce: left: must be a decimal number"},
		{name: "left plus sign", query: qHash + "&" + qPeer + "&port=1&left=+1", wantErr: "announce: left: must be a decimal number"},
		{name: "left bare minus", query: qHash + "&" + qPeer + "&port=1&left=-", wantErr: "announce: left: must be a decimal number"},
		{name: "left empty", query: qHash + "&" + qPeer + "&port=1&left=", wantErr: "announce: left: must be a decimal number"},
		{name: "uploaded negative", query: qMin + "&uploaded=-1", wantErr: "announce: uploaded: must not be negative"},
		{name: "downloaded hex", query: qMin + "&downloaded=0x10", wantErr: "announce: downloaded: must be a decimal number"},
		{name: "numwant negative", query: qMin + "&numwant=-1", wantErr: "announce: numwant: must not be negative"},
		{name: "numwant overflow", query: qMin + "&numwant=18446744073709551616", wantErr: "announce: numwant: out of range"},

		// Errors: others.
		{name: "unknown event", query: qMin + "&event=finished", wantErr: "announce: event: must be started, completed, stopped, paused or empty"},
		{name: "event wrong case", query: qMin + "&event=Started", wantErr: "announce: event: must be started, completed, stopped, paused or empty"},
		{name: "repeated event", query: qMin + "&event=started&event=stopped", wantErr: "announce: event: given more than once"},
		{name: "repeated compact", query: qMin + "&compact=1&compact=0", wantErr: "announce: compact: given more than once"},
		{name: "repeated is reported before bad value", query: qMin + "&port=0", wantErr: "announce: port: given more than once"},
		{name: "query too long", query: qMin + "&pad=" + strings.Repeat("x", MaxAnnounceQuery), wantErr: "announce: query: longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if !src.IsValid() {
				src = testSrc
			}
			var got announce
			err := parseAnnounce(tt.query, src, &got)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("parseAnnounce(%q) = %v, want error %q", tt.query, err, tt.wantErr)
				}
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("parseAnnounce(%q) error %T, want *ParseError", tt.query, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAnnounce(%q) = %v, want no error", tt.query, err)
			}
			if got != tt.want {
				t.Errorf("parseAnnounce(%q) =\n %+v\nwant\n %+v", tt.query, got, tt.want)
			}
		})
	}
}

// TestParseAnnounceOverwrites checks that a reused announce keeps nothing
// of the previous request.
func TestParseAnnounceOverwrites(t *testing.T) {
	var a announce
	if err := parseAnnounce(qMin+"&compact=0&no_peer_id=1&numwant=5&key=1&event=started&uploaded=9", testSrc, &a); err != nil {
		t.Fatal(err)
	}
	if err := parseAnnounce(qMin, testSrc, &a); err != nil {
		t.Fatal(err)
	}
	if want := wantReq(nil); a != want {
		t.Errorf("after reuse: %+v, want %+v", a, want)
	}
}

func TestParseAnnounceQueryLimit(t *testing.T) {
	pad := MaxAnnounceQuery - len(qMin) - len("&p=")
	q := qMin + "&p=" + strings.Repeat("x", pad)
	var a announce
	if err := parseAnnounce(q, testSrc, &a); err != nil {
		t.Errorf("query of exactly %d bytes: %v", len(q), err)
	}
	if err := parseAnnounce(q+"x", testSrc, &a); err == nil {
		t.Errorf("query of %d bytes: no error", len(q)+1)
	}
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func TestParseScrape(t *testing.T) {
	h1, h2 := testHash, bittorrent.InfoHash{19: 1}
	q1 := "info_hash=" + escapeAll(h1[:])
	q2 := "info_hash=" + escapeMin(h2[:])
	tests := []struct {
		name    string
		query   string
		want    []bittorrent.InfoHash
		wantErr string
	}{
		{name: "none", query: "", want: []bittorrent.InfoHash{}},
		{name: "only other keys", query: "passkey=x&y", want: []bittorrent.InfoHash{}},
		{name: "one", query: q1, want: []bittorrent.InfoHash{h1}},
		{name: "two in order", query: q2 + "&" + q1, want: []bittorrent.InfoHash{h2, h1}},
		{name: "duplicates kept", query: q1 + "&" + q1, want: []bittorrent.InfoHash{h1, h1}},
		{name: "at the limit", query: q1 + "&" + q2 + "&" + q1 + "&" + q2, want: []bittorrent.InfoHash{h1, h2, h1, h2}},
		{name: "over the limit", query: q1 + "&" + q2 + "&" + q1 + "&" + q2 + "&" + q1, wantErr: "scrape: info_hash: too many (more than max_scrape_hashes)"},
		{name: "short", query: q1 + "&info_hash=abc", wantErr: "scrape: info_hash: must be 20 bytes"},
		{name: "empty", query: "info_hash=", wantErr: "scrape: info_hash: must be 20 bytes"},
		{name: "bare key", query: "info_hash", wantErr: "scrape: info_hash: must be 20 bytes"},
		{name: "bad escape", query: "info_hash=%", wantErr: "scrape: info_hash: invalid percent-encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseScrape(tt.query, 4, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("parseScrape(%q) = %v, want error %q", tt.query, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseScrape(%q) = %v", tt.query, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("parseScrape(%q) = %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}

func TestParseAllocs(t *testing.T) {
	q := qHash + "&" + qPeer + "&port=51413&uploaded=1024&downloaded=2048&left=4096&corrupt=0&key=1A2B3C4D&event=started&numwant=200&compact=1"
	var a announce
	if n := testing.AllocsPerRun(100, func() {
		if err := parseAnnounce(q, testSrc, &a); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("parseAnnounce allocates %v times, want 0", n)
	}
	sq := strings.Repeat("info_hash="+escapeAll(testHash[:])+"&", 8)
	hashes := make([]bittorrent.InfoHash, 0, 8)
	if n := testing.AllocsPerRun(100, func() {
		var err error
		if hashes, err = parseScrape(sq, 8, hashes); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("parseScrape allocates %v times, want 0", n)
	}
}
