package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"warden/internal/metainfo"
)

// webWarden is `warden serve` with the web listener on, publishing (or
// not) its content directory.
type webWarden struct {
	*wardenProc
	webAddr string // 127.0.0.1:PORT
	webURL  string // http://127.0.0.1:PORT
	content string
}

// webOpts says how startWebWarden runs warden.
type webOpts struct {
	metaVersion string // publish.meta_version; "" is hybrid
	settle      string // publish.settle; "" is 200ms
	noWatch     bool   // publish.watch = false: serve, but let warden publish do the publishing
	content     string // the content directory; "" makes a fresh one
	dataDir     string // as wardenOpts.dataDir
	extra       string // more TOML, appended
}

// startWebWarden runs warden serve with the web listener on a free
// loopback port over opts.content, publishing it (pieces of 16 KiB, so
// that small files have several, and pads), with the admin API on, and
// waits until the web listener accepts connections. Every client of the
// tests comes from 127.0.0.1, so the per-source request rate is raised
// above what several clients at once ask of one source.
func startWebWarden(t *testing.T, opts webOpts) *webWarden {
	t.Helper()
	w := &webWarden{webAddr: loopbackAddr(t), content: opts.content}
	w.webURL = "http://" + w.webAddr
	if w.content == "" {
		w.content = filepath.Join(t.TempDir(), "content")
		if err := os.MkdirAll(w.content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`[web]
listen = %q
content_dir = %q

[publish]
watch = %t
settle = %q
poll = "100ms"
meta_version = %q
piece_size = 16384

[limit]
rate_per_sec = 2000.0
burst = 20000
prefix_rate_per_sec = 20000.0
prefix_burst = 200000
%s`, w.webAddr, w.content, !opts.noWatch, cmp.Or(opts.settle, "200ms"), cmp.Or(opts.metaVersion, "hybrid"), opts.extra)
	w.wardenProc = startWardenWith(t, wardenOpts{config: cfg, admin: true, dataDir: opts.dataDir})
	deadline := time.Now().Add(trackerStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", w.webAddr, time.Second)
		if err == nil {
			c.Close()
			return w
		}
		if w.exited() || time.Now().After(deadline) {
			t.Fatalf("web listener on %s not up (%s): %v", w.webAddr, w.status(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get fetches a path of the web listener.
func (w *webWarden) get(path string, hdr ...string) (int, []byte, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, w.webURL+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// feedItem is what the tests read of a feed's item.
type feedItem struct {
	Title     string `xml:"title"`
	GUID      string `xml:"guid"`
	Link      string `xml:"link"`
	Enclosure struct {
		URL    string `xml:"url,attr"`
		Length int64  `xml:"length,attr"`
		Type   string `xml:"type,attr"`
	} `xml:"enclosure"`
}

type feedDoc struct {
	Channel struct {
		LastBuild string     `xml:"lastBuildDate"`
		Items     []feedItem `xml:"item"`
	} `xml:"channel"`
}

// feed fetches and reads /feeds/NAME.xml.
func (w *webWarden) feed(name string) (feedDoc, error) {
	var doc feedDoc
	code, body, _, err := w.get("/feeds/" + name + ".xml")
	if err != nil {
		return doc, err
	}
	if code != http.StatusOK {
		return doc, fmt.Errorf("/feeds/%s.xml: HTTP %d", name, code)
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return doc, fmt.Errorf("/feeds/%s.xml: %w", name, err)
	}
	return doc, nil
}

// waitFeed waits until feed NAME lists an item titled with each of titles,
// and returns them by title.
func (w *webWarden) waitFeed(t *testing.T, name string, titles ...string) map[string]feedItem {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		doc, err := w.feed(name)
		got := map[string]feedItem{}
		for _, it := range doc.Channel.Items {
			got[it.Title] = it
		}
		all := err == nil
		for _, title := range titles {
			if _, ok := got[title]; !ok {
				all = false
			}
		}
		if all {
			return got
		}
		if w.exited() || time.Now().After(deadline) {
			t.Fatalf("feed %s.xml does not list %v after 60 s (%s): %v, has %d items", name, titles, w.status(), err, len(doc.Channel.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetchTorrent downloads an item's .torrent into dir and returns its path.
func (w *webWarden) fetchTorrent(t *testing.T, it feedItem, dir string) string {
	t.Helper()
	path := strings.TrimPrefix(it.Enclosure.URL, w.webURL)
	code, body, hdr, err := w.get(path)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", it.Enclosure.URL, code, err)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/x-bittorrent" || int64(len(body)) != it.Enclosure.Length {
		t.Fatalf("%s: Content-Type %q, %d bytes; the feed says %d", it.Enclosure.URL, ct, len(body), it.Enclosure.Length)
	}
	out := filepath.Join(dir, it.GUID+".torrent")
	if err := os.WriteFile(out, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutWebSeed writes a copy of a torrent without its url-list (the info
// hash is the same), so a client can get the data only from peers.
func withoutWebSeed(t *testing.T, torrent string) string {
	t.Helper()
	tr, err := metainfo.ReadTorrent(torrent)
	if err != nil {
		t.Fatal(err)
	}
	tr.URLList = nil
	b, err := tr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSuffix(torrent, ".torrent") + "-peers-only.torrent"
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeRandom writes size random bytes to rel below root.
func writeRandom(t *testing.T, root, rel string, size int, seed uint64) []byte {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(size), byte(size >> 8), byte(size >> 16)}).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// treeMatches reports how the files below got differ from those below
// want (a file or a directory); files only in got (aria2's pads) are
// ignored.
func treeMatches(got, want string) error {
	return filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		w, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		gp := filepath.Join(got, rel)
		if rel == "." {
			gp = got
		}
		if !fileMatches(gp, w) {
			return fmt.Errorf("%s", describeFile(gp, w))
		}
		return nil
	})
}

// waitTree waits until the download at got matches want and the client
// says it is complete (complete may be nil), failing the test if p exits
// first or transferTimeout passes.
func waitTree(t *testing.T, p *proc, complete func() bool, got, want string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(transferTimeout)
	for {
		err := treeMatches(got, want)
		if err == nil && complete != nil && !complete() {
			err = fmt.Errorf("the files match, but %s does not say the torrent is complete", p.name)
		}
		if err == nil {
			return time.Since(start)
		}
		if p.exited() {
			if treeMatches(got, want) == nil && (complete == nil || complete()) {
				return time.Since(start)
			}
			t.Fatalf("%s %s before the download was complete: %v", p.name, p.status(), err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: download not complete after %v: %v", p.name, transferTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fetchAndSeed starts c on torrent so that it downloads into dir (from the
// web seed, when that is the only source) and then keeps seeding. complete
// reports whether the client itself says the torrent is complete, which
// for a hybrid in aria2 includes its pads.
func fetchAndSeed(t *testing.T, c client, torrent, infoHash, dir, logDir string) (p *proc, complete func() bool) {
	t.Helper()
	r := run{role: leecher, proto: "http", torrent: torrent, infoHash: infoHash, dataDir: dir, logDir: logDir}
	switch c.name {
	case "libtorrent":
		p = startProc(t, "fetch libtorrent", dir, logDir, []string{"HOME=" + t.TempDir()}, python,
			clientScript(t, "ltfetch.py"), torrent, dir, strconv.Itoa(freePort(t)), "300")
		return p, p.logMatches(regexp.MustCompile(`(?m)^DONE$`))
	case "aria2":
		r.role = seeder // checks what is there, downloads the rest, then seeds until stopped
		p = c.start(t, r)
		return p, p.logMatches(regexp.MustCompile(`SEED\(`))
	case "qbittorrent":
		p = c.start(t, r)
		return p, func() bool { return qbComplete(p.webUI) }
	}
	p = c.start(t, r)
	return p, func() bool { return true } // Transmission: v1 only, no pads; the bytes say it all
}

// qbComplete reports whether qBittorrent's Web UI lists its one torrent
// at 100%. Not filtered by hash: qBittorrent 4.5 names a hybrid torrent by
// its truncated v2 info hash, not by the v1 hash the feed's guid carries.
func qbComplete(webUI string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(webUI + "/api/v2/torrents/info")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var list []struct {
		Progress float64 `json:"progress"`
	}
	return json.NewDecoder(resp.Body).Decode(&list) == nil && len(list) == 1 && list[0].Progress == 1
}

// TestWebSeedOnly has each real client download, with no BitTorrent
// seeder anywhere, a single-file and a multi-file torrent (v1 and hybrid;
// Transmission 3 v1 only) that warden published, from warden's web seed
// alone, and compares the bytes. Then a second client downloads the
// multi-file torrent from the first, given a copy of the torrent without
// the web seed, so through the tracker only.
func TestWebSeedOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs real BitTorrent clients; skipped in -short mode")
	}
	type kind struct {
		version string
		w       *webWarden
		items   map[string]feedItem
	}
	var kinds []*kind
	for _, v := range []string{"1", "hybrid"} {
		content := filepath.Join(t.TempDir(), "content")
		writeRandom(t, content, "show/single.bin", 300_007, 1)
		writeRandom(t, content, "show/multi/a.bin", 70_001, 2)
		writeRandom(t, content, "show/multi/sub/b.bin", 33_333, 3)
		writeRandom(t, content, "show/multi/c.txt", 5, 4)
		w := startWebWarden(t, webOpts{metaVersion: v, content: content})
		kinds = append(kinds, &kind{version: v, w: w, items: w.waitFeed(t, "show", "single.bin", "multi")})
	}
	for _, c := range []client{libtorrent, aria2, qbittorrent, transmission} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.require(t)
			logDir := testLogDir(t)
			var seed *proc
			var seedTorrent, seedWant string
			var seedHash string
			for _, k := range kinds {
				if c.name == "transmission" && k.version != "1" {
					continue // Transmission 3 refuses v2 and hybrid torrents
				}
				for _, name := range []string{"single.bin", "multi"} {
					it := k.items[name]
					dir := t.TempDir()
					torrent := k.w.fetchTorrent(t, it, t.TempDir())
					p, complete := fetchAndSeed(t, c, torrent, it.GUID, dir, logDir)
					took := waitTree(t, p, complete, filepath.Join(dir, name), filepath.Join(k.w.content, "show", name))
					t.Logf("v%s %s: %s downloaded it from the web seed alone in %v", k.version, name, c.name, took.Round(time.Millisecond))
					// The multi-file hybrid stays seeded for the second
					// client; the v1 one for Transmission, which has no
					// hybrid, and for aria2, which announces a hybrid under
					// a hash of its own that the tracker does not know.
					if name == "multi" && (k.version == "hybrid") == (c.name != "transmission" && c.name != "aria2") {
						seed, seedTorrent, seedWant, seedHash = p, torrent, filepath.Join(k.w.content, "show", name), it.GUID
						continue
					}
					p.stop()
				}
			}
			// The second client dials the first. Not aria2: version 1.36
			// takes the v1 info hash of a hybrid torrent (warden's or
			// libtorrent's alike) to be another, so it finds no swarm.
			second := libtorrent
			if c.name == "libtorrent" {
				second = qbittorrent
			}
			second.require(t)
			dir := t.TempDir()
			peersOnly := withoutWebSeed(t, seedTorrent)
			r := run{role: leecher, proto: "http", torrent: peersOnly, infoHash: seedHash, dataDir: dir, logDir: logDir}
			p := second.start(t, r)
			took := waitTree(t, p, nil, filepath.Join(dir, "multi"), seedWant)
			t.Logf("%s then downloaded it from %s through the tracker (no web seed) in %v", second.name, c.name, took.Round(time.Millisecond))
			p.stop()
			seed.stop()
		})
	}
}

// TestWebSeedSendfile checks, with strace attached to warden, that the web
// listener hands file bytes to the kernel (sendfile) rather than copying
// them through the process, through the connection limiter's wrapper.
func TestWebSeedSendfile(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs warden under strace; skipped in -short mode")
	}
	strace := requireBinary(t, "strace")
	w := startWebWarden(t, webOpts{noWatch: true})
	const size = 4 << 20
	want := writeRandom(t, w.content, "big.bin", size, 7)
	out := filepath.Join(t.TempDir(), "strace.out")
	st := startProc(t, "strace", t.TempDir(), testLogDir(t), nil, strace, "-f", "-e", "trace=sendfile", "-o", out, "-p", strconv.Itoa(w.cmd.Process.Pid))
	// strace says when it is attached; the first syscalls may be missed
	// before that.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(st.log()), "attached") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	code, body, _, err := w.get("/content/big.bin")
	if err != nil || code != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET /content/big.bin: %d, %d bytes, %v", code, len(body), err)
	}
	code, body, _, err = w.get("/content/big.bin", "Range", "bytes=1048576-2097151")
	if err != nil || code != 206 || !bytes.Equal(body, want[1<<20:2<<20]) {
		t.Fatalf("GET range: %d, %d bytes, %v", code, len(body), err)
	}
	st.stop() // detaches; warden runs on
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	re := regexp.MustCompile(`sendfile\(\d+, \d+, [^,]+, \d+\)\s+= (\d+)`)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			sent += n
		}
	}
	// All but the first 512 bytes of each reply, which net/http copies
	// to sniff before it hands the rest to the connection.
	if wantSent := int64(size + 1<<20 - 2*512); sent < wantSent {
		t.Fatalf("sendfile sent %d bytes of the %d served; strace:\n%.2000s", sent, size+1<<20, st.tail(20)+"\n"+string(b))
	}
	t.Logf("sendfile carried %d of %d bytes", sent, size+1<<20)
}

// TestWebSeedRefusesOutside sends the ways out of the content directory a
// client can write to the running warden, and checks that none is served.
func TestWebSeedRefusesOutside(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs the warden binary; skipped in -short mode")
	}
	w := startWebWarden(t, webOpts{noWatch: true})
	secretDir := t.TempDir()
	secret := []byte("not for the web")
	if err := os.WriteFile(filepath.Join(secretDir, "secret"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(secretDir, "secret"), filepath.Join(w.content, "link")); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, w.content, ".hidden", 10, 1)
	rel, _ := filepath.Rel(w.content, filepath.Join(secretDir, "secret"))
	for _, path := range []string{
		"/content/link",
		"/content/.hidden",
		"/content/" + rel,
		"/content/" + strings.ReplaceAll(rel, ".", "%2e"),
		"/content/" + strings.ReplaceAll(rel, "/", "%2f"),
		"/content/..%2f..%2f..%2fetc%2fpasswd",
		"/content/%2e%2e/%2e%2e/etc/passwd",
		"/torrents/../registry.db",
		"/feeds/..%2fadmin.token",
	} {
		c, err := net.Dial("tcp", w.webAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
		reply, _ := io.ReadAll(c)
		c.Close()
		if !bytes.HasPrefix(reply, []byte("HTTP/1.1 404")) && !bytes.HasPrefix(reply, []byte("HTTP/1.1 400")) {
			t.Errorf("GET %s: %.60q, want 404", path, reply)
		}
		if bytes.Contains(reply, secret) || bytes.Contains(reply, []byte("root:")) {
			t.Fatalf("GET %s served a file outside the content directory", path)
		}
	}
}
