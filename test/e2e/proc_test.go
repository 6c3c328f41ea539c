package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a process has to exit after SIGTERM before it is
// killed.
const stopGrace = 3 * time.Second

// proc is a child process started by a test. Its stdout and stderr both go to
// one log file.
type proc struct {
	name    string // label used in messages, e.g. "seeder libtorrent"
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // exit status; read only after done is closed
	stopped atomic.Bool   // stop signalled the process

	// announced reports whether the tracker has answered the client's first
	// announce that put it in the swarm. The client's start function sets it.
	announced func() bool

	// webUI is the base URL of a client's Web UI (qBittorrent), or "".
	webUI string
}

// startProc starts bin with args in dir, with env added to the test's
// environment, and its output written to logDir. It registers a cleanup that
// stops the process by its PID (SIGTERM, then SIGKILL after stopGrace) and,
// if the test failed, logs the tail of its output.
func startProc(t *testing.T, name, dir, logDir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	base := filepath.Join(logDir, strings.ReplaceAll(name, " ", "-"))
	logPath := base + ".log"
	for i := 2; fileExists(logPath); i++ { // a client started again keeps both logs
		logPath = fmt.Sprintf("%s.%d.log", base, i)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	fmt.Fprintf(logFile, "# %s\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s (pid %d, %s), last lines of %s (set %s to keep it):\n%s",
				p.name, cmd.Process.Pid, p.status(), logPath, logDirEnv, p.tail(60))
		}
	})
	return p
}

// logDirEnv names an environment variable: when set, each test writes the
// logs of the processes it starts to a directory under it, named after the
// test, and leaves them there, rather than in a temporary directory.
const logDirEnv = "WARDEN_E2E_LOG_DIR"

// testLogDir returns the directory for the logs of t's processes.
func testLogDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv(logDirEnv)
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after stopGrace.
// It returns once the process has exited.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.stopped.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// status describes the process state for messages.
func (p *proc) status() string {
	if !p.exited() {
		return "running"
	}
	st := "exited 0"
	if p.waitErr != nil {
		st = p.waitErr.Error()
	}
	if p.stopped.Load() {
		return "stopped by the test (" + st + ")"
	}
	return st
}

// log returns the process's output so far.
func (p *proc) log() []byte {
	b, _ := os.ReadFile(p.logPath)
	return b
}

// tail returns the last n non-empty lines of the log. Carriage returns (used
// by progress meters) count as line ends.
func (p *proc) tail(n int) string {
	text := strings.ReplaceAll(string(p.log()), "\r", "\n")
	var lines []string
	for l := range strings.Lines(text) {
		if l = strings.TrimRight(l, " \n"); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logMatches returns a function that reports whether p's log matches re.
func (p *proc) logMatches(re *regexp.Regexp) func() bool {
	return func() bool { return re.Match(p.log()) }
}

// waitAnnounced waits until p.announced reports true. It returns an error if
// the process exits first or timeout passes.
func (p *proc) waitAnnounced(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.announced() {
			return nil
		}
		if p.exited() {
			if p.announced() { // output written just before exit
				return nil
			}
			return fmt.Errorf("%s %s before the tracker answered its announce", p.name, p.status())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no tracker reply after %v", p.name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ports handed out by freePort in this test binary, so parallel tests never
// get the same one.
var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// freePort returns a port on 127.0.0.1 that is free for both TCP and UDP
// (clients use one number for both), that this test binary has not handed out
// before, and that lies below Linux's ephemeral range (32768 and up by
// default), so outgoing connections do not take it before the client binds it.
func freePort(t *testing.T) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = make(map[int]bool)
	}
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if ports.used[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		ports.used[port] = true
		return port
	}
	t.Fatalf("no free loopback port found in 20000-31999")
	return 0
}

// missing reports a tool the test needs but cannot find: it skips the test,
// or fails it when CI=true, where every client must be installed.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: every client must be installed)", msg)
	}
	t.Skip(msg)
}

// requireBinary returns the path of bin, or reports it missing.
func requireBinary(t *testing.T, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		missing(t, "%s not installed: %v", bin, err)
	}
	return path
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// fileMatches reports whether the file at path holds exactly want.
func fileMatches(path string, want []byte) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != int64(len(want)) {
		return false
	}
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, want)
}

// describeFile says how the file at path differs from want.
func describeFile(path string, want []byte) string {
	got, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(filepath.Dir(path))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return fmt.Sprintf("%s does not exist (directory holds %q)", path, names)
	}
	if err != nil {
		return err.Error()
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%s has %d bytes, want %d", path, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("%s differs from the payload first at byte %d", path, i)
		}
	}
	return fmt.Sprintf("%s matches", path)
}
