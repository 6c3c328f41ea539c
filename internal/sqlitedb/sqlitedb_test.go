package sqlitedb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testAppID = 0x54455354 // "TEST"

// testMigrations is a two-step schema, as a file would have after one
// upgrade.
var testMigrations = []Migration{
	SQL(`CREATE TABLE items (id INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE, v TEXT NOT NULL) STRICT;`),
	SQL(`CREATE TABLE notes (item INTEGER NOT NULL REFERENCES items (id), text TEXT NOT NULL) STRICT;`),
}

func testOptions(ms ...Migration) Options {
	if ms == nil {
		ms = testMigrations
	}
	return Options{ApplicationID: testAppID, Migrations: ms}
}

func open(t testing.TB, path string, opts Options) (*sql.DB, Opened) {
	t.Helper()
	db, res, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db, res
}

func pragma(t testing.TB, db *sql.DB, name string) string {
	t.Helper()
	var s string
	if err := db.QueryRow("PRAGMA " + name).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// key makes distinct 32-byte values, so test files span many pages.
func key(i int) []byte {
	k := sha256.Sum256(fmt.Appendf(nil, "key %d", i))
	return k[:]
}

func fill(t testing.TB, db *sql.DB, n int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := tx.Exec("INSERT INTO items (k, v) VALUES (?, ?)", key(i), strings.Repeat("v", 64)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new.db")
	db, res := open(t, path, testOptions())
	if want := (Opened{Created: true, From: 0, To: 2}); res != want {
		t.Errorf("Open of a new file = %+v, want %+v", res, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if got := pragma(t, db, "application_id"); got != fmt.Sprint(testAppID) {
		t.Errorf("application_id = %s, want %d", got, testAppID)
	}
	for name, want := range map[string]string{"journal_mode": "wal", "user_version": "2", "foreign_keys": "1", "synchronous": "2"} {
		if got := pragma(t, db, name); got != want {
			t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	fill(t, db, 1)
	if _, err := db.Exec("INSERT INTO notes (item, text) VALUES (99, 'dangling')"); err == nil {
		t.Error("a note pointing at no item was accepted: foreign keys are off")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".new.db.new-*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	db, _ := open(t, path, testOptions())
	fill(t, db, 10)
	db.Close()

	db, res := open(t, path, testOptions())
	if want := (Opened{From: 2, To: 2}); res != want {
		t.Errorf("reopen = %+v, want %+v", res, want)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != 10 {
		t.Errorf("after reopen: %d items, %v; want 10", n, err)
	}
}

func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	db, res := open(t, path, testOptions(testMigrations[0]))
	if res.To != 1 {
		t.Fatalf("first Open reached version %d, want 1", res.To)
	}
	fill(t, db, 3)
	db.Close()

	// A migration that fails halfway leaves the file at the version before.
	broken := append(testMigrations[:1:1], SQL(`CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);`))
	_, _, err := Open(context.Background(), path, testOptions(broken...))
	if err == nil || !strings.Contains(err.Error(), "migrate schema from version 1") || !strings.Contains(err.Error(), "to version 2") {
		t.Fatalf("Open with a broken migration: error = %v", err)
	}

	db, res = open(t, path, testOptions())
	if want := (Opened{From: 1, To: 2}); res != want {
		t.Errorf("Open with a new migration = %+v, want %+v", res, want)
	}
	if _, err := db.Exec("INSERT INTO notes (item, text) VALUES (1, 'hello')"); err != nil {
		t.Errorf("the new table is not there: %v", err)
	}
	var half int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'half'").Scan(&half); err != nil || half != 0 {
		t.Errorf("the failed migration left its first table (%d, %v)", half, err)
	}
}

// TestRefused gives Open files it must not use, and checks that it says
// why, with the right kind, and changes nothing.
func TestRefused(t *testing.T) {
	dir := t.TempDir()

	// A file of ours big enough to span many pages.
	good := filepath.Join(dir, "good.db")
	db, _ := open(t, good, testOptions())
	fill(t, db, 3000)
	db.Close() // checkpoints the WAL into the file
	goodBytes := readFile(t, good)
	pageSize := int(binary.BigEndian.Uint16(goodBytes[16:18]))
	pages := len(goodBytes) / pageSize
	if pages < 20 {
		t.Fatalf("test file has only %d pages", pages)
	}
	mid := pages / 2 * pageSize
	overwrite := func(off int, with []byte) []byte {
		b := bytes.Clone(goodBytes)
		copy(b[off:], with)
		return b
	}
	garbage := bytes.Repeat([]byte{0xa5, 0x3c, 0x0f, 0xf0}, pageSize/4)

	// Another program's database: plain SQLite, application_id 0.
	foreign := filepath.Join(dir, "foreign.db")
	fdb, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdb.Exec("CREATE TABLE photos (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	fdb.Close()

	// A file of ours written by a newer release.
	newer := filepath.Join(dir, "newer.db")
	ndb, _ := open(t, newer, testOptions())
	if _, err := ndb.Exec("PRAGMA user_version = 7"); err != nil {
		t.Fatal(err)
	}
	ndb.Close()

	tests := []struct {
		name       string
		path       string // an existing file, or "" to write content
		content    []byte
		want       error
		wantDetail string // in the message
	}{
		{name: "another program's database", path: foreign, want: ErrNotOurs, wantDetail: "application_id is 0x0, want 0x54455354"},
		{name: "newer schema", path: newer, want: ErrTooNew, wantDetail: "schema version 7, newest known 2"},
		{name: "empty", content: []byte{}, want: ErrDamaged, wantDetail: "the file is empty"},
		{name: "shorter than a header", content: goodBytes[:60], want: ErrDamaged, wantDetail: "60 bytes, shorter than a SQLite header"},
		{name: "text", content: bytes.Repeat([]byte("not a database\n"), 20), want: ErrDamaged, wantDetail: "bad header"},
		{name: "truncated to half", content: goodBytes[:mid], want: ErrDamaged},
		{name: "middle page overwritten", content: overwrite(mid, garbage), want: ErrDamaged},
		{name: "middle page zeroed", content: overwrite(mid, make([]byte, pageSize)), want: ErrDamaged},
		{name: "schema page overwritten", content: overwrite(100, garbage[:pageSize-100]), want: ErrDamaged},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = filepath.Join(t.TempDir(), fmt.Sprintf("bad%d.db", i))
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := readFile(t, path)
			db, _, err := Open(context.Background(), path, testOptions())
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			var e *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Err != tt.want {
				t.Errorf("error = %v, want an *Error wrapping %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantDetail) {
				t.Errorf("error %q does not say %q", err, tt.wantDetail)
			}
			if after := readFile(t, path); !bytes.Equal(after, before) {
				t.Errorf("Open changed the file (%d bytes, was %d)", len(after), len(before))
			}
			if left, _ := filepath.Glob(path + "?*"); len(left) > 0 {
				t.Errorf("Open left files beside it: %v", left)
			}
		})
	}
}

// TestCheckFindsSilentDamage changes one stored key in place: every page
// stays well formed, so the quick check at Open may pass, but Check sees
// that the table and its index disagree.
func TestCheckFindsSilentDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	db, _ := open(t, path, testOptions())
	fill(t, db, 500)
	if err := Check(context.Background(), db); err != nil {
		t.Fatalf("Check of an intact file: %v", err)
	}
	db.Close()

	b := readFile(t, path)
	at := bytes.Index(b, key(250))
	if at < 0 {
		t.Fatal("key not found in the file")
	}
	b[at+10] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	db, _, err := Open(context.Background(), path, testOptions())
	if err != nil {
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open: %v, want success or ErrDamaged", err)
		}
		return
	}
	defer db.Close()
	err = Check(context.Background(), db)
	t.Logf("Check: %v", err)
	var e *Error
	if !errors.As(err, &e) || e.Err != ErrDamaged || !strings.HasPrefix(e.Detail, "integrity_check: ") {
		t.Errorf("Check = %v, want an *Error wrapping ErrDamaged from integrity_check", err)
	}
}

// TestConcurrentCreate has several openers race to create one file:
// all get the same complete file, and exactly one made it.
func TestConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "race.db")
	const n = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for range n {
		wg.Go(func() {
			db, res, err := Open(context.Background(), path, testOptions())
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			if res.To != 2 {
				t.Errorf("Open reached version %d, want 2", res.To)
			}
			mu.Lock()
			if res.Created {
				created++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d openers say they created the file, want 1", created)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
		opts       Options
		want       string
	}{
		{"no application id", filepath.Join(dir, "a.db"), Options{Migrations: testMigrations}, "ApplicationID"},
		{"no migrations", filepath.Join(dir, "b.db"), Options{ApplicationID: testAppID}, "migration"},
		{"missing directory", filepath.Join(dir, "nope", "c.db"), testOptions(), "create: directory"},
		{"a directory", dir, testOptions(), "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _, err := Open(context.Background(), tt.path, tt.opts)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var e *Error
			if errors.As(err, &e) {
				t.Errorf("error %v is an *Error, which means a refused file", err)
			}
		})
	}
	if IsCorrupt(nil) || IsCorrupt(errors.New("corrupt")) {
		t.Error("IsCorrupt is true for an error SQLite did not return")
	}
}
