package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// registrySizeEnv sets how many hashes TestLargeRegistry imports; the
// default is just past the 116,000 at which `registry list` used to fail
// (30,000 under the race detector).
const registrySizeEnv = "WARDEN_E2E_REGISTRY_SIZE"

// TestLargeRegistry is issue 14, item 7: a bulk import and a listing far
// larger than one request, on a machine whose cores are both kept busy.
// `warden registry add --from` must register every hash and say so,
// `warden registry list --json` must list each exactly once (it used to
// fail past 116,000 entries with "unexpected end of JSON input"), and two
// listings at once must work. It logs how long each step took and the
// server's peak resident memory (VmHWM in /proc/PID/status) after each.
func TestLargeRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden processes; skipped in -short mode")
	}
	n := 120_000
	if raceEnabled {
		// A race build imports about 20 times slower on this kind of
		// machine; 30,000 is still three pages of a listing and six
		// batches of an import.
		n = 30_000
	}
	if v := os.Getenv(registrySizeEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", registrySizeEnv, v)
		}
	}
	hashes := randomHashes(n)
	from := filepath.Join(t.TempDir(), "hashes.txt")
	if err := os.WriteFile(from, []byte(strings.Join(hashes, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	timeout := 2*time.Minute + time.Duration(n)*time.Millisecond // generous: about 1 ms per hash
	if raceEnabled {
		timeout *= 10
	}
	w := startWardenWith(t, wardenOpts{admin: true})
	t.Logf("started: peak RSS %s", peakRSS(t, w.proc))
	busy(t, 2, timeout)

	start := time.Now()
	r := runWarden(timeout, w.registryArgs("add", "--from", from, "--json")...)
	if r.err != nil {
		t.Fatalf("registry add --from of %d hashes: %v after %v\nstderr: %s", n, r.err, r.took, r.stderr)
	}
	reply := decodeJSON[addReply](t, "registry add --from --json", r.stdout)
	if reply.Added != n || reply.Existing != 0 {
		t.Fatalf("registry add --from of %d new hashes: %+v", n, reply)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("%d of %d sent", n, n)) && n > 5000 {
		t.Errorf("registry add --from reported no progress on stderr: %q", r.stderr)
	}
	t.Logf("imported %d hashes in %v; peak RSS %s", n, time.Since(start).Round(time.Millisecond), peakRSS(t, w.proc))

	// Restart, so the peak below is the snapshot load and the listings.
	w.stop()
	start = time.Now()
	w = startWardenWith(t, wardenOpts{admin: true, dataDir: w.dataDir})
	t.Logf("restarted on %d entries in %v; peak RSS %s", n, time.Since(start).Round(time.Millisecond), peakRSS(t, w.proc))

	start = time.Now()
	var wg sync.WaitGroup
	var lists [2]cliResult
	for i := range lists {
		wg.Go(func() { lists[i] = runWarden(timeout, w.registryArgs("list", "--json")...) })
	}
	wg.Wait()
	t.Logf("two listings at once in %v; peak RSS %s", time.Since(start).Round(time.Millisecond), peakRSS(t, w.proc))
	want := make(map[string]bool, n)
	for _, h := range hashes {
		want[h] = true
	}
	for i, r := range lists {
		if r.err != nil {
			t.Fatalf("registry list --json (%d): %v\nstderr: %s", i, r.err, r.stderr)
		}
		seen := 0
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		var es []struct{ V1 string }
		if err := dec.Decode(&es); err != nil {
			t.Fatalf("registry list --json (%d) printed no JSON list: %v", i, err)
		}
		dup := make(map[string]bool, n)
		for _, e := range es {
			if !want[e.V1] || dup[e.V1] {
				t.Fatalf("registry list --json (%d): %s unexpected or listed twice", i, e.V1)
			}
			dup[e.V1] = true
			seen++
		}
		if seen != n {
			t.Fatalf("registry list --json (%d) listed %d entries, want %d", i, seen, n)
		}
	}
	r = runWarden(timeout, w.registryArgs("list", "--limit", "3")...)
	if r.err != nil || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("registry list --limit 3: %v, %q; want a header and 3 rows", r.err, r.stdout)
	}
}

// peakRSS returns the peak resident set of p (VmHWM), as /proc shows it.
func peakRSS(t *testing.T, p *proc) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// busy keeps n cores busy with shell loops until the test ends (or for at
// most d), so that what follows runs on a loaded machine. The loops are
// stopped by their PIDs.
func busy(t *testing.T, n int, d time.Duration) {
	t.Helper()
	for range n {
		cmd := exec.Command("timeout", strconv.Itoa(int(d.Seconds())), "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start a busy loop: %v", err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
	}
}
