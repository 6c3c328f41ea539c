package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedWALStopsWarden is issue 14, item 6, as the operator lived it:
// a bulk add of 1,001 hashes acknowledged, warden killed with SIGKILL
// before a checkpoint, one flipped bit in registry.db-wal. SQLite reads the
// log only up to its first damaged frame, so warden used to start with an
// empty registry and refuse every client. It must now refuse to start,
// naming the WAL and the backup and recover commands, and leave the files
// as they are; `warden registry recover` then restores a backup taken with
// `warden registry backup`, or accepts the loss, explicitly and with a
// record of what was given up.
func TestDamagedWALStopsWarden(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden processes; skipped in -short mode")
	}
	w := startWardenWith(t, wardenOpts{admin: true})
	data := w.dataDir
	db := filepath.Join(data, "registry.db")
	hashes := randomHashes(1001)
	from := filepath.Join(t.TempDir(), "hashes.txt")
	if err := os.WriteFile(from, []byte(strings.Join(hashes, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := decodeJSON[addReply](t, "registry add --from", w.registryCLI(t, "add", "--from", from, "--json")); r.Added != 1001 {
		t.Fatalf("bulk add: %+v, want 1001 added", r)
	}
	backup := filepath.Join(t.TempDir(), "registry-backup.db")
	out := w.registryCLI(t, "backup", backup)
	if !strings.Contains(out, "backed up 1001 entries") {
		t.Fatalf("registry backup printed %q, want 1001 entries backed up", out)
	}
	later := randomHashes(3) // acknowledged after the backup: the backup cannot bring them back
	for _, h := range later {
		w.registryCLI(t, "add", h)
	}
	w.kill9(t)

	wal, err := os.ReadFile(db + "-wal")
	if err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	wal[32+24+100] ^= 0x01 // into the page of the WAL's first frame
	if err := os.WriteFile(db+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}
	main, _ := os.ReadFile(db)
	// A copy of the damaged directory, to accept the loss there later.
	acceptDir := filepath.Join(t.TempDir(), "data")
	copyDir(t, data, acceptDir)

	r := runWarden(15*time.Second, "serve", "--http", loopbackAddr(t), "--udp", loopbackAddr(t),
		"--admin", loopbackAddr(t), "--data", data)
	t.Logf("warden serve exited after %v (%v):\n%s", r.took.Round(time.Millisecond), r.err, r.stderr)
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || r.took > 10*time.Second {
		t.Fatalf("warden serve on a registry whose WAL lost 1,004 acknowledged entries did not refuse to start (%v after %v)", r.err, r.took)
	}
	msg := lastLine(r.stderr)
	for _, want := range []string{db + "-wal", "missing committed changes", "warden registry backup", "warden registry recover --data " + data} {
		if !strings.Contains(msg, want) {
			t.Errorf("warden serve's error does not say %q:\n%s", want, msg)
		}
	}
	if !fileMatches(db+"-wal", wal) || !fileMatches(db, main) {
		t.Fatalf("warden serve changed the registry it refused: %s; %s", describeFile(db, main), describeFile(db+"-wal", wal))
	}

	t.Run("restore the backup", func(t *testing.T) {
		r := runWarden(cliTimeout, "registry", "recover", "--data", data, "--from", backup)
		if r.err != nil {
			t.Fatalf("registry recover --from: %v\n%s%s", r.err, r.stdout, r.stderr)
		}
		t.Logf("registry recover --from:\n%s", r.stdout)
		if !strings.Contains(r.stdout, "with 1001 entries") || !strings.Contains(r.stdout, "given up: the last 3 changes") {
			t.Errorf("registry recover --from printed %q, want the backup's 1001 entries and the 3 changes given up", r.stdout)
		}
		w := startWardenWith(t, wardenOpts{admin: true, dataDir: data})
		if es := w.list(t); len(es) != 1001 {
			t.Fatalf("after restoring the backup warden lists %d entries, want 1001", len(es))
		}
		for _, h := range hashes[:3] {
			if a, err := w.announce("udp", h); err != nil || a.refused {
				t.Errorf("announce of a restored torrent: %+v, %v", a, err)
			}
		}
		// recover refuses while warden runs.
		r = runWarden(cliTimeout, "registry", "recover", "--data", data)
		if r.err == nil || !strings.Contains(r.stderr, "stop warden serve first") {
			t.Errorf("registry recover while warden runs: %v, %q; want refused", r.err, r.stderr)
		}
	})

	t.Run("accept the loss", func(t *testing.T) {
		r := runWarden(cliTimeout, "registry", "recover", "--data", acceptDir)
		if r.err != nil {
			t.Fatalf("registry recover: %v\n%s%s", r.err, r.stdout, r.stderr)
		}
		t.Logf("registry recover:\n%s", r.stdout)
		if !strings.Contains(r.stdout, "accepted as it is") || !strings.Contains(r.stdout, "1004 entries fewer") ||
			!strings.Contains(r.stdout, "registry.db-wal.before-recover-") {
			t.Errorf("registry recover printed %q, want the loss of 1004 entries accepted and the WAL kept aside", r.stdout)
		}
		aside, _ := filepath.Glob(filepath.Join(acceptDir, "registry.db-wal.before-recover-*"))
		if len(aside) != 1 || !fileMatches(aside[0], wal) {
			t.Errorf("the damaged WAL was not kept aside as it was: %v", aside)
		}
		w := startWardenWith(t, wardenOpts{admin: true, dataDir: acceptDir})
		if es := w.list(t); len(es) != 0 {
			t.Errorf("after accepting the loss warden lists %d entries, want the 0 the file holds", len(es))
		}
	})
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// holdWriteLock starts the sqlite3 shell on the database at path, begins a
// write transaction and changes a row, and returns once the shell holds
// the write lock. release (or the test's end) closes the shell's input, so
// it rolls back and exits.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	bin := requireBinary(t, "sqlite3")
	cmd := exec.Command(bin, "-batch", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	release = func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() // by its PID
			<-done
		}
	}
	t.Cleanup(release)
	io.WriteString(stdin, "BEGIN IMMEDIATE;\nUPDATE meta SET generation = generation;\nSELECT 'locked';\n")
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "locked" {
		t.Fatalf("sqlite3 did not take the write lock: %q %v\n%s", lines.Text(), lines.Err(), stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	return release
}

// TestRegistryBusyWriter is issue 14, item 11: another process (the sqlite3
// shell) holds a write transaction on the registry. warden used to fail to
// start, since it took the write lock to check the schema, and answered a
// change with HTTP 500. Now it starts at once and serves, answers a change
// with 503 "registry busy" and Retry-After, which the CLI says plainly,
// and accepts the change once the other process lets go.
func TestRegistryBusyWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden processes; skipped in -short mode")
	}
	w := startWardenWith(t, wardenOpts{admin: true})
	known := randomHashes(1)[0]
	w.registryCLI(t, "add", known)
	w.stop()

	release := holdWriteLock(t, filepath.Join(w.dataDir, "registry.db"))
	start := time.Now()
	w = startWardenWith(t, wardenOpts{admin: true, dataDir: w.dataDir})
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("warden took %v to start beside a writer; it must not wait for the write lock", took)
	}
	if es := w.list(t); len(es) != 1 || es[0].V1 != known {
		t.Fatalf("registry list beside a writer: %v", es)
	}
	if a, err := w.announce("http", known); err != nil || a.refused {
		t.Fatalf("announce of a registered torrent beside a writer: %+v, %v", a, err)
	}

	h := randomHashes(1)[0]
	r := runWarden(cliTimeout, w.registryArgs("add", h)...)
	t.Logf("registry add beside a writer: %v after %v: %s", r.err, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.err == nil || !strings.Contains(r.stderr, "registry busy") || !strings.Contains(r.stderr, "try again") ||
		!strings.Contains(r.stderr, "HTTP 503") {
		t.Fatalf("registry add beside a writer: %v, stderr %q; want it to fail saying registry busy, try again (HTTP 503)", r.err, r.stderr)
	}

	release()
	w.registryCLI(t, "add", h)
	if es := w.list(t); len(es) != 2 {
		t.Fatalf("after the writer let go: %d entries, want 2", len(es))
	}
}
