package httptracker

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/limit"
)

const testAnnounce = "/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=6881&left=0"

func newGuard(t *testing.T, cfg limit.Config, blocklist string) *limit.Guard {
	t.Helper()
	if blocklist != "" {
		cfg.BlocklistFile = filepath.Join(t.TempDir(), "blocklist.txt")
		os.WriteFile(cfg.BlocklistFile, []byte(blocklist), 0o600)
	}
	g, err := limit.NewGuard(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardedHandler(t *testing.T) {
	cfg := limit.DefaultConfig()
	cfg.RatePerSec, cfg.Burst, cfg.BanAfter, cfg.BanWindow = 1, 3, 5, time.Minute
	h := newHandler(newTestTracker(t), nil, "", false, slog.New(slog.DiscardHandler))
	h.guard = newGuard(t, cfg, "")
	var bodies []string
	var closes int
	for range 12 {
		req := httptest.NewRequest("GET", testAnnounce, nil)
		req.RemoteAddr = "10.1.1.1:4000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		bodies = append(bodies, rec.Body.String())
		if rec.Header().Get("Connection") == "close" {
			closes++
		}
	}
	for i, b := range bodies[:3] {
		if !strings.Contains(b, "8:intervali") {
			t.Fatalf("request %d within the burst: %s", i, b)
		}
	}
	if !strings.Contains(bodies[3], "rate limit exceeded") {
		t.Fatalf("request over the burst: %s, want the rate limit failure", bodies[3])
	}
	if !strings.Contains(bodies[11], "banned") || closes == 0 {
		t.Fatalf("after sustained abuse: %s (%d closes), want banned and Connection: close", bodies[11], closes)
	}
	if st := &h.stats; st.limited.n.Load() == 0 || st.banned.n.Load() == 0 {
		t.Fatalf("limited %d banned %d, want both counted", st.limited.n.Load(), st.banned.n.Load())
	}
	// Another source is served.
	req := httptest.NewRequest("GET", testAnnounce, nil)
	req.RemoteAddr = "10.2.2.2:4000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), "8:intervali") {
		t.Fatalf("unrelated source refused: %s", rec.Body.String())
	}
}

// TestConnectionLimits opens more idle connections from one source than
// it may hold and checks that the excess is closed at once while another
// source is still served.
func TestConnectionLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConnsPerSource, cfg.MaxConns = 8, 100
	s, err := Listen("127.0.0.1:0", newTestTracker(t), newGuard(t, limit.DefaultConfig(), "127.0.0.9/32\n"), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	dial := func(local string) net.Conn { return dialFrom(t, s, local) }
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF || err != nil && !isTimeout(err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 12 {
		conns = append(conns, dial("127.0.0.2"))
	}
	closed := 0
	for _, c := range conns {
		if closedByServer(c) {
			closed++
		}
	}
	if closed != 4 {
		t.Fatalf("12 idle connections with max_conns_per_source 8: %d closed, want 4", closed)
	}
	if c := dial("127.0.0.9"); !closedByServer(c) {
		t.Fatal("blocklisted source's connection left open")
	}
	c := dial("127.0.0.3")
	defer c.Close()
	io.WriteString(c, "GET "+testAnnounce+" HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("other source not served: %v %v", resp, err)
	}
	if st := s.Stats(); st.ConnsRefused != 5 {
		t.Fatalf("conns_refused = %d, want 5", st.ConnsRefused)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestRefusalsCost checks that announces the tracker refuses (a torrent it
// does not track) weigh refusal_cost requests each against their source,
// so a source that keeps asking after being told is limited sooner, and
// that tracked announces still cost one.
func TestRefusalsCost(t *testing.T) {
	foreign := "/announce?info_hash=%fe%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00&peer_id=bbbbbbbbbbbbbbbbbbbb&port=6881&left=0"
	tests := []struct {
		name        string
		cost        int
		target      string
		wantAnswers int // before the first "rate limit exceeded", of 150
	}{
		{"refused, cost 10", 10, foreign, 10},
		{"refused, cost 1", 1, foreign, 100},
		{"refused, cost 0", 0, foreign, 100},
		{"tracked, cost 10", 10, "/announce?info_hash=" + url.QueryEscape(string(testHash[:])) + "&peer_id=bbbbbbbbbbbbbbbbbbbb&port=6881&left=0", 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := limit.DefaultConfig()
			cfg.RatePerSec, cfg.Burst, cfg.RefusalCost = 1, 100, tt.cost
			h := newHandler(allowlistTracker(""), nil, "", false, slog.New(slog.DiscardHandler))
			h.guard = newGuard(t, cfg, "")
			answers := 0
			for range 150 {
				body := get(h, "198.51.100.7:4000", tt.target).Body.String()
				if strings.Contains(body, "rate limit exceeded") {
					break
				}
				answers++
			}
			if answers != tt.wantAnswers {
				t.Fatalf("%d answered before the rate limit, want %d", answers, tt.wantAnswers)
			}
		})
	}
}
