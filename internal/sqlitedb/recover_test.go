package sqlitedb

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// progressOptions are testOptions with a commit record: every item added
// raises the generation, which is simply the number of items.
func progressOptions() Options {
	o := testOptions()
	o.Progress = "SELECT count(*), count(*) FROM items"
	return o
}

// addItems adds items from..to-1, one transaction each, advancing the
// commit record after each as an owner does.
func addItems(t testing.TB, db *sql.DB, m *Mark, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := db.Exec("INSERT INTO items (k, v) VALUES (?, ?)", key(i), strings.Repeat("v", 64)); err != nil {
			t.Fatal(err)
		}
		if err := m.Advance(Record{Generation: int64(i + 1), Count: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
}

const writerChildEnv = "WARDEN_SQLITEDB_WRITER_CHILD"

// TestWriterChild is not a test: run by killedWriter in a child process,
// it adds items to the file named by writerChildEnv, one commit at a time,
// printing each once it is committed and recorded, until it is killed.
func TestWriterChild(t *testing.T) {
	path := os.Getenv(writerChildEnv)
	if path == "" {
		t.Skip("helper process for killedWriter")
	}
	db, res, err := Open(context.Background(), path, progressOptions())
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		addItems(t, db, res.Mark, i, i+1)
		fmt.Fprintf(out, "ok %d\n", i)
		out.Flush()
	}
}

// killedWriter runs a process that adds items to a new file at path and
// kills it with SIGKILL once it has acknowledged n of them, leaving them
// in the write-ahead log (the file is never checkpointed).
func killedWriter(t *testing.T, path string, n int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriterChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), writerChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	acked := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error ") {
			t.Fatalf("writer: %s", line)
		}
		if _, ok := strings.CutPrefix(line, "ok "); ok {
			if acked++; acked == n {
				cmd.Process.Kill()
			}
		}
	}
	cmd.Wait()
	if acked < n {
		t.Fatalf("writer acknowledged %d items before dying, want %d", acked, n)
	}
}

// flipWALByte flips one bit in the page data of the first frame of the
// write-ahead log beside path, and returns the WAL as damaged.
func flipWALByte(t *testing.T, path string) []byte {
	t.Helper()
	wal := readFile(t, path+"-wal")
	const at = 32 + 24 + 100 // WAL header, frame header, then into the page
	if len(wal) <= at {
		t.Fatalf("WAL is %d bytes: nothing to damage", len(wal))
	}
	wal[at] ^= 0x01
	if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}
	return wal
}

// TestOpenRefusesLostCommits is the damaged WAL of issue 14: commits
// acknowledged by a process killed with SIGKILL live only in the WAL, one
// flipped bit there makes SQLite drop them all, and the file would open
// as empty. Open must refuse it, say how far it fell behind, and leave
// every file as it was; Recover then accepts the loss explicitly, keeping
// the damaged files aside.
func TestOpenRefusesLostCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "f.db")
	const acked = 300
	killedWriter(t, path, acked)
	wal := flipWALByte(t, path)
	main := readFile(t, path)

	for try := range 2 {
		db, _, err := Open(ctx, path, progressOptions())
		if err == nil {
			var n int
			db.QueryRow("SELECT count(*) FROM items").Scan(&n)
			db.Close()
			t.Fatalf("Open of a file missing %d acknowledged commits succeeded, with %d items", acked, n)
		}
		var e *Error
		if !errors.As(err, &e) || e.Err != ErrRolledBack || e.Record.Generation < acked || e.Have.Generation >= acked {
			t.Fatalf("Open (try %d) = %v, want ErrRolledBack from at least %d", try, err, acked)
		}
		t.Logf("Open: %v", err)
		if !bytes.Equal(readFile(t, path+"-wal"), wal) || !bytes.Equal(readFile(t, path), main) {
			t.Fatal("Open changed the database or its WAL while refusing it")
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("Open left files: %v", left)
	}

	rec, err := Recover(ctx, path, progressOptions(), "")
	if err != nil || !rec.Changed || rec.Record.Generation < acked || rec.Now != rec.Found || len(rec.SetAside) != 2 {
		t.Fatalf("Recover = %+v, %v; want the file accepted as found, two files set aside", rec, err)
	}
	for _, p := range rec.SetAside {
		want := main
		if strings.Contains(p, "-wal") {
			want = wal
		}
		if !bytes.Equal(readFile(t, p), want) {
			t.Errorf("set-aside %s does not hold the file as it was", p)
		}
	}
	db, res, err := Open(ctx, path, progressOptions())
	if err != nil {
		t.Fatalf("Open after Recover: %v", err)
	}
	db.Close()
	res.Mark.Close()
	if again, err := Recover(ctx, path, progressOptions(), ""); err != nil || again.Changed {
		t.Fatalf("second Recover = %+v, %v; want nothing to do", again, err)
	}
}

// TestRecoverFromBackup restores a backup over a file that lost commits,
// and checks that the backup included what was still in the WAL.
func TestRecoverFromBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "f.db")
	db, res, err := Open(ctx, path, progressOptions())
	if err != nil {
		t.Fatal(err)
	}
	addItems(t, db, res.Mark, 0, 50)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := Backup(ctx, db, backup); err != nil {
		t.Fatal(err)
	}
	if err := Backup(ctx, db, backup); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Backup over an existing backup = %v, want refused", err)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// The 50 items are still in the WAL: a copy of the main file alone
	// misses them, the backup has them.
	if err := copyFile(path, filepath.Join(dir, "plain-copy.db")); err != nil {
		t.Fatal(err)
	}
	if r, err := Inspect(ctx, filepath.Join(dir, "plain-copy.db"), progressOptions()); err != nil || r.Count == 50 {
		t.Logf("a copy of the main file alone: %+v, %v (the test needs it to miss the WAL)", r, err)
	}
	if r, err := Inspect(ctx, backup, progressOptions()); err != nil || r != (Record{50, 50}) {
		t.Fatalf("Inspect(backup) = %+v, %v; want 50 items", r, err)
	}
	if _, err := Recover(ctx, path, progressOptions(), backup); !errors.Is(err, ErrInUse) {
		t.Fatalf("Recover while the file is open = %v, want ErrInUse", err)
	}
	addItems(t, db, res.Mark, 50, 80)
	db.Close()
	res.Mark.Close()

	// Restoring the older backup is a rollback too: Open alone would refuse
	// it, Recover accepts it.
	rec, err := Recover(ctx, path, progressOptions(), filepath.Join(dir, "missing.db"))
	if err == nil {
		t.Fatalf("Recover from a missing backup = %+v, want an error", rec)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a failed Recover moved the file: %v", err)
	}
	rec, err = Recover(ctx, path, progressOptions(), backup)
	if err != nil || !rec.Changed || rec.Now != (Record{50, 50}) || rec.Record != (Record{80, 80}) {
		t.Fatalf("Recover from the backup = %+v, %v", rec, err)
	}
	t.Logf("set aside: %v", rec.SetAside)
	db, _, err = Open(ctx, path, progressOptions())
	if err != nil {
		t.Fatalf("Open after restoring: %v", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != 50 {
		t.Fatalf("after restoring: %d items, %v; want 50", n, err)
	}
}

// TestRecordDamaged: a commit record with no valid slot stops Open (it can
// no longer vouch for the file) until Recover rewrites it.
func TestRecordDamaged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.db")
	db, res, err := Open(ctx, path, progressOptions())
	if err != nil {
		t.Fatal(err)
	}
	addItems(t, db, res.Mark, 0, 3)
	db.Close()
	res.Mark.Close()
	if err := os.WriteFile(path+MarkSuffix, bytes.Repeat([]byte{0xee}, markSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(ctx, path, progressOptions()); !errors.Is(err, ErrRecordDamaged) {
		t.Fatalf("Open with a damaged record = %v, want ErrRecordDamaged", err)
	}
	rec, err := Recover(ctx, path, progressOptions(), "")
	if err != nil || !rec.Changed || rec.RecordErr == nil || rec.Now != (Record{3, 3}) {
		t.Fatalf("Recover = %+v, %v", rec, err)
	}
	db, res, err = Open(ctx, path, progressOptions())
	if err != nil {
		t.Fatalf("Open after Recover: %v", err)
	}
	db.Close()
	res.Mark.Close()
}

// TestOpenStartsRecord: a file from before commit records gets one at its
// current generation.
func TestOpenStartsRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	db, _ := open(t, path, testOptions())
	fill(t, db, 7)
	db.Close()
	_, res := open(t, path, progressOptions())
	defer res.Mark.Close()
	if got := readMark(t, path); got != (Record{7, 7}) {
		t.Fatalf("record = %+v, want {7 7}", got)
	}
}
