package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/websocket"

	"warden/internal/evidence/report/reporttest"
)

// artifactsEnv names a directory where tests leave what a person should
// look at (screenshots, reports), in a subdirectory per test.
const artifactsEnv = "WARDEN_E2E_ARTIFACTS"

// TestEvidenceReport writes a synthetic evidence log (two abusers from two
// organisations, a third abuser from the day before, a legitimate source
// that never formed an episode, a revoked torrent), runs `warden evidence
// report` in every format on the period, checks what scripts and
// providers read, and renders the HTML page in headless Chromium: the
// chart must draw, for each top source, a line with a point per bucket of
// its timeline, and the screenshot is kept (the test's temp directory,
// and $WARDEN_E2E_ARTIFACTS when set).
func TestEvidenceReport(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs warden and headless Chromium; skipped in -short mode")
	}
	chromium := requireBinary(t, "chromium")
	data := t.TempDir()
	story, err := reporttest.Write(data)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	period := []string{"--data", data, "--since", story.Since.Format(time.RFC3339), "--until", story.Until.Format(time.RFC3339)}
	report := func(args ...string) string {
		t.Helper()
		return wardenCLI(t, append(append([]string{"evidence", "report"}, period...), args...)...).stderr
	}
	report("-o", filepath.Join(out, "report.json"))
	report("-o", filepath.Join(out, "report.html"))
	report("-o", filepath.Join(out, "report.md"))
	report("--format", "xarf", "-o", filepath.Join(out, "report.xarf.json"))
	defer keepArtifacts(t, out, "report.json", "report.html", "report.md", "report.png", "report.xarf.json")

	// JSON: the names scripts read; only the abusers of the period.
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Episodes []struct {
			Source     string  `json:"source"`
			Kind       string  `json:"kind"`
			FirstSeen  string  `json:"first_seen"`
			LastSeen   string  `json:"last_seen"`
			Requests   uint64  `json:"requests"`
			PeakPerSec float64 `json:"peak_per_sec"`
			MeanPerSec float64 `json:"mean_per_sec"`
			Verified   *bool   `json:"verified"`
			ASN        uint32  `json:"asn"`
			Org        string  `json:"org"`
			Country    string  `json:"country"`
			Hashes     []struct {
				InfoHash   string `json:"info_hash"`
				Registered bool   `json:"registered"`
				Revoked    bool   `json:"revoked"`
			} `json:"hashes"`
			Actions  map[string]uint64 `json:"actions"`
			Timeline struct {
				Counts []uint64 `json:"counts"`
			} `json:"timeline"`
		} `json:"episodes"`
		Checkpoint struct {
			Note string `json:"note"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(doc.Episodes) != len(story.Abusers) {
		t.Fatalf("report.json has %d episodes, want the %d of the period", len(doc.Episodes), len(story.Abusers))
	}
	revokedSeen := false
	for i, want := range story.Abusers {
		ep := doc.Episodes[i]
		if ep.Source != want.Source || ep.Kind != want.Kind || ep.Requests != want.Total || ep.PeakPerSec != want.Peak ||
			ep.Verified == nil || *ep.Verified != want.Verified || ep.ASN != want.ASN || ep.Org != want.Org ||
			ep.Country != want.Country || ep.FirstSeen == "" || ep.LastSeen == "" || ep.MeanPerSec <= 0 || ep.Actions == nil {
			t.Errorf("episode %d = %+v, want %+v", i, ep, want)
		}
		for _, h := range ep.Hashes {
			if h.InfoHash == story.Revoked.String() {
				revokedSeen = h.Revoked && !h.Registered
			}
		}
	}
	if !revokedSeen {
		t.Errorf("report.json does not mark %s revoked", story.Revoked)
	}
	for _, f := range []string{"report.json", "report.html", "report.md", "report.xarf.json"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{story.Legit, story.Earlier.Source} {
			if bytes.Contains(b, []byte(who)) {
				t.Errorf("%s names %s, which formed no episode of the period", f, who)
			}
		}
	}

	// Markdown links its chart, a PNG beside it.
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("](report.png)")) {
		t.Errorf("report.md does not link report.png")
	}
	if _, err := decodePNG(filepath.Join(out, "report.png")); err != nil {
		t.Errorf("the chart beside report.md: %v", err)
	}

	// XARF: one group per organisation, one report per episode.
	var xarf []struct {
		AbuseEmail string           `json:"abuse_email"`
		Reports    []map[string]any `json:"reports"`
	}
	raw, err = os.ReadFile(filepath.Join(out, "report.xarf.json"))
	if err == nil {
		err = json.Unmarshal(raw, &xarf)
	}
	if err != nil || len(xarf) != 2 || len(xarf[0].Reports) != 2 || len(xarf[1].Reports) != 1 {
		t.Fatalf("report.xarf.json: %v; want 2 organisations with 2 and 1 reports: %s", err, raw)
	}
	for _, g := range xarf {
		for _, r := range g.Reports {
			for _, k := range []string{"xarf_version", "report_id", "timestamp", "reporter", "sender", "source_identifier",
				"category", "type", "protocol", "first_seen", "total_requests", "evidence"} {
				if _, ok := r[k]; !ok {
					t.Errorf("an XARF report lacks %q", k)
				}
			}
		}
	}

	// The checkpoint the report quotes is one verify accepts for this log.
	cp := filepath.Join(out, "checkpoint.txt")
	if err := os.WriteFile(cp, []byte(doc.Checkpoint.Note), 0o600); err != nil {
		t.Fatal(err)
	}
	wardenCLI(t, "evidence", "verify", "--data", data, "--checkpoint", cp)

	// HTML: the SVG as written, a polyline per top source.
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	written := polylinePoints(t, page)
	if len(written) != len(doc.Episodes) {
		t.Fatalf("report.html draws %d lines, want one per source (%d)", len(written), len(doc.Episodes))
	}
	for i, n := range written {
		if want := len(doc.Episodes[i].Timeline.Counts); n != want {
			t.Errorf("line %d (%s) has %d points in the SVG, want one per bucket: %d", i, doc.Episodes[i].Source, n, want)
		}
	}

	// Chromium: the lines as rendered, and a screenshot.
	shot := filepath.Join(out, "report-screenshot.png")
	rendered := renderInChromium(t, chromium, filepath.Join(out, "report.html"), shot)
	defer keepArtifacts(t, out, "report-screenshot.png")
	t.Logf("screenshot: %s (%d×%d)", shot, rendered.Width, rendered.Height)
	if len(rendered.Lines) != len(written) {
		t.Fatalf("Chromium rendered %d lines, want %d: %+v", len(rendered.Lines), len(written), rendered)
	}
	for i, l := range rendered.Lines {
		if l.Points != written[i] || l.Width < 5 || l.Height < 1 {
			t.Errorf("rendered line %d: %d points, %.0f×%.0f px; want %d points drawn with a size", i, l.Points, l.Width, l.Height, written[i])
		}
	}
	if rendered.ChartWidth < 600 {
		t.Errorf("the chart is %.0f px wide in a 1280 px window", rendered.ChartWidth)
	}
	img, err := decodePNG(shot)
	if err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, img, rendered)
}

// decodePNG reads a PNG file.
func decodePNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return png.Decode(f)
}

// polylinePoints returns the number of points of each chart line
// (polyline.series) of an HTML page, in order.
func polylinePoints(t *testing.T, page []byte) []int {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "polyline" {
			var class, points string
			for _, a := range n.Attr {
				switch a.Key {
				case "class":
					class = a.Val
				case "points":
					points = a.Val
				}
			}
			if class == "series" {
				out = append(out, len(strings.Fields(points)))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// rendering is what the page script below measures in Chromium.
type rendering struct {
	Width, Height int // of the page, CSS pixels
	ChartWidth    float64
	ChartTop      float64 // page coordinates of the chart's box
	ChartLeft     float64
	ChartHeight   float64
	Lines         []struct {
		Points        int
		Color         string
		Width, Height float64
	}
}

// measureScript runs in the page: the chart's box and, for each line, the
// points the browser parsed and the size it laid the line out at.
const measureScript = `(() => {
  const svg = document.querySelector('svg.chart');
  if (!svg) return JSON.stringify({});
  const r = svg.getBoundingClientRect();
  const lines = [...svg.querySelectorAll('polyline.series')].map(p => {
    const b = p.getBoundingClientRect();
    return {Points: p.points.numberOfItems, Color: p.getAttribute('stroke'), Width: b.width, Height: b.height};
  });
  return JSON.stringify({
    Width: document.documentElement.scrollWidth, Height: document.documentElement.scrollHeight,
    ChartWidth: r.width, ChartHeight: r.height, ChartTop: r.top + window.scrollY, ChartLeft: r.left + window.scrollX,
    Lines: lines});
})()`

// renderInChromium opens page in headless Chromium (1280 px wide) through
// the DevTools protocol, measures the chart and saves a screenshot of the
// whole page to shot. Chromium is stopped, by PID, when the test ends.
func renderInChromium(t *testing.T, chromium, page, shot string) rendering {
	t.Helper()
	br := startChromium(t, chromium, 1280, 2000, 90*time.Second)
	ctx, call := br.ctx, br.call
	call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 2000, "deviceScaleFactor": 1, "mobile": false}, nil)
	call("Page.navigate", map[string]any{"url": "file://" + page}, nil)
	for {
		var ready struct {
			Result struct{ Value string }
		}
		call("Runtime.evaluate", map[string]any{"expression": "document.readyState", "returnByValue": true}, &ready)
		if ready.Result.Value == "complete" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the page did not load within 90 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var measured struct {
		Result struct{ Value string }
	}
	call("Runtime.evaluate", map[string]any{"expression": measureScript, "returnByValue": true}, &measured)
	var r rendering
	if err := json.Unmarshal([]byte(measured.Result.Value), &r); err != nil {
		t.Fatalf("measure: %v: %q", err, measured.Result.Value)
	}
	if r.Height <= 0 || r.Height > 40000 {
		t.Fatalf("the page is %d px high", r.Height)
	}
	call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": r.Height, "deviceScaleFactor": 1, "mobile": false}, nil)
	var img struct{ Data string }
	call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &img)
	b, err := base64.StdEncoding.DecodeString(img.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// pageSocket returns the DevTools WebSocket of Chromium's first page.
func pageSocket(ctx context.Context, port string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/json/list", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("devtools targets: %w", err)
	}
	defer resp.Body.Close()
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		return "", fmt.Errorf("devtools targets: %w", err)
	}
	for _, tg := range targets {
		if tg.Type == "page" && tg.WebSocketDebuggerURL != "" {
			return tg.WebSocketDebuggerURL, nil
		}
	}
	return "", fmt.Errorf("devtools: no page among %+v", targets)
}

// cdpConn is a DevTools protocol connection to one page: one call at a
// time, events skipped.
type cdpConn struct {
	*websocket.Conn
	next int
}

func dialCDP(url string) (*cdpConn, error) {
	c, err := websocket.Dial(url, "", "http://127.0.0.1/")
	if err != nil {
		return nil, fmt.Errorf("devtools %s: %w", url, err)
	}
	c.MaxPayloadBytes = 64 << 20 // a full-page screenshot
	return &cdpConn{Conn: c}, nil
}

func (c *cdpConn) call(method string, params, result any) error {
	c.next++
	id := c.next
	if err := websocket.JSON.Send(c.Conn, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(c.Conn, &msg); err != nil {
			return err
		}
		if msg.ID != id {
			continue // an event
		}
		if msg.Error != nil {
			return errors.New(msg.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(msg.Result, result)
	}
}

// checkScreenshot checks the screenshot is the page with its chart: not
// blank, and inside the chart's box each line's colour drawn over at
// least a fifth of its rendered width.
func checkScreenshot(t *testing.T, img image.Image, r rendering) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() < 1000 {
		t.Errorf("screenshot is %v, want 1280 px wide and the whole page", b)
	}
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if cr, cg, cb, _ := img.At(x, y).RGBA(); cr>>8 < 200 || cg>>8 < 200 || cb>>8 < 200 {
				ink++
			}
		}
	}
	if ink < 5000 {
		t.Errorf("screenshot is blank: %d dark pixels sampled", ink)
	}
	box := image.Rect(int(r.ChartLeft), int(r.ChartTop), int(r.ChartLeft+r.ChartWidth), int(r.ChartTop+r.ChartHeight)).Intersect(b)
	for i, l := range r.Lines {
		var want [3]uint8
		if _, err := fmt.Sscanf(l.Color, "#%02x%02x%02x", &want[0], &want[1], &want[2]); err != nil {
			t.Fatalf("line %d colour %q: %v", i, l.Color, err)
		}
		cols := 0
		for x := box.Min.X; x < box.Max.X; x++ {
			for y := box.Min.Y; y < box.Max.Y; y++ {
				cr, cg, cb, _ := img.At(x, y).RGBA()
				if near(uint8(cr>>8), want[0]) && near(uint8(cg>>8), want[1]) && near(uint8(cb>>8), want[2]) {
					cols++
					break
				}
			}
		}
		if float64(cols) < l.Width/5 {
			t.Errorf("line %d (%s): its colour is in %d columns of the chart in the screenshot; rendered %.0f px wide", i, l.Color, cols, l.Width)
		}
	}
}

func near(a, b uint8) bool { return a-b < 24 || b-a < 24 }

// keepArtifacts copies files of dir to $WARDEN_E2E_ARTIFACTS/<test name>
// when that is set.
func keepArtifacts(t *testing.T, dir string, names ...string) {
	root := os.Getenv(artifactsEnv)
	if root == "" {
		return
	}
	dst := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Error(err)
		return
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, n), b, 0o644)
		}
		if err != nil {
			t.Errorf("keep %s: %v", n, err)
		}
	}
	t.Logf("artefacts in %s", dst)
}

// TestEvidenceReportFromServe reports on a log warden serve wrote: two
// sources of two organisations of the networks file flood it over UDP
// until each has an episode; warden stops; the report (JSON and HTML)
// names both with the networks file's organisation and abuse address,
// takes the reporter's contact from the config record serve wrote, and
// draws each timeline a point per bucket.
func TestEvidenceReportFromServe(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs warden serve; skipped in -short mode")
	}
	const contact = "abuse@tracker.example"
	w := startEvidenceWarden(t, nil, "", fmt.Sprintf("[tracker]\nabuse_contact = %q\n", contact))
	sources := map[string]string{"127.1.0.7": "abuse@flood.example", "127.3.0.9": "abuse@slow.example"}
	for src := range sources {
		f := newUDPFlooder(t, src, w.udpAddr)
		if err := f.send(3000, 6000); err != nil { // half a second
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		eps, err := w.episodes()
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, ep := range eps {
			if _, ok := sources[ep.Source]; ok {
				seen++
			}
		}
		if seen == len(sources) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, episodes %+v; want one for each of %v", eps, sources)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.stop()

	out := t.TempDir()
	wardenCLI(t, "evidence", "report", "--data", w.dataDir, "-o", filepath.Join(out, "report.json"))
	wardenCLI(t, "evidence", "report", "--data", w.dataDir, "-o", filepath.Join(out, "report.html"))
	defer keepArtifacts(t, out, "report.json", "report.html")
	var doc struct {
		Reporter struct{ Contact, From string }
		Episodes []struct {
			Source, Org string
			AbuseEmail  string `json:"abuse_email"`
			Requests    uint64
			Timeline    struct{ Counts []uint64 }
		}
		Attribution struct {
			Recorded bool
			Sources  []struct{ Kind, SHA256 string }
		}
		Problems []string
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err == nil {
		err = json.Unmarshal(raw, &doc)
	}
	if err != nil {
		t.Fatal(err)
	}
	if doc.Reporter.Contact != contact || doc.Reporter.From != "tracker.abuse_contact" {
		t.Errorf("reporter %+v, want %s from tracker.abuse_contact (serve's config record)", doc.Reporter, contact)
	}
	if len(doc.Episodes) != len(sources) {
		t.Fatalf("%d episodes, want %d: %s", len(doc.Episodes), len(sources), raw)
	}
	for _, ep := range doc.Episodes {
		if sources[ep.Source] != ep.AbuseEmail || ep.Org == "" || ep.Requests == 0 || len(ep.Timeline.Counts) == 0 {
			t.Errorf("episode %+v: want the networks file's organisation and %q, requests and a timeline", ep, sources[ep.Source])
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	lines := polylinePoints(t, page)
	if len(lines) != len(doc.Episodes) {
		t.Fatalf("%d chart lines, want %d", len(lines), len(doc.Episodes))
	}
	for i, n := range lines {
		if n != len(doc.Episodes[i].Timeline.Counts) {
			t.Errorf("line %d: %d points, want %d", i, n, len(doc.Episodes[i].Timeline.Counts))
		}
	}
	// serve's config record names the databases; the networks file is
	// one, with its hash.
	networks := false
	for _, src := range doc.Attribution.Sources {
		networks = networks || (src.Kind == "networks_file" && len(src.SHA256) == 64)
	}
	if !doc.Attribution.Recorded || !networks {
		t.Errorf("attribution in the report: %+v, want serve's record of its networks file", doc.Attribution)
	}
	if bytes.Contains(page, []byte("Attribution source not recorded")) {
		t.Errorf("the page says the attribution source was not recorded")
	}
	t.Logf("problems: %q", doc.Problems)
}
