package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/registry"
	"warden/internal/swarm/memswarm"
	"warden/internal/swarm/swarmtest"
	"warden/internal/tracker"
)

const testToken = Token("0123456789abcdef0123456789abcdef")

func TestValidate(t *testing.T) {
	tests := []struct {
		listen  string
		public  bool
		wantErr string
	}{
		{"127.0.0.1:7070", false, ""},
		{"[::1]:7070", false, ""},
		{"localhost:7070", false, ""},
		{"10.1.2.3:7070", false, ""},
		{"", false, ""},
		{":7070", false, "every interface"},
		{"0.0.0.0:7070", false, "every interface"},
		{"[::]:7070", false, "every interface"},
		{"203.0.113.5:7070", false, "public address"},
		{"203.0.113.5:7070", true, ""},
		{":7070", true, ""},
		{"nonsense", false, "missing port"},
	}
	for _, tt := range tests {
		err := Config{Listen: tt.listen, AllowPublic: tt.public}.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Validate(%q, public=%v) = %v, want error containing %q", tt.listen, tt.public, err, tt.wantErr)
		}
	}
}

type fixture struct {
	srv *httptest.Server
	reg *registry.Registry
	tr  *tracker.Tracker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	tr := tracker.New(memswarm.New(swarmtest.Config()), reg, tracker.DefaultConfig(), log)
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, Deps{Token: testToken, Registry: reg, Tracker: tr, Stats: func() any { return map[string]int{"torrents": 3} }}, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &fixture{srv: ts, reg: reg, tr: tr}
}

func (f *fixture) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	f := newFixture(t)
	hash := strings.Repeat("ab", 20)
	for _, tok := range []string{"", "wrong", string(testToken) + "x", strings.ToUpper(string(testToken))} {
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/stats", ""},
			{"GET", "/api/torrents", ""},
			{"POST", "/api/torrents", `{"torrents":[{"v1":"` + hash + `"}]}`},
			{"POST", "/api/torrents/" + hash + "/revoke", `{"reason":"x"}`},
			{"GET", "/api/rejected", ""},
		} {
			if code, body := f.do(t, req.method, req.path, tok, req.body); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q = %d %s, want 401", req.method, req.path, tok, code, body)
			}
		}
	}
	if n := f.reg.Len(); n != 0 {
		t.Fatalf("unauthenticated requests changed the registry: %d entries", n)
	}
	if code, _ := f.do(t, "GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("GET /healthz without token = %d, want 200", code)
	}
	if code, body := f.do(t, "GET", "/stats", string(testToken), ""); code != 200 || !strings.Contains(body, `"torrents": 3`) {
		t.Fatalf("GET /stats = %d %s", code, body)
	}
}

func TestRegistryAPI(t *testing.T) {
	f := newFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "test"}
	ctx := context.Background()
	v1 := strings.Repeat("ab", 20)
	ih, _ := bittorrent.ParseInfoHash(v1)

	resp, err := c.Add(ctx, []AddTorrent{{V1: v1, Name: "Show 1"}})
	if err != nil || resp.Added != 1 || resp.Torrents[0].Name != "Show 1" || resp.Torrents[0].AddedBy != "test" {
		t.Fatalf("Add = %+v, %v", resp, err)
	}
	if !f.reg.Tracked(ih) {
		t.Fatal("added torrent not tracked")
	}
	if resp, err = c.Add(ctx, []AddTorrent{{V1: v1}}); err != nil || resp.Existing != 1 {
		t.Fatalf("second Add = %+v, %v; want existing", resp, err)
	}
	e, err := c.Revoke(ctx, v1, "expired license")
	if err != nil || e.State != registry.Revoked || e.Reason != "expired license" {
		t.Fatalf("Revoke = %+v, %v", e, err)
	}
	var ar bittorrent.AnnounceResponse
	err = f.tr.Announce(ctx, &bittorrent.AnnounceRequest{InfoHash: ih, Addr: netip.MustParseAddrPort("10.0.0.1:6881"), NumWant: -1}, &ar)
	if ref, ok := err.(*bittorrent.Refusal); !ok || ref.Reason != "revoked: expired license" {
		t.Fatalf("announce of revoked torrent = %v, want refusal with the reason", err)
	}
	if e, err = c.Restore(ctx, v1); err != nil || e.State != registry.Active {
		t.Fatalf("Restore = %+v, %v", e, err)
	}
	if e, err = c.Get(ctx, v1); err != nil || e.V1 != ih {
		t.Fatalf("Get = %+v, %v", e, err)
	}
	bulk := []AddTorrent{{V1: strings.Repeat("01", 20)}, {V2: strings.Repeat("02", 32), Name: "v2 only"}, {V1: v1}}
	if resp, err = c.Add(ctx, bulk); err != nil || resp.Added != 2 || resp.Existing != 1 {
		t.Fatalf("bulk Add = %+v, %v", resp, err)
	}
	list, err := c.List(ctx, "active")
	if err != nil || len(list) != 3 {
		t.Fatalf("List(active) = %d entries, %v; want 3", len(list), err)
	}
	if e, err = c.Get(ctx, strings.Repeat("02", 32)); err != nil || e.Name != "v2 only" {
		t.Fatalf("Get(full v2) = %+v, %v", e, err)
	}
	rj, err := c.Rejected(ctx, 5)
	if err != nil || rj.Revoked != 1 || len(rj.TopHashes) != 1 || rj.TopHashes[0].Key != ih {
		t.Fatalf("Rejected = %+v, %v", rj, err)
	}
}

func TestRegistryAPIErrors(t *testing.T) {
	f := newFixture(t)
	tok := string(testToken)
	unknown := strings.Repeat("cd", 20)
	tests := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/torrents", `{"torrents":[]}`, 400, "at least one"},
		{"POST", "/api/torrents", `{"torrents":[{"v1":"xyz"}]}`, 400, "torrents[0]: v1"},
		{"POST", "/api/torrents", `{"torrents":[{"name":"no hash"}]}`, 400, "give v1, v2 or both"},
		{"POST", "/api/torrents", `{"torents":[]}`, 400, "unknown field"},
		{"POST", "/api/torrents", `not json`, 400, "request body"},
		{"GET", "/api/torrents/" + unknown, "", 404, "not registered"},
		{"GET", "/api/torrents/12", "", 400, "40 or 64 hex"},
		{"POST", "/api/torrents/" + unknown + "/revoke", `{"reason":"x"}`, 404, "not registered"},
		{"POST", "/api/torrents/" + unknown + "/restore", "", 404, "not registered"},
		{"GET", "/api/torrents?state=gone", "", 400, "state"},
		{"GET", "/api/rejected?n=0", "", 400, "n: must be"},
	}
	for _, tt := range tests {
		code, body := f.do(t, tt.method, tt.path, tok, tt.body)
		var e struct{ Error string }
		if code != tt.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tt.want) {
			t.Errorf("%s %s %s = %d %s, want %d with %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.want)
		}
	}
	// Revoking needs a reason: clients are told it.
	f.do(t, "POST", "/api/torrents", tok, `{"torrents":[{"v1":"`+unknown+`"}]}`)
	if code, body := f.do(t, "POST", "/api/torrents/"+unknown+"/revoke", tok, `{"reason":""}`); code != 400 {
		t.Errorf("revoke without reason = %d %s, want 400", code, body)
	}
}

func TestToken(t *testing.T) {
	t.Setenv(TokenEnv, "")
	dir := t.TempDir()
	tok, created, err := LoadOrCreateToken(dir)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first LoadOrCreateToken = %d chars, created %v, %v", len(tok), created, err)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreateToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second LoadOrCreateToken: created %v, same %v, %v", created, again == tok, err)
	}
	if s := tok.String(); strings.Contains(s, string(tok)) {
		t.Fatalf("Token.String leaks the token: %s", s)
	}
	os.Chmod(filepath.Join(dir, TokenFile), 0o644)
	if _, _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file accepted: %v", err)
	}
	t.Setenv(TokenEnv, "short")
	if _, _, err := LoadOrCreateToken(dir); err == nil {
		t.Fatal("short WARDEN_TOKEN accepted")
	}
	t.Setenv(TokenEnv, string(testToken))
	if tok, _, err := LoadOrCreateToken(dir); err != nil || tok != testToken {
		t.Fatalf("WARDEN_TOKEN not used: %v", err)
	}
}
