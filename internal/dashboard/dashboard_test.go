package dashboard

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/reqstat"
)

const testToken = "0123456789abcdef0123456789abcdef"

type fixture struct {
	d      *Dashboard
	srv    *httptest.Server
	knocks *evidence.Knocks
	guard  *limit.Guard
	ok     atomic.Uint64 // the OK requests Status reports
	logBuf *bytes.Buffer
}

func newFixture(t *testing.T, tls bool) *fixture {
	t.Helper()
	f := &fixture{knocks: evidence.NewKnocks(), logBuf: new(bytes.Buffer)}
	log := slog.New(slog.NewTextHandler(f.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if f.guard, err = limit.NewGuard(limit.DefaultConfig(), log); err != nil {
		t.Fatal(err)
	}
	f.d, err = New(Deps{
		CheckToken: func(s string) bool { return s == testToken },
		Requests: func() (t [reqstat.NumOutcomes]uint64) {
			t[reqstat.OK] = f.ok.Load()
			return t
		},
		Knocks: f.knocks,
		Guard:  f.guard,
		Org:    func(netip.Addr) string { return "AS64500 Example Net" },
		Config: "[admin]\nlisten = \"127.0.0.1:7070\"\n",
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	if tls {
		f.srv = httptest.NewTLSServer(f.d.Handler())
	} else {
		f.srv = httptest.NewServer(f.d.Handler())
	}
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a client with a cookie jar that does not follow
// redirects.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := f.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// login posts the login form from the dashboard's own origin.
func (f *fixture) login(t *testing.T, c *http.Client, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+Prefix+"login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// session logs in and returns the session cookie and the CSRF token the
// page carries.
func (f *fixture) session(t *testing.T) (*http.Client, *http.Cookie, string) {
	t.Helper()
	c := f.client()
	resp := f.login(t, c, testToken)
	var ck *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == CookieName {
			ck = x
		}
	}
	if ck == nil {
		t.Fatalf("login: %s, no session cookie", resp.Status)
	}
	page := f.get(t, c, Prefix)
	_, rest, ok := strings.Cut(page, `<meta name="csrf" content="`)
	if !ok {
		t.Fatalf("the page has no CSRF token:\n%s", page)
	}
	csrf, _, _ := strings.Cut(rest, `"`)
	return c, ck, csrf
}

func (f *fixture) get(t *testing.T, c *http.Client, path string) string {
	t.Helper()
	resp, err := c.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %s %s", path, resp.Status, b)
	}
	return string(b)
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name, token, origin string
		wantCode            int
		wantLocation        string
		wantCookie          bool
	}{
		{name: "right token", token: testToken, origin: "self", wantCode: 303, wantLocation: Prefix, wantCookie: true},
		{name: "right token, no Origin (not a browser)", token: testToken, wantCode: 303, wantLocation: Prefix, wantCookie: true},
		{name: "wrong token", token: testToken + "x", origin: "self", wantCode: 303, wantLocation: Prefix + "login?e=wrong"},
		{name: "empty token", token: "", origin: "self", wantCode: 303, wantLocation: Prefix + "login?e=wrong"},
		{name: "another site's form", token: testToken, origin: "http://evil.example", wantCode: 403},
		{name: "opaque origin", token: testToken, origin: "null", wantCode: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false)
			req, _ := http.NewRequest("POST", f.srv.URL+Prefix+"login", strings.NewReader(url.Values{"token": {tt.token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			switch tt.origin {
			case "":
			case "self":
				req.Header.Set("Origin", f.srv.URL)
			default:
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := f.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || resp.Header.Get("Location") != tt.wantLocation {
				t.Errorf("login = %d to %q, want %d to %q", resp.StatusCode, resp.Header.Get("Location"), tt.wantCode, tt.wantLocation)
			}
			got := len(resp.Cookies()) > 0
			if got != tt.wantCookie {
				t.Errorf("login set a cookie: %v, want %v", got, tt.wantCookie)
			}
			if n := f.d.sessions.len(); n != map[bool]int{true: 1}[tt.wantCookie] {
				t.Errorf("%d sessions after the login", n)
			}
			if strings.Contains(f.logBuf.String(), testToken) || strings.Contains(resp.Header.Get("Location"), testToken) {
				t.Errorf("the token leaked into the log or a URL:\n%s", f.logBuf)
			}
		})
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		f := newFixture(t, tls)
		resp := f.login(t, f.client(), testToken)
		cs := resp.Cookies()
		if len(cs) != 1 {
			t.Fatalf("tls=%v: cookies %v", tls, cs)
		}
		c := cs[0]
		if c.Name != CookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tls {
			t.Errorf("tls=%v: cookie %s: want HttpOnly, SameSite=Strict, Path=/, Secure=%v", tls, resp.Header.Get("Set-Cookie"), tls)
		}
		if len(c.Value) != 64 || c.Value == testToken {
			t.Errorf("tls=%v: the cookie's value %q is not a 32-byte random ID", tls, c.Value)
		}
	}
}

func TestAuthorize(t *testing.T) {
	f := newFixture(t, false)
	_, ck, csrf := f.session(t)
	tests := []struct {
		name, method string
		cookie       string // "" none, "live" the session's
		csrf         string
		origin       string
		fetchSite    string
		want         bool
	}{
		{name: "no cookie", method: "GET", want: false},
		{name: "unknown session", method: "GET", cookie: strings.Repeat("ab", 32), want: false},
		{name: "GET with session", method: "GET", cookie: "live", want: true},
		{name: "POST without CSRF token", method: "POST", cookie: "live", want: false},
		{name: "POST with a wrong CSRF token", method: "POST", cookie: "live", csrf: strings.Repeat("0", 64), want: false},
		{name: "POST with the token cut short", method: "POST", cookie: "live", csrf: csrf[:63], want: false},
		{name: "POST from another origin", method: "POST", cookie: "live", csrf: csrf, origin: "http://evil.example", want: false},
		{name: "POST from another port", method: "POST", cookie: "live", csrf: csrf, origin: "http://127.0.0.1:1", want: false},
		{name: "POST cross-site by Sec-Fetch-Site", method: "POST", cookie: "live", csrf: csrf, fetchSite: "cross-site", want: false},
		{name: "POST from the page", method: "POST", cookie: "live", csrf: csrf, origin: "self", fetchSite: "same-origin", want: true},
		{name: "DELETE from the page", method: "DELETE", cookie: "live", csrf: csrf, origin: "self", want: true},
		{name: "CSRF token without a session", method: "POST", csrf: csrf, origin: "self", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, f.srv.URL+"/api/guard/ban", nil)
			switch tt.cookie {
			case "":
			case "live":
				r.AddCookie(ck)
			default:
				r.AddCookie(&http.Cookie{Name: CookieName, Value: tt.cookie})
			}
			if tt.csrf != "" {
				r.Header.Set(CSRFHeader, tt.csrf)
			}
			if tt.origin == "self" {
				r.Header.Set("Origin", f.srv.URL)
			} else if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.fetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tt.fetchSite)
			}
			actor, ok := f.d.Authorize(r)
			if ok != tt.want || (ok && actor != "dashboard") {
				t.Errorf("Authorize = %q, %v; want %v", actor, ok, tt.want)
			}
		})
	}
}

func TestSessionsExpireAndAreBounded(t *testing.T) {
	s := newSessions(4, time.Hour)
	t0 := time.Unix(1_700_000_000, 0)
	var ids []string
	for i := range 10 {
		id, _ := s.create(t0.Add(time.Duration(i) * time.Second))
		ids = append(ids, id)
	}
	if n := s.len(); n != 4 {
		t.Fatalf("%d sessions held, want at most 4", n)
	}
	for i, id := range ids {
		_, ok := s.get(id, t0.Add(10*time.Second))
		if want := i >= 6; ok != want {
			t.Errorf("session %d live: %v, want %v (the newest four)", i, ok, want)
		}
	}
	if _, ok := s.get(ids[9], t0.Add(9*time.Second+time.Hour)); ok {
		t.Errorf("a session is live at its expiry")
	}
	s.expire(t0.Add(2 * time.Hour))
	if n := s.len(); n != 0 {
		t.Errorf("%d sessions after every one expired", n)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t, false)
	c, ck, csrf := f.session(t)
	post := func(form url.Values) int {
		req, _ := http.NewRequest("POST", f.srv.URL+Prefix+"logout", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", f.srv.URL)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("logout with a forged CSRF token = %d, want 403", code)
	}
	if n := f.d.sessions.len(); n != 1 {
		t.Fatalf("a forged logout ended the session")
	}
	if code := post(url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Errorf("logout = %d, want 303", code)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(ck)
	if _, ok := f.d.Authorize(r); ok {
		t.Errorf("the session still works after logout")
	}
}

func TestPagesNeedSession(t *testing.T) {
	f := newFixture(t, false)
	c := f.client()
	for _, p := range []string{"events", "api/overview"} {
		resp, err := c.Get(f.srv.URL + Prefix + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a session = %d, want 401", p, resp.StatusCode)
		}
	}
	resp, err := c.Get(f.srv.URL + Prefix)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != Prefix+"login" {
		t.Errorf("GET %s without a session = %d to %q, want the login page", Prefix, resp.StatusCode, resp.Header.Get("Location"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// The login page, script and style are served to anyone; nothing
	// else of the embedded files is.
	for _, p := range []string{"login", "static/app.js", "static/app.css"} {
		f.get(t, c, Prefix+p)
	}
	resp, _ = c.Get(f.srv.URL + Prefix + "static/index.html")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET static/index.html = %d, want 404", resp.StatusCode)
	}
}

func TestRing(t *testing.T) {
	r := newRing()
	var tot [reqstat.NumOutcomes]uint64
	if c := r.add(100, tot); c != (counts{}) {
		t.Fatalf("first reading = %v, want zeros (it sets the base)", c)
	}
	tot[reqstat.OK], tot[reqstat.Limited] = 50, 7
	if c := r.add(101, tot); c[reqstat.OK] != 50 || c[reqstat.Limited] != 7 {
		t.Fatalf("second = %v, want 50 ok and 7 limited", c)
	}
	tot[reqstat.OK] = 10 // a counter went back: counted as none
	if c := r.add(102, tot); c[reqstat.OK] != 0 {
		t.Fatalf("after a reset = %v, want 0 ok", c)
	}
	for i := range 2 * RingSeconds {
		tot[reqstat.OK] += uint64(i % 5)
		r.add(int64(103+i), tot)
	}
	if r.n != RingSeconds {
		t.Fatalf("ring holds %d, want %d", r.n, RingSeconds)
	}
	var h history
	if err := json.Unmarshal(r.history(), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.T) != RingSeconds || h.T[0] != 103+RingSeconds || h.T[len(h.T)-1] != 102+2*RingSeconds || len(h.C) != RingSeconds {
		t.Errorf("history holds %d samples from %d to %d, want %d from %d to %d", len(h.T), h.T[0], h.T[len(h.T)-1], RingSeconds, 103+RingSeconds, 102+2*RingSeconds)
	}
	if len(h.Outcomes) != int(reqstat.NumOutcomes) || h.Outcomes[reqstat.OK] != "ok" {
		t.Errorf("history outcomes %v", h.Outcomes)
	}
}

// readEvent reads one server-sent event.
func readEvent(t *testing.T, br *bufio.Reader) (event, data string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t, false)
	// The admin server's timeouts: the stream must outlive them.
	f.srv.Close()
	f.srv = httptest.NewUnstartedServer(f.d.Handler())
	f.srv.Config.WriteTimeout = 300 * time.Millisecond
	f.srv.Config.ReadTimeout = 300 * time.Millisecond
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	c, _, _ := f.session(t)

	now := time.Now()
	f.d.sample(now)
	f.ok.Store(1234)
	f.d.sample(now.Add(time.Second))

	resp, err := c.Get(f.srv.URL + Prefix + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	ev, data := readEvent(t, br)
	if ev != "history" || !strings.Contains(data, `"c":[[0,0,0,0,0,0,0,0,0],[1234,0,0,0,0,0,0,0,0]]`) {
		t.Fatalf("first event %s %s, want the history with 1234 ok in its second sample", ev, data)
	}

	// A flooding source, turned away by the guard, then banned.
	src := netip.MustParseAddr("192.0.2.7")
	for range 500 {
		f.knocks.Dropped(src, limit.Limited, now.Add(time.Second))
	}
	for i := range 4 {
		time.Sleep(200 * time.Millisecond) // beyond the server's timeouts, in all
		f.ok.Add(10)
		f.d.sample(time.Now())
		ev, data = readEvent(t, br)
		if ev != "tick" || !strings.Contains(data, `"c":[10,`) {
			t.Fatalf("tick %d: %s %s, want 10 ok", i, ev, data)
		}
	}
	if !strings.Contains(data, `"key":"192.0.2.7"`) || !strings.Contains(data, `"org":"AS64500 Example Net"`) || !strings.Contains(data, `"key":"192.0.2.0/24"`) {
		t.Errorf("tick without the flooding source, its organisation or its prefix: %s", data)
	}
	if _, err := f.guard.Limiter().Ban(netip.PrefixFrom(src, 32), time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.d.sample(time.Now())
	_, data = readEvent(t, br)
	if !strings.Contains(data, `"prefix":"192.0.2.7/32"`) || !strings.Contains(data, `"state":"banned"`) || !strings.Contains(data, `"ban_count":1`) {
		t.Errorf("tick after the ban: %s", data)
	}
}

func TestViewersBounded(t *testing.T) {
	f := newFixture(t, false)
	c, _, _ := f.session(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range MaxViewers + 1 {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+Prefix+"events", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		want := http.StatusOK
		if i == MaxViewers {
			want = http.StatusServiceUnavailable
		}
		if resp.StatusCode != want {
			t.Fatalf("viewer %d: %s, want %d", i, resp.Status, want)
		}
		if want == 200 {
			readEvent(t, bufio.NewReader(resp.Body))
		}
	}
	if n := f.d.hub.viewers(); n != MaxViewers {
		t.Errorf("%d viewers, want %d", n, MaxViewers)
	}
}

func TestOverviewAndParseThroughHTTP(t *testing.T) {
	f := newFixture(t, false)
	c, _, csrf := f.session(t)
	if body := f.get(t, c, Prefix+"api/overview"); !strings.Contains(body, `listen = \"127.0.0.1:7070\"`) || !strings.Contains(body, "evidence is off") {
		t.Errorf("overview: %s", body)
	}
	post := func(csrfTok, ct, body string) (int, string) {
		req, _ := http.NewRequest("POST", f.srv.URL+Prefix+"api/parse", strings.NewReader(body))
		req.Header.Set(CSRFHeader, csrfTok)
		req.Header.Set("Content-Type", ct)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	hash := strings.Repeat("c", 40)
	if code, body := post(csrf, "text/plain", "magnet:?xt=urn:btih:"+hash+"&dn=Ep+1"); code != 200 || !strings.Contains(body, `"v1":"`+hash+`"`) || !strings.Contains(body, `"name":"Ep 1"`) {
		t.Errorf("parse a magnet link = %d %s", code, body)
	}
	if code, _ := post("", "text/plain", hash); code != http.StatusUnauthorized {
		t.Errorf("parse without the CSRF token = %d, want 401", code)
	}
	if code, body := post(csrf, torrentContentType, strings.Repeat("x", maxUpload+10)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("parse of %d bytes = %d %.100s, want 413", maxUpload+10, code, body)
	}
}

func TestParseAdd(t *testing.T) {
	v1 := strings.Repeat("ab", 20)
	v2 := strings.Repeat("cd", 32)
	torrent := "d4:infod6:lengthi1e4:name3:abc12:piece lengthi16384e6:pieces20:" + strings.Repeat("x", 20) + "ee"
	tests := []struct {
		name, ct, body string
		want           addTorrent
		wantErr        string
	}{
		{name: "v1 hash", ct: "text/plain", body: v1, want: addTorrent{V1: v1}},
		{name: "v1 hash, upper case, spaces", ct: "text/plain; charset=utf-8", body: "  " + strings.ToUpper(v1) + "\n", want: addTorrent{V1: v1}},
		{name: "v2 hash", ct: "", body: v2, want: addTorrent{V2: v2}},
		{name: "magnet", ct: "text/plain", body: "magnet:?xt=urn:btih:" + v1 + "&dn=Episode%201", want: addTorrent{V1: v1, Name: "Episode 1"}},
		{name: "hybrid magnet", ct: "text/plain", body: "magnet:?xt=urn:btih:" + v1 + "&xt=urn:btmh:1220" + v2, want: addTorrent{V1: v1, V2: v2}},
		{name: ".torrent", ct: torrentContentType, body: torrent, want: addTorrent{V1: "", Name: "abc"}},
		{name: "empty", ct: "text/plain", body: " \n", wantErr: "paste a 40 or 64 digit info hash or a magnet link"},
		{name: "short hash", ct: "text/plain", body: v1[:39], wantErr: "39 characters: neither a 40 or 64 digit info hash nor a magnet link"},
		{name: "not hex", ct: "text/plain", body: strings.Repeat("zz", 20), wantErr: "info hash: "},
		{name: "magnet without hash", ct: "text/plain", body: "magnet:?dn=x", wantErr: "magnet link has no urn:btih: or urn:btmh: info hash"},
		{name: "not a torrent", ct: torrentContentType, body: "hello", wantErr: ".torrent: not a .torrent file"},
		{name: "not UTF-8", ct: "text/plain", body: "\xff\xfe", wantErr: "pasted text: not UTF-8"},
		{name: "too long to paste", ct: "text/plain", body: strings.Repeat("a", maxPasted+1), wantErr: "pasted text: 8193 bytes, at most 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAdd(tt.ct, []byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseAdd(%.40q) = %+v, %v; want error %q", tt.body, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAdd(%.40q): %v", tt.body, err)
			}
			if tt.name == ".torrent" {
				if len(got.V1) != 40 || got.Name != "abc" {
					t.Fatalf("parseAdd(.torrent) = %+v", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("parseAdd(%.40q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func FuzzParseAdd(f *testing.F) {
	f.Add("text/plain", []byte(strings.Repeat("ab", 20)))                        // a v1 hash
	f.Add("text/plain", []byte("magnet:?xt=urn:btih:"+strings.Repeat("ab", 20))) // a magnet link
	f.Add("text/plain", []byte("magnet:?xt=urn:btmh:1220%zz"))                   // a bad escape
	f.Add(torrentContentType, []byte("d4:infod4:name1:aee"))                     // a .torrent without pieces
	f.Add(torrentContentType, []byte("d4:infoli1eee"))                           // info not a dictionary
	f.Add("application/x-bittorrent; x=\"", []byte("d"))                         // a broken media type
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		got, err := parseAdd(ct, body)
		if err == nil && got.V1 == "" && got.V2 == "" {
			t.Fatalf("parseAdd(%q, %q) = %+v with no hash and no error", ct, body, got)
		}
		if err == nil && (len(got.V1) != 0 && len(got.V1) != 40 || len(got.V2) != 0 && len(got.V2) != 64) {
			t.Fatalf("parseAdd(%q, %q) = %+v: hashes of the wrong length", ct, body, got)
		}
	})
}

// TestAssetsSize keeps the dashboard's embedded files within the issue's
// budget: 150 KB gzipped, all of them.
func TestAssetsSize(t *testing.T) {
	var total int
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		t.Logf("%s: %d bytes, %d gzipped", p, len(b), buf.Len())
		total += buf.Len()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 150_000 {
		t.Errorf("the assets are %d bytes gzipped, over the 150 KB budget", total)
	}
}

// TestRunStops checks Run samples and returns when its context ends,
// ending the streams.
func TestRunStops(t *testing.T) {
	f := newFixture(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.d.Run(ctx) }()
	c, _, _ := f.session(t)
	resp, err := c.Get(f.srv.URL + Prefix + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readEvent(t, bufio.NewReader(resp.Body))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("stream after Run returned: %v", err)
	}
}
