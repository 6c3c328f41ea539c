package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"warden/internal/sqlitedb"
)

// Info says how far a registry file has got.
type Info struct {
	// Generation is the change counter: every change raises it.
	Generation int64 `json:"generation"`
	// Entries is the number of torrents, active and revoked.
	Entries int64 `json:"entries"`
}

func infoOf(r sqlitedb.Record) Info { return Info{Generation: r.Generation, Entries: r.Count} }

// Backup writes a consistent copy of the registry to dst, which must not
// exist or be empty, and returns what the copy holds. The copy includes
// changes still in the write-ahead log, which a copy of the database file
// alone would miss; it is made in one read transaction (VACUUM INTO), so
// lookups and changes go on meanwhile, fsynced, and checked as Inspect
// checks a file. It takes time and disk space in proportion to the
// registry's size, and waits for another backup in progress. On error dst
// is removed.
func (r *Registry) Backup(ctx context.Context, dst string) (Info, error) {
	if r.isClosed() {
		return Info{}, ErrClosed
	}
	r.backupMu.Lock()
	defer r.backupMu.Unlock()
	if err := sqlitedb.Backup(ctx, r.db, dst); err != nil {
		return Info{}, fmt.Errorf("back up registry %s to %s: %w", r.path, dst, err)
	}
	return checkBackup(ctx, dst)
}

// BackupFile is Backup for a registry this process has not opened: it reads
// the file at path without writing to it (not even its commit record), so
// it may run whether or not warden is running. It refuses a file Inspect
// refuses, and one that is behind its commit record (ErrRolledBack), as
// Open does: such a copy would lack acknowledged changes.
func BackupFile(ctx context.Context, path, dst string) (Info, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, err
	}
	// Read before the copy is taken: the record can only be behind it then.
	rec, found, _ := sqlitedb.ReadMark(abs)
	db, err := sqlitedb.OpenReadOnly(ctx, abs, fileOptions(nil))
	if err != nil {
		return Info{}, inspectError(abs, err)
	}
	defer db.Close()
	if err := sqlitedb.Backup(ctx, db, dst); err != nil {
		return Info{}, fmt.Errorf("back up registry %s to %s: %w", abs, dst, err)
	}
	info, err := checkBackup(ctx, dst)
	if err == nil && found && info.Generation < rec.Generation {
		os.Remove(dst)
		err = openError(abs, &sqlitedb.Error{Err: sqlitedb.ErrRolledBack, Record: rec,
			Have: sqlitedb.Record{Generation: info.Generation, Count: info.Entries}})
	}
	return info, err
}

func checkBackup(ctx context.Context, dst string) (Info, error) {
	info, err := Inspect(ctx, dst)
	if err != nil {
		return Info{}, fmt.Errorf("check the backup: %w", err)
	}
	return info, nil
}

// Inspect checks the registry file at path without writing to it: an
// intact SQLite database (the quick check), a warden registry, of a schema
// this warden knows. It returns how far the file has got, or an error
// wrapping ErrDamaged or ErrNotRegistry that names the file.
func Inspect(ctx context.Context, path string) (Info, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, err
	}
	rec, err := sqlitedb.Inspect(ctx, abs, fileOptions(nil))
	if err != nil {
		return Info{}, inspectError(abs, err)
	}
	return infoOf(rec), nil
}

func inspectError(abs string, err error) error {
	var e *sqlitedb.Error
	if errors.As(err, &e) {
		return openError(abs, err)
	}
	if sqlitedb.IsCorrupt(err) {
		return damaged(abs, err.Error())
	}
	return fmt.Errorf("registry %s: %w", abs, err)
}

// Recovery reports what Recover found and did.
type Recovery struct {
	// Record is what the commit record said had been committed, unless
	// RecordErr says why it could not be read.
	Record    Info
	RecordErr error
	// Found is the registry as Recover found it, unless FoundErr says why
	// it could not be read.
	Found    Info
	FoundErr error
	// Now is the registry as Recover left it.
	Now Info
	// Changed is false when there was nothing to recover.
	Changed bool
	// SetAside are copies of the files as they were, kept beside the
	// registry.
	SetAside []string
}

// Recover lets warden start again after Open refused the registry at path
// with ErrRolledBack or ErrRecordDamaged. With from empty it accepts the
// registry as it is, changes lost; with from naming a backup (made by
// Backup), it checks the backup and puts it in the registry's place. Either
// way it first keeps the files as they were beside the registry (see
// Recovery.SetAside), and rewrites the commit record so Open succeeds.
// It fails with ErrInUse while any process has the registry open. With from
// empty and nothing missing, it changes nothing. It logs what it did.
func Recover(ctx context.Context, path, from string, log *slog.Logger) (Recovery, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "registry")
	abs, err := filepath.Abs(path)
	if err != nil {
		return Recovery{}, err
	}
	rec, err := sqlitedb.Recover(ctx, abs, fileOptions(log), from)
	out := Recovery{
		Record: infoOf(rec.Record), RecordErr: rec.RecordErr,
		Found: infoOf(rec.Found), FoundErr: rec.FoundErr,
		Now: infoOf(rec.Now), Changed: rec.Changed, SetAside: rec.SetAside,
	}
	if err != nil {
		var e *sqlitedb.Error
		if errors.As(err, &e) && e.Err == sqlitedb.ErrInUse {
			return out, fmt.Errorf("recover registry %s: %w: stop warden serve first", abs, ErrInUse)
		}
		return out, fmt.Errorf("recover registry %s: %w", abs, err)
	}
	if !out.Changed {
		log.Info("registry recovery: nothing is missing; nothing changed", "path", abs,
			"generation", out.Now.Generation, "entries", out.Now.Entries)
		return out, nil
	}
	log.Warn("registry recovered: changes after the recorded state are given up", "path", abs, "from", from,
		"recorded_generation", out.Record.Generation, "recorded_entries", out.Record.Entries,
		"generation", out.Now.Generation, "entries", out.Now.Entries, "set_aside", out.SetAside)
	return out, nil
}
