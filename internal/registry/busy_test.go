package registry

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"warden/internal/sqlitedb"
)

// writerHelperEnv, when set to a file path, makes TestWriterHelper act as
// the child process of holdWriteLock.
const writerHelperEnv = "WARDEN_REGISTRY_WRITER_HELPER"

// TestWriterHelper is not a test: run by holdWriteLock in a child process,
// it opens the SQLite file named by writerHelperEnv as any other program
// would, starts a write transaction and changes a row, prints "locked", and
// holds the transaction until its standard input closes, then rolls back.
func TestWriterHelper(t *testing.T) {
	path := os.Getenv(writerHelperEnv)
	if path == "" {
		t.Skip("helper process for holdWriteLock")
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: "_txlock=immediate"}).String())
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	tx, err := db.Begin()
	if err == nil {
		_, err = tx.Exec("UPDATE meta SET generation = generation")
	}
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	tx.Rollback()
	db.Close()
	os.Exit(0)
}

// holdWriteLock starts another process that holds a write transaction on
// the SQLite file at path until release is called (or the test ends).
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriterHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), writerHelperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process: %v", err)
		}
	}
	t.Cleanup(release)
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		switch line := lines.Text(); {
		case line == "locked":
			go io.Copy(io.Discard, stdout)
			return release
		case strings.HasPrefix(line, "error "):
			t.Fatalf("writer process: %s", line)
		}
	}
	t.Fatalf("writer process ended before taking the lock: %v", lines.Err())
	return nil
}

// TestBusyWriter runs a registry beside another process that holds a write
// transaction on the same file: Open and every read must work at once, and
// a change must fail with ErrBusy, naming the file, after
// sqlitedb.BusyTimeout rather than hang or fail obscurely. Once the other
// process lets go, changes work again.
func TestBusyWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process and waits out the busy timeout")
	}
	ctx := context.Background()
	path := t.TempDir() + "/registry.db"
	r := openPath(t, path)
	mustAdd(t, r, Entry{V1: hv1(1), Name: "one"})
	r.Close()

	release := holdWriteLock(t, path)
	start := time.Now()
	r, err := Open(path, testLogger(t))
	if err != nil {
		t.Fatalf("Open while another process holds a write transaction: %v (after %v)", err, time.Since(start))
	}
	defer r.Close()
	if took := time.Since(start); took > sqlitedb.BusyTimeout/2 {
		t.Errorf("Open took %v while another process held a write transaction; it must not wait for the write lock", took)
	}
	if !r.Tracked(hv1(1)) {
		t.Error("Tracked(one) = false after Open beside a writer")
	}
	if e, err := r.Get(ctx, hv1(1)); err != nil || e.Name != "one" {
		t.Errorf("Get beside a writer = %+v, %v", e, err)
	}
	if es, err := r.List(ctx, Filter{}); err != nil || len(es) != 1 {
		t.Errorf("List beside a writer = %d entries, %v", len(es), err)
	}

	start = time.Now()
	_, err = r.Add(ctx, Entry{V1: hv1(2)}, "test")
	took := time.Since(start)
	t.Logf("Add beside a writer: %v after %v", err, took)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Add beside a writer = %v, want ErrBusy naming %s", err, path)
	}
	if took < sqlitedb.BusyTimeout/2 {
		t.Errorf("Add gave up after %v, want about %v", took, sqlitedb.BusyTimeout)
	}
	if r.Tracked(hv1(2)) {
		t.Error("a change refused as busy is in the snapshot")
	}

	release()
	if _, err := r.Add(ctx, Entry{V1: hv1(2)}, "test"); err != nil {
		t.Fatalf("Add after the other process let go: %v", err)
	}
}
