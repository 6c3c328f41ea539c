package e2e

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// trackerEnv names the environment variable that selects the tracker under
// test: "warden" or "opentracker".
const trackerEnv = "WARDEN_E2E_TRACKER"

// defaultTracker is the tracker used when $WARDEN_E2E_TRACKER is unset.
// "opentracker" runs the same tests against Debian's opentracker, to tell a
// warden bug from a harness or client problem.
const defaultTracker = "warden"

// trackerStartTimeout bounds how long a tracker may take to accept requests.
const trackerStartTimeout = 15 * time.Second

// A trackerStarter starts a tracker for one test that serves announces for
// infoHash (hex) over HTTP and UDP on 127.0.0.1, waits until both accept
// requests, and returns their announce URLs. It stops the tracker in
// t.Cleanup and fails the test if the tracker does not come up.
type trackerStarter func(t *testing.T, infoHash string) (httpURL, udpURL string)

var trackerStarters = map[string]trackerStarter{
	"warden":      startWarden,
	"opentracker": startOpentracker,
}

// startTracker starts the tracker under test, chosen by $WARDEN_E2E_TRACKER
// (default defaultTracker).
func startTracker(t *testing.T, infoHash string) (httpURL, udpURL string) {
	t.Helper()
	name := cmp.Or(os.Getenv(trackerEnv), defaultTracker)
	start, ok := trackerStarters[name]
	if !ok {
		t.Fatalf("%s=%q: want warden or opentracker", trackerEnv, name)
	}
	return start(t, infoHash)
}

// startWarden runs `warden serve` in open mode (any info hash is tracked, so
// infoHash is not needed) with a fresh data directory and the admin API off.
func startWarden(t *testing.T, infoHash string) (httpURL, udpURL string) {
	t.Helper()
	w := startWardenWith(t, wardenOpts{mode: "open"})
	return w.httpURL, w.udpURL
}

// raceEnabled is set when the test binary is built with -race; warden is
// then built with -race too.
var raceEnabled bool

// warden is built once per test binary, into a directory TestMain removes.
var wardenBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// wardenBinary builds ./cmd/warden once and returns the binary's path.
// Running the built binary rather than `go run` keeps each start fast and
// lets the test stop warden itself by PID (not a `go run` parent).
func wardenBinary() (string, error) {
	b := &wardenBuild
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "warden-e2e-")
		if b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "warden")
		args := []string{"build", "-o", b.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "warden/cmd/warden")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
	})
	return b.bin, b.err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if wardenBuild.dir != "" {
		os.RemoveAll(wardenBuild.dir)
	}
	os.Exit(code)
}

// startOpentracker runs Debian's opentracker, a reference tracker. Debian
// builds it with WANT_ACCESSLIST_WHITE, so it only tracks the info hashes in
// its whitelist file (-w). Started as root, it drops to user nobody before it
// reads that file.
func startOpentracker(t *testing.T, infoHash string) (httpURL, udpURL string) {
	t.Helper()
	bin := requireBinary(t, "opentracker")
	// Not t.TempDir: its parent is mode 0700, and opentracker reads the
	// whitelist only after it has dropped to nobody.
	dir, err := os.MkdirTemp("", "warden-e2e-opentracker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	whitelist := filepath.Join(dir, "whitelist.txt")
	if err := os.WriteFile(whitelist, []byte(infoHash+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t) // one number for TCP (HTTP) and UDP
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := startProc(t, "tracker opentracker", dir, testLogDir(t), nil, bin,
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-P", strconv.Itoa(port), "-w", whitelist)
	waitTracker(t, p, addr, addr)
	return "http://" + addr + "/announce", "udp://" + addr + "/announce"
}

// loopbackAddr returns "127.0.0.1:PORT" with a free port.
func loopbackAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

// waitTracker waits until the tracker accepts TCP connections on httpAddr and
// answers a BEP 15 connect request on udpAddr.
func waitTracker(t *testing.T, p *proc, httpAddr, udpAddr string) {
	t.Helper()
	deadline := time.Now().Add(trackerStartTimeout)
	httpUp, udpUp := false, false
	for {
		if !httpUp {
			if c, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
				c.Close()
				httpUp = true
			}
		}
		if !udpUp {
			udpUp = udpConnects(udpAddr)
		}
		if httpUp && udpUp {
			return
		}
		if p.exited() {
			t.Fatalf("%s %s before it served requests", p.name, p.status())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: HTTP on %s up=%v, UDP on %s up=%v",
				p.name, trackerStartTimeout, httpAddr, httpUp, udpAddr, udpUp)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udpConnects reports whether a BEP 15 connect request to addr gets a
// matching connect response.
func udpConnects(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	tid := rand.Uint32()
	req := binary.BigEndian.AppendUint64(nil, 0x41727101980) // protocol_id
	req = binary.BigEndian.AppendUint32(req, 0)              // action: connect
	req = binary.BigEndian.AppendUint32(req, tid)
	if _, err := c.Write(req); err != nil {
		return false
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	resp := make([]byte, 64)
	n, err := c.Read(resp)
	if err != nil || n < 16 {
		return false
	}
	want := binary.BigEndian.AppendUint32(nil, 0) // action: connect
	want = binary.BigEndian.AppendUint32(want, tid)
	return bytes.Equal(resp[:8], want)
}
