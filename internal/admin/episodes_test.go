package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
	"warden/internal/status"
)

// actionLog is a Recorder that keeps what it is told.
type actionLog struct {
	mu   sync.Mutex
	recs []string // "kind body"
}

func (a *actionLog) Record(_ context.Context, kind evidence.Kind, body any) {
	b, _ := json.Marshal(body)
	a.mu.Lock()
	a.recs = append(a.recs, string(kind)+" "+string(b))
	a.mu.Unlock()
}

func newEpisodeFixture(t *testing.T) (*fixture, *evidence.Episodes, *actionLog) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	guard, err := limit.NewGuard(limit.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := evidence.DefaultEpisodeConfig()
	cfg.LocationDB, cfg.TableBytes = "off", 1<<20
	eps, err := evidence.NewEpisodes(cfg.WithGuardRates(50, 500), evidence.EpisodeDeps{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &actionLog{}
	snap := func() status.Snapshot { return status.Snapshot{} }
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, Deps{Token: testToken, Registry: reg, Guard: guard,
		Knocks: evidence.NewKnocks(), Status: snap, Episodes: eps, Recorder: rec}, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &fixture{srv: ts, reg: reg}, eps, rec
}

// TestEpisodesAPI: GET /api/episodes lists the open episodes newest first,
// GET /api/episodes/{id} gives one, both behind the token.
func TestEpisodesAPI(t *testing.T) {
	f, eps, _ := newEpisodeFixture(t)
	now := time.Now()
	for i, src := range []string{"198.51.100.7", "203.0.113.9"} {
		k := evidence.Knock{Src: netip.MustParseAddr(src), Kind: evidence.ReqAnnounce, Verified: true, Action: evidence.ActRefused}
		for range 20 {
			eps.Knock(&k, now.Add(time.Duration(i)*time.Second))
		}
	}
	code, body := f.do(t, "GET", "/api/episodes", string(testToken), "")
	var list EpisodesResponse
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/episodes = %d %s (%v)", code, body, err)
	}
	if len(list.Episodes) != 2 || list.Episodes[0].Source != "203.0.113.9" || list.Episodes[1].Source != "198.51.100.7" {
		t.Fatalf("episodes = %s, want 203.0.113.9 then 198.51.100.7", body)
	}
	id := list.Episodes[1].ID
	code, body = f.do(t, "GET", "/api/episodes/"+id, string(testToken), "")
	var ep evidence.Episode
	if err := json.Unmarshal([]byte(body), &ep); code != http.StatusOK || err != nil || ep.ID != id || ep.Total != 20 || ep.Kind != evidence.EpisodeRefusals {
		t.Fatalf("GET /api/episodes/%s = %d %s", id, code, body)
	}
	tests := []struct {
		name, path, token string
		want              int
	}{
		{"no token", "/api/episodes", "", http.StatusUnauthorized},
		{"no token for one", "/api/episodes/" + id, "", http.StatusUnauthorized},
		{"unknown id", "/api/episodes/E-1-192.0.2.1", string(testToken), http.StatusNotFound},
		{"n too large", "/api/episodes?n=100000", string(testToken), http.StatusBadRequest},
		{"n not a number", "/api/episodes?n=x", string(testToken), http.StatusBadRequest},
		{"n of one", "/api/episodes?n=1", string(testToken), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := f.do(t, "GET", tt.path, tt.token, ""); code != tt.want {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, code, body, tt.want)
			}
		})
	}
}

// TestActionsRecorded: registry changes and bans made through the API go
// to the recorder, with who made them.
func TestActionsRecorded(t *testing.T) {
	f, _, rec := newEpisodeFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "ops@host"}
	ctx := context.Background()
	v1 := strings.Repeat("cd", 20)
	if _, err := c.Add(ctx, []AddTorrent{{V1: v1, Name: "Show"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, []AddTorrent{{V1: v1}}); err != nil { // exists: no record
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, v1, "expired"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restore(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ban(ctx, "192.0.2.66", time.Hour); err != nil {
		t.Fatal(err)
	}
	if code, body := f.do(t, "POST", "/api/guard/unban", string(testToken), `{"prefix":"192.0.2.66"}`); code != http.StatusOK {
		t.Fatalf("unban = %d %s", code, body)
	}
	want := []string{
		`registry.add {"info_hash":"` + v1 + `","name":"Show","by":"ops@host"}`,
		`registry.revoke {"info_hash":"` + v1 + `","name":"Show","reason":"expired","by":"ops@host"}`,
		`registry.restore {"info_hash":"` + v1 + `","name":"Show","by":"ops@host"}`,
		`ban {"prefix":"192.0.2.66/32","until":`,
		`unban {"prefix":"192.0.2.66/32","by":"api"}`,
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.recs) != len(want) {
		t.Fatalf("records:\n%s\nwant %d", strings.Join(rec.recs, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(rec.recs[i], w) {
			t.Errorf("record %d = %s, want %s...", i, rec.recs[i], w)
		}
	}
}
