package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"warden/internal/sqlitedb"
)

// applicationID marks a SQLite file as a warden registry ("WARD"), so Open
// refuses some other program's database instead of migrating it.
const applicationID = 0x57415244

// Open opens the registry in the SQLite file at path, creating it (mode 0600)
// if it does not exist; its directory must exist. It checks the file before
// using it and fails with an error wrapping ErrDamaged, naming the file, if
// the file is not an intact SQLite database, and with ErrNotRegistry if it
// is another program's database or a newer schema; in both cases the file is
// left as it was. An existing empty file counts as damaged: Open itself
// never leaves one, so it can only be a truncated registry. Open migrates
// an older schema and loads the snapshot. It starts no background work of
// its own: call Run to follow other processes' changes. A nil log discards.
//
// The file handling (creation, pragmas, checks, migration) is package
// sqlitedb's, shared with warden's other SQLite files.
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
	db, opened, err := sqlitedb.Open(ctx, abs, fileOptions(log))
	if err != nil {
		return nil, openError(abs, err)
	}
	s, err := loadSnapshot(ctx, db)
	if err != nil {
		db.Close()
		opened.Mark.Close()
		return nil, damagedOr(abs, err)
	}
	r := &Registry{
		path:   abs,
		db:     db,
		mark:   opened.Mark,
		log:    log,
		now:    time.Now,
		wsem:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	r.snap.Store(s)
	log.Info("registry opened", "path", abs, "created", opened.Created, "schema", opened.To, "entries", s.entries)
	return r, nil
}

// progressQuery is how far the registry has got, for its commit record:
// the generation the triggers raise on every change, and the entries.
const progressQuery = "SELECT generation, (SELECT count(*) FROM torrents) FROM meta WHERE id = 1"

// fileOptions describe the registry's kind of SQLite file.
func fileOptions(log *slog.Logger) sqlitedb.Options {
	return sqlitedb.Options{
		ApplicationID: applicationID,
		Migrations:    migrations,
		MaxOpenConns:  4,
		Log:           log,
		Progress:      progressQuery,
	}
}

// openError words sqlitedb's refusals as the registry's own errors, so
// callers branch on ErrDamaged, ErrNotRegistry, ErrRolledBack and
// ErrInUse, and the operator reads which file and what happened.
func openError(abs string, err error) error {
	var e *sqlitedb.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("open registry %s: %w", abs, err)
	}
	switch e.Err {
	case sqlitedb.ErrNotOurs:
		return fmt.Errorf("open registry %s: %w (application_id is %#x, want %#x); the file was left as is",
			abs, ErrNotRegistry, e.Found, e.Want)
	case sqlitedb.ErrTooNew:
		return fmt.Errorf("open registry %s: %w: schema version %d is newer than this warden knows (%d); upgrade warden",
			abs, ErrNotRegistry, e.Found, e.Want)
	case sqlitedb.ErrRolledBack:
		return fmt.Errorf("open registry %s: %w: its commit record %s says generation %d (%d entries) was committed, "+
			"but the file reads as generation %d (%d entries): SQLite stops reading the write-ahead log %s "+
			"at its first damaged frame, so every change after it is missing; the files were left as they are",
			abs, ErrRolledBack, abs+sqlitedb.MarkSuffix, e.Record.Generation, e.Record.Count,
			e.Have.Generation, e.Have.Count, abs+"-wal")
	case sqlitedb.ErrRecordDamaged:
		return fmt.Errorf("open registry %s: %w: %s; the files were left as they are", abs, ErrRecordDamaged, e.Detail)
	case sqlitedb.ErrInUse:
		return fmt.Errorf("open registry %s: %w: a recovery is at work on it", abs, ErrInUse)
	}
	return damaged(abs, e.Detail)
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
	err := sqlitedb.Check(ctx, r.db)
	var e *sqlitedb.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return fmt.Errorf("check registry %s: %w: %s", r.path, ErrDamaged, e.Detail)
	}
	return fmt.Errorf("check registry %s: %w", r.path, err)
}

func damaged(abs, detail string) error {
	return fmt.Errorf("open registry %s: %w: %s; the file was left as is: restore it from a backup or move it aside",
		abs, ErrDamaged, detail)
}

// damagedOr reports err as damage if SQLite says the file is corrupt or a
// row breaks the schema's rules, and otherwise as a plain failure to open.
func damagedOr(abs string, err error) error {
	if sqlitedb.IsCorrupt(err) || errors.Is(err, errBadRow) {
		return damaged(abs, err.Error())
	}
	return fmt.Errorf("open registry %s: %w", abs, err)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrations[i] takes the registry's schema from version i to i+1; PRAGMA
// user_version holds the version, numbered for this file alone. Append to
// this list; never edit an entry once released.
var migrations = []sqlitedb.Migration{
	// 0 → 1: the first schema.
	sqlitedb.SQL(`
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
`),
}

func readGeneration(ctx context.Context, q querier) (int64, error) {
	var g int64
	err := q.QueryRowContext(ctx, "SELECT generation FROM meta WHERE id = 1").Scan(&g)
	return g, err
}
