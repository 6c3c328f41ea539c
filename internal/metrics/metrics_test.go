package metrics

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"warden/internal/evidence"
	"warden/internal/httptracker"
	"warden/internal/limit"
	"warden/internal/procstat"
	"warden/internal/reqstat"
	"warden/internal/status"
	"warden/internal/swarm"
	"warden/internal/udptracker"
)

func snapshot() status.Snapshot {
	u := udptracker.Stats{Received: 10, Sent: 7}
	u.Requests.Requests[reqstat.Announce][reqstat.IPv6][reqstat.RefusedRevoked] = 3
	u.Requests.Latency.Counts[0] = 9
	u.Requests.Latency.Counts[2] = 1
	u.Requests.Latency.Sum = 120 * time.Microsecond
	h := httptracker.Stats{ConnsOpen: 2}
	h.Requests.Requests[reqstat.Scrape][reqstat.IPv4][reqstat.OK] = 5
	eps := &status.Episodes{Open: []status.OpenEpisode{}}
	eps.EpisodeStats.Open, eps.Opened = 2, 7
	return status.Snapshot{
		Episodes: eps,
		Alerts:   &evidence.AlertStats{Sent: 5},
		Version:  "test",
		Uptime:   status.Duration(90 * time.Second),
		Swarm:    swarm.Stats{Torrents: 4, Seeders: 6, Leechers: 8},
		Guard:    limit.Stats{Allowed: 11, Evictions: 2},
		UDP:      &u,
		HTTP:     &h,
	}
}

func scrape(t *testing.T, src Sources) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(src, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestCollect(t *testing.T) {
	g, err := limit.NewGuard(limit.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, Sources{
		Status:   snapshot,
		Guard:    g,
		UDPPorts: []uint16{1},
		TCP:      func() (procstat.TCP, error) { return procstat.TCP{ListenOverflows: 17, SyncookiesSent: 3}, nil },
	})
	for _, want := range []string{
		`warden_requests_total{family="ipv6",kind="announce",outcome="refused_revoked",protocol="udp"} 3`,
		`warden_requests_total{family="ipv4",kind="scrape",outcome="ok",protocol="http"} 5`,
		`warden_requests_total{family="ipv4",kind="connect",outcome="shed",protocol="udp"} 0`,
		`warden_request_duration_seconds_bucket{protocol="udp",le="1e-05"} 9`,
		`warden_request_duration_seconds_bucket{protocol="udp",le="4e-05"} 10`,
		`warden_request_duration_seconds_count{protocol="udp"} 10`,
		`warden_request_duration_seconds_sum{protocol="udp"} 0.00012`,
		`warden_udp_datagrams_received_total 10`,
		`warden_http_connections_open 2`,
		`warden_swarm_peers{role="leecher"} 8`,
		`warden_swarm_torrents 4`,
		`warden_guard_verdicts_total{verdict="allowed"} 11`,
		`warden_guard_evictions_total 2`,
		`warden_guard_table_live_keys 0`,
		`warden_guard_bans_active 0`,
		`warden_tcp_listen_total{event="overflow"} 17`,
		`warden_tcp_syncookies_total{event="sent"} 3`,
		`warden_episodes_open 2`,
		`warden_episodes_total{event="opened"} 7`,
		`warden_alerts_total{result="sent"} 5`,
		`warden_uptime_seconds 90`,
		`warden_build_info{mode="allowlist",version="test"} 1`,
		`process_open_fds `,
		`process_resident_memory_bytes `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	promtool(t, body)
}

// TestSeriesBounded checks that the number of series does not depend on
// the traffic: a snapshot with every counter set exports as many as an
// empty one.
func TestSeriesBounded(t *testing.T) {
	series := func(body string) int {
		n := 0
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, "warden_") {
				n++
			}
		}
		return n
	}
	empty := series(scrape(t, Sources{Status: func() status.Snapshot {
		s := snapshot()
		s.UDP.Requests, s.HTTP.Requests = reqstat.Table{}, reqstat.Table{}
		return s
	}}))
	full := series(scrape(t, Sources{Status: func() status.Snapshot {
		s := snapshot()
		for k := range reqstat.NumKinds {
			for f := range reqstat.NumFamilies {
				for o := range reqstat.NumOutcomes {
					s.UDP.Requests.Requests[k][f][o] = 1
					s.HTTP.Requests.Requests[k][f][o] = 1
				}
			}
		}
		return s
	}}))
	if empty != full {
		t.Errorf("%d series with no traffic, %d with every outcome", empty, full)
	}
	if full > 500 {
		t.Errorf("%d warden series", full)
	}
}

// TestUnreadableSourceLeftOut checks that a /proc file that cannot be
// read leaves its metrics out and the rest are served.
func TestUnreadableSourceLeftOut(t *testing.T) {
	body := scrape(t, Sources{
		Status: snapshot,
		TCP:    func() (procstat.TCP, error) { return procstat.TCP{}, os.ErrNotExist },
	})
	if strings.Contains(body, "warden_tcp_listen_total") {
		t.Error("TCP counters exported though unreadable")
	}
	if !strings.Contains(body, "warden_swarm_torrents 4") {
		t.Error("the other metrics are missing")
	}
}

// promtool runs `promtool check metrics` on body, which must report
// nothing. Under CI=true a missing promtool fails the test.
func promtool(t *testing.T, body string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not installed (Debian package prometheus): %v", err)
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	checkWithPromtool(t, bin, strings.NewReader(body))
}

// checkWithPromtool fails
// t if promtool reports anything about r.
func checkWithPromtool(t *testing.T, bin string, r io.Reader) {
	t.Helper()
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = r
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

func BenchmarkScrape(b *testing.B) {
	g, err := limit.NewGuard(limit.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	h := Handler(Sources{Status: snapshot, Guard: g, UDPPorts: []uint16{6969}}, slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
}
