// Package sqlitedb opens the SQLite files warden keeps its records in (the
// registry, the evidence log) in one careful way, so each file gets the same
// durability and the same refusal of damage: it is created atomically, every
// commit is fsynced, it is checked before use, marked with its owner's
// application ID, and migrated under a schema version of its own. A commit
// record beside it ([Mark]) lets Open refuse a file that lost acknowledged
// commits, which SQLite itself would open without a word; [Recover],
// [Backup] and [Inspect] are the tools around it.
//
// It knows nothing of what a file holds: each caller brings its application
// ID and its migrations, and names the file in its own errors. It imports
// only the SQLite driver and the standard library.
package sqlitedb

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

// BusyTimeout is how long a write waits for another connection's or
// process's write transaction (or checkpoint) to finish before failing with
// "database is locked".
const BusyTimeout = 10 * time.Second

// The kinds of file Open refuses, leaving the file as it was. Callers
// branch on them with errors.Is; the error itself is an [*Error].
var (
	// ErrDamaged: the file is not an intact SQLite database (empty,
	// truncated, not SQLite, or failing the integrity check).
	ErrDamaged = errors.New("file is damaged")
	// ErrNotOurs: an intact SQLite database with another application ID,
	// so some other program's file.
	ErrNotOurs = errors.New("file belongs to another program")
	// ErrTooNew: a schema version beyond the migrations this program has,
	// so a file written by a newer release.
	ErrTooNew = errors.New("schema is newer than this program knows")
	// ErrRolledBack: the file's generation is behind its commit record, so
	// changes acknowledged as committed are missing: SQLite stopped
	// reading the write-ahead log at a damaged frame (or an older copy of
	// the file was put in its place). Error.Record and Error.Have say how
	// far. Recover accepts the file as it is or restores a backup.
	ErrRolledBack = errors.New("committed changes are missing")
	// ErrRecordDamaged: the file's commit record holds no valid slot.
	// Recover rewrites it.
	ErrRecordDamaged = errors.New("commit record is damaged")
	// ErrInUse: Recover found the file open in another process, or Open
	// found Recover at work on it.
	ErrInUse = errors.New("file is in use by another process")
)

// Error says why Open (or Check) refused a file. It does not name the file:
// the caller does, in its own words.
type Error struct {
	Err    error  // ErrDamaged, ErrNotOurs or ErrTooNew
	Detail string // for ErrDamaged, what is wrong
	// For ErrNotOurs the application_id found and wanted; for ErrTooNew the
	// schema version found and the newest this program knows.
	Found, Want int64
	// For ErrRolledBack, what the commit record says was committed and
	// what the file holds.
	Record, Have Record
}

func (e *Error) Error() string {
	switch e.Err {
	case ErrNotOurs:
		return fmt.Sprintf("%v (application_id is %#x, want %#x)", e.Err, e.Found, e.Want)
	case ErrTooNew:
		return fmt.Sprintf("%v (schema version %d, newest known %d)", e.Err, e.Found, e.Want)
	case ErrRolledBack:
		return fmt.Sprintf("%v: generation %d (%d records) was committed, the file reads as generation %d (%d records)",
			e.Err, e.Record.Generation, e.Record.Count, e.Have.Generation, e.Have.Count)
	case ErrInUse:
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func damaged(detail string) error { return &Error{Err: ErrDamaged, Detail: detail} }

// damagedOr reports err as damage if SQLite says the file is corrupt, and
// returns it unchanged otherwise.
func damagedOr(err error) error {
	if IsCorrupt(err) {
		return damaged(err.Error())
	}
	return err
}

// IsCorrupt reports whether err is SQLite saying the file is damaged
// (SQLITE_CORRUPT) or not a database at all (SQLITE_NOTADB). A caller reading
// a file Open accepted uses it to tell damage found later from other
// failures.
func IsCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // the primary code of an extended one
	return code == sqlite3.SQLITE_CORRUPT || code == sqlite3.SQLITE_NOTADB
}

// IsBusy reports whether err is SQLite giving up on a lock another
// connection or process held for longer than [BusyTimeout] (SQLITE_BUSY,
// or SQLITE_LOCKED within one process). The operation did not happen and
// may be retried.
func IsBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// A Migration takes a file's schema from one version to the next. It runs
// inside the transaction that also records the new version, so it either
// lands whole or not at all.
type Migration func(ctx context.Context, tx *sql.Tx) error

// SQL is a Migration that runs script, which may hold several statements.
func SQL(script string) Migration {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, script)
		return err
	}
}

// Options describe a kind of file.
type Options struct {
	// ApplicationID marks the file as this kind (PRAGMA application_id), so
	// Open refuses another program's database instead of migrating it.
	// It must not be zero, which is what every other SQLite file has.
	ApplicationID int32
	// Migrations[i] takes the schema from version i to i+1; PRAGMA
	// user_version holds the version, so each kind of file numbers its
	// own. Append to the list; never change an entry once released.
	Migrations []Migration
	// MaxOpenConns bounds the pool; 0 means 4.
	MaxOpenConns int
	// Log receives the rare events an operator should know of: a file
	// switched to WAL mode, a schema migrated. Nil discards.
	Log *slog.Logger
	// Progress, if set, turns on the commit record (see [Mark]): a query
	// returning two integers, a generation that every committed change
	// raises (a counter kept by triggers) and a count of the records the
	// file holds. It must work on every schema version the file may
	// have. Open then refuses, with ErrRolledBack, a file whose
	// generation is behind its record, and the caller advances the record
	// through Opened.Mark after each commit.
	Progress string
}

// Opened reports what Open did.
type Opened struct {
	// Created is true if this call made the file (false if it existed, or
	// another process created it first).
	Created bool
	// From and To are the schema versions found and reached; equal when
	// nothing was migrated. A created file has From 0.
	From, To int
	// Mark is the file's commit record, open, when Options.Progress is
	// set; the caller advances it after each commit and closes it with
	// the pool.
	Mark *Mark
}

// Open opens the SQLite file at path, creating it (mode 0600) if it does not
// exist; its directory must exist. It refuses, with an [*Error] and without
// changing the file, a file that is damaged (an existing empty file counts:
// Open never leaves one), another program's, or of a newer schema, and,
// when opts.Progress is set, a file that is behind its commit record. It
// then applies the migrations the file lacks. Open reads the whole file once
// (a quick integrity check), so it takes time in proportion to its size.
//
// Every connection of the returned pool waits up to [BusyTimeout] for other
// writers, fsyncs each commit (synchronous=FULL, WAL mode), enforces foreign
// keys, and starts read-write transactions with BEGIN IMMEDIATE, so a
// transaction that reads and then writes cannot fail halfway because
// another process committed in between. Open itself takes the write lock
// only to migrate, so it does not wait for another process's transaction.
// Errors other than an *Error do not name the file; the caller does.
func Open(ctx context.Context, path string, opts Options) (*sql.DB, Opened, error) {
	var res Opened
	if opts.ApplicationID == 0 || len(opts.Migrations) == 0 {
		return nil, res, errors.New("sqlitedb: Options need an ApplicationID and at least one migration")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, res, err
	}

	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if res.Created, err = create(ctx, abs, &opts); err != nil {
			return nil, res, fmt.Errorf("create: %w", err)
		}
	case err != nil:
		return nil, res, err
	case !fi.Mode().IsRegular():
		return nil, res, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if err := checkHeader(abs); err != nil {
		return nil, res, err
	}

	var (
		mark  *Mark
		found bool
	)
	if opts.Progress != "" {
		if mark, found, err = checkMark(ctx, abs, &opts); err != nil {
			return nil, res, err
		}
	}
	db, err := openPool(ctx, abs, &opts, log, &res)
	if err != nil {
		mark.Close()
		return nil, res, err
	}
	if opts.Progress != "" {
		if mark == nil {
			if mark, _, _, err = openMark(abs, true); err != nil {
				mark.Close()
				db.Close()
				return nil, res, err
			}
		}
		have, err := progress(ctx, db, opts.Progress)
		if err == nil {
			err = mark.Advance(have)
		}
		if err != nil {
			db.Close()
			mark.Close()
			return nil, res, fmt.Errorf("commit record: %w", err)
		}
		if !found && have.Generation > 0 {
			log.Warn("database had no commit record; starting one (expected once, after upgrading)",
				"path", abs, "record", mark.Path(), "generation", have.Generation)
		}
		res.Mark = mark
	}
	return db, res, nil
}

// openPool opens the read-write pool on the file at abs, checks the file
// and migrates it.
func openPool(ctx context.Context, abs string, opts *Options, log *slog.Logger, res *Opened) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, err
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 4
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if res.From, res.To, err = prepare(ctx, db, abs, opts, log); err != nil {
		db.Close()
		return nil, err
	}
	if res.Created {
		res.From = 0
	}
	return db, nil
}

// dsn returns the modernc.org/sqlite data source name for the file at the
// absolute path abs. mode=rw makes SQLite fail rather than create a file
// that has vanished; Open creates files itself. The _pragma settings apply
// to every connection in the pool:
//   - busy_timeout: writers from several processes queue instead of failing.
//   - synchronous=FULL: a commit is fsynced to the WAL before it returns, so
//     an acknowledged change survives kill -9 and power loss alike.
//   - foreign_keys: rows must point at real rows.
//   - cell_size_check: extra sanity checks on b-tree pages as they are read,
//     so damage is reported instead of misread.
//   - cache_size of 16 MiB (allocated as used): the default 2 MiB thrashes
//     on a file of tens of megabytes, making a bulk import and the
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
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cell_size_check(1)")
	q.Add("_pragma", "cache_size(-16384)")
	q.Add("_pragma", "journal_size_limit(16777216)")
	q.Set("_txlock", "immediate")
	u.RawQuery = q.Encode()
	return u.String()
}

// create makes a new file at abs without ever leaving a half-made one
// there: it builds the database in a temporary file beside abs and
// hard-links it into place, which fails if another process created abs
// first (then that file is used). A file at abs is thus always complete or
// damaged, which is why Open can refuse an empty file. created is false if
// another process won the race.
func create(ctx context.Context, abs string, opts *Options) (created bool, err error) {
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
	err = initialize(ctx, db, opts)
	if cerr := db.Close(); err == nil {
		err = cerr // closing checkpoints the WAL into the file
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

// initialize turns an empty file into one of opts' kind: WAL mode, the
// application ID, and the current schema.
func initialize(ctx context.Context, db *sql.DB, opts *Options) error {
	if err := setWAL(ctx, db); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", opts.ApplicationID)); err != nil {
		return err
	}
	_, err := migrate(ctx, db, opts.Migrations)
	return err
}

func setWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q after setting WAL", mode)
	}
	return nil
}

// syncDir makes a new directory entry durable: without it a crash just
// after the link could lose the whole file.
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
// zero-length file, which it would happily fill) and files that are plainly
// not SQLite, before SQLite touches them.
func checkHeader(abs string) error {
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [100]byte // the SQLite header
	n, err := io.ReadFull(f, hdr[:])
	switch {
	case n == 0 && err == io.EOF:
		return damaged("the file is empty (Open never leaves an empty file; it was truncated)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return damaged(fmt.Sprintf("the file is %d bytes, shorter than a SQLite header", n))
	case err != nil:
		return err
	case !bytes.Equal(hdr[:len(sqliteMagic)], sqliteMagic):
		return damaged("not a SQLite database (bad header)")
	}
	return nil
}

// prepare checks an existing file and brings its schema up to date,
// returning the versions before and after.
func prepare(ctx context.Context, db *sql.DB, abs string, opts *Options, log *slog.Logger) (from, to int, err error) {
	// quick_check reads every page and checks the b-trees' structure, so a
	// damaged file fails here rather than on some later read. It is O(size)
	// but read-only, and runs once per Open.
	problems, err := check(ctx, db, "PRAGMA quick_check(20)")
	if err != nil {
		return 0, 0, damagedOr(err)
	}
	if len(problems) > 0 {
		return 0, 0, damaged("quick_check: " + oneLine(problems))
	}

	var appID int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, 0, damagedOr(err)
	}
	if appID != int64(opts.ApplicationID) {
		return 0, 0, &Error{Err: ErrNotOurs, Found: appID, Want: int64(opts.ApplicationID)}
	}

	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return 0, 0, damagedOr(err)
	}
	if mode != "wal" {
		log.Warn("database was not in WAL mode; switching", "path", abs, "journal_mode", mode)
		if err := setWAL(ctx, db); err != nil {
			return 0, 0, fmt.Errorf("set WAL mode: %w", err)
		}
	}

	if from, err = version(ctx, db); err != nil {
		return 0, 0, damagedOr(err)
	}
	if from > len(opts.Migrations) {
		return 0, 0, &Error{Err: ErrTooNew, Found: int64(from), Want: int64(len(opts.Migrations))}
	}
	if to, err = migrate(ctx, db, opts.Migrations); err != nil {
		return 0, 0, fmt.Errorf("migrate schema from version %d: %w", from, err)
	}
	if to != from {
		log.Info("database schema migrated", "path", abs, "from", from, "to", to)
	}
	return from, to, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// version returns the file's schema version (PRAGMA user_version): how many
// of its migrations it has had.
func version(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// migrate applies the migrations the file lacks, each in its own
// transaction that also sets user_version, and returns the version reached.
// BEGIN IMMEDIATE (see dsn) makes a second process migrating at the same
// time wait and then find nothing to do.
//
// The version is read first outside any transaction: a file that needs no
// migration (nearly always) is opened without taking the write lock, so
// Open does not wait for, or fail on, another process's long write.
func migrate(ctx context.Context, db *sql.DB, ms []Migration) (int, error) {
	if v, err := version(ctx, db); err != nil || v >= len(ms) {
		return v, err
	}
	for {
		v, done, err := migrateOne(ctx, db, ms)
		if err != nil || done {
			return v, err
		}
	}
}

// migrateOne applies the next migration the file lacks, if any.
func migrateOne(ctx context.Context, db *sql.DB, ms []Migration) (v int, done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback() // no-op after Commit
	if v, err = version(ctx, tx); err != nil {
		return 0, false, err
	}
	if v >= len(ms) {
		return v, true, nil
	}
	if err := ms[v](ctx, tx); err != nil {
		return v, false, fmt.Errorf("to version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return v, false, err
	}
	if err := tx.Commit(); err != nil {
		return v, false, err
	}
	return v + 1, false, nil
}

// Check runs SQLite's full integrity check (PRAGMA integrity_check), which
// unlike the quick check Open runs also verifies that every index matches
// its table. It reads the whole file, so it takes time in proportion to its
// size (about a second for 30 MB). It returns nil if the file is intact, an
// [*Error] wrapping ErrDamaged that lists the problems if not, and any
// other error as it is.
func Check(ctx context.Context, db *sql.DB) error {
	problems, err := check(ctx, db, "PRAGMA integrity_check(20)")
	if err != nil {
		return damagedOr(err)
	}
	if len(problems) > 0 {
		return damaged("integrity_check: " + oneLine(problems))
	}
	return nil
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
