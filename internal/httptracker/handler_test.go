package httptracker

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"warden/internal/bencode"
	"warden/internal/bittorrent"
	"warden/internal/reqstat"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

// newTestTracker returns a tracker over an empty in-memory swarm with the
// default policy (interval 30m, min interval 15m, numwant 50).
func newTestTracker(tb testing.TB) *tracker.Tracker {
	tb.Helper()
	return tracker.New(memswarm.New(swarmtest.Config()), nil, openConfig(), slog.New(slog.DiscardHandler))
}

func newTestHandler(tb testing.TB, cfg Config, log *slog.Logger) *handler {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		tb.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	header, _ := cfg.clientIPHeader()
	return newHandler(newTestTracker(tb), trusted, header, cfg.FullScrape, log)
}

// get serves GET target from remote (ip:port) and returns the recorder.
func get(h http.Handler, remote, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// announceURL builds an announce for testHash from peer id byte n.
func announceURL(n byte, port uint16, left int, extra string) string {
	pid := testPeerID
	pid[19] = n
	return fmt.Sprintf("/announce?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d%s",
		escapeAll(testHash[:]), escapeAll(pid[:]), port, left, extra)
}

// decode checks that a reply is a 200 text/plain, canonical bencode
// dictionary and returns it.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	var m map[string]any
	if err := bencode.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("reply %q: %v", w.Body.String(), err)
	}
	return m
}

func compact4(s string) string {
	p := bittorrent.CompactPeers{}
	p.Append(netip.MustParseAddrPort(s))
	return string(p.Bytes)
}

func compact6(s string) string {
	p := bittorrent.CompactPeers{V6: true}
	p.Append(netip.MustParseAddrPort(s))
	return string(p.Bytes)
}

func TestAnnounceCompactV4(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), nil)
	decode(t, get(h, "198.51.100.1:50000", announceURL(1, 6881, 100, "&event=started")))
	w := get(h, "198.51.100.2:50001", announceURL(2, 6882, 0, ""))
	want := "d8:completei1e10:incompletei1e8:intervali1800e12:min intervali900e5:peers6:" +
		compact4("198.51.100.1:6881") + "e"
	if got := w.Body.String(); got != want {
		t.Errorf("body %q,\nwant %q", got, want)
	}
	decode(t, w)
}

func TestAnnounceV4MappedSource(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), nil)
	decode(t, get(h, "[::ffff:198.51.100.1]:50000", announceURL(1, 6881, 100, "")))
	m := decode(t, get(h, "198.51.100.2:50001", announceURL(2, 6882, 0, "")))
	if got, want := m["peers"], compact4("198.51.100.1:6881"); got != want {
		t.Errorf("peers %q, want %q", got, want)
	}
	if _, ok := m["peers6"]; ok {
		t.Errorf("peers6 present for an IPv4 requester: %q", m["peers6"])
	}
}

func TestAnnounceCompactV6(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), nil)
	decode(t, get(h, "[2001:db8::1]:50000", announceURL(1, 6881, 100, "")))
	decode(t, get(h, "198.51.100.3:50000", announceURL(3, 6883, 100, ""))) // other family: not listed
	m := decode(t, get(h, "[2001:db8::2]:50001", announceURL(2, 6882, 0, "")))
	want := map[string]any{
		"complete":     int64(1),
		"incomplete":   int64(2),
		"interval":     int64(1800),
		"min interval": int64(900),
		"peers":        "",
		"peers6":       compact6("[2001:db8::1]:6881"),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("reply %q,\nwant %q", m, want)
	}
}

// TestAnnounceDictForm: peer IDs are not stored, so the dictionary form has
// ip and port only, asked for with no_peer_id or not.
func TestAnnounceDictForm(t *testing.T) {
	tests := []struct {
		name   string
		remote string // of the peer listed
		extra  string
		want   map[string]any
	}{
		{name: "compact=0", remote: "198.51.100.1:50000", extra: "&compact=0",
			want: map[string]any{"ip": "198.51.100.1", "port": int64(6881)}},
		{name: "no_peer_id", remote: "198.51.100.1:50000", extra: "&compact=0&no_peer_id=1",
			want: map[string]any{"ip": "198.51.100.1", "port": int64(6881)}},
		{name: "no_peer_id alone keeps compact", remote: "198.51.100.1:50000", extra: "&no_peer_id=1"},
		{name: "IPv6", remote: "[2001:db8::1]:50000", extra: "&compact=0",
			want: map[string]any{"ip": "2001:db8::1", "port": int64(6881)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, DefaultConfig(), nil)
			decode(t, get(h, tt.remote, announceURL(1, 6881, 100, "")))
			ap := netip.MustParseAddrPort(tt.remote)
			other := netip.AddrPortFrom(ap.Addr().Next(), 50001)
			m := decode(t, get(h, other.String(), announceURL(2, 6882, 0, tt.extra)))
			if tt.want == nil {
				if _, ok := m["peers"].(string); !ok {
					t.Errorf("peers is %T, want a compact string", m["peers"])
				}
				return
			}
			want := []any{tt.want}
			if !reflect.DeepEqual(m["peers"], want) {
				t.Errorf("peers %q, want %q", m["peers"], want)
			}
			if _, ok := m["peers6"]; ok {
				t.Errorf("peers6 present in dictionary form")
			}
		})
	}
}

func TestAnnounceStopped(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), nil)
	decode(t, get(h, "198.51.100.1:50000", announceURL(1, 6881, 100, "")))
	decode(t, get(h, "198.51.100.2:50000", announceURL(2, 6881, 100, "")))
	m := decode(t, get(h, "198.51.100.2:50000", announceURL(2, 6881, 100, "&event=stopped")))
	if m["incomplete"] != int64(1) || m["peers"] != "" {
		t.Errorf("after stopped: %q, want 1 leecher and no peers", m)
	}
}

func TestAnnounceLargeReplyHasContentLength(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), nil)
	for i := range 60 {
		// Long IPv6 addresses make a long dictionary-form reply.
		decode(t, get(h, fmt.Sprintf("[2001:db8:1234:5678:9abc:def0:1234:%x]:50000", i+0x1000), announceURL(byte(i), 6881, 100, "")))
	}
	w := get(h, "[2001:db8::1]:50000", announceURL(200, 6881, 0, "&compact=0"))
	m := decode(t, w)
	if n := len(m["peers"].([]any)); n != 50 {
		t.Errorf("%d peers, want the default 50", n)
	}
	if w.Body.Len() <= 2048 {
		t.Fatalf("reply of %d bytes; the test needs more than 2048", w.Body.Len())
	}
	if got, want := w.Header().Get("Content-Length"), strconv.Itoa(w.Body.Len()); got != want {
		t.Errorf("Content-Length %q, want %q", got, want)
	}
}

func TestFailureReplies(t *testing.T) {
	tests := []struct {
		name, remote, target string
		hdr                  []string
		want                 string
	}{
		{name: "missing info_hash", target: "/announce?left=0", want: "announce: info_hash: missing"},
		{name: "port zero", target: announceURL(1, 0, 0, ""), want: "announce: port: must be 1-65535"},
		{name: "negative left", target: strings.Replace(announceURL(1, 1, 0, ""), "left=0", "left=-1", 1), want: "announce: left: must not be negative"},
		{name: "too long", target: announceURL(1, 1, 0, "&x="+strings.Repeat("y", 5000)), want: "announce: query: longer than 4096 bytes"},
		{name: "bad forwarded header from trusted proxy", remote: "10.0.0.1:1", target: announceURL(1, 1, 0, ""),
			hdr: []string{"X-Forwarded-For", "nonsense"}, want: "announce: x-forwarded-for: invalid address"},
		{name: "scrape bad hash", target: "/scrape?info_hash=abc", want: "scrape: info_hash: must be 20 bytes"},
		{name: "full scrape off", target: "/scrape", want: "full scrape is disabled: give info_hash"},
		{name: "scrape too many", target: "/scrape?" + strings.Repeat("info_hash="+escapeAll(testHash[:])+"&", 65),
			want: "scrape: info_hash: too many (more than max_scrape_hashes)"},
		{name: "internal error is not explained", remote: "not-an-address", target: announceURL(1, 1, 0, ""), want: "internal error"},
	}
	cfg := DefaultConfig()
	cfg.TrustedProxies, cfg.ClientIPHeader = []string{"10.0.0.0/8"}, "X-Forwarded-For"
	h := newTestHandler(t, cfg, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := tt.remote
			if remote == "" {
				remote = "198.51.100.1:1"
			}
			w := get(h, remote, tt.target, tt.hdr...)
			wantBody := "d14:failure reason" + strconv.Itoa(len(tt.want)) + ":" + tt.want + "e"
			if w.Body.String() != wantBody {
				t.Errorf("body %q, want %q", w.Body.String(), wantBody)
			}
			decode(t, w) // HTTP 200, text/plain, valid bencode
		})
	}
}

func TestInternalErrorLogRateLimited(t *testing.T) {
	var logs bytes.Buffer
	h := newTestHandler(t, DefaultConfig(), slog.New(slog.NewTextHandler(&logs, nil)))
	for range 5 {
		get(h, "bogus", announceURL(1, 1, 0, ""))
	}
	if n := strings.Count(logs.String(), "request failed"); n != 1 {
		t.Errorf("%d log lines for 5 internal errors within a second, want 1:\n%s", n, logs.String())
	}
}

func TestScrape(t *testing.T) {
	hOther := bittorrent.InfoHash{0: 0xff, 19: 1} // sorts after testHash
	hNone := bittorrent.InfoHash{19: 9}           // never announced; sorts first
	qh := func(ih bittorrent.InfoHash) string { return "info_hash=" + escapeAll(ih[:]) }
	entry := func(c, d, i int64) map[string]any {
		return map[string]any{"complete": c, "downloaded": d, "incomplete": i}
	}
	tests := []struct {
		name       string
		fullScrape bool
		query      string
		want       map[string]any
	}{
		{name: "one", query: qh(testHash), want: map[string]any{string(testHash[:]): entry(1, 1, 1)}},
		{name: "unknown torrent is zeros", query: qh(hNone), want: map[string]any{string(hNone[:]): entry(0, 0, 0)}},
		{name: "many, duplicates once", query: qh(hOther) + "&" + qh(hNone) + "&" + qh(testHash) + "&" + qh(hOther),
			want: map[string]any{string(testHash[:]): entry(1, 1, 1), string(hOther[:]): entry(0, 0, 1), string(hNone[:]): entry(0, 0, 0)}},
		{name: "full scrape on", fullScrape: true, query: "",
			want: map[string]any{string(testHash[:]): entry(1, 1, 1), string(hOther[:]): entry(0, 0, 1)}},
		{name: "full scrape on, hash given", fullScrape: true, query: qh(hOther),
			want: map[string]any{string(hOther[:]): entry(0, 0, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.FullScrape = tt.fullScrape
			h := newTestHandler(t, cfg, nil)
			decode(t, get(h, "198.51.100.1:1", announceURL(1, 6881, 100, "")))
			decode(t, get(h, "198.51.100.2:1", announceURL(2, 6881, 100, "&event=completed")))
			decode(t, get(h, "198.51.100.2:1", announceURL(2, 6881, 0, "&event=completed")))
			decode(t, get(h, "198.51.100.3:1", strings.Replace(announceURL(3, 6881, 100, ""),
				escapeAll(testHash[:]), escapeAll(hOther[:]), 1)))
			m := decode(t, get(h, "198.51.100.9:1", "/scrape?"+tt.query))
			want := map[string]any{"files": tt.want}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("scrape %q = %q,\nwant %q", tt.query, m, want)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), nil)
	tests := []struct {
		method, target string
		code           int
		body, allow    string
	}{
		{method: "GET", target: "/", code: 404, body: "not found\n"},
		{method: "GET", target: "/announce/", code: 404, body: "not found\n"},
		{method: "GET", target: "/ANNOUNCE", code: 404, body: "not found\n"},
		{method: "GET", target: "/favicon.ico", code: 404, body: "not found\n"},
		{method: "POST", target: "/announce", code: 405, body: "method not allowed\n", allow: "GET, HEAD"},
		{method: "DELETE", target: "/scrape", code: 405, body: "method not allowed\n", allow: "GET, HEAD"},
		{method: "POST", target: "/other", code: 404, body: "not found\n"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.code || w.Body.String() != tt.body || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d %q Allow %q, want %d %q Allow %q", tt.method, tt.target,
				w.Code, w.Body.String(), w.Header().Get("Allow"), tt.code, tt.body, tt.allow)
		}
	}
}

func TestStats(t *testing.T) {
	tr := newTestTracker(t)
	s, err := Listen("127.0.0.1:0", tr, nil, DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	get(h, "198.51.100.1:1", announceURL(1, 6881, 0, ""))
	get(h, "198.51.100.1:1", announceURL(1, 6881, 0, ""))
	get(h, "198.51.100.1:1", announceURL(1, 0, 0, ""))
	get(h, "198.51.100.1:1", "/scrape?info_hash="+escapeAll(testHash[:]))
	get(h, "198.51.100.1:1", "/scrape")
	get(h, "198.51.100.1:1", "/scrape?info_hash=x")
	get(h, "198.51.100.1:1", "/nope")
	want := Stats{AnnouncesOK: 2, AnnouncesFailed: 1, ScrapesOK: 1, ScrapesFailed: 2, BadRequests: 1}
	got := s.Stats()
	// Requests (checked in TestRequestOutcomes) splits the same requests.
	byOutcome := got.Requests.ByOutcome()
	if byOutcome[reqstat.OK] != 3 || byOutcome[reqstat.BadRequest] != 4 || got.Requests.Latency.Count() != 6 {
		t.Errorf("Stats().Requests by outcome %v, %d timed; want 3 ok, 4 bad requests, 6 timed", byOutcome, got.Requests.Latency.Count())
	}
	got.Requests = reqstat.Table{}
	if got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if n := testing.AllocsPerRun(10, func() { _ = s.Stats() }); n != 0 {
		t.Errorf("Stats allocates %v times", n)
	}
}

func TestTrustedProxyEndToEnd(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies, cfg.ClientIPHeader = []string{"10.0.0.0/8"}, "X-Forwarded-For"
	h := newTestHandler(t, cfg, nil)
	// Through the proxy: the peer is the forwarded address, not the
	// proxy and not what the client wrote on the left of the list.
	decode(t, get(h, "10.0.0.1:40000", announceURL(1, 6881, 100, "&ip=192.0.2.99"),
		"X-Forwarded-For", "192.0.2.1, 198.51.100.77"))
	// Direct, from outside: a forged header is ignored.
	decode(t, get(h, "203.0.113.5:40000", announceURL(2, 6882, 100, ""),
		"X-Forwarded-For", "198.51.100.200"))
	m := decode(t, get(h, "203.0.113.9:40000", announceURL(3, 6883, 0, "&compact=0&no_peer_id=1")))
	got := map[string]bool{}
	for _, p := range m["peers"].([]any) {
		d := p.(map[string]any)
		got[fmt.Sprintf("%s:%d", d["ip"], d["port"])] = true
	}
	want := map[string]bool{"198.51.100.77:6881": true, "203.0.113.5:6882": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("peers %v, want %v", got, want)
	}
}

// discardWriter is a ResponseWriter that keeps its header map between
// requests and throws the body away, so that allocation counts show the
// handler's own allocations, not the recorder's.
type discardWriter struct {
	h http.Header
	n int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// TestAnnounceAllocs is the allocation guard of the announce path: once the
// swarm knows the peer and the pool is warm, parsing, the tracker and the
// reply allocate nothing.
func TestAnnounceAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	h := newTestHandler(t, DefaultConfig(), nil)
	for i := range 100 {
		get(h, fmt.Sprintf("198.51.100.%d:1", i+1), announceURL(byte(i), 6881, 100, ""))
	}
	for _, tc := range []struct {
		name, remote, target string
	}{
		{"compact v4", "198.51.100.1:1", announceURL(0, 6881, 100, "")},
		{"dict form", "198.51.100.1:1", announceURL(0, 6881, 100, "&compact=0")},
		{"parse failure", "198.51.100.1:1", announceURL(0, 0, 100, "")},
		{"scrape", "198.51.100.1:1", "/scrape?info_hash=" + escapeAll(testHash[:]) + "&info_hash=" + escapeAll(testPeerID[:])},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		r.RemoteAddr = tc.remote
		w := &discardWriter{h: make(http.Header)}
		want := 0.0
		switch tc.name {
		case "parse failure":
			want = 1 // the *ParseError
		case "dict form":
			want = 2 // Content-Length of a reply over 2048 bytes
		}
		if n := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }); n > want {
			t.Errorf("%s: %v allocations per request, want %v", tc.name, n, want)
		}
	}
}

// BenchmarkAnnounce measures the handler alone (no sockets, no net/http
// server), n peers in the swarm, compact reply of up to 50 peers.
// fresh_state is the same without the pool, which is why there is one.
func BenchmarkAnnounce(b *testing.B) {
	for _, n := range []int{1, 1_000, 100_000} {
		h := newTestHandler(b, DefaultConfig(), nil)
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			get(h, netip.AddrPortFrom(a, 1).String(), announceURL(byte(i), 6881, i%2, ""))
		}
		r := httptest.NewRequest("GET", announceURL(7, 6881, 100, "&key=1A2B3C4D&compact=1&numwant=50"), nil)
		r.RemoteAddr = "198.51.100.1:1"
		w := &discardWriter{h: make(http.Header)}
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
		if n == 1_000 {
			b.Run("fresh_state/peers=1000", func(b *testing.B) {
				src, err := sourceAddr(r, h.trusted, h.header)
				b.ReportAllocs()
				for b.Loop() {
					h.announce(w, r, src, err, new(reqState), time.Now())
				}
			})
			b.Run("parallel/peers=1000", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					w := &discardWriter{h: make(http.Header)}
					for pb.Next() {
						h.ServeHTTP(w, r)
					}
				})
			})
		}
	}
}

func BenchmarkParseAnnounce(b *testing.B) {
	q := strings.TrimPrefix(announceURL(7, 51413, 4096, "&corrupt=0&key=1A2B3C4D&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1"), "/announce?")
	var a announce
	b.ReportAllocs()
	for b.Loop() {
		if err := parseAnnounce(q, testSrc, &a); err != nil {
			b.Fatal(err)
		}
	}
}

// openConfig is the default tracker policy in open mode, which needs no
// registry.
func openConfig() tracker.Config {
	cfg := tracker.DefaultConfig()
	cfg.Mode = tracker.ModeOpen
	return cfg
}
