package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wardenOpts says how startWardenWith runs `warden serve`.
type wardenOpts struct {
	// mode is passed as --mode; "" leaves warden's default (allowlist).
	mode string
	// config, if set, is written to a file passed as --config.
	config string
	// admin turns on the admin API on a free loopback port.
	admin bool
	// dataDir is the data directory; "" means a fresh one. Passing the
	// dataDir of a stopped wardenProc restarts warden on its state.
	dataDir string
	// logDir is where warden's log goes; "" means testLogDir(t).
	logDir string
}

// wardenProc is a running `warden serve`.
type wardenProc struct {
	*proc
	httpAddr, udpAddr string // 127.0.0.1:PORT
	httpURL, udpURL   string // announce URLs
	adminURL          string // http://127.0.0.1:PORT, or "" if the admin API is off
	dataDir           string
}

// startWardenWith runs `warden serve` as opts say, on fresh loopback ports,
// and waits until HTTP and UDP (and the admin API, if on) answer. It stops
// warden in t.Cleanup and then fails the test if the race detector reported
// a race in it.
func startWardenWith(t *testing.T, opts wardenOpts) *wardenProc {
	t.Helper()
	bin, err := wardenBinary()
	if err != nil {
		t.Fatalf("build warden: %v", err)
	}
	dir := t.TempDir()
	w := &wardenProc{
		httpAddr: loopbackAddr(t),
		udpAddr:  loopbackAddr(t),
		dataDir:  cmp.Or(opts.dataDir, filepath.Join(dir, "data")),
	}
	w.httpURL = "http://" + w.httpAddr + "/announce"
	w.udpURL = "udp://" + w.udpAddr + "/announce"
	adminAddr := ""
	if opts.admin {
		adminAddr = loopbackAddr(t)
		w.adminURL = "http://" + adminAddr
	}
	args := []string{"serve",
		"--http", w.httpAddr,
		"--udp", w.udpAddr,
		"--admin", adminAddr,
		"--data", w.dataDir,
		"--log-level", "debug", // its log is shown only when a test fails
	}
	if opts.mode != "" {
		args = append(args, "--mode", opts.mode)
	}
	if opts.config != "" {
		path := filepath.Join(dir, "warden.toml")
		if err := os.WriteFile(path, []byte(opts.config), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	logDir := opts.logDir
	if logDir == "" {
		logDir = testLogDir(t)
	}
	t.Cleanup(func() { // runs after startProc's cleanup has stopped warden
		if w.proc == nil {
			return
		}
		if _, report, ok := bytes.Cut(w.log(), []byte("WARNING: DATA RACE")); ok {
			t.Errorf("the race detector found a data race in warden:\n%s", report)
		}
	})
	// The token comes from the data directory, not the tester's environment.
	w.proc = startProc(t, "tracker warden", dir, logDir, []string{"WARDEN_TOKEN="}, bin, args...)
	waitTracker(t, w.proc, w.httpAddr, w.udpAddr)
	if opts.admin {
		w.waitAdmin(t)
	}
	return w
}

// waitAdmin waits until GET /healthz on the admin API answers 200.
func (w *wardenProc) waitAdmin(t *testing.T) {
	t.Helper()
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(trackerStartTimeout)
	for {
		resp, err := c.Get(w.adminURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if w.exited() {
			t.Fatalf("%s %s before its admin API answered", w.name, w.status())
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API at %s not ready after %v: %v", w.adminURL, trackerStartTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 sends SIGKILL to warden by its PID and waits until it has exited.
func (w *wardenProc) kill9(t *testing.T) {
	t.Helper()
	w.stopped.Store(true)
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill -9 %s: %v", w.name, err)
	}
	<-w.done
}

// token reads the admin token warden wrote to its data directory.
func (w *wardenProc) token(t *testing.T) string {
	t.Helper()
	tok, err := w.readToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (w *wardenProc) readToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(w.dataDir, "admin.token"))
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// adminDo sends a request to the admin API with the bearer token tok (""
// sends no Authorization header) and returns the status and body. It is
// safe to call from any goroutine.
func (w *wardenProc) adminDo(method, path, tok string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.adminURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// adminJSON sends an authorized request to the admin API, returns an error
// unless the status is 2xx, and decodes the JSON reply into out (if not
// nil). It is safe to call from any goroutine.
func (w *wardenProc) adminJSON(method, path string, body, out any) error {
	tok, err := w.readToken()
	if err != nil {
		return err
	}
	code, b, err := w.adminDo(method, path, tok, body)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: reply %s: %w", method, path, b, err)
		}
	}
	return nil
}

// register adds infoHash (hex v1) to warden's registry through the admin API.
func (w *wardenProc) register(t *testing.T, infoHash, name string) {
	t.Helper()
	body := map[string]any{"torrents": []map[string]string{{"v1": infoHash, "name": name}}}
	if err := w.adminJSON(http.MethodPost, "/api/torrents", body, nil); err != nil {
		t.Fatal(err)
	}
}

// revoke revokes infoHash through the admin API. It is safe to call from
// any goroutine.
func (w *wardenProc) revoke(infoHash, reason string) error {
	return w.adminJSON(http.MethodPost, "/api/torrents/"+infoHash+"/revoke", map[string]string{"reason": reason}, nil)
}

// wardenStats is the part of the admin API's GET /stats the tests read.
type wardenStats struct {
	HTTP struct {
		AnnouncesOK     int `json:"announces_ok"`
		AnnouncesFailed int `json:"announces_failed"`
		ScrapesOK       int `json:"scrapes_ok"`
		ScrapesFailed   int `json:"scrapes_failed"`
	} `json:"http"`
	UDP struct {
		Connects        int `json:"connects"`
		AnnouncesOK     int `json:"announces_ok"`
		AnnouncesFailed int `json:"announces_failed"`
		ScrapesOK       int `json:"scrapes_ok"`
		ScrapesFailed   int `json:"scrapes_failed"`
	} `json:"udp"`
	Refused struct {
		Unregistered int `json:"unregistered"`
		Revoked      int `json:"revoked"`
	} `json:"refused"`
}

// stats returns warden's counters from GET /stats. It is safe to call
// from any goroutine.
func (w *wardenProc) stats() (wardenStats, error) {
	var st wardenStats
	err := w.adminJSON(http.MethodGet, "/stats", nil, &st)
	return st, err
}

// cliResult is what one run of the warden binary did.
type cliResult struct {
	stdout, stderr string
	err            error         // from exec: nil for exit status 0
	took           time.Duration // from start to exit
}

// runWarden runs the built warden binary with args, killing it (by its
// PID) if it runs longer than timeout, and returns what it did. It is safe
// to call from any goroutine.
func runWarden(timeout time.Duration, args ...string) cliResult {
	bin, err := wardenBinary()
	if err != nil {
		return cliResult{err: fmt.Errorf("build warden: %w", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// The token comes from the data directory, not the tester's environment.
	cmd.Env = append(os.Environ(), "WARDEN_TOKEN=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %v, killed: %w", timeout, err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err, took: time.Since(start)}
}

// cliTimeout bounds one run of a warden CLI command.
const cliTimeout = 30 * time.Second

// registryArgs returns the arguments of `warden registry ARGS` against w.
func (w *wardenProc) registryArgs(args ...string) []string {
	return append(append([]string{"registry"}, args...), "--admin", w.adminURL, "--data", w.dataDir)
}

// registryCLI runs `warden registry ARGS` against w and fails the test
// unless it exits 0. It returns stdout.
func (w *wardenProc) registryCLI(t *testing.T, args ...string) string {
	t.Helper()
	args = w.registryArgs(args...)
	r := runWarden(cliTimeout, args...)
	if r.err != nil {
		t.Fatalf("warden %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// announceAnswer is warden's answer to one announce, whatever the protocol.
type announceAnswer struct {
	refused bool
	reason  string // the failure reason (HTTP) or error message (UDP)
	body    []byte // the whole reply
}

// announce sends one announce for infoHash (hex v1) over proto ("http" or
// "udp") from a made-up peer, as a client would, and returns the answer.
func (w *wardenProc) announce(proto, infoHash string) (announceAnswer, error) {
	ih, err := hex.DecodeString(infoHash)
	if err != nil || len(ih) != 20 {
		return announceAnswer{}, fmt.Errorf("info hash %q: want 40 hex digits", infoHash)
	}
	peerID := []byte("-WE0001-e2e-announce")
	if proto == "udp" {
		return udpAnnounce(w.udpAddr, ih, peerID)
	}
	q := "info_hash=" + url.QueryEscape(string(ih)) + "&peer_id=" + url.QueryEscape(string(peerID)) +
		"&port=6881&uploaded=0&downloaded=0&left=1000&compact=1&event=started"
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(w.httpURL + "?" + q)
	if err != nil {
		return announceAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return announceAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return announceAnswer{}, fmt.Errorf("HTTP announce: %s: %q", resp.Status, body)
	}
	a := announceAnswer{body: body}
	const key = "14:failure reason"
	if i := bytes.Index(body, []byte(key)); i >= 0 {
		a.refused = true
		rest := body[i+len(key):]
		if n, s, ok := bytes.Cut(rest, []byte(":")); ok {
			if l, err := strconv.Atoi(string(n)); err == nil && l <= len(s) {
				a.reason = string(s[:l])
			}
		}
	}
	return a, nil
}

// udpAnnounce sends a BEP 15 connect and announce to addr and returns the
// answer: an announce reply, or an error action and its message.
func udpAnnounce(addr string, ih, peerID []byte) (announceAnswer, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return announceAnswer{}, err
	}
	defer c.Close()
	exchange := func(req []byte, tid uint32) ([]byte, error) {
		for range 3 {
			if _, err := c.Write(req); err != nil {
				return nil, err
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 2048)
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			if n >= 8 && binary.BigEndian.Uint32(buf[4:8]) == tid {
				return buf[:n], nil
			}
		}
		return nil, fmt.Errorf("UDP %s: no reply", addr)
	}
	tid := rand.Uint32()
	req := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	req = binary.BigEndian.AppendUint32(req, 0) // connect
	req = binary.BigEndian.AppendUint32(req, tid)
	resp, err := exchange(req, tid)
	if err != nil {
		return announceAnswer{}, err
	}
	if len(resp) < 16 || binary.BigEndian.Uint32(resp) != 0 {
		return announceAnswer{}, fmt.Errorf("UDP connect: unexpected reply %x", resp)
	}
	tid = rand.Uint32()
	req = append([]byte(nil), resp[8:16]...)    // connection ID
	req = binary.BigEndian.AppendUint32(req, 1) // announce
	req = binary.BigEndian.AppendUint32(req, tid)
	req = append(req, ih...)
	req = append(req, peerID...)
	req = binary.BigEndian.AppendUint64(req, 0)    // downloaded
	req = binary.BigEndian.AppendUint64(req, 1000) // left
	req = binary.BigEndian.AppendUint64(req, 0)    // uploaded
	req = binary.BigEndian.AppendUint32(req, 2)    // event: started
	req = binary.BigEndian.AppendUint32(req, 0)    // IP: the sender's
	req = binary.BigEndian.AppendUint32(req, rand.Uint32())
	req = binary.BigEndian.AppendUint32(req, 0xffffffff) // num_want: default
	req = binary.BigEndian.AppendUint16(req, 6881)
	resp, err = exchange(req, tid)
	if err != nil {
		return announceAnswer{}, err
	}
	switch binary.BigEndian.Uint32(resp) {
	case 1:
		return announceAnswer{body: resp}, nil
	case 3:
		return announceAnswer{refused: true, reason: string(resp[8:]), body: resp}, nil
	}
	return announceAnswer{}, fmt.Errorf("UDP announce: unexpected reply %x", resp)
}
