package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"warden/internal/metainfo"
)

// torrentCase is one input of the torrent corpus: a file or a directory.
type torrentCase struct {
	name string
	path string
}

// buildTorrentCorpus writes the inputs the exact-hash test covers: a file
// of odd size, one of exactly one 64 KiB piece and one a byte over, an
// executable file, and directories with an empty file, nested directories,
// an executable, names that sort differently by component than as whole
// paths (a-b/x, a.txt, a/y), and a directory of a single file.
func buildTorrentCorpus(t *testing.T, root string) []torrentCase {
	t.Helper()
	write := func(rel string, size int, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(len(rel))})
		r.Read(data)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("odd.bin", 1_500_007, 0o644) // over 1 MiB, of an odd size
	write("onepiece.bin", 64<<10, 0o644)
	write("oneover.bin", 64<<10+1, 0o644)
	write("run.sh", 5000, 0o755)
	for rel, size := range map[string]int{
		"a/y": 5, "a-b/x": 3, "a.txt": 1, "empty": 0, "sub/deep/er/file": 200_001, "z.bin": 64 << 10,
	} {
		write(filepath.Join("multi", rel), size, 0o644)
	}
	write("multi/bin/tool", 70_000, 0o755)
	write("nested/x/y/z/w/leaf", 12_345, 0o644)
	write("nested/x/y/other", 64<<10+1, 0o644)
	write("onefile/only.bin", 33_333, 0o644)
	var cases []torrentCase
	for _, name := range []string{"odd.bin", "onepiece.bin", "oneover.bin", "run.sh", "multi", "nested", "onefile"} {
		cases = append(cases, torrentCase{name: name, path: filepath.Join(root, name)})
	}
	return cases
}

// ltResult is what lt_torrent.py reports for one job.
type ltResult struct {
	V1          string            `json:"v1"`
	V2          string            `json:"v2"`
	PieceLayers map[string]string `json:"piece_layers"`
	Progress    float64           `json:"progress"`
	State       string            `json:"state"`
	Error       string            `json:"error"`
}

// runLT runs test/clients/lt_torrent.py on jobs and returns its results,
// one per job.
func runLT(t *testing.T, jobs []map[string]any) []ltResult {
	t.Helper()
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, clientScript(t, "lt_torrent.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lt_torrent.py: %v\n%s", err, stderr.String())
	}
	var res []ltResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(jobs) {
		t.Fatalf("lt_torrent.py: %d results for %d jobs (%v): %s", len(res), len(jobs), err, out)
	}
	return res
}

// wardenCLI runs the warden binary and fails the test unless it exits 0.
func wardenCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	r := runWarden(2*time.Minute, args...)
	if r.err != nil {
		t.Fatalf("warden %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

// layersHex is a torrent's piece layers as lt_torrent.py prints them.
func layersHex(tr *metainfo.Torrent) map[string]string {
	m := map[string]string{}
	for root, layer := range tr.PieceLayers {
		m[hex.EncodeToString(root[:])] = hex.EncodeToString(layer)
	}
	return m
}

func hashHex(tr *metainfo.Torrent) (v1, v2 string) {
	if tr.Hashes.V1 != nil {
		v1 = tr.Hashes.V1.String()
	}
	if tr.Hashes.V2 != nil {
		v2 = tr.Hashes.V2.String()
	}
	return v1, v2
}

// TestTorrentCreateMatchesReference checks that `warden torrent create`
// makes, for every input of the corpus and two piece sizes, v2 and hybrid
// torrents whose info hashes and piece layers equal those of libtorrent
// 2.0 (create_torrent with no_attributes), and v1 torrents whose info hash
// equals mktorrent's.
func TestTorrentCreateMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs libtorrent and mktorrent; skipped in -short mode")
	}
	requireLibtorrent(t)
	mktorrent := requireBinary(t, "mktorrent")
	root := t.TempDir()
	cases := buildTorrentCorpus(t, filepath.Join(root, "data"))
	out := filepath.Join(root, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}

	type check struct {
		name, mode  string // mode: hybrid, v2 (against libtorrent) or v1 (against mktorrent)
		warden, ref string
		job         int // index of the reference's lt_torrent.py job
	}
	var checks []check
	var jobs []map[string]any
	for _, c := range cases {
		for _, pl := range []int64{32 << 10, 64 << 10} { // mktorrent takes 32 KiB and up
			for _, mode := range []string{"hybrid", "v2", "v1"} {
				name := fmt.Sprintf("%s/%dK/%s", c.name, pl>>10, mode)
				base := filepath.Join(out, strings.NewReplacer("/", "_", ".", "_").Replace(name))
				ck := check{name: name, mode: mode, warden: base + ".warden.torrent", ref: base + ".ref.torrent", job: len(jobs)}
				if mode == "v1" {
					// mktorrent wants the piece length as a power of two.
					cmd := exec.Command(mktorrent, "-l", strconv.Itoa(bits.TrailingZeros64(uint64(pl))), "-d",
						"-a", "http://127.0.0.1:1/announce", "-o", ck.ref, c.path)
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
					}
					jobs = append(jobs, map[string]any{"op": "info", "file": ck.ref})
				} else {
					jobs = append(jobs, map[string]any{"op": "create", "path": c.path, "out": ck.ref, "piece_length": pl, "mode": mode})
				}
				version := map[string]string{"hybrid": "hybrid", "v2": "2", "v1": "1"}[mode]
				wardenCLI(t, "torrent", "create", c.path, "-o", ck.warden, "--meta-version", version,
					"--piece-size", strconv.FormatInt(pl, 10), "--date", "none")
				checks = append(checks, ck)
			}
		}
	}
	refs := runLT(t, jobs)
	matched := 0
	for _, ck := range checks {
		ref := refs[ck.job]
		if ref.Error != "" {
			t.Errorf("%s: reference: %s", ck.name, ref.Error)
			continue
		}
		tr, err := metainfo.ReadTorrent(ck.warden)
		if err != nil {
			t.Errorf("%s: %v", ck.name, err)
			continue
		}
		v1, v2 := hashHex(tr)
		ok := v1 == ref.V1 && v2 == ref.V2
		if !ok {
			t.Errorf("%s: warden v1 %q v2 %q, reference v1 %q v2 %q", ck.name, v1, v2, ref.V1, ref.V2)
		}
		if ck.mode != "v1" {
			if got := layersHex(tr); fmt.Sprint(got) != fmt.Sprint(ref.PieceLayers) {
				ok = false
				t.Errorf("%s: piece layers differ: warden %d layers, libtorrent %d", ck.name, len(got), len(ref.PieceLayers))
			}
		}
		if ok {
			matched++
		}
	}
	t.Logf("%d of %d torrents match the reference (libtorrent %s for v2 and hybrid, mktorrent for v1)", matched, len(checks), "2.0")
}

// TestTorrentCreateCLI checks the command's promises: the same bytes
// whatever the thread count, a refused output inside the input, errors for
// links, files changed or unreadable, show --json, magnet, verify and
// --register.
func TestTorrentCreateCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs the warden binary; skipped in -short mode")
	}
	root := t.TempDir()
	cases := buildTorrentCorpus(t, filepath.Join(root, "data"))
	multi := cases[4].path
	out := filepath.Join(root, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("same bytes whatever the threads", func(t *testing.T) {
		var first []byte
		for _, threads := range []string{"1", "2", "5"} {
			p := filepath.Join(out, "t"+threads+".torrent")
			wardenCLI(t, "torrent", "create", multi, "-o", p, "--threads", threads, "--date", "1700000000",
				"--announce", "http://a/announce,http://b/announce", "--announce", "udp://c:6969/announce",
				"--web-seed", "https://seed.example/", "--comment", "c", "--piece-size", "16K")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if first != nil && !bytes.Equal(first, b) {
				t.Fatalf("--threads %s gives other bytes than --threads 1", threads)
			}
			first = b
		}
	})

	t.Run("show --json and magnet", func(t *testing.T) {
		p := filepath.Join(out, "t1.torrent")
		var s struct {
			Name        string     `json:"name"`
			InfoHashV1  string     `json:"info_hash_v1"`
			InfoHashV2  string     `json:"info_hash_v2"`
			PieceLength int64      `json:"piece_length"`
			TotalLength int64      `json:"total_length"`
			Announce    [][]string `json:"announce"`
			URLList     []string   `json:"url_list"`
			Private     bool       `json:"private"`
			Files       []struct {
				Path   string `json:"path"`
				Length int64  `json:"length"`
			} `json:"files"`
		}
		r := wardenCLI(t, "torrent", "show", p, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("show --json: %v\n%s", err, r.stdout)
		}
		if s.Name != "multi" || len(s.InfoHashV1) != 40 || len(s.InfoHashV2) != 64 || s.PieceLength != 16<<10 ||
			s.TotalLength != 5+3+1+200_001+64<<10+70_000 || len(s.Files) != 7 || s.Private ||
			fmt.Sprint(s.Announce) != "[[http://a/announce http://b/announce] [udp://c:6969/announce]]" ||
			fmt.Sprint(s.URLList) != "[https://seed.example/]" {
			t.Fatalf("show --json = %+v", s)
		}
		m := strings.TrimSpace(wardenCLI(t, "torrent", "magnet", p).stdout)
		want := "magnet:?xt=urn:btih:" + s.InfoHashV1 + "&xt=urn:btmh:1220" + s.InfoHashV2 + "&dn=multi&tr=http%3A%2F%2Fa%2Fannounce"
		if !strings.HasPrefix(m, want) || !strings.Contains(m, "&ws=https%3A%2F%2Fseed.example%2F") {
			t.Fatalf("magnet = %s\nwant it to start %s and carry ws", m, want)
		}
	})

	t.Run("verify", func(t *testing.T) {
		p := filepath.Join(out, "t1.torrent")
		r := wardenCLI(t, "torrent", "verify", p, multi)
		if !strings.Contains(r.stdout, "pieces good") {
			t.Fatalf("verify: %s", r.stdout)
		}
		victim := filepath.Join(multi, "sub/deep/er/file")
		orig, err := os.ReadFile(victim)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(victim, orig, 0o644) })
		bad := bytes.Clone(orig)
		bad[100_000] ^= 1
		if err := os.WriteFile(victim, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		r = runWarden(cliTimeout, "torrent", "verify", p, multi)
		if r.err == nil || !strings.Contains(r.stdout, "BAD (1 bad pieces) sub/deep/er/file") || !strings.Contains(r.stderr, "1 of ") {
			t.Fatalf("verify of damaged data: %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
		}
		if err := os.WriteFile(victim, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("output inside the input", func(t *testing.T) {
		inside := filepath.Join(multi, "self.torrent")
		r := runWarden(cliTimeout, "torrent", "create", multi, "-o", inside)
		if r.err == nil || !strings.Contains(r.stderr, "is inside the input") {
			t.Fatalf("create -o inside the input: %v: %s", r.err, r.stderr)
		}
		if fileExists(inside) {
			t.Fatal("a file was left inside the input")
		}
	})

	t.Run("errors leave nothing behind", func(t *testing.T) {
		dir := filepath.Join(root, "bad")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(out, "bad.torrent")
		r := runWarden(cliTimeout, "torrent", "create", dir, "-o", dst)
		if r.err == nil || !strings.Contains(r.stderr, "link: is a symbolic link") {
			t.Fatalf("create with a symlink: %v: %s", r.err, r.stderr)
		}
		entries, _ := os.ReadDir(out)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".bad.torrent") || e.Name() == "bad.torrent" {
				t.Fatalf("left behind: %s", e.Name())
			}
		}
	})

	t.Run("unreadable file", func(t *testing.T) {
		// As root every file is readable, so the binary runs as nobody.
		setpriv, err := exec.LookPath("setpriv")
		if err != nil || os.Geteuid() != 0 {
			missing(t, "needs root and setpriv (util-linux) to run warden as another user: %v", err)
		}
		bin, err := wardenBinary()
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "warden-unreadable-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o777)
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "public"), []byte("y"), 0o644); err != nil {
			t.Fatal(err)
		}
		binCopy := filepath.Join(dir, "..", filepath.Base(dir)+"-warden")
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(binCopy, b, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(binCopy) })
		cmd := exec.Command(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", binCopy,
			"torrent", "create", dir, "-o", "/tmp/"+filepath.Base(dir)+".torrent")
		outb, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(outb), "secret: unreadable: permission denied") {
			t.Fatalf("create with an unreadable file: %v: %s", err, outb)
		}
	})

	t.Run("register", func(t *testing.T) {
		w := startWardenWith(t, wardenOpts{admin: true})
		p := filepath.Join(out, "reg.torrent")
		r := wardenCLI(t, "torrent", "create", multi, "-o", p, "--register", "--admin", w.adminURL, "--data", w.dataDir)
		tr, err := metainfo.ReadTorrent(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.stdout, "registered") {
			t.Fatalf("create --register printed %q", r.stdout)
		}
		for _, h := range []string{tr.Hashes.V1.String(), tr.Hashes.V2.String(), tr.Hashes.V2.Truncate().String()} {
			got := w.registryCLI(t, "show", h)
			if !strings.Contains(got, "active") {
				t.Fatalf("registry show %s after create --register: %s", h, got)
			}
		}
		for _, proto := range []string{"http", "udp"} {
			for _, ih := range []string{tr.Hashes.V1.String(), tr.Hashes.V2.Truncate().String()} {
				a, err := w.announce(proto, ih)
				if err != nil || a.refused {
					t.Fatalf("%s announce for %s after --register: %+v, %v", proto, ih, a, err)
				}
			}
		}
	})
}

// TestTorrentLoadsInClients gives each real client torrents warden made,
// with their data, and checks each reports 100% once it has checked the
// files: libtorrent and qBittorrent every kind, aria2 v1 and hybrid (it
// knows no v2), Transmission 3 v1 (it refuses hybrid and v2, as the
// command warns).
func TestTorrentLoadsInClients(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs real BitTorrent clients; skipped in -short mode")
	}
	root := t.TempDir()
	cases := buildTorrentCorpus(t, filepath.Join(root, "data"))
	data := filepath.Join(root, "data")
	type made struct{ name, mode, file, path string }
	var torrents []made
	for _, c := range []torrentCase{cases[0], cases[4], cases[5]} {
		for _, mode := range []string{"hybrid", "2", "1"} {
			file := filepath.Join(root, c.name+"-"+mode+".torrent")
			wardenCLI(t, "torrent", "create", c.path, "-o", file, "--meta-version", mode, "--piece-size", "16K",
				"--announce", "http://127.0.0.1:1/announce")
			torrents = append(torrents, made{name: c.name + "/" + mode, mode: mode, file: file, path: c.path})
		}
	}

	t.Run("libtorrent", func(t *testing.T) {
		requireLibtorrent(t)
		var jobs []map[string]any
		for _, tr := range torrents {
			jobs = append(jobs, map[string]any{"op": "check", "file": tr.file, "save_path": data, "timeout": 60})
		}
		for i, res := range runLT(t, jobs) {
			if res.Error != "" || res.Progress != 1 {
				t.Errorf("%s: libtorrent: progress %v, state %s, error %q", torrents[i].name, res.Progress, res.State, res.Error)
			}
		}
	})

	t.Run("qbittorrent", func(t *testing.T) {
		qbittorrent.require(t)
		for _, tr := range torrents {
			if err := qbChecks(t, tr.file, data); err != nil {
				t.Errorf("%s: qBittorrent: %v", tr.name, err)
			}
		}
	})

	t.Run("aria2", func(t *testing.T) {
		aria2.require(t)
		for _, tr := range torrents {
			if tr.mode == "2" {
				continue // aria2 1.36 reads v1 only
			}
			if err := aria2Checks(t, tr.file, tr.path); err != nil {
				t.Errorf("%s: aria2: %v", tr.name, err)
			}
		}
	})

	t.Run("transmission", func(t *testing.T) {
		transmission.require(t)
		requireBinary(t, "transmission-show")
		for _, tr := range torrents {
			if tr.mode != "1" {
				// The warning's ground: Transmission 3 refuses the file.
				if out, err := exec.Command("transmission-show", tr.file).CombinedOutput(); err == nil &&
					!strings.Contains(string(out), "Error parsing") {
					t.Errorf("%s: transmission-show read a v2 torrent; the warning may be stale:\n%s", tr.name, out)
				}
				continue
			}
			if err := transmissionChecks(t, tr.file, data); err != nil {
				t.Errorf("%s: Transmission: %v", tr.name, err)
			}
		}
	})
}

// clientCheckTimeout bounds how long a client may take to check and
// report a torrent complete.
const clientCheckTimeout = 60 * time.Second

// qbChecks runs qBittorrent on torrent with its data in saveDir and waits
// until its Web UI reports the torrent at 100% and seeding.
func qbChecks(t *testing.T, torrent, saveDir string) error {
	profile := t.TempDir()
	webPort := freePort(t)
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
`, freePort(t), webPort)
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	p := startProc(t, "qbittorrent "+filepath.Base(torrent), saveDir, testLogDir(t), []string{"HOME=" + profile},
		"qbittorrent-nox", "--profile="+profile, "--save-path="+saveDir, "--add-paused=false", torrent)
	defer p.stop()
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(clientCheckTimeout)
	last := "no answer from the Web UI"
	for time.Now().Before(deadline) && !p.exited() {
		time.Sleep(300 * time.Millisecond)
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v2/torrents/info", webPort))
		if err != nil {
			continue
		}
		var list []struct {
			Progress float64 `json:"progress"`
			State    string  `json:"state"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil || len(list) != 1 {
			last = fmt.Sprintf("%d torrents listed (%v)", len(list), err)
			continue
		}
		last = fmt.Sprintf("progress %v, state %s", list[0].Progress, list[0].State)
		if list[0].Progress == 1 && (strings.HasSuffix(list[0].State, "UP") || list[0].State == "uploading") {
			return nil
		}
		if list[0].State == "error" || list[0].State == "missingFiles" {
			break
		}
	}
	return fmt.Errorf("not complete after checking: %s (%s)", last, p.status())
}

// aria2Checks runs aria2c with --check-integrity on torrent with its data
// at path and waits for it to exit, done. aria2 1.36 knows nothing of BEP
// 47 pads and takes them for files to download, so for a multi-file hybrid
// the pads are given to it as files of zeros, the bytes they stand for.
func aria2Checks(t *testing.T, torrent, path string) error {
	tr, err := metainfo.ReadTorrent(torrent)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	for _, f := range tr.Info.Files {
		if !f.Pad {
			continue
		}
		pad := filepath.Join(append([]string{path}, f.Path...)...)
		if err := os.MkdirAll(filepath.Dir(pad), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(pad, make([]byte, f.Length), 0o644); err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(pad))
	}
	state := t.TempDir()
	p := startProc(t, "aria2 "+filepath.Base(torrent), dir, testLogDir(t), []string{"HOME=" + state}, "aria2c",
		"--no-conf=true", "--dir="+dir, "--interface=127.0.0.1", "--disable-ipv6=true",
		"--listen-port="+strconv.Itoa(freePort(t)), "--enable-dht=false", "--enable-peer-exchange=false",
		"--bt-enable-lpd=false", "--bt-save-metadata=false", "--file-allocation=none", "--summary-interval=0",
		"--check-integrity=true", "--seed-time=0", "--bt-stop-timeout=30", torrent)
	select {
	case <-p.done:
	case <-time.After(clientCheckTimeout):
		return fmt.Errorf("still running after %v", clientCheckTimeout)
	}
	// aria2 prints a summary: OK for a complete download.
	if p.waitErr != nil || !regexp.MustCompile(`(?m)\|OK\s+\|`).Match(p.log()) {
		return fmt.Errorf("exit %v, no OK in its summary:\n%s", p.waitErr, p.tail(15))
	}
	return nil
}

// transmissionChecks runs transmission-cli on torrent with its data in
// saveDir and waits until it says it is seeding, which it does only once
// it has verified every piece.
func transmissionChecks(t *testing.T, torrent, saveDir string) error {
	cfg := t.TempDir()
	port := freePort(t)
	settings := map[string]any{
		"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
		"port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
		"peer-port": port, "peer-port-random-on-start": false, "rpc-enabled": false,
		"incomplete-dir-enabled": false, "start-added-torrents": true,
	}
	b, err := json.Marshal(settings)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg, "settings.json"), b, 0o644); err != nil {
		return err
	}
	p := startProc(t, "transmission "+filepath.Base(torrent), saveDir, testLogDir(t), []string{"HOME=" + cfg},
		"transmission-cli", "-g", cfg, "-w", saveDir, "-p", strconv.Itoa(port), "-v", torrent)
	defer p.stop()
	seeding := regexp.MustCompile(`Seeding, uploading to`)
	deadline := time.Now().Add(clientCheckTimeout)
	for time.Now().Before(deadline) {
		if seeding.Match(p.log()) {
			return nil
		}
		if p.exited() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("never seeding (%s):\n%s", p.status(), p.tail(10))
}
