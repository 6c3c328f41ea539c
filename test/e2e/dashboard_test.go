package e2e

import (
	"crypto/sha1"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// artefactsDir is where the dashboard's screenshots go: $WARDEN_ARTEFACTS
// when set, else the test's temporary directory (and, through
// keepArtifacts, $WARDEN_E2E_ARTIFACTS as for the other tests).
func artefactsDir(t *testing.T) string {
	if d := os.Getenv("WARDEN_ARTEFACTS"); d != "" {
		dir := filepath.Join(d, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestDashboard drives the dashboard in headless Chromium against a real
// warden serve: it logs in with the admin token, watches the request-rate
// chart move while warden load runs, sees a flooding source appear within
// 2 s of the flood starting and bans it with the page's button, revokes a
// torrent in the page and sees a real announce for it refused within 1 s,
// and keeps screenshots at desktop (1280) and phone (390) widths.
func TestDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs warden serve, warden load and Chromium; skipped in -short mode")
	}
	chromium := requireBinary(t, "chromium")
	// No automatic bans, so the flooding source shows as limited until
	// the operator bans it in the page.
	w := startWardenWith(t, wardenOpts{admin: true, config: "[limit]\nban_after = 0\n"})
	tok := w.token(t)
	const (
		keep  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		gone  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		flood = "127.1.0.7"
	)
	w.register(t, keep, "Episode 12: the long one")
	w.register(t, gone, "Episode 13: pulled")
	if a, err := w.announce("http", gone); err != nil || a.refused {
		t.Fatalf("announce for %s before the revocation = %+v, %v; want answered", gone, a, err)
	}

	b := startChromium(t, chromium, 1280, 1000, 60*time.Second)
	b.viewport(1280, 1000, false)

	// Log in: the form takes the token; the session cookie is HttpOnly.
	b.navigate(w.adminURL + "/ui/")
	var path string
	b.eval(`location.pathname`, &path)
	if path != "/ui/login" {
		t.Fatalf("before login the dashboard is at %s, want the login page", path)
	}
	b.eval(fmt.Sprintf(`document.getElementById("token").value = %q, document.getElementById("login").click()`, tok), nil)
	b.waitFor("the dashboard after login", `location.pathname === "/ui/" && document.getElementById("live").textContent === "live"`, 10*time.Second)
	var cookie, href string
	b.eval(`document.cookie`, &cookie)
	b.eval(`location.href`, &href)
	if strings.Contains(cookie, "warden_session") {
		t.Errorf("the page's script can read the session cookie: %q", cookie)
	}
	if strings.Contains(href, tok) {
		t.Errorf("the token is in the URL: %s", href)
	}

	// The chart moves while warden load announces (from 1,024 sources
	// under their rate, for torrents warden does not track).
	var before int
	b.eval(`+document.getElementById("chart").dataset.samples`, &before)
	var load cliResult
	var wg sync.WaitGroup
	wg.Go(func() {
		load = runWarden(30*time.Second, "load", "--scenario", "flood", "--udp", w.udpAddr, "--flood-rate", "-1",
			"--legit-rate", "400", "--warmup", "0s", "--duration", "4s", "--json")
	})
	took := b.waitFor("the chart shows requests", `+document.getElementById("chart").dataset.lastTotal > 50`, 6*time.Second)
	var rateNow string
	b.eval(`document.getElementById("rate-now").textContent`, &rateNow)
	t.Logf("the chart showed %s req/s %v after warden load started", rateNow, took.Round(10*time.Millisecond))
	chart1 := chartImage(b)
	time.Sleep(1500 * time.Millisecond)
	if chartImage(b) == chart1 {
		t.Errorf("the chart did not change in 1.5 s of load")
	}
	wg.Wait()
	if load.err != nil {
		t.Fatalf("load: %v\n%s", load.err, load.stderr)
	}
	var after int
	b.eval(`+document.getElementById("chart").dataset.samples`, &after)
	if after <= before {
		t.Errorf("the chart held %d samples before the load and %d after", before, after)
	}

	// A flooding source appears within 2 s of the flood starting.
	wg.Go(func() {
		load = runWarden(30*time.Second, "load", "--scenario", "flood", "--udp", w.udpAddr,
			"--flood-sources", flood+"/32", "--flood-rate", "5000", "--legit-rate", "0", "--warmup", "0s", "--duration", "4s", "--json")
	})
	floodStart := time.Now()
	rowJS := fmt.Sprintf(`[...document.querySelectorAll("#sources tbody tr")].find(r => r.cells[0].textContent === %q)`, flood)
	b.waitFor("the flooding source in the list", rowJS, 5*time.Second)
	appeared := time.Since(floodStart)
	t.Logf("the flooding source %s appeared %v after warden load started", flood, appeared.Round(10*time.Millisecond))
	if appeared > 2*time.Second {
		t.Errorf("the flooding source appeared %v after the flood started, want within 2 s", appeared)
	}
	var state string
	b.eval(rowJS+`.cells[2].textContent`, &state)
	if state != "limited" {
		t.Errorf("the flooding source's state is %q, want limited", state)
	}
	// Ban it with its row's button; the ban shows in the bans table.
	b.eval(rowJS+`.querySelector("button").click()`, nil)
	b.waitFor("the ban in the bans table", fmt.Sprintf(`[...document.querySelectorAll("#bans tbody tr")].some(r => r.cells[0].textContent === %q)`, flood+"/32"), 5*time.Second)
	b.waitFor("the source shown banned", rowJS+`.cells[2].textContent === "banned"`, 3*time.Second)
	wg.Wait()
	if load.err != nil {
		t.Fatalf("flood: %v\n%s", load.err, load.stderr)
	}

	// Revoke a torrent in the page: search, revoke, give a reason,
	// confirm; a real announce for it is refused within 1 s.
	b.eval(fmt.Sprintf(`(() => { const s = document.getElementById("search"); s.value = %q; s.dispatchEvent(new Event("input")); })()`, "pulled"), nil)
	regRow := fmt.Sprintf(`document.querySelector('#registry tbody tr[data-hash=%q]')`, gone)
	b.waitFor("the torrent found by name", regRow+` && document.querySelectorAll("#registry tbody tr").length === 1`, 5*time.Second)
	b.eval(regRow+`.querySelector("button.revoke").click()`, nil)
	b.waitFor("the reason field", regRow+`.querySelector("input.reason")`, 3*time.Second)
	b.eval(regRow+`.querySelector("input.reason").value = "withdrawn by the publisher"`, nil)
	b.eval(regRow+`.querySelector("button.confirm").click()`, nil)
	clicked := time.Now()
	var refusedAfter time.Duration
	for {
		a, err := w.announce("http", gone)
		if err != nil {
			t.Fatal(err)
		}
		if a.refused {
			refusedAfter = time.Since(clicked)
			t.Logf("an announce for the revoked torrent was refused %v after the click: %q", refusedAfter.Round(time.Millisecond), a.reason)
			break
		}
		if time.Since(clicked) > 5*time.Second {
			t.Fatalf("announces for %s still answered 5 s after revoking it in the page", gone)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refusedAfter > time.Second {
		t.Errorf("announce refused %v after the revocation, want within 1 s", refusedAfter)
	}
	b.waitFor("the row shown revoked", regRow+`.cells[2].textContent.startsWith("revoked")`, 3*time.Second)
	if a, err := w.announce("http", keep); err != nil || a.refused {
		t.Errorf("announce for the other torrent = %+v, %v; want answered", a, err)
	}
	// The registry's log says who revoked it and why.
	var hist struct {
		Changes []struct{ Actor, Reason string }
	}
	if err := w.adminJSON(http.MethodGet, "/api/torrents/"+gone+"/history", nil, &hist); err != nil {
		t.Fatal(err)
	}
	if n := len(hist.Changes); n == 0 || hist.Changes[n-1].Actor != "dashboard" || hist.Changes[n-1].Reason != "withdrawn by the publisher" {
		t.Errorf("registry history of %s = %+v, want a revocation by the dashboard with its reason", gone, hist.Changes)
	}

	// Add a torrent by magnet link and another by uploading a .torrent
	// file; each then shows in the registry, active.
	magnetHash := strings.Repeat("c", 40)
	b.eval(fmt.Sprintf(`document.getElementById("add-text").value = %q, document.querySelector("#add-form button[type=submit]").click()`,
		"magnet:?xt=urn:btih:"+magnetHash+"&dn=Episode+14"), nil)
	b.waitFor("the magnet link's torrent", fmt.Sprintf(`document.querySelector('#registry tbody tr[data-hash=%q]')?.cells[2].textContent === "active"`, magnetHash), 5*time.Second)
	info := "d6:lengthi1e4:name10:Episode 1512:piece lengthi16384e6:pieces20:" + strings.Repeat("x", 20) + "e" // keys sorted
	fileHash := fmt.Sprintf("%x", sha1.Sum([]byte(info)))
	b.eval(fmt.Sprintf(`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([%q], "episode-15.torrent", {type: "application/x-bittorrent"}));
		document.getElementById("add-file").files = dt.files;
		document.querySelector("#add-form button[type=submit]").click();
	})()`, "d4:info"+info+"e"), nil)
	b.waitFor("the uploaded .torrent's torrent", fmt.Sprintf(`document.querySelector('#registry tbody tr[data-hash=%q]')?.cells[0].textContent === "Episode 15"`, fileHash), 5*time.Second)
	if a, err := w.announce("http", fileHash); err != nil || a.refused {
		t.Errorf("announce for the uploaded torrent = %+v, %v; want answered", a, err)
	}

	// Screenshots: the search shows everything again, so the registry
	// has rows; the phone's has no horizontal scroll.
	b.eval(`(() => { const s = document.getElementById("search"); s.value = ""; s.dispatchEvent(new Event("input")); })()`, nil)
	b.waitFor("the whole registry", `document.querySelectorAll("#registry tbody tr[data-hash]").length === 4`, 5*time.Second)
	b.waitFor("the checkpoint", `document.getElementById("checkpoint").textContent.startsWith("latest checkpoint")`, 5*time.Second)
	dir := artefactsDir(t)
	for _, s := range []struct {
		name   string
		width  int
		mobile bool
	}{{"dashboard-desktop.png", 1280, false}, {"dashboard-phone.png", 390, true}} {
		b.viewport(s.width, 900, s.mobile)
		time.Sleep(300 * time.Millisecond) // a resize redraws the chart
		var scrollW int
		b.eval(`document.documentElement.scrollWidth`, &scrollW)
		if scrollW > s.width {
			t.Errorf("at %d px wide the page is %d px wide: it scrolls sideways", s.width, scrollW)
		}
		var height int
		b.eval(`document.documentElement.scrollHeight`, &height)
		b.viewport(s.width, height, s.mobile)
		time.Sleep(300 * time.Millisecond)
		b.screenshot(filepath.Join(dir, s.name))
		t.Logf("screenshot: %s", filepath.Join(dir, s.name))
	}
	keepArtifacts(t, dir, "dashboard-desktop.png", "dashboard-phone.png")

	// The token never reached warden's log.
	if strings.Contains(string(w.log()), tok) {
		t.Errorf("the admin token is in warden's log")
	}
}

// chartImage returns the chart's pixels as a data URL.
func chartImage(b *browser) string {
	var u string
	b.eval(`document.getElementById("chart").toDataURL()`, &u)
	return u
}

// dashboardSession logs in to the dashboard with tok over HTTP, as the
// form does, and returns the session cookie.
func dashboardSession(t *testing.T, w *wardenProc, tok string) *http.Cookie {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(w.adminURL+"/ui/login", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "warden_session" {
			return ck
		}
	}
	t.Fatalf("login: %s, no session cookie", resp.Status)
	return nil
}

// TestDashboardDuringFlood loads the dashboard (page, script, style and
// the event stream's first event) while warden load floods warden over UDP
// as fast as it can, and checks that each load completes within 1 s.
func TestDashboardDuringFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: floods warden; skipped in -short mode")
	}
	w := startWardenWith(t, wardenOpts{admin: true, config: "[udp]\nkernel_bans = false\n[limit]\nban_after = 0\n"})
	ck := dashboardSession(t, w, w.token(t))
	var wg sync.WaitGroup
	var flood cliResult
	wg.Go(func() {
		flood = runWarden(time.Minute, "load", "--scenario", "flood", "--udp", w.udpAddr,
			"--flood-rate", "0", "--legit-rate", "0", "--warmup", "1s", "--duration", "4s", "--json")
	})
	time.Sleep(1500 * time.Millisecond) // into the flood
	var took []time.Duration
	for range 5 { // bounded: 5 page loads within the flood's 4 s
		start := time.Now()
		if err := loadDashboard(w, ck); err != nil {
			t.Error(err)
		}
		took = append(took, time.Since(start))
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	if flood.err != nil {
		t.Fatalf("load: %v\n%s", flood.err, flood.stderr)
	}
	t.Logf("dashboard loads during the flood: %v", took)
	if slices.Max(took) > time.Second {
		t.Errorf("a dashboard load took %v during the flood, want at most 1 s: %v", slices.Max(took), took)
	}
}

// loadDashboard fetches what a browser fetches to show the dashboard, one
// after the other: the page, its script and style, and the event stream
// up to its first event (the hour's history).
func loadDashboard(w *wardenProc, ck *http.Cookie) error {
	c := http.Client{Timeout: 5 * time.Second}
	for _, p := range []string{"/ui/", "/ui/static/app.js", "/ui/static/app.css", "/ui/events"} {
		req, err := http.NewRequest(http.MethodGet, w.adminURL+p, nil)
		if err != nil {
			return err
		}
		req.AddCookie(ck)
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", p, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("GET %s: %s", p, resp.Status)
		}
		if p == "/ui/events" {
			buf := make([]byte, 64<<10)
			var got []byte
			for !strings.Contains(string(got), "\n\n") {
				n, err := resp.Body.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					resp.Body.Close()
					return fmt.Errorf("GET %s: %w", p, err)
				}
			}
			if !strings.HasPrefix(string(got), "event: history\n") {
				resp.Body.Close()
				return fmt.Errorf("GET %s: first event %.60q, want the history", p, got)
			}
		} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			resp.Body.Close()
			return fmt.Errorf("GET %s: %w", p, err)
		}
		resp.Body.Close()
	}
	return nil
}
