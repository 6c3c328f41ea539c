package admin

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
	"warden/internal/status"
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
		{"nonsense", false, `listen: must be host:port, got "nonsense"`},
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
	knocks := evidence.NewKnocks()
	tr.ReportRefusals(knocks)
	guard, err := limit.NewGuard(limit.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	snap := func() status.Snapshot { return status.Snapshot{Registry: status.Registry{Entries: 3}} }
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, Deps{Token: testToken, Registry: reg, Guard: guard, Knocks: knocks, Status: snap}, log)
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
			{"GET", "/api/refused", ""},
			{"GET", "/api/guard/bans", ""},
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
	if code, body := f.do(t, "GET", "/stats", string(testToken), ""); code != 200 || !strings.Contains(body, `"entries": 3`) {
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
	rj, err := c.Refused(ctx, 5)
	if err != nil || rj.Revoked != 1 || len(rj.TopHashes) != 1 || rj.TopHashes[0].Key != ih {
		t.Fatalf("Refused = %+v, %v", rj, err)
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
		{"GET", "/api/refused?n=0", "", 400, "n: must be"},
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

// TestAuditAPI reads the registry's audit log through the API: one
// torrent's history by any of its names, and the whole log in pages.
func TestAuditAPI(t *testing.T) {
	f := newFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "alice@host"}
	ctx := context.Background()
	v1, v2 := strings.Repeat("ab", 20), strings.Repeat("cd", 32)

	if _, err := c.Add(ctx, []AddTorrent{{V1: v1, V2: v2, Name: "hybrid"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, v1, "license expired"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restore(ctx, v2); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action registry.Action
		state  registry.State
		reason string
	}{
		{registry.ActionAdd, registry.Active, ""},
		{registry.ActionRevoke, registry.Revoked, "license expired"},
		{registry.ActionRestore, registry.Active, ""},
	}
	for _, name := range []string{v1, v2, v2[:40]} { // v1, full v2, truncated v2
		hist, err := c.History(ctx, name)
		if err != nil || len(hist) != len(want) {
			t.Fatalf("History(%s) = %+v, %v; want %d changes", name, hist, err, len(want))
		}
		for i, w := range want {
			h := hist[i]
			if h.Action != w.action || h.NewState != w.state || h.Reason != w.reason || h.Actor != "alice@host" ||
				h.Name != "hybrid" || h.V1.String() != v1 || h.V2.String() != v2 {
				t.Errorf("History(%s)[%d] = %+v, want %+v by alice@host", name, i, h, w)
			}
		}
	}

	// More rows than one default page: the reply is bounded all the same.
	bulk := make([]AddTorrent, DefaultChangesLimit+20)
	for i := range bulk {
		bulk[i] = AddTorrent{V1: fmt.Sprintf("%040x", i+1)}
	}
	if _, err := c.Add(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	total := len(want) + len(bulk)
	page, err := c.Changes(ctx, 0, 0)
	if err != nil || len(page) != DefaultChangesLimit {
		t.Fatalf("Changes(0, 0) = %d rows, %v; want the default page of %d", len(page), err, DefaultChangesLimit)
	}
	var all []registry.Change
	for after := int64(0); ; {
		page, err := c.Changes(ctx, after, 50)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 50 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(all) != total {
		t.Fatalf("paging by 50 read %d rows, want %d", len(all), total)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("rows out of order: seq %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
	if all[1].Action != registry.ActionRevoke || all[len(all)-1].V1.String() != bulk[len(bulk)-1].V1 {
		t.Errorf("rows are not the log in order: second %+v, last %+v", all[1], all[len(all)-1])
	}

	tok := string(testToken)
	if code, body := f.do(t, "GET", "/api/changes?after="+fmt.Sprint(all[len(all)-1].Seq), tok, ""); code != 200 || !strings.Contains(body, `"changes": []`) {
		t.Errorf("GET /api/changes past the end = %d %s, want 200 and an empty list", code, body)
	}
	unknown := strings.Repeat("ef", 20)
	tests := []struct {
		path, token string
		code        int
		want        string
	}{
		{"/api/torrents/" + unknown + "/history", tok, 404, "not registered"},
		{"/api/torrents/" + strings.Repeat("ef", 32) + "/history", tok, 404, "not registered"},
		{"/api/torrents/xyz/history", tok, 400, "40 or 64 hex"},
		{"/api/changes?after=-1", tok, 400, "after: must be"},
		{"/api/changes?after=x", tok, 400, "after: must be"},
		{"/api/changes?limit=0", tok, 400, "limit: must be 1-1000"},
		{"/api/changes?limit=1001", tok, 400, "limit: must be 1-1000"},
		{"/api/changes?limit=ten", tok, 400, "limit: must be"},
		{"/api/changes", "", 401, "bearer token"},
		{"/api/torrents/" + v1 + "/history", "wrong", 401, "bearer token"},
	}
	for _, tt := range tests {
		code, body := f.do(t, "GET", tt.path, tt.token, "")
		var e struct{ Error string }
		if code != tt.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tt.want) {
			t.Errorf("GET %s = %d %s, want %d with %q", tt.path, code, body, tt.code, tt.want)
		}
	}
}

func TestBanAPI(t *testing.T) {
	f := newFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "test"}
	ctx := context.Background()
	before := time.Now()
	b, err := c.Ban(ctx, "192.0.2.66", time.Hour)
	if err != nil || b.Prefix != netip.MustParsePrefix("192.0.2.66/32") || b.Strikes != 1 ||
		b.Until.Before(before.Add(time.Hour)) || b.Until.After(time.Now().Add(time.Hour)) {
		t.Fatalf("Ban = %+v, %v; want 192.0.2.66/32 for an hour", b, err)
	}
	bans, err := c.Bans(ctx)
	if err != nil || len(bans.Bans) != 1 || bans.Bans[0].Prefix != b.Prefix {
		t.Fatalf("Bans = %+v, %v; want the new ban", bans, err)
	}

	tests := []struct {
		name, body string
		want       int
		wantErr    string
	}{
		{"wider than a key", `{"prefix":"10.0.0.0/8","duration":"1h"}`, 400, "wider ranges go in the blocklist"},
		{"host bits", `{"prefix":"10.0.0.1/8","duration":"1h"}`, 400, `prefix: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?`},
		{"IPv4-mapped", `{"prefix":"::ffff:192.0.2.1","duration":"1h"}`, 400, "write the IPv4 form 192.0.2.1"},
		{"no duration", `{"prefix":"192.0.2.1"}`, 400, `duration: \"\" is not a duration`},
		{"bad duration", `{"prefix":"192.0.2.1","duration":"soon"}`, 400, `duration: \"soon\" is not a duration`},
		{"negative duration", `{"prefix":"192.0.2.1","duration":"-1h"}`, 400, "duration must be more than 0"},
		{"unknown field", `{"prefix":"192.0.2.1","duration":"1h","why":"x"}`, 400, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.do(t, "POST", "/api/guard/ban", string(testToken), tt.body)
			if code != tt.want || !strings.Contains(body, tt.wantErr) {
				t.Errorf("POST /api/guard/ban %s = %d %s, want %d with %q", tt.body, code, body, tt.want, tt.wantErr)
			}
		})
	}
	if code, body := f.do(t, "POST", "/api/guard/ban", "", `{"prefix":"192.0.2.1","duration":"1h"}`); code != http.StatusUnauthorized {
		t.Errorf("POST /api/guard/ban without token = %d %s, want 401", code, body)
	}

	if err := c.Unban(ctx, "::ffff:192.0.2.66"); !IsStatus(err, http.StatusBadRequest) {
		t.Errorf("Unban(IPv4-mapped) = %v, want 400", err)
	}
	if err := c.Unban(ctx, "192.0.2.66"); err != nil {
		t.Fatalf("Unban = %v", err)
	}
	if err := c.Unban(ctx, "192.0.2.66"); !IsStatus(err, http.StatusNotFound) {
		t.Errorf("second Unban = %v, want 404", err)
	}
}

// TestRegistryBusy holds a write transaction on the registry's file from
// another connection, as another process would: reads still answer, and a
// change is refused with 503 and Retry-After, which the client reports as
// "registry busy" with nothing changed.
func TestRegistryBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the registry's busy timeout")
	}
	f := newFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "test"}
	ctx := context.Background()
	v1 := strings.Repeat("ab", 20)
	if _, err := c.Add(ctx, []AddTorrent{{V1: v1}}); err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", "file:"+f.reg.Path()+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("UPDATE meta SET generation = generation"); err != nil {
		t.Fatal(err)
	}

	if list, err := c.List(ctx, ""); err != nil || len(list) != 1 {
		t.Errorf("List while another connection writes = %d entries, %v", len(list), err)
	}
	// One change only: a second would wait for the first's busy timeout
	// before starting its own.
	_, err = c.Revoke(ctx, v1, "x")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter <= 0 ||
		!strings.Contains(err.Error(), "registry busy") || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("Revoke while another connection writes = %v, want a 503 saying registry busy, try again", err)
	}
	if e, err := c.Get(ctx, v1); err != nil || e.State != registry.Active {
		t.Errorf("after the refused revoke, Get = %+v, %v; want active", e, err)
	}
}

// TestBackupAPI takes a backup through the API while the registry's recent
// changes are still in its write-ahead log, and checks the copy: a
// registry holding every entry, as the headers say, with nothing left
// behind in the registry's directory.
func TestBackupAPI(t *testing.T) {
	f := newFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "test"}
	ctx := context.Background()
	bulk := make([]AddTorrent, 500)
	for i := range bulk {
		bulk[i] = AddTorrent{V1: fmt.Sprintf("%040x", i+1)}
	}
	if _, err := c.Add(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, bulk[7].V1, "gone"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Backup(ctx, out)
	out.Close()
	if err != nil || info.Entries != 500 {
		t.Fatalf("Backup = %+v, %v; want 500 entries", info, err)
	}
	if got, err := registry.Inspect(ctx, path); err != nil || got != info {
		t.Fatalf("Inspect(backup) = %+v, %v; want %+v as the server said", got, err, info)
	}
	copyReg, err := registry.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer copyReg.Close()
	ih, _ := bittorrent.ParseInfoHash(bulk[7].V1)
	if st, reason, ok := copyReg.Lookup(ih); !ok || st != registry.Revoked || reason != "gone" {
		t.Errorf("the backup has entry 7 as %v %q %v, want revoked: gone", st, reason, ok)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.reg.Path()), ".registry-backup-*"))
	if len(left) > 0 {
		t.Errorf("backup left files in the registry's directory: %v", left)
	}
	if code, _ := f.do(t, "GET", "/api/registry/backup", "", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/registry/backup without token = %d, want 401", code)
	}
}

// TestListPages lists a registry larger than a page: the API answers a
// bounded page with where to read on, the client's Walk reads every entry
// once, in order, and out-of-range limits and oversized adds are refused.
func TestListPages(t *testing.T) {
	f := newFixture(t)
	c := &Client{BaseURL: f.srv.URL, Token: testToken, Actor: "test"}
	ctx := context.Background()
	const n = 2*DefaultListLimit + 500
	bulk := make([]AddTorrent, n)
	for i := range bulk {
		bulk[i] = AddTorrent{V1: fmt.Sprintf("%040x", i+1), Name: fmt.Sprint("torrent ", i)}
	}
	if _, err := c.Add(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, bulk[5].V1, "gone"); err != nil {
		t.Fatal(err)
	}

	page, err := c.ListPage(ctx, ListQuery{})
	if err != nil || len(page.Torrents) != DefaultListLimit || page.NextAfter != page.Torrents[DefaultListLimit-1].ID {
		t.Fatalf("first default page: %d entries, next_after %d, %v; want %d and the last ID", len(page.Torrents), page.NextAfter, err, DefaultListLimit)
	}
	last, err := c.ListPage(ctx, ListQuery{After: int64(n - 10), Limit: 10})
	if err != nil || len(last.Torrents) != 10 || last.NextAfter != 0 {
		t.Fatalf("last page, exactly full: %d entries, next_after %d, %v; want 10 and no next", len(last.Torrents), last.NextAfter, err)
	}
	if empty, err := c.ListPage(ctx, ListQuery{After: int64(n)}); err != nil || len(empty.Torrents) != 0 || empty.NextAfter != 0 {
		t.Fatalf("past the end: %+v, %v", empty, err)
	}
	if rev, err := c.ListPage(ctx, ListQuery{State: "revoked"}); err != nil || len(rev.Torrents) != 1 || rev.Torrents[0].Reason != "gone" {
		t.Fatalf("revoked page: %+v, %v", rev, err)
	}
	if named, err := c.ListPage(ctx, ListQuery{Name: "TORRENT 250"}); err != nil || len(named.Torrents) != 1 {
		t.Fatalf("name filter: %d entries, %v; want 1", len(named.Torrents), err)
	}

	for _, limit := range []int{0, 7, MaxListLimit} {
		var ids []int64
		err := c.Walk(ctx, ListQuery{Limit: limit}, func(e *registry.Entry) error {
			ids = append(ids, e.ID)
			return nil
		})
		if err != nil || len(ids) != n {
			t.Fatalf("Walk by %d: %d entries, %v; want %d", limit, len(ids), err, n)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("Walk by %d: ID %d after %d", limit, ids[i], ids[i-1])
			}
		}
	}

	tok := string(testToken)
	for _, q := range []string{"limit=0", "limit=-1", fmt.Sprint("limit=", MaxListLimit+1), "after=x"} {
		if code, body := f.do(t, "GET", "/api/torrents?"+q, tok, ""); code != http.StatusBadRequest {
			t.Errorf("GET /api/torrents?%s = %d %s, want 400", q, code, body)
		}
	}
	big := make([]AddTorrent, MaxAddBatch+1)
	for i := range big {
		big[i] = AddTorrent{V1: fmt.Sprintf("%040x", n+i+1)}
	}
	if _, err := c.Add(ctx, big); !IsStatus(err, http.StatusRequestEntityTooLarge) || !strings.Contains(err.Error(), "batches") {
		t.Errorf("Add of %d torrents = %v, want 413 asking for batches", len(big), err)
	}
	if f.reg.Len() != n {
		t.Errorf("after the refused add the registry has %d entries, want %d", f.reg.Len(), n)
	}
}
