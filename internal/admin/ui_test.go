package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/bittorrent"
	"warden/internal/dashboard"
	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
	"warden/internal/reqstat"
	"warden/internal/status"
)

// TestDashboardSessionOnAPI checks the API lets in a logged-in dashboard
// page (session cookie, CSRF token on changes, own origin), and nothing
// else without the bearer token; the bearer token works as before.
func TestDashboardSessionOnAPI(t *testing.T) {
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
	snap := func() status.Snapshot { return status.Snapshot{} }
	dash, err := dashboard.New(dashboard.Deps{CheckToken: testToken.Matches, Requests: func() (t [reqstat.NumOutcomes]uint64) { return t }, Guard: guard}, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(Config{Listen: "127.0.0.1:0"}, Deps{Token: testToken, Registry: reg, Guard: guard, Knocks: evidence.NewKnocks(), Status: snap, UI: dash}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {string(testToken)}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rest, ok := strings.Cut(string(page), `<meta name="csrf" content="`)
	if !ok {
		t.Fatalf("after login: %s %.300s", resp.Status, page)
	}
	csrf, _, _ := strings.Cut(rest, `"`)

	do := func(method, path, body, csrfTok, origin, bearer string, client *http.Client) int {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if csrfTok != "" {
			req.Header.Set(dashboard.CSRFHeader, csrfTok)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	hash := strings.Repeat("ab", 20)
	add := `{"torrents":[{"v1":"` + hash + `"}]}`
	tests := []struct {
		name, method, path, body, csrf, origin, bearer string
		anon                                           bool // a client without the session cookie
		want                                           int
	}{
		{name: "list with session", method: "GET", path: "/api/torrents", want: 200},
		{name: "stats with session", method: "GET", path: "/stats", want: 200},
		{name: "add without CSRF token", method: "POST", path: "/api/torrents", body: add, want: 401},
		{name: "add from another origin", method: "POST", path: "/api/torrents", body: add, csrf: csrf, origin: "http://evil.example", want: 401},
		{name: "add without session", method: "POST", path: "/api/torrents", body: add, csrf: csrf, anon: true, want: 401},
		{name: "add from the page", method: "POST", path: "/api/torrents", body: add, csrf: csrf, origin: ts.URL, want: 201},
		{name: "revoke from the page", method: "POST", path: "/api/torrents/" + hash + "/revoke", body: `{"reason":"test"}`, csrf: csrf, origin: ts.URL, want: 200},
		{name: "ban without CSRF token", method: "POST", path: "/api/guard/ban", body: `{"prefix":"192.0.2.1","duration":"1h"}`, want: 401},
		{name: "ban from the page", method: "POST", path: "/api/guard/ban", body: `{"prefix":"192.0.2.1","duration":"1h"}`, csrf: csrf, origin: ts.URL, want: 200},
		{name: "a wrong bearer token beside the session", method: "GET", path: "/api/torrents", bearer: "wrong", want: 401},
		{name: "bearer token, no session", method: "GET", path: "/api/torrents", bearer: string(testToken), anon: true, want: 200},
		{name: "restore with bearer, no CSRF", method: "POST", path: "/api/torrents/" + hash + "/restore", bearer: string(testToken), anon: true, want: 200},
	}
	for _, tt := range tests {
		client := c
		if tt.anon {
			client = http.DefaultClient
		}
		if got := do(tt.method, tt.path, tt.body, tt.csrf, tt.origin, tt.bearer, client); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d", tt.name, tt.method, tt.path, got, tt.want)
		}
	}
	ih, _ := bittorrent.ParseInfoHash(hash)
	hist, err := reg.History(t.Context(), ih)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) < 2 || hist[1].Actor != "dashboard" || hist[1].Reason != "test" {
		t.Errorf("history %+v, want the revocation by the dashboard", hist)
	}
	// "/" leads a browser to the dashboard.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET / = %d to %q, want the dashboard", resp.StatusCode, resp.Header.Get("Location"))
	}
}
