package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// killAfterAdds runs TestCrashHelper on a new registry at path and kills
// it with SIGKILL once it has acknowledged n additions, which are then in
// the write-ahead log only.
func killAfterAdds(t *testing.T, path string, n int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+path, crashHelperEnv+"_START=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	adds := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		switch line := sc.Text(); {
		case strings.HasPrefix(line, "error "):
			t.Fatalf("helper: %s", line)
		case strings.HasPrefix(line, "add "):
			if adds++; adds == n {
				cmd.Process.Kill()
			}
		}
	}
	cmd.Wait()
	if adds < n {
		t.Fatalf("helper acknowledged %d additions before dying, want %d", adds, n)
	}
}

// TestDamagedWALStopsOpen is issue 14's item 6 against the registry: 1,001
// acknowledged additions, a kill -9, one flipped bit in registry.db-wal.
// SQLite would open the file as an empty registry; Open must refuse it with
// ErrRolledBack, naming the WAL and saying how much is missing, and leave
// the files alone. Recover from a backup then brings back what the backup
// held, and nothing is reset silently on the way.
func TestDamagedWALStopsOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.db")
	const acked = 1001
	killAfterAdds(t, path, acked)

	// A backup taken before the damage, from the file the killed process
	// left (its WAL still intact), without writing to it.
	backup := filepath.Join(t.TempDir(), "backup.db")
	info, err := BackupFile(ctx, path, backup)
	if err != nil || info.Entries < acked {
		t.Fatalf("BackupFile = %+v, %v; want at least %d entries", info, err, acked)
	}

	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	wal[32+24+100] ^= 0x01 // into the page of the WAL's first frame
	if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}
	main := readFile(t, path)

	if _, err := BackupFile(ctx, path, filepath.Join(t.TempDir(), "late.db")); !errors.Is(err, ErrRolledBack) {
		t.Errorf("BackupFile of the damaged registry = %v, want ErrRolledBack: the copy would lack acknowledged changes", err)
	}
	r, err := Open(path, testLogger(t))
	if err == nil {
		n := r.Len()
		r.Close()
		t.Fatalf("Open of a registry whose WAL lost %d acknowledged additions succeeded with %d entries", acked, n)
	}
	t.Logf("Open: %v", err)
	msg := err.Error()
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(msg, path+"-wal") || !strings.Contains(msg, path+"-mark") {
		t.Fatalf("Open error %q: want ErrRolledBack naming %s-wal and the commit record", msg, path)
	}
	if !bytes.Equal(readFile(t, path+"-wal"), wal) || !bytes.Equal(readFile(t, path), main) {
		t.Fatal("Open changed registry.db or registry.db-wal while refusing them")
	}

	rec, err := Recover(ctx, path, backup, testLogger(t))
	if err != nil || !rec.Changed || rec.Now != info || rec.Record.Entries < acked || rec.Found.Entries >= rec.Record.Entries {
		t.Fatalf("Recover from the backup = %+v, %v; want the backup's %+v", rec, err, info)
	}
	r = openPath(t, path)
	if int64(r.Len()) != info.Entries {
		t.Fatalf("after restoring the backup: %d entries, want %d", r.Len(), info.Entries)
	}
	for i := range acked {
		if _, _, ok := r.Lookup(hv1(i)); !ok {
			t.Fatalf("entry %d missing after restoring the backup", i)
		}
	}
}
