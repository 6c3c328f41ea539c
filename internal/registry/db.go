package registry

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// applicationID marks a SQLite file as a warden registry ("WARD"), so Open
// refuses some other program's database instead of migrating it.
const applicationID = 0x57415244

// busyTimeout is how long a write waits for another process's write
// transaction (or checkpoint) to finish before failing with "database is
// locked".
const busyTimeout = 10 * time.Second

// dsn returns the modernc.org/sqlite data source name for the file at the
// absolute path abs. mode=rw makes SQLite fail rather than create a file
// that has vanished; Open creates files itself. The _pragma settings apply
// to every connection in the pool:
//   - busy_timeout: writers from several processes queue instead of failing.
//   - synchronous=FULL: a commit is fsynced to the WAL before it returns, so
//     an acknowledged change survives kill -9 and power loss alike.
//   - foreign_keys: keys and audit rows must point at real entries.
//   - cell_size_check: extra sanity checks on b-tree pages as they are read,
//     so damage is reported instead of misread.
//   - cache_size of 16 MiB (allocated as used): the default 2 MiB thrashes
//     on a 100,000-entry file (30 MB), making a bulk import and the
//     integrity check an order of magnitude slower.
//   - journal_size_limit: after a bulk import the WAL shrinks back to
//     16 MiB instead of keeping its peak size.
//
// _txlock=immediate makes every read-write transaction start with BEGIN
// IMMEDIATE, taking the write lock up front: a deferred transaction that
// reads and then writes fails with SQLITE_BUSY (without waiting) when
// another process committed in between.
func dsn(abs string) string {
	u := url.URL{Scheme: "file", Path: abs}
	q := url.Values{}
	q.Set("mode", "rw")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cell_size_check(1)")
	q.Add("_pragma", "cache_size(-16384)")
	q.Add("_pragma", "journal_size_limit(16777216)")
	q.Set("_txlock", "immediate")
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens the registry in the SQLite file at path, creating it (mode 0600)
// if it does not exist; its directory must exist. It checks the file before
// using it and fails with an error wrapping ErrDamaged, naming the file, if
// the file is not an intact SQLite database, and with ErrNotRegistry if it
// is another program's database or a newer schema; in both cases the file is
// left as it was. An existing empty file counts as damaged: Open itself
// never leaves one (see create), so it can only be a truncated registry.
// Open migrates an older schema and loads the snapshot. It starts no
// background work of its own: call Run to follow other processes' changes.
// A nil log discards.
func Open(path string, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "registry")
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", path, err)
	}
	ctx := context.Background()

	created := false
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if created, err = create(ctx, abs); err != nil {
			return nil, fmt.Errorf("create registry %s: %w", abs, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open registry %s: %w", abs, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open registry %s: not a regular file (%v)", abs, fi.Mode().Type())
	}
	if err := checkHeader(abs); err != nil {
		return nil, err
	}

	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", abs, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	version, err := prepare(ctx, db, abs, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	s, err := loadSnapshot(ctx, db)
	if err != nil {
		db.Close()
		return nil, damagedOr(abs, err)
	}
	r := &Registry{
		path:   abs,
		db:     db,
		log:    log,
		now:    time.Now,
		wsem:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	r.snap.Store(s)
	log.Info("registry opened", "path", abs, "created", created, "schema", version, "entries", s.entries)
	return r, nil
}

// create makes a new registry at abs without ever leaving a half-made file
// there: it builds the database in a temporary file beside abs and hard-links
// it into place, which fails if another process created abs first (then that
// file is used). A file at abs is thus always a complete registry or damage,
// which is why Open can refuse an empty file. created is false if another
// process won the race.
func create(ctx context.Context, abs string) (created bool, err error) {
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); err != nil {
		return false, fmt.Errorf("directory: %w", err)
	} else if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".new-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer func() {
		for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
			os.Remove(p)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}

	db, err := sql.Open("sqlite", dsn(tmp))
	if err != nil {
		return false, err
	}
	db.SetMaxOpenConns(1)
	err = initialize(ctx, db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if err := os.Link(tmp, abs); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, syncDir(dir)
}

// initialize turns an empty file into a registry: WAL mode, the application
// ID, and the current schema.
func initialize(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q after setting WAL", mode)
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return err
	}
	_, err := migrate(ctx, db)
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sqliteMagic starts every SQLite 3 database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// checkHeader catches files SQLite would treat as a new, empty database (a
// zero-length file) and files that are plainly not SQLite, before SQLite
// touches them.
func checkHeader(abs string) error {
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("open registry %s: %w", abs, err)
	}
	defer f.Close()
	var hdr [100]byte // the SQLite header
	n, err := io.ReadFull(f, hdr[:])
	switch {
	case n == 0 && (err == io.EOF):
		return damaged(abs, "the file is empty (Open never leaves an empty file; it was truncated)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return damaged(abs, fmt.Sprintf("the file is %d bytes, shorter than a SQLite header", n))
	case err != nil:
		return fmt.Errorf("open registry %s: %w", abs, err)
	case !bytes.Equal(hdr[:len(sqliteMagic)], sqliteMagic):
		return damaged(abs, "not a SQLite database (bad header)")
	}
	return nil
}

// prepare checks an existing file and brings its schema up to date,
// returning the schema version.
func prepare(ctx context.Context, db *sql.DB, abs string, log *slog.Logger) (int, error) {
	// quick_check reads every page and checks the b-trees' structure, so a
	// damaged file fails here rather than on some later read. It is O(size)
	// but read-only, and runs once per Open.
	problems, err := check(ctx, db, "PRAGMA quick_check(20)")
	if err != nil {
		return 0, damagedOr(abs, err)
	}
	if len(problems) > 0 {
		return 0, damaged(abs, "quick_check: "+oneLine(problems))
	}

	var appID int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, damagedOr(abs, err)
	}
	if appID != applicationID {
		return 0, fmt.Errorf("open registry %s: %w (application_id is %#x, want %#x); the file was left as is",
			abs, ErrNotRegistry, appID, applicationID)
	}

	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return 0, damagedOr(abs, err)
	}
	if mode != "wal" {
		log.Warn("registry was not in WAL mode; switching", "path", abs, "journal_mode", mode)
		if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
			return 0, fmt.Errorf("open registry %s: set WAL mode: %w", abs, err)
		}
		if mode != "wal" {
			return 0, fmt.Errorf("open registry %s: journal_mode is %q after setting WAL", abs, mode)
		}
	}

	from, err := schemaVersion(ctx, db)
	if err != nil {
		return 0, damagedOr(abs, err)
	}
	if from > len(migrations) {
		return 0, fmt.Errorf("open registry %s: %w: schema version %d is newer than this warden knows (%d); upgrade warden",
			abs, ErrNotRegistry, from, len(migrations))
	}
	to, err := migrate(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("open registry %s: migrate schema from version %d: %w", abs, from, err)
	}
	if to != from {
		log.Info("registry schema migrated", "path", abs, "from", from, "to", to)
	}
	return to, nil
}

// check runs an integrity-check pragma and returns the problems it lists
// (none if the file is intact).
func check(ctx context.Context, db *sql.DB, pragma string) ([]string, error) {
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	return problems, rows.Err()
}

// oneLine joins check results, which may hold newlines, into one line.
func oneLine(problems []string) string {
	return strings.Join(strings.Fields(strings.Join(problems, " ")), " ")
}

// Check runs SQLite's full integrity check (PRAGMA integrity_check), which
// unlike the quick check Open runs also verifies that every index matches
// its table. It reads the whole file, so it takes time in proportion to its
// size (about a second for 100,000 entries). It returns nil if the file is
// intact, and an error wrapping ErrDamaged that lists the problems if not.
func (r *Registry) Check(ctx context.Context) error {
	if r.isClosed() {
		return ErrClosed
	}
	problems, err := check(ctx, r.db, "PRAGMA integrity_check(20)")
	if err != nil {
		if isCorrupt(err) {
			return fmt.Errorf("check registry %s: %w: %v", r.path, ErrDamaged, err)
		}
		return fmt.Errorf("check registry %s: %w", r.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check registry %s: %w: integrity_check: %s", r.path, ErrDamaged, oneLine(problems))
	}
	return nil
}

func damaged(abs, detail string) error {
	return fmt.Errorf("open registry %s: %w: %s; the file was left as is: restore it from a backup or move it aside",
		abs, ErrDamaged, detail)
}

// damagedOr reports err as damage if SQLite says the file is corrupt or not
// a database, and otherwise as a plain failure to open.
func damagedOr(abs string, err error) error {
	if isCorrupt(err) || errors.Is(err, errBadRow) {
		return damaged(abs, err.Error())
	}
	return fmt.Errorf("open registry %s: %w", abs, err)
}

// isCorrupt reports whether err is SQLite saying the file is damaged
// (SQLITE_CORRUPT) or not a database at all (SQLITE_NOTADB).
func isCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // the primary code of an extended one
	return code == sqlite3.SQLITE_CORRUPT || code == sqlite3.SQLITE_NOTADB
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrations[i] takes the schema from version i to i+1; PRAGMA user_version
// holds the version. Append to this list; never edit an entry once
// released.
var migrations = []string{
	// 0 → 1: the first schema.
	`
CREATE TABLE meta (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	generation INTEGER NOT NULL -- bumped by every change to torrents; see the triggers
) STRICT;
INSERT INTO meta (id, generation) VALUES (1, 0);

CREATE TABLE torrents (
	id         INTEGER PRIMARY KEY,
	v1         BLOB UNIQUE CHECK (v1 IS NULL OR length(v1) = 20),
	v2         BLOB UNIQUE CHECK (v2 IS NULL OR length(v2) = 32),
	name       TEXT NOT NULL,
	state      TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
	reason     TEXT NOT NULL,
	added_by   TEXT NOT NULL,
	added_at   INTEGER NOT NULL, -- Unix nanoseconds
	changed_by TEXT NOT NULL,
	changed_at INTEGER NOT NULL,
	CHECK (v1 IS NOT NULL OR v2 IS NOT NULL)
) STRICT;

-- keys holds every 20-byte hash a client may announce: v1 hashes and
-- truncated v2 hashes. Its primary key makes each name exactly one torrent.
CREATE TABLE keys (
	key        BLOB PRIMARY KEY CHECK (length(key) = 20),
	torrent_id INTEGER NOT NULL REFERENCES torrents (id)
) STRICT, WITHOUT ROWID;
CREATE INDEX keys_torrent_id ON keys (torrent_id);

CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	at         INTEGER NOT NULL, -- Unix nanoseconds
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL CHECK (action IN ('add', 'revoke', 'restore')),
	torrent_id INTEGER NOT NULL REFERENCES torrents (id),
	old_state  TEXT CHECK (old_state IN ('active', 'revoked')),
	new_state  TEXT NOT NULL CHECK (new_state IN ('active', 'revoked')),
	reason     TEXT NOT NULL
) STRICT;
CREATE INDEX audit_torrent_id ON audit (torrent_id, seq);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER keys_no_update BEFORE UPDATE ON keys
BEGIN SELECT RAISE(ABORT, 'info hashes are immutable'); END;
CREATE TRIGGER torrents_hashes_immutable BEFORE UPDATE OF v1, v2 ON torrents
BEGIN SELECT RAISE(ABORT, 'info hashes are immutable'); END;

-- Any change to torrents, even one made with the sqlite3 shell, moves the
-- generation, which is how Registry.Run notices other writers.
CREATE TRIGGER torrents_insert_generation AFTER INSERT ON torrents
BEGIN UPDATE meta SET generation = generation + 1; END;
CREATE TRIGGER torrents_update_generation AFTER UPDATE ON torrents
BEGIN UPDATE meta SET generation = generation + 1; END;
CREATE TRIGGER torrents_delete_generation AFTER DELETE ON torrents
BEGIN UPDATE meta SET generation = generation + 1; END;
`,
}

// migrate applies the migrations the file lacks, each in its own
// transaction that also sets user_version, and returns the version reached.
// BEGIN IMMEDIATE makes a second process migrating at the same time wait
// and then find nothing to do.
func migrate(ctx context.Context, db *sql.DB) (int, error) {
	for {
		tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE, see dsn
		if err != nil {
			return 0, err
		}
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		if v >= len(migrations) {
			tx.Rollback()
			return v, nil
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return v, fmt.Errorf("to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return v, err
		}
		if err := tx.Commit(); err != nil {
			return v, err
		}
	}
}

func readGeneration(ctx context.Context, q querier) (int64, error) {
	var g int64
	err := q.QueryRowContext(ctx, "SELECT generation FROM meta WHERE id = 1").Scan(&g)
	return g, err
}
