package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAdminAuth checks the admin API's guard from outside the process: a
// request without the bearer token, or with a wrong one, gets 401 and
// changes nothing; the API is not served on the tracker's port; and warden
// refuses to start with the admin API on a wildcard or public address.
func TestAdminAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden processes; skipped in -short mode")
	}
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		testAdminToken(t)
	})
	t.Run("bind", func(t *testing.T) {
		t.Parallel()
		testAdminBind(t)
	})
}

func testAdminToken(t *testing.T) {
	w := startWardenWith(t, wardenOpts{admin: true})
	hs := randomHashes(2)
	active, other := hs[0], hs[1]
	w.register(t, active, "kept")
	before := w.list(t)
	tok := w.token(t)

	wrong := []struct {
		name, auth string // auth is the Authorization header; "" sends none
	}{
		{"no token", ""},
		{"wrong token", "Bearer " + strings.Repeat("0", len(tok))},
		{"token with its last digit changed", "Bearer " + tok[:len(tok)-1] + otherDigit(tok[len(tok)-1])},
		{"token prefix", "Bearer " + tok[:len(tok)/2]},
		{"token without Bearer", tok},
		{"basic auth", "Basic " + tok},
		{"empty bearer", "Bearer "},
	}
	requests := []struct {
		method, path, body string
	}{
		{"GET", "/api/torrents", ""},
		{"POST", "/api/torrents", `{"torrents":[{"v1":"` + other + `"}]}`},
		{"GET", "/api/torrents/" + active, ""},
		{"POST", "/api/torrents/" + active + "/revoke", `{"reason":"not authorized"}`},
		{"POST", "/api/torrents/" + active + "/restore", ""},
		{"GET", "/api/refused", ""},
		{"GET", "/stats", ""},
	}
	c := http.Client{Timeout: 5 * time.Second}
	for _, a := range wrong {
		for _, r := range requests {
			req, err := http.NewRequest(r.method, w.adminURL+r.path, strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			if a.auth != "" {
				req.Header.Set("Authorization", a.auth)
			}
			if r.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: HTTP %d, want 401", r.method, r.path, a.name, resp.StatusCode)
			}
		}
	}
	// The token in the query string is not a token.
	code, _, err := w.adminDo("GET", "/api/torrents?token="+tok, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusUnauthorized {
		t.Errorf("GET /api/torrents?token=TOKEN: HTTP %d, want 401", code)
	}

	after := w.list(t)
	if len(after) != len(before) || !after[0].equal(before[0]) {
		t.Errorf("after unauthorized requests the registry lists\n%v\nwant it unchanged:\n%v", after, before)
	}
	for _, proto := range []string{"http", "udp"} {
		if a, err := w.announce(proto, active); err != nil || a.refused {
			t.Errorf("%s announce of the registered torrent after unauthorized revokes: %+v, %v; want accepted", proto, a, err)
		}
	}

	// /healthz is open, for load balancers; it tells nothing.
	code, body, err := w.adminDo("GET", "/healthz", "", nil)
	if err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz without a token: %d %s %v, want 200", code, body, err)
	}

	// The tracker's HTTP port serves announces and scrapes only, even with
	// the right token.
	for _, path := range []string{"/api/torrents", "/api/refused", "/stats", "/healthz"} {
		req, err := http.NewRequest("GET", "http://"+w.httpAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the tracker port: HTTP %d, want 404", path, resp.StatusCode)
		}
	}
}

// otherDigit returns a hex digit other than d.
func otherDigit(d byte) string {
	if d == '0' {
		return "1"
	}
	return "0"
}

func testAdminBind(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	tests := []struct {
		admin, want string
	}{
		{"0.0.0.0:" + port, "admin.listen: 0.0.0.0:" + port + " listens on every interface; use a loopback or private address, or set allow_public"},
		{":" + port, "admin.listen: :" + port + " listens on every interface; use a loopback or private address, or set allow_public"},
		{"[::]:" + port, "admin.listen: [::]:" + port + " listens on every interface; use a loopback or private address, or set allow_public"},
		// Refused before any socket is opened, so no traffic leaves loopback.
		{"192.0.2.1:" + port, "admin.listen: 192.0.2.1:" + port + " is a public address; use a loopback or private address, or set allow_public"},
	}
	for _, tt := range tests {
		r := runWarden(15*time.Second, "serve",
			"--http", loopbackAddr(t), "--udp", loopbackAddr(t), "--admin", tt.admin, "--data", t.TempDir())
		if r.err == nil {
			t.Errorf("warden serve --admin %s exited 0, want a refusal", tt.admin)
			continue
		}
		if got := lastLine(r.stderr); !strings.Contains(got, tt.want) {
			t.Errorf("warden serve --admin %s: %q, want it to say %q", tt.admin, got, tt.want)
		}
		if r.took > 5*time.Second {
			t.Errorf("warden serve --admin %s took %v to refuse", tt.admin, r.took)
		}
		// Nothing listens on the port.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
			c.Close()
			t.Errorf("after refusing --admin %s, something accepts connections on 127.0.0.1:%s", tt.admin, port)
		}
	}

	// With admin.allow_public the address is not refused: warden tries to
	// bind it. 192.0.2.1 (TEST-NET-1) is not on this host, so the bind
	// fails and nothing is exposed.
	cfg := filepath.Join(t.TempDir(), "warden.toml")
	if err := os.WriteFile(cfg, []byte("[admin]\nallow_public = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runWarden(15*time.Second, "serve", "--config", cfg,
		"--http", loopbackAddr(t), "--udp", loopbackAddr(t), "--admin", "192.0.2.1:"+port, "--data", t.TempDir())
	got := lastLine(r.stderr)
	if r.err == nil || strings.Contains(got, "allow_public") || !strings.Contains(got, "bind") {
		t.Errorf("warden serve --admin 192.0.2.1:%s with allow_public: %v, %q; want it to try to bind the address", port, r.err, got)
	}
}
