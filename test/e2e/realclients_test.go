package e2e

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// payloadSize is not a multiple of the 256 KiB piece size, so the last
	// piece is short.
	payloadSize  = 3<<20 + 12345
	payloadName  = "payload.bin"
	readyTimeout = 20 * time.Second // client start to first tracker reply
	// transferTimeout bounds one download. Transfers take about 1-3 s, or
	// about 10 s with Transmission, which decides which peers it wants
	// pieces from every 10 s.
	transferTimeout = 60 * time.Second
)

// A pairing is one transfer: seed seeds, leech downloads.
type pairing struct{ seed, leech client }

// pairings lists the transfers run over each tracker protocol. Transmission
// never dials loopback peers, so it is always paired with a client that does.
var pairings = map[string][]pairing{
	"http": {
		{libtorrent, aria2},
		{libtorrent, transmission},
		{aria2, libtorrent},
		{transmission, aria2},
		{qbittorrent, aria2},
	},
	"udp": {
		{libtorrent, aria2},
		{aria2, libtorrent},
		{transmission, libtorrent},
		{aria2, transmission},
		{aria2, qbittorrent},
	},
}

// TestRealClients seeds a random payload with one real client and downloads
// it with another, through a tracker given only as an http:// or udp://
// announce URL in the .torrent, and checks the downloaded bytes. Each
// transfer has its own tracker process.
func TestRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs real BitTorrent clients; skipped in -short mode")
	}
	requireLibtorrent(t) // mktorrent.py needs it
	fx := newFixture(t)

	for _, proto := range []string{"http", "udp"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			for _, p := range pairings[proto] {
				t.Run(p.seed.name+"-seeds_"+p.leech.name+"-leeches", func(t *testing.T) {
					t.Parallel()
					transfer(t, fx, proto, p.seed, p.leech)
				})
			}
		})
	}
}

// fixture is the payload shared by every transfer in one TestRealClients run.
type fixture struct {
	payloadPath string
	payload     []byte
	infoHash    string // hex v1 info hash; the same for every tracker URL
}

// newFixture writes a random payload and learns its info hash by creating a
// torrent without trackers: the announce URL lies outside the info dict, so
// it does not change the hash, and opentracker needs the hash for its
// whitelist before the URL (with the tracker's port) is known.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{payloadPath: filepath.Join(dir, payloadName), payload: make([]byte, payloadSize)}
	rand.Read(fx.payload)
	if err := os.WriteFile(fx.payloadPath, fx.payload, 0o644); err != nil {
		t.Fatal(err)
	}
	fx.infoHash = makeTorrent(t, fx.payloadPath, filepath.Join(dir, "notracker.torrent"))
	return fx
}

// makeTorrent writes a .torrent for payload with the given tracker URLs
// (one tier each) using python3-libtorrent, and returns its hex info hash.
func makeTorrent(t *testing.T, payload, out string, trackers ...string) string {
	t.Helper()
	args := append([]string{clientScript(t, "mktorrent.py"), payload, out}, trackers...)
	cmd := exec.Command(python, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("mktorrent.py: %v\n%s", err, stderr.String())
	}
	ih := strings.TrimSpace(string(stdout))
	if len(ih) != 40 {
		t.Fatalf("mktorrent.py printed %q, want a hex info hash", ih)
	}
	return ih
}

// transfer starts a tracker, seeds the payload with seed and downloads it
// with leech through a .torrent whose only tracker is the tracker's proto
// URL, and checks the downloaded bytes.
func transfer(t *testing.T, fx *fixture, proto string, seed, leech client) {
	seed.require(t)
	leech.require(t)
	if !seed.dialsLoopback && !leech.dialsLoopback {
		t.Fatalf("neither %s nor %s dials loopback peers: they cannot meet", seed.name, leech.name)
	}
	logDir, seedDir, leechDir := testLogDir(t), t.TempDir(), t.TempDir()

	httpURL, udpURL := startTracker(t, fx.infoHash)
	url := map[string]string{"http": httpURL, "udp": udpURL}[proto]
	torrent := filepath.Join(logDir, "test.torrent")
	if ih := makeTorrent(t, fx.payloadPath, torrent, url); ih != fx.infoHash {
		t.Fatalf("info hash with tracker %s = %s, without = %s", url, ih, fx.infoHash)
	}
	if err := os.WriteFile(filepath.Join(seedDir, payloadName), fx.payload, 0o644); err != nil {
		t.Fatal(err)
	}

	seedRun := run{role: seeder, proto: proto, trackerURL: url, infoHash: fx.infoHash, torrent: torrent, dataDir: seedDir, logDir: logDir}
	leechRun := seedRun
	leechRun.role, leechRun.dataDir = leecher, leechDir

	// The second client learns the first's address from the tracker and
	// dials it, so the first must be in the swarm before the second starts.
	// A seeder goes first unless the leecher cannot dial.
	var seedProc, leechProc *proc
	start := time.Now()
	if leech.dialsLoopback {
		seedProc = startInSwarm(t, seed, seedRun)
		leechProc = leech.start(t, leechRun)
	} else {
		leechProc = startInSwarm(t, leech, leechRun)
		seedProc = seed.start(t, seedRun)
	}
	t.Logf("tracker %s; first client in the swarm after %v", url, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	waitDownloaded(t, seedProc, leechProc, filepath.Join(leechDir, payloadName), fx.payload)
	t.Logf("%s downloaded %d bytes from %s in %v", leech.name, len(fx.payload), seed.name, time.Since(start).Round(time.Millisecond))
}

// startInSwarm starts c and waits until the tracker has answered its
// announce. A client with quitsAtStart whose process exits 0 on its own
// before that is started again, up to startAttempts times in all.
func startInSwarm(t *testing.T, c client, r run) *proc {
	t.Helper()
	const startAttempts = 3
	for attempt := 1; ; attempt++ {
		p := c.start(t, r)
		err := p.waitAnnounced(readyTimeout)
		if err == nil {
			return p
		}
		if c.quitsAtStart && attempt < startAttempts && p.exited() && p.waitErr == nil && !p.stopped.Load() {
			t.Logf("%s quit by itself at start (attempt %d); starting it again", p.name, attempt)
			continue
		}
		t.Fatal(err)
	}
}

// waitDownloaded waits until the file at path holds want. It fails the test
// if the leecher exits first with an error or without the file complete, if
// the seeder exits, or if transferTimeout passes.
func waitDownloaded(t *testing.T, seed, leech *proc, path string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(transferTimeout)
	for !fileMatches(path, want) {
		select {
		case <-leech.done:
			if fileMatches(path, want) {
				return
			}
			t.Fatalf("%s %s before the download was complete: %s", leech.name, leech.status(), describeFile(path, want))
		case <-seed.done:
			t.Fatalf("%s %s during the transfer", seed.name, seed.status())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("download not complete after %v: %s", transferTimeout, describeFile(path, want))
		}
	}
}
