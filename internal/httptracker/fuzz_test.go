package httptracker

import (
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"warden/internal/bencode"
	"warden/internal/bittorrent"
)

// knownMsgs are all the messages a ParseError may carry: its text never
// echoes input.
var knownMsgs = []string{msgMissing, msgRepeated, msgEscape, msgLen20, msgPort, msgNotNumber,
	msgNegative, msgRange, msgEvent, msgQueryTooLong, msgTooMany}

// FuzzParseAnnounce checks that any query either fails with a ParseError
// whose text is one of the fixed messages, or yields a request that is
// valid, survives a round trip through a canonical query, and can be
// answered with well-formed bencode.
func FuzzParseAnnounce(f *testing.F) {
	f.Add(qMin, false)                                                                           // smallest valid announce
	f.Add(qMin+"&uploaded=1&downloaded=2&event=started&numwant=30&key=DEADBEEF&compact=0", true) // every field, IPv6 source
	f.Add(qMin+"&event=stopped&no_peer_id=1&ip=1.2.3.4&trackerid=x", false)                      // ignored keys
	f.Add("info_hash="+escapeMin(testHash[:])+"+&peer_id=%zz&port=0", false)                     // bad escape, '+'
	f.Add(qMin+"&port=65536&left=-1", false)                                                     // repeated and out of range
	f.Add("info_hash=%&peer_id=%4&port=1&left=18446744073709551616", false)                      // truncated escapes, overflow
	f.Add("&&=&=&info_hash&key=%31%32&numwant=99999999999999999999", false)                      // empty pairs and keys
	f.Add(strings.Repeat("a", MaxAnnounceQuery+1), false)                                        // over the limit
	f.Fuzz(func(t *testing.T, query string, v6 bool) {
		src := testSrc
		if v6 {
			src = netip.MustParseAddr("2001:db8::1")
		}
		var a announce
		err := parseAnnounce(query, src, &a)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Op != "announce" || pe.Field == "" || !slices.Contains(knownMsgs, pe.Msg) {
				t.Fatalf("parseAnnounce(%q) = %#v, want a ParseError with a known message", query, err)
			}
			return
		}
		if len(query) > MaxAnnounceQuery {
			t.Fatalf("accepted a query of %d bytes", len(query))
		}
		if a.req.Addr.Addr() != src || a.req.Addr.Port() == 0 {
			t.Fatalf("Addr %v, want %v with a nonzero port", a.req.Addr, src)
		}
		if a.req.Event > bittorrent.EventStopped || a.req.NumWant < -1 {
			t.Fatalf("invalid request %+v", a.req)
		}

		var again announce
		canon := canonicalQuery(&a)
		if err := parseAnnounce(canon, src, &again); err != nil || again != a {
			t.Fatalf("round trip of %q through %q: %+v, %v; want %+v", query, canon, again, err, a)
		}

		resp := bittorrent.AnnounceResponse{Interval: 30 * time.Minute, Complete: 3, Incomplete: 4}
		resp.Peers.Reset(a.req.Addr.Addr().Unmap().Is6())
		resp.Peers.Append(netip.MustParseAddrPort("192.0.2.1:1"))
		resp.Peers.Append(netip.MustParseAddrPort("[2001:db8::2]:65535"))
		body := appendAnnounce(nil, &a, &resp)
		var m map[string]any
		if err := bencode.Unmarshal(body, &m); err != nil {
			t.Fatalf("reply %q: %v", body, err)
		}
	})
}

// canonicalQuery writes a parsed announce back as a query, every field
// explicit.
func canonicalQuery(a *announce) string {
	r := &a.req
	compact, noPeerID := "0", "0"
	if a.compact {
		compact = "1"
	}
	if a.noPeerID {
		noPeerID = "1"
	}
	event := map[bittorrent.Event]string{bittorrent.EventNone: "", bittorrent.EventStarted: "started",
		bittorrent.EventCompleted: "completed", bittorrent.EventStopped: "stopped"}[r.Event]
	q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=%d&uploaded=%d&downloaded=%d&left=%d&event=%s&key=%08x&compact=%s&no_peer_id=%s",
		escapeAll(r.InfoHash[:]), escapeAll(r.PeerID[:]), r.Addr.Port(), r.Uploaded, r.Downloaded, r.Left,
		event, r.Key, compact, noPeerID)
	if r.NumWant >= 0 {
		q += fmt.Sprintf("&numwant=%d", r.NumWant)
	}
	return q
}

// FuzzParseScrape checks that any query either fails with a ParseError or
// yields at most max hashes that survive a round trip, and whose reply is
// well-formed bencode (sorted, unique keys).
func FuzzParseScrape(f *testing.F) {
	one := "info_hash=" + escapeAll(testHash[:])
	f.Add(one)                                                        // one hash
	f.Add(one + "&info_hash=" + escapeMin(testPeerID[:]) + "&" + one) // many, with a duplicate
	f.Add("")                                                         // full scrape
	f.Add("info_hash=%zz&info_hash")                                  // bad escape
	f.Add(strings.Repeat(one+"&", 9))                                 // over the limit
	f.Fuzz(func(t *testing.T, query string) {
		const max = 8
		hashes, err := parseScrape(query, max, nil)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Op != "scrape" || pe.Field != "info_hash" || !slices.Contains(knownMsgs, pe.Msg) {
				t.Fatalf("parseScrape(%q) = %#v, want a ParseError with a known message", query, err)
			}
			return
		}
		if len(hashes) > max {
			t.Fatalf("%d hashes, limit %d", len(hashes), max)
		}
		var sb strings.Builder
		for _, ih := range hashes {
			sb.WriteString("info_hash=" + escapeAll(ih[:]) + "&")
		}
		again, err := parseScrape(sb.String(), max, nil)
		if err != nil || !reflect.DeepEqual(again, hashes) {
			t.Fatalf("round trip of %q: %v, %v; want %v", query, again, err, hashes)
		}
		scrapes := make([]bittorrent.Scrape, len(hashes))
		for i, ih := range hashes {
			scrapes[i] = bittorrent.Scrape{InfoHash: ih, Complete: uint32(i)}
		}
		var m map[string]any
		if err := bencode.Unmarshal(appendScrape(nil, scrapes), &m); err != nil {
			t.Fatalf("reply: %v", err)
		}
	})
}

// FuzzSourceAddr checks the client address a request from a trusted proxy
// is attributed to, whatever its headers hold: sourceAddr never panics;
// on success the address is unmapped, has no zone and was written in the
// header the operator chose, never in the other one (no fallback); on
// failure it is a ParseError with a fixed message about the chosen header,
// and the address returned is the proxy's, to be charged.
func FuzzSourceAddr(f *testing.F) {
	f.Add(true, "198.51.100.1", "")                                     // one hop
	f.Add(true, "1.2.3.4, 10.0.0.2, 198.51.100.1, 10.0.0.3", "5.6.7.8") // trusted hops on the right are skipped
	f.Add(true, "", "198.51.100.2")                                     // X-Forwarded-For missing: no fallback
	f.Add(false, "203.0.113.9", "")                                     // X-Real-IP missing: the client's XFF is no fallback
	f.Add(false, "", "[2001:db8::7]:80")                                // X-Real-IP with a port
	f.Add(true, "::ffff:198.51.100.1, fe80::1%eth0", "")                // mapped, and a zone where the walk stops
	f.Add(false, "", "198.51.100.1\n198.51.100.2")                      // two X-Real-IP lines
	trusted, _ := parseTrusted([]string{"10.0.0.0/8", "2001:db8:ffff::/48"})
	proxy := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, xff bool, fwd, real string) {
		header, other, chosen := headerRealIP, fwd, real
		if xff {
			header, other, chosen = headerXFF, real, fwd
		}
		r := &http.Request{RemoteAddr: "10.0.0.1:40000", Header: http.Header{}}
		for _, v := range strings.Split(fwd, "\n") {
			if v != "" {
				r.Header.Add(headerXFF, v)
			}
		}
		for _, v := range strings.Split(real, "\n") {
			if v != "" {
				r.Header.Add(headerRealIP, v)
			}
		}
		a, err := sourceAddr(r, trusted, header)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || a != proxy || pe.Field != strings.ToLower(header) || !slices.Contains(knownMsgs, pe.Msg) && pe.Msg != "invalid address" {
				t.Fatalf("sourceAddr(%s, XFF %q, X-Real-IP %q) = %v, %#v", header, fwd, real, a, err)
			}
			return
		}
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			t.Fatalf("sourceAddr(%s, XFF %q, X-Real-IP %q) = %v: not a plain address", header, fwd, real, a)
		}
		// The address was written in the chosen header (in some form),
		// and is not merely one that only the other header holds.
		if !writtenIn(a, chosen) {
			t.Fatalf("sourceAddr(%s, XFF %q, X-Real-IP %q) = %v, which %q does not hold (the other header: %q)", header, fwd, real, a, chosen, other)
		}
	})
}

// writtenIn reports whether some comma- or line-separated entry of s
// parses as a.
func writtenIn(a netip.Addr, s string) bool {
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if b, ok := parseHop(e); ok && b == a {
			return true
		}
	}
	return false
}
