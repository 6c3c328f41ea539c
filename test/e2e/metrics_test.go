package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// adminGet fetches path from w's admin API with tok and the Accept
// header accept ("" for none), and returns the status, body and time
// taken.
func adminGet(w *wardenProc, path, tok, accept string) (int, string, time.Duration, error) {
	req, err := http.NewRequest("GET", w.adminURL+path, nil)
	if err != nil {
		return 0, "", 0, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start), err
}

// metricValue returns the value of the series line that starts with
// series (name and labels as warden writes them), or -1.
func metricValue(body, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestMetricsLive checks /metrics and the /stats page of a running warden:
// both need the token; promtool finds nothing to report in /metrics; real
// announces over UDP and HTTP, accepted and refused, show up under their
// protocol, family and outcome; the page is HTML for a browser.
func TestMetricsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden; skipped in -short mode")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		missing(t, "promtool (Debian package prometheus) not installed: %v", err)
	}
	w := startWardenWith(t, wardenOpts{admin: true})
	hs := randomHashes(2)
	w.register(t, hs[0], "kept")
	tok := w.token(t)
	for _, proto := range []string{"udp", "http"} {
		for _, h := range hs {
			if _, err := w.announce(proto, h); err != nil {
				t.Fatalf("%s announce: %v", proto, err)
			}
		}
	}

	for _, path := range []string{"/metrics", "/stats?format=html"} {
		if code, _, _, err := adminGet(w, path, "", ""); err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d %v, want 401", path, code, err)
		}
	}
	code, body, took, err := adminGet(w, "/metrics", tok, "")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics = %d %v", code, err)
	}
	t.Logf("GET /metrics: %d bytes in %v", len(body), took)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
	for _, tt := range []struct {
		series string
		min    float64
	}{
		{`warden_requests_total{family="ipv4",kind="announce",outcome="ok",protocol="udp"}`, 1},
		{`warden_requests_total{family="ipv4",kind="announce",outcome="refused_unregistered",protocol="udp"}`, 1},
		{`warden_requests_total{family="ipv4",kind="connect",outcome="ok",protocol="udp"}`, 2},
		{`warden_requests_total{family="ipv4",kind="announce",outcome="ok",protocol="http"}`, 1},
		{`warden_requests_total{family="ipv4",kind="announce",outcome="refused_unregistered",protocol="http"}`, 1},
		{`warden_request_duration_seconds_count{protocol="http"}`, 2},
		{`warden_registry_entries`, 1},
		{`warden_swarm_torrents`, 1},
		{`warden_udp_sockets`, 1},
		{`warden_udp_socket_drops_total`, 0},
		{`warden_tcp_listen_total{event="overflow"}`, 0},
		{`warden_guard_table_slots`, 1},
		{`process_open_fds`, 1},
		{`process_resident_memory_bytes`, 1},
	} {
		if v := metricValue(body, tt.series); v < tt.min {
			t.Errorf("%s = %v, want at least %v", tt.series, v, tt.min)
		}
	}

	code, page, _, err := adminGet(w, "/stats", tok, "text/html,application/xhtml+xml,*/*;q=0.8")
	if err != nil || code != 200 || !strings.Contains(page, "<h2>Requests by outcome</h2>") {
		t.Fatalf("GET /stats as a browser = %d %v:\n%s", code, err, page)
	}
	if code, js, _, err := adminGet(w, "/stats", tok, ""); err != nil || code != 200 || !strings.HasPrefix(strings.TrimSpace(js), "{") {
		t.Fatalf("GET /stats as a script = %d %v: %.200s", code, err, js)
	}
}

// TestStatsDuringFlood loads /stats (the page) and /metrics while `warden
// load --scenario flood` sends UDP announces as fast as it can to a warden
// that bans no one, and checks that each answer comes within a second.
func TestStatsDuringFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: floods warden; skipped in -short mode")
	}
	// No bans: warden itself reads and turns away every datagram it
	// can, rather than the kernel dropping a banned source's.
	w := startWardenWith(t, wardenOpts{admin: true, config: "[udp]\nkernel_bans = false\n[limit]\nban_after = 0\n"})
	tok := w.token(t)
	var wg sync.WaitGroup
	var flood cliResult
	wg.Go(func() {
		flood = runWarden(time.Minute, "load", "--scenario", "flood", "--udp", w.udpAddr,
			"--flood-rate", "0", "--legit-rate", "0", "--warmup", "1s", "--duration", "4s", "--json")
	})
	time.Sleep(1500 * time.Millisecond) // into the flood
	var took []time.Duration
	for i := range 6 { // bounded: 6 pages, within the flood's 4 s
		path := []string{"/stats?format=html", "/metrics"}[i%2]
		code, _, d, err := adminGet(w, path, tok, "")
		if err != nil || code != 200 {
			t.Errorf("GET %s during the flood = %d %v", path, code, err)
		}
		took = append(took, d)
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	if flood.err != nil {
		t.Fatalf("load: %v\n%s", flood.err, flood.stderr)
	}
	_, body, _, err := adminGet(w, "/metrics", tok, "")
	if err != nil {
		t.Fatal(err)
	}
	// The kernel drops what does not fit in the sockets' buffers.
	received, dropped := metricValue(body, "warden_udp_datagrams_received_total"), metricValue(body, "warden_udp_socket_drops_total")
	t.Logf("page loads during the flood: %v (warden read %.0f datagrams, the kernel dropped %.0f)", took, received, dropped)
	if slices.Max(took) > time.Second {
		t.Errorf("a page took %v during the flood, want at most 1s: %v", slices.Max(took), took)
	}
	if received+dropped < 500_000 {
		t.Errorf("only %.0f datagrams reached warden's sockets: no flood to speak of", received+dropped)
	}
}
