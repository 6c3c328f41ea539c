package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// python is Debian's interpreter, the one python3-libtorrent is installed
// for (a python3 earlier on PATH, e.g. from pyenv, lacks the module).
const python = "/usr/bin/python3"

// role says whether a client seeds the payload or downloads it.
type role int

const (
	seeder role = iota
	leecher
)

func (r role) String() string {
	if r == seeder {
		return "seeder"
	}
	return "leecher"
}

// A run is one client's part in a transfer.
type run struct {
	role       role
	proto      string // "http" or "udp": the scheme of trackerURL
	trackerURL string // the torrent's only tracker
	infoHash   string // hex
	torrent    string // path of the .torrent
	dataDir    string // a seeder finds the payload here; a leecher writes it here
	logDir     string
	clientArgs []string // more command-line arguments, for clients that take them
	// lifetime bounds how long a client with a timeout of its own
	// (libtorrent) runs; 0 means 300 s.
	lifetime time.Duration
}

// A client drives one real BitTorrent client binary with DHT, PEX and local
// peer discovery off, listening on 127.0.0.1 only, and all of its state in
// fresh temporary directories.
type client struct {
	name string // as it appears in test names

	// installed returns an error saying what is missing if the client is
	// not installed.
	installed func() error

	// start runs the client and sets the proc's announced probe. It returns
	// at once; the process is stopped in t.Cleanup.
	start func(t *testing.T, r run) *proc

	// dialsLoopback is false for a client that never connects out to peers
	// on 127.0.0.0/8. It must start first, so the other client learns its
	// address from the tracker and connects to it.
	dialsLoopback bool

	// quitsAtStart is true for a client that now and then exits 0 by itself
	// right after it starts; the test starts it again.
	quitsAtStart bool
}

// libtorrent is python3-libtorrent (Rasterbar libtorrent 2.0) driven by
// test/clients/ltclient.py.
var libtorrent = client{
	name:      "libtorrent",
	installed: libtorrentInstalled,
	start: func(t *testing.T, r run) *proc {
		mode := map[role]string{seeder: "seed", leecher: "leech"}[r.role]
		args := append([]string{clientScript(t, "ltclient.py"), mode, r.torrent, r.dataDir,
			strconv.Itoa(freePort(t)), strconv.Itoa(int(cmp.Or(r.lifetime, 300*time.Second).Seconds()))},
			r.clientArgs...)
		p := startProc(t, r.role.String()+" libtorrent", r.dataDir, r.logDir,
			[]string{"HOME=" + t.TempDir()}, python, args...)
		p.announced = p.logMatches(regexp.MustCompile(`(?m)^ANNOUNCED$`))
		return p
	},
	dialsLoopback: true,
}

// aria2 is aria2c 1.36. It speaks to udp:// trackers only through its DHT
// socket, so for UDP the DHT is switched on, but with an empty routing table:
// a fresh --dht-file-path, no --dht-entry-point, and (v1 torrents from
// mktorrent.py have no "nodes" key) no bootstrap node, so it finds nobody
// through the DHT.
var aria2 = client{
	name:      "aria2",
	installed: binaryInstalled("aria2c"),
	start: func(t *testing.T, r run) *proc {
		state := t.TempDir()
		args := []string{
			"--no-conf=true",
			"--dir=" + r.dataDir,
			"--interface=127.0.0.1",
			"--disable-ipv6=true",
			"--listen-port=" + strconv.Itoa(freePort(t)),
			"--enable-peer-exchange=false",
			"--bt-enable-lpd=false",
			"--enable-dht6=false",
			"--bt-save-metadata=false",
			"--file-allocation=none",
			"--summary-interval=0",
			"--console-log-level=notice",
			"--log=-", // debug log to stdout: it has the tracker replies
			"--log-level=debug",
		}
		if r.proto == "udp" {
			args = append(args,
				"--enable-dht=true",
				"--dht-listen-port="+strconv.Itoa(freePort(t)),
				"--dht-file-path="+filepath.Join(state, "dht.dat"),
			)
		} else {
			args = append(args, "--enable-dht=false")
		}
		if r.role == seeder {
			// Check the data first; seed until killed.
			args = append(args, "--check-integrity=true", "--seed-ratio=0.0")
		} else {
			args = append(args, "--seed-time=0") // exit once downloaded
		}
		args = append(args, r.torrent)
		p := startProc(t, r.role.String()+" aria2", r.dataDir, r.logDir,
			[]string{"HOME=" + state}, "aria2c", args...)
		// HTTP: DefaultBtAnnounce logs the interval of a reply that is not
		// a failure. UDP: the UDP tracker client logs each announce reply.
		p.announced = p.logMatches(regexp.MustCompile(
			`\] Interval:\d+|UDPT received ANNOUNCE reply .*event=(STARTED|NONE|COMPLETED)`))
		return p
	},
	dialsLoopback: true,
}

// transmission is transmission-cli 3.00, configured through settings.json in
// a fresh config directory (-g). It never dials peers on 127.0.0.0/8 (it
// accepts them), so it always starts first.
//
// A new torrent is stopped while its data is verified and started after, so
// its first announce is a "stopped" and the "started" follows about a second
// later. transmission-cli's main loop polls the torrent every 200 ms and
// exits when it finds it stopped, so now and then it quits right at start
// (exit status 0, no "Stopping torrent..." line): quitsAtStart.
//
// TR_DEBUG_FD=2 turns on its debug log, in which the announcer says when a
// regular announce succeeded.
var transmission = client{
	name:      "transmission",
	installed: binaryInstalled("transmission-cli"),
	start: func(t *testing.T, r run) *proc {
		cfg := t.TempDir()
		port := freePort(t)
		settings := map[string]any{
			"dht-enabled":                false,
			"lpd-enabled":                false,
			"pex-enabled":                false,
			"utp-enabled":                false,
			"port-forwarding-enabled":    false,
			"bind-address-ipv4":          "127.0.0.1",
			"bind-address-ipv6":          "::1",
			"peer-port":                  port,
			"peer-port-random-on-start":  false,
			"rpc-enabled":                false,
			"blocklist-enabled":          false,
			"incomplete-dir-enabled":     false,
			"rename-partial-files":       true, // payload appears under its name only when complete
			"start-added-torrents":       true,
			"speed-limit-down-enabled":   false,
			"speed-limit-up-enabled":     false,
			"ratio-limit-enabled":        false,
			"idle-seeding-limit-enabled": false,
			"message-level":              3,
		}
		b, err := json.MarshalIndent(settings, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg, "settings.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, r.role.String()+" transmission", r.dataDir, r.logDir,
			[]string{"HOME=" + cfg, "TR_DEBUG_FD=2"},
			"transmission-cli", "-g", cfg, "-w", r.dataDir, "-p", strconv.Itoa(port), r.torrent)
		// Logged after a successful announce other than "stopped".
		p.announced = p.logMatches(regexp.MustCompile(`Sending periodic reannounce in`))
		return p
	},
	dialsLoopback: false,
	quitsAtStart:  true,
}

// qbittorrent is qbittorrent-nox 4.5 (libtorrent 2.0 inside), configured
// through qBittorrent.conf in a fresh --profile directory. Its Web UI, on
// loopback without authentication, tells when the tracker answered.
var qbittorrent = client{
	name:      "qbittorrent",
	installed: binaryInstalled("qbittorrent-nox"),
	start: func(t *testing.T, r run) *proc {
		profile := t.TempDir()
		port, webPort := freePort(t), freePort(t)
		// Keys as qBittorrent 4.5 writes them. ResolvePeerCountries=false
		// stops it from downloading a GeoIP database at start.
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
Session\MultiConnectionsPerIp=true
Session\AnnounceToAllTrackers=true
Session\BTProtocol=TCP
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
		p := startProc(t, r.role.String()+" qbittorrent", r.dataDir, r.logDir,
			[]string{"HOME=" + profile},
			"qbittorrent-nox", "--profile="+profile, "--save-path="+r.dataDir, "--add-paused=false", r.torrent)
		p.webUI = "http://127.0.0.1:" + strconv.Itoa(webPort)
		p.announced = func() bool { return qbTrackerWorking(p.webUI, r.infoHash, r.trackerURL) }
		return p
	},
	dialsLoopback: true,
}

// qbTrackerWorking reports whether qBittorrent's Web UI at webUI lists
// trackerURL as working (status 2: its last announce got a reply) for the
// torrent infoHash.
func qbTrackerWorking(webUI, infoHash, trackerURL string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(webUI + "/api/v2/torrents/trackers?hash=" + infoHash)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var trackers []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&trackers) != nil {
		return false
	}
	for _, tr := range trackers {
		if tr.URL == trackerURL && tr.Status == 2 {
			return true
		}
	}
	return false
}

// require skips the test (or fails it when CI=true) if the client is not
// installed.
func (c client) require(t *testing.T) {
	t.Helper()
	if err := c.installed(); err != nil {
		missing(t, "%s: %v", c.name, err)
	}
}

// binaryInstalled returns an installed function for a client that is the
// program bin.
func binaryInstalled(bin string) func() error {
	return func() error {
		_, err := exec.LookPath(bin)
		return err
	}
}

// libtorrentOK caches whether /usr/bin/python3 can import libtorrent.
var libtorrentOK = sync.OnceValue(func() error {
	out, err := exec.Command(python, "-c", "import libtorrent").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -c 'import libtorrent': %v: %s", python, err, out)
	}
	return nil
})

// libtorrentInstalled reports whether /usr/bin/python3 can import
// libtorrent.
func libtorrentInstalled() error {
	if _, err := exec.LookPath(python); err != nil {
		return err
	}
	if err := libtorrentOK(); err != nil {
		return fmt.Errorf("python3-libtorrent not usable: %v", err)
	}
	return nil
}

// requireLibtorrent reports python3-libtorrent missing unless /usr/bin/python3
// can import it.
func requireLibtorrent(t *testing.T) {
	t.Helper()
	libtorrent.require(t)
}

// clientScript returns the absolute path of a script in test/clients.
func clientScript(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	return path
}
