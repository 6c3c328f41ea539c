package httptracker

import (
	"fmt"
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
