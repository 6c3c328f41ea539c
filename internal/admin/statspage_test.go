package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"warden/internal/evidence"
	"warden/internal/metrics"
	"warden/internal/reqstat"
	"warden/internal/status"
	"warden/internal/udptracker"
)

// statsServer serves the admin API over snap, with /metrics.
func statsServer(t *testing.T, snap func() status.Snapshot) *httptest.Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, Deps{
		Token:   testToken,
		Status:  snap,
		Metrics: metrics.Handler(metrics.Sources{Status: snap}, log),
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func busySnapshot() status.Snapshot {
	u := &udptracker.Stats{}
	u.Requests.Requests[reqstat.Announce][reqstat.IPv4][reqstat.OK] = 1234567
	u.Requests.Requests[reqstat.Announce][reqstat.IPv6][reqstat.RefusedRevoked] = 42
	u.Requests.Latency.Counts[1] = 10
	return status.Snapshot{
		Version:  `v1 <script>alert(1)</script>`,
		Started:  time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC),
		Uptime:   status.Duration(3 * time.Hour),
		Registry: status.Registry{Entries: 3},
		UDP:      u,
		Offenders: evidence.Offenders{Limited: 9, Top: []evidence.Entry[netip.Addr]{
			{Key: netip.MustParseAddr("203.0.113.9"), Count: 77, LastSeen: time.Now()}}},
	}
}

func get(t *testing.T, url, token string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestMetricsNeedsToken(t *testing.T) {
	ts := statsServer(t, busySnapshot)
	for _, tok := range []string{"", "wrong"} {
		if resp, _ := get(t, ts.URL+"/metrics", tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics with token %q = %d, want 401", tok, resp.StatusCode)
		}
	}
	resp, body := get(t, ts.URL+"/metrics", string(testToken))
	if resp.StatusCode != 200 || !strings.Contains(body, `warden_requests_total{family="ipv4",kind="announce",outcome="ok",protocol="udp"} 1.234567e+06`) {
		t.Fatalf("GET /metrics = %d:\n%s", resp.StatusCode, body)
	}
}

func TestStatsNegotiation(t *testing.T) {
	ts := statsServer(t, busySnapshot)
	tests := []struct {
		name, query, accept string
		html                bool
	}{
		{name: "no accept", html: false},
		{name: "curl", accept: "*/*", html: false},
		{name: "json", accept: "application/json", html: false},
		{name: "browser", accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", html: true},
		{name: "json preferred", accept: "text/html;q=0.5, application/json", html: false},
		{name: "html refused", accept: "text/html;q=0", html: false},
		{name: "format=html", query: "?format=html", html: true},
		{name: "format=json beats accept", query: "?format=json", accept: "text/html", html: false},
		{name: "bad accept", accept: "text/html;q=x;;", html: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, ts.URL+"/stats"+tt.query, string(testToken), "Accept", tt.accept)
			ct := resp.Header.Get("Content-Type")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if gotHTML := strings.HasPrefix(ct, "text/html"); gotHTML != tt.html {
				t.Fatalf("Content-Type %q, want html=%v", ct, tt.html)
			}
			if !tt.html && !strings.Contains(body, `"entries": 3`) {
				t.Fatalf("JSON body %s", body)
			}
			if resp.Header.Get("Vary") != "Accept" {
				t.Errorf("Vary %q", resp.Header.Get("Vary"))
			}
		})
	}
}

func TestStatsPage(t *testing.T) {
	ts := statsServer(t, busySnapshot)
	if resp, _ := get(t, ts.URL+"/stats?format=html", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the page without a token = %d, want 401", resp.StatusCode)
	}
	_, body := get(t, ts.URL+"/stats?format=html", string(testToken))
	for _, want := range []string{
		"<th>outcome</th><th>UDP</th></tr>",
		"<tr class=\"sum\"><td>all requests</td><td>1\u2009234\u2009609</td></tr>",
		"<tr><td>ok</td><td>1\u2009234\u2009567</td></tr>",
		"<tr><td>refused revoked</td><td>42</td></tr>",
		"<tr class=\"sum\"><td>from IPv6</td><td>42</td></tr>",
		"<tr><td>latency p50</td><td>≤ 20µs</td></tr>",
		"<td><code>203.0.113.9</code></td><td>77</td>", // an offender
		"3h0m0s",
		"&lt;script&gt;", // the version, escaped
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("the page carries a script")
	}
}

func TestGroupDigits(t *testing.T) {
	for in, want := range map[string]string{"0": "0", "1234": "1234", "12345": "12\u2009345", "1234567": "1\u2009234\u2009567", "0.5": "0.5"} {
		if got := groupDigits(in); got != want {
			t.Errorf("groupDigits(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkStatsPage(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, Deps{Token: testToken, Status: busySnapshot}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	req := httptest.NewRequest("GET", "/stats?format=html", nil)
	req.Header.Set("Authorization", "Bearer "+string(testToken))
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// FuzzWantsHTML feeds Accept headers and queries to the negotiation: it
// never panics, and format= wins over Accept.
func FuzzWantsHTML(f *testing.F) {
	f.Add("text/html,application/xhtml+xml,*/*;q=0.8", "") // a browser
	f.Add("*/*", "")                                       // curl
	f.Add("text/html;q=0.5, application/json", "")         // JSON preferred
	f.Add("text/html;q=NaN", "")                           // a q that is no number
	f.Add("text/html;q=1e400", "format=json")              // format wins
	f.Fuzz(func(t *testing.T, accept, query string) {
		r := httptest.NewRequest("GET", "/stats", nil)
		r.URL.RawQuery = query
		r.Header.Set("Accept", accept)
		got := wantsHTML(r)
		switch r.URL.Query().Get("format") {
		case "html":
			if !got {
				t.Fatalf("format=html, Accept %q: not HTML", accept)
			}
		case "json":
			if got {
				t.Fatalf("format=json, Accept %q: HTML", accept)
			}
		}
	})
}
