package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"warden/internal/metainfo"
)

// pubEntry is what the publish tests read of a registry entry (GET /api/torrents).
type pubEntry struct {
	V1     string `json:"v1"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// entries lists warden's registry by v1 info hash, through the admin API.
func (w *webWarden) entries() (map[string]pubEntry, error) {
	var page struct {
		Torrents []pubEntry `json:"torrents"`
	}
	if err := w.adminJSON(http.MethodGet, "/api/torrents?limit=10000", nil, &page); err != nil {
		return nil, err
	}
	m := make(map[string]pubEntry, len(page.Torrents))
	for _, e := range page.Torrents {
		m[strings.ToLower(e.V1)] = e
	}
	return m, nil
}

// guids returns the guids a feed lists.
func (w *webWarden) guids(name string) (map[string]bool, feedDoc, error) {
	doc, err := w.feed(name)
	if err != nil {
		return nil, doc, err
	}
	m := map[string]bool{}
	for _, it := range doc.Channel.Items {
		m[it.GUID] = true
	}
	return m, doc, nil
}

// published reports whether the torrent ih is registered (active), served
// under /torrents/ and listed in the feeds of show and of everything.
func (w *webWarden) published(ih, show string) error {
	reg, err := w.entries()
	if err != nil {
		return err
	}
	if e, ok := reg[ih]; !ok || e.State != "active" {
		return fmt.Errorf("%s is not active in the registry (%+v)", ih, e)
	}
	if code, _, _, err := w.get("/torrents/" + ih + ".torrent"); err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /torrents/%s.torrent: %d %v", ih, code, err)
	}
	for _, f := range []string{show, "all"} {
		g, _, err := w.guids(f)
		if err != nil {
			return err
		}
		if !g[ih] {
			return fmt.Errorf("%s.xml does not list %s", f, ih)
		}
	}
	return nil
}

// unpublished reports whether the torrent ih is revoked with a reason
// naming rel, no longer served, and in no feed.
func (w *webWarden) unpublished(ih, show, rel string) error {
	reg, err := w.entries()
	if err != nil {
		return err
	}
	if e := reg[ih]; e.State != "revoked" || !strings.Contains(e.Reason, rel) {
		return fmt.Errorf("%s: registry has %+v, want revoked with a reason naming %s", ih, e, rel)
	}
	if code, _, _, err := w.get("/torrents/" + ih + ".torrent"); err != nil || code != http.StatusNotFound {
		return fmt.Errorf("GET /torrents/%s.torrent: %d %v, want 404", ih, code, err)
	}
	for _, f := range []string{show, "all"} {
		g, _, err := w.guids(f)
		if err != nil {
			return err
		}
		if g[ih] {
			return fmt.Errorf("%s.xml still lists %s", f, ih)
		}
	}
	return nil
}

// until polls cond every 20 ms until it returns nil, and returns how long
// that took, failing the test after limit.
func until(t *testing.T, w *webWarden, limit time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if w.exited() || time.Since(start) > limit {
			t.Fatalf("%s: not after %v (%s): %v", what, limit, w.status(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hashOf makes, in the test, the torrent warden's publisher makes of the
// file or directory at path (16 KiB pieces, as startWebWarden configures),
// and returns its v1 info hash and how long hashing took.
func hashOf(t *testing.T, path, version string) (string, time.Duration) {
	t.Helper()
	v, err := metainfo.ParseVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tr, err := metainfo.Create(context.Background(), path, metainfo.CreateOptions{Version: v, PieceLength: 16384})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	v1, _ := hashHex(tr)
	if v1 == "" {
		t.Fatalf("%s: no v1 info hash", path)
	}
	return v1, took
}

// writeSlowly writes data to path in 1 MiB writes and returns when the
// last one is done: the moment the publish latency counts from.
func writeSlowly(t *testing.T, path string, data []byte) time.Time {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for b := data; len(b) > 0; {
		n := min(len(b), 1<<20)
		if _, err := f.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	last := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return last
}

// parsedFeed is what test/e2e reads of a feed through python3-feedparser.
type parsedFeed struct {
	Bozo    int    `json:"bozo"`
	Error   string `json:"error"`
	Version string `json:"version"`
	Updated string `json:"updated"`
	Items   []struct {
		Title      string `json:"title"`
		ID         string `json:"id"`
		Published  string `json:"published"`
		Enclosures []struct {
			Href   string `json:"href"`
			Type   string `json:"type"`
			Length string `json:"length"`
		} `json:"enclosures"`
	} `json:"items"`
}

const feedparserScript = `
import feedparser, json, sys
d = feedparser.parse(sys.stdin.buffer.read())
print(json.dumps({"bozo": int(d.bozo), "error": str(d.get("bozo_exception", "")), "version": d.version,
  "updated": d.feed.get("updated", ""),
  "items": [{"title": e.get("title", ""), "id": e.get("id", ""), "published": e.get("published", ""),
             "enclosures": [{"href": x.get("href", ""), "type": x.get("type", ""), "length": x.get("length", "")}
                            for x in e.get("enclosures", [])]}
            for e in d.entries]}))
`

// requireFeedparser fails (CI=true) or skips the test without Debian's
// python3-feedparser.
func requireFeedparser(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import feedparser").CombinedOutput(); err != nil {
		missing(t, "python3-feedparser: %v: %s", err, out)
	}
}

// feedparse reads a feed of the running warden with python3-feedparser.
func (w *webWarden) feedparse(t *testing.T, name string) parsedFeed {
	t.Helper()
	code, body, _, err := w.get("/feeds/" + name + ".xml")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /feeds/%s.xml: %d %v", name, code, err)
	}
	cmd := exec.Command(python, "-c", feedparserScript)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("feedparser on %s.xml: %v", name, err)
	}
	var res parsedFeed
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("feedparser on %s.xml: %v: %s", name, err, out)
	}
	if res.Bozo != 0 || res.Version != "rss20" {
		t.Fatalf("feedparser on %s.xml: bozo %d (%s), version %q; the feed:\n%s", name, res.Bozo, res.Error, res.Version, body)
	}
	return res
}

// TestPublishLatency has warden serve --publish (stability window 1 s)
// publish a new 16 MiB episode, then a replacement of it, then see it
// removed, and times each from the file's last write: published means
// registered, its .torrent served and listed in the show's feed and the
// feed of everything, within hashing time plus the window plus 1 s.
// The feeds must parse cleanly in python3-feedparser, with the BEP 36
// enclosure and the Podcasting 2.0 alternate enclosure, and their
// lastBuildDate must move with every change. About 10 s.
func TestPublishLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs the warden binary; skipped in -short mode")
	}
	requireFeedparser(t)
	const settle = time.Second
	w := startWebWarden(t, webOpts{settle: settle.String()})
	const rel = "show/ep1.mkv"
	path := filepath.Join(w.content, filepath.FromSlash(rel))

	// The same file made in the test first, for its info hash and the
	// time hashing it takes on this machine.
	episode := func(seed uint64) (data []byte, ih string, hashing time.Duration) {
		scratch := filepath.Join(t.TempDir(), "ep1.mkv")
		data = writeRandom(t, filepath.Dir(scratch), "ep1.mkv", 16<<20, seed)
		ih, hashing = hashOf(t, scratch, "hybrid")
		return data, ih, hashing
	}
	lastBuild := func() string {
		t.Helper()
		_, doc, err := w.guids("show")
		if err != nil {
			t.Fatal(err)
		}
		return doc.Channel.LastBuild
	}

	data, ih1, hashing := episode(1)
	last := writeSlowly(t, path, data)
	until(t, w, 60*time.Second, "the first episode published", func() error { return w.published(ih1, "show") })
	took := time.Since(last)
	limit := hashing + settle + time.Second
	t.Logf("new episode: published %v after its last write (hashing %v here, window %v: limit %v)", took.Round(time.Millisecond), hashing.Round(time.Millisecond), settle, limit.Round(time.Millisecond))
	if took > limit {
		t.Errorf("new episode published %v after its last write, more than hashing %v + window %v + 1 s", took, hashing, settle)
	}

	// What feedparser reads of both feeds: the enclosure is the .torrent
	// (BEP 36: its URL, type and size), the guid the info hash.
	_, torrentBytes, _, err := w.get("/torrents/" + ih1 + ".torrent")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"show", "all"} {
		f := w.feedparse(t, name)
		if len(f.Items) != 1 || f.Items[0].ID != ih1 || f.Items[0].Title != "ep1.mkv" || f.Items[0].Published == "" || f.Updated == "" {
			t.Fatalf("feedparser read %s.xml as %+v", name, f)
		}
		var torrentEnc bool
		for _, e := range f.Items[0].Enclosures {
			if e.Type == "application/x-bittorrent" && e.Href == w.webURL+"/torrents/"+ih1+".torrent" && e.Length == fmt.Sprint(len(torrentBytes)) {
				torrentEnc = true
			}
		}
		if !torrentEnc {
			t.Fatalf("%s.xml: no BEP 36 enclosure of %d bytes at /torrents/%s.torrent: %+v", name, len(torrentBytes), ih1, f.Items[0].Enclosures)
		}
	}
	_, raw, _, _ := w.get("/feeds/show.xml")
	for _, want := range []string{"magnet:?xt=urn:btih:" + ih1, "<podcast:alternateEnclosure", `<podcast:source uri="` + w.webURL + "/torrents/" + ih1 + `.torrent"`, `<podcast:source uri="` + w.webURL + "/content/show/ep1.mkv"} {
		if !bytes.Contains(raw, []byte(want)) && !bytes.Contains(raw, []byte(strings.ReplaceAll(want, "&", "&amp;"))) {
			t.Errorf("show.xml lacks %s:\n%s", want, raw)
		}
	}

	// Replaced: new bytes under the same name.
	build1 := lastBuild()
	time.Sleep(time.Second) // lastBuildDate counts whole seconds
	data, ih2, hashing := episode(2)
	last = writeSlowly(t, path, data)
	until(t, w, 60*time.Second, "the replacement published and the old torrent revoked", func() error {
		if err := w.published(ih2, "show"); err != nil {
			return err
		}
		return w.unpublished(ih1, "show", rel)
	})
	took, limit = time.Since(last), hashing+settle+time.Second
	t.Logf("replacement: published, and the old torrent revoked, %v after its last write (limit %v)", took.Round(time.Millisecond), limit.Round(time.Millisecond))
	if took > limit {
		t.Errorf("replacement published %v after its last write, more than hashing %v + window %v + 1 s", took, hashing, settle)
	}
	build2 := lastBuild()
	if build2 == build1 {
		t.Errorf("lastBuildDate %q did not change with the replacement", build2)
	}

	// Removed.
	time.Sleep(time.Second)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	until(t, w, 60*time.Second, "the removed episode revoked", func() error { return w.unpublished(ih2, "show", rel) })
	took = time.Since(removed)
	t.Logf("removal: revoked and out of the feeds %v after", took.Round(time.Millisecond))
	if took > settle+time.Second {
		t.Errorf("removal took %v to revoke, more than the window %v + 1 s", took, settle)
	}
	if b := lastBuild(); b == build2 {
		t.Errorf("lastBuildDate %q did not change with the removal", b)
	}
	if f := w.feedparse(t, "all"); len(f.Items) != 0 {
		t.Errorf("all.xml lists %d items after the removal", len(f.Items))
	}
}

// TestPublishChurn makes 100 random additions, replacements and removals
// in the content directory of a running warden serve --publish, then
// checks that what is published is exactly what is on disk: each file
// has one active registration, one .torrent and one item in its show's
// feed and the feed of everything; every torrent published on the way and
// not current is revoked, not served, and in no feed. About 15 s.
func TestPublishChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs the warden binary; skipped in -short mode")
	}
	w := startWebWarden(t, webOpts{settle: "200ms"})
	r := rand.New(rand.NewPCG(7, 0))
	var files []string
	var adds, replaces, removes int
	for i := range 100 {
		switch op := r.IntN(4); {
		case op <= 1 || len(files) < 3:
			rel := fmt.Sprintf("%sep%03d.bin", []string{"", "a/", "b/", "c/"}[r.IntN(4)], i)
			writeRandom(t, w.content, rel, 1000+r.IntN(60_000), uint64(i)+100)
			files = append(files, rel)
			adds++
		case op == 2:
			writeRandom(t, w.content, files[r.IntN(len(files))], 1000+r.IntN(60_000), uint64(i)+100)
			replaces++
		default:
			j := r.IntN(len(files))
			if err := os.Remove(filepath.Join(w.content, filepath.FromSlash(files[j]))); err != nil {
				t.Fatal(err)
			}
			files = slices.Delete(files, j, j+1)
			removes++
		}
		time.Sleep(time.Duration(r.IntN(60)) * time.Millisecond)
	}
	t.Logf("%d additions, %d replacements, %d removals; %d files remain", adds, replaces, removes, len(files))

	want := map[string]string{} // info hash -> show ("" for the root)
	for _, rel := range files {
		ih, _ := hashOf(t, filepath.Join(w.content, filepath.FromSlash(rel)), "hybrid")
		show, _, ok := strings.Cut(rel, "/")
		if !ok {
			show = ""
		}
		want[ih] = show
	}
	torrents := filepath.Join(w.dataDir, "publish", "torrents")
	check := func() error {
		reg, err := w.entries()
		if err != nil {
			return err
		}
		for ih, e := range reg {
			if _, ok := want[ih]; ok != (e.State == "active") {
				return fmt.Errorf("registry: %s is %s (%s); current: %t", ih, e.State, e.Name, ok)
			}
		}
		all, _, err := w.guids("all")
		if err != nil {
			return err
		}
		shows := map[string]map[string]bool{}
		for _, s := range []string{"a", "b", "c"} {
			if shows[s], _, err = w.guids(s); err != nil {
				return err
			}
		}
		entries, err := os.ReadDir(torrents)
		if err != nil {
			return err
		}
		var onDisk []string
		for _, e := range entries {
			onDisk = append(onDisk, strings.TrimSuffix(e.Name(), ".torrent"))
		}
		if len(all) != len(want) || len(onDisk) != len(want) {
			return fmt.Errorf("%d files, but all.xml lists %d items and %s holds %d files", len(want), len(all), torrents, len(onDisk))
		}
		for ih, show := range want {
			if e, ok := reg[ih]; !ok || e.State != "active" {
				return fmt.Errorf("%s (%s) not active in the registry", ih, show)
			}
			if !all[ih] || (show != "" && !shows[show][ih]) {
				return fmt.Errorf("%s (show %q) missing from a feed", ih, show)
			}
			if !slices.Contains(onDisk, ih) {
				return fmt.Errorf("%s.torrent missing", ih)
			}
		}
		for s, g := range shows {
			for ih := range g {
				if want[ih] != s {
					return fmt.Errorf("%s.xml lists %s, which is not a current file of that show", s, ih)
				}
			}
		}
		return nil
	}
	took := until(t, w, 30*time.Second, "the published set equal to the files on disk", check)
	t.Logf("settled %v after the last change", took.Round(time.Millisecond))
	reg, err := w.entries()
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for ih, e := range reg {
		if e.State == "revoked" {
			revoked++
			if e.Reason == "" {
				t.Errorf("%s revoked without a reason", ih)
			}
			if code, _, _, _ := w.get("/torrents/" + ih + ".torrent"); code != http.StatusNotFound {
				t.Errorf("revoked %s still served: %d", ih, code)
			}
		}
	}
	t.Logf("registry: %d entries, %d active, %d revoked", len(reg), len(reg)-revoked, revoked)
	if revoked == 0 {
		t.Error("no torrent was revoked, though files were replaced and removed")
	}
}

// TestFeedToClient has qBittorrent follow warden's feed with its RSS
// auto-downloader (through its Web API, as a viewer would set it up):
// when warden publishes a new episode, a refresh of the feed finds it and
// qBittorrent downloads it, from the web seed alone (no BitTorrent seeder
// runs), and the bytes are compared. About 15 s.
func TestFeedToClient(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs qBittorrent; skipped in -short mode")
	}
	qbittorrent.require(t)
	w := startWebWarden(t, webOpts{settle: "200ms"})
	writeRandom(t, w.content, "show/ep1.mkv", 200_000, 11)
	w.waitFeed(t, "show", "ep1.mkv")

	save := t.TempDir()
	p := startQbittorrent(t, save, testLogDir(t))
	api := func(path string, form url.Values) error {
		c := http.Client{Timeout: 10 * time.Second}
		resp, err := c.PostForm(p.webUI+"/api/v2/"+path, form)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			return fmt.Errorf("%s: HTTP %d %s", path, resp.StatusCode, b.String())
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for api("app/setPreferences", url.Values{"json": {`{"rss_processing_enabled":true,"rss_auto_downloading_enabled":true,"rss_refresh_interval":30}`}}) != nil {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("qBittorrent's Web UI does not answer (%s)", p.status())
		}
		time.Sleep(200 * time.Millisecond)
	}
	feedURL := w.webURL + "/feeds/show.xml"
	if err := api("rss/addFeed", url.Values{"url": {feedURL}, "path": {"show"}}); err != nil {
		t.Fatal(err)
	}
	rule, _ := json.Marshal(map[string]any{"enabled": true, "mustContain": "", "affectedFeeds": []string{feedURL}, "savePath": save, "addPaused": false})
	if err := api("rss/setRule", url.Values{"ruleName": {"show"}, "ruleDef": {string(rule)}}); err != nil {
		t.Fatal(err)
	}

	// The new episode, published; qBittorrent is told to look again.
	want := writeRandom(t, w.content, "show/ep2.mkv", 300_001, 12)
	w.waitFeed(t, "show", "ep1.mkv", "ep2.mkv")
	published := time.Now()
	got := filepath.Join(save, "ep2.mkv")
	deadline = time.Now().Add(transferTimeout)
	lastRefresh := time.Time{}
	for !fileMatches(got, want) || !qbHasComplete(p.webUI, "ep2.mkv") {
		if time.Since(lastRefresh) > 2*time.Second {
			if err := api("rss/refreshItem", url.Values{"itemPath": {"show"}}); err != nil {
				t.Fatal(err)
			}
			lastRefresh = time.Now()
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("qBittorrent did not download ep2.mkv from the feed within %v (%s): %s", transferTimeout, p.status(), describeFile(got, want))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("qBittorrent found the new episode in the feed and downloaded it from the web seed %v after it was published", time.Since(published).Round(time.Millisecond))
}

// startQbittorrent runs qbittorrent-nox with no torrent, configured as the
// qbittorrent client is (loopback only, no DHT, PEX or local discovery,
// Web UI without a login), saving into save.
func startQbittorrent(t *testing.T, save, logDir string) *proc {
	t.Helper()
	// Not qbittorrent.start, which adds a torrent; this one finds its
	// torrents in the feed.
	profile := t.TempDir()
	port, webPort := freePort(t), freePort(t)
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\Interface=lo
Session\InterfaceName=lo
Session\InterfaceAddress=127.0.0.1
Session\QueueingSystemEnabled=false

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\ResolvePeerCountries=false
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
WebUI\HostHeaderValidation=false
`, port, webPort)
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "rss qbittorrent", save, logDir, []string{"HOME=" + profile},
		"qbittorrent-nox", "--profile="+profile, "--save-path="+save)
	p.webUI = fmt.Sprintf("http://127.0.0.1:%d", webPort)
	return p
}

// qbHasComplete reports whether qBittorrent lists a torrent named name at
// 100%.
func qbHasComplete(webUI, name string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(webUI + "/api/v2/torrents/info")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var list []struct {
		Name     string  `json:"name"`
		Progress float64 `json:"progress"`
	}
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return false
	}
	for _, it := range list {
		if it.Name == name && it.Progress == 1 {
			return true
		}
	}
	return false
}
