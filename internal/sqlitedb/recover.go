package sqlitedb

import (
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
	"time"
)

// checkMark opens the commit record of the file at abs and compares it with
// the file, read through a read-only connection: that connection cannot
// checkpoint the write-ahead log or delete it when it closes, so a refused
// file is left exactly as it was, WAL included, for whoever examines it.
//
// A file without a record gets none here: Open creates it once the file
// has passed its checks, so a refused file gets no new neighbour.
func checkMark(ctx context.Context, abs string, opts *Options) (m *Mark, found bool, err error) {
	m, rec, _, err := openMark(abs, false)
	switch {
	case errors.Is(err, errInUse):
		return nil, false, &Error{Err: ErrInUse, Detail: "a recovery is at work on it"}
	case err != nil && m != nil:
		m.Close()
		return nil, false, &Error{Err: ErrRecordDamaged, Detail: err.Error()}
	case err != nil:
		return nil, false, err
	case m == nil:
		return nil, false, nil
	}
	ro, err := openReadOnly(ctx, abs, opts)
	if err != nil {
		m.Close()
		return nil, false, err
	}
	have, err := progress(ctx, ro, opts.Progress)
	ro.Close()
	if err != nil {
		m.Close()
		return nil, false, damagedOr(err)
	}
	if have.Generation < rec.Generation {
		m.Close()
		return nil, false, &Error{Err: ErrRolledBack, Record: rec, Have: have}
	}
	return m, true, nil
}

// progress runs the Progress query.
func progress(ctx context.Context, q querier, query string) (Record, error) {
	var r Record
	err := q.QueryRowContext(ctx, query).Scan(&r.Generation, &r.Count)
	return r, err
}

// roDSN is dsn for a read-only connection: mode=ro, so SQLite neither
// writes the file nor checkpoints or removes its WAL.
func roDSN(abs string) string {
	u := url.URL{Scheme: "file", Path: abs}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "cell_size_check(1)")
	q.Add("_pragma", "cache_size(-16384)")
	u.RawQuery = q.Encode()
	return u.String()
}

// openReadOnly opens a one-connection, read-only pool on the existing file
// at abs and checks that it is of opts' kind and no newer than its
// migrations know. It does not run the integrity check.
func openReadOnly(ctx context.Context, abs string, opts *Options) (*sql.DB, error) {
	if err := checkHeader(abs); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", roDSN(abs))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	var appID int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		db.Close()
		return nil, damagedOr(err)
	}
	if appID != int64(opts.ApplicationID) {
		db.Close()
		return nil, &Error{Err: ErrNotOurs, Found: appID, Want: int64(opts.ApplicationID)}
	}
	v, err := version(ctx, db)
	if err != nil {
		db.Close()
		return nil, damagedOr(err)
	}
	if v > len(opts.Migrations) {
		db.Close()
		return nil, &Error{Err: ErrTooNew, Found: int64(v), Want: int64(len(opts.Migrations))}
	}
	return db, nil
}

// OpenReadOnly opens the existing file at path for reading only, as
// [Inspect] does, for a caller that reads it without ever writing: a
// backup taken while the owner is stopped, say. The pool has one
// connection.
func OpenReadOnly(ctx context.Context, path string, opts Options) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return openReadOnly(ctx, abs, &opts)
}

// Inspect checks the existing file at path without writing to it: that it
// is an intact SQLite database (the quick check) of opts' kind, no newer
// than its migrations, and returns its progress (opts.Progress must be
// set). It refuses a bad file with an [*Error], as Open does.
func Inspect(ctx context.Context, path string, opts Options) (Record, error) {
	if opts.Progress == "" {
		return Record{}, errors.New("sqlitedb: Inspect needs Options.Progress")
	}
	db, err := OpenReadOnly(ctx, path, opts)
	if err != nil {
		return Record{}, err
	}
	defer db.Close()
	problems, err := check(ctx, db, "PRAGMA quick_check(20)")
	if err != nil {
		return Record{}, damagedOr(err)
	}
	if len(problems) > 0 {
		return Record{}, damaged("quick_check: " + oneLine(problems))
	}
	r, err := progress(ctx, db, opts.Progress)
	if err != nil {
		return Record{}, damagedOr(err)
	}
	return r, nil
}

// Backup writes a consistent copy of the database db reads, changes still
// in the write-ahead log included, to dst (VACUUM INTO), and fsyncs it.
// dst must not exist or be empty; it is created with mode 0600. The copy is
// taken in one read transaction, so writers are not held up. On error dst
// is removed.
func Backup(ctx context.Context, db *sql.DB, dst string) (err error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return err
	}
	if fi.Size() != 0 {
		return fmt.Errorf("%s exists and is not empty", dst)
	}
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return err
	}
	if err := syncFile(dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Recovery reports what Recover found and did.
type Recovery struct {
	// Record is what the commit record said; RecordErr why it could not
	// be read (missing or damaged), if so.
	Record    Record
	RecordErr error
	// Found is the file as Recover found it; FoundErr why it could not
	// be read, if so.
	Found    Record
	FoundErr error
	// Now is the file as Recover left it.
	Now Record
	// Changed is false when there was nothing to do: no backup given, and
	// the file was not behind an intact record.
	Changed bool
	// SetAside are the files as they were before Recover changed
	// anything, kept beside the database for whoever wants to examine
	// them.
	SetAside []string
}

// Recover lets the owner of the file at path start again after Open
// refused it as behind its commit record (ErrRolledBack) or found the
// record damaged. With from empty it accepts the file as it is; otherwise
// it puts a copy of the database file from (a backup, checked first) in
// its place. Either way the files as they were are first kept beside it
// (Recovery.SetAside), the file is checked and migrated as Open would, and
// the commit record is rewritten to match it, so the next Open succeeds.
// Recover refuses, with ErrInUse, a file another process has open through
// this package (the service must be stopped). opts.Progress must be set.
// With from empty and a file that is not behind an intact record, it
// changes nothing.
func Recover(ctx context.Context, path string, opts Options, from string) (rec Recovery, err error) {
	if opts.Progress == "" || opts.ApplicationID == 0 || len(opts.Migrations) == 0 {
		return rec, errors.New("sqlitedb: Recover needs Options with Progress, an ApplicationID and migrations")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return rec, err
	}
	var backup Record
	if from != "" {
		// The backup must be good before anything is moved.
		if backup, err = Inspect(ctx, from, opts); err != nil {
			return rec, fmt.Errorf("backup %s: %w", from, err)
		}
	} else if _, err := os.Stat(abs); err != nil {
		return rec, err
	}

	m, r, _, markErr := openMark(abs, true) // a missing record is created holding 0: nothing to lose
	if m == nil {
		if errors.Is(markErr, errInUse) {
			return rec, &Error{Err: ErrInUse}
		}
		return rec, markErr
	}
	defer m.Close()
	if err := lockExclusive(m.f); err != nil {
		if errors.Is(err, errInUse) {
			return rec, &Error{Err: ErrInUse}
		}
		return rec, err
	}
	rec.Record, rec.RecordErr = r, markErr
	rec.Found, rec.FoundErr = inspectAbs(ctx, abs, &opts)
	if from == "" {
		if rec.FoundErr != nil {
			return rec, fmt.Errorf("the file itself cannot be used (%w); give a backup to restore", rec.FoundErr)
		}
		if rec.RecordErr == nil && rec.Found.Generation >= rec.Record.Generation {
			rec.Now = rec.Found
			return rec, nil // nothing lost: nothing to do
		}
	}

	stamp := ".before-recover-" + time.Now().UTC().Format("20060102T150405Z")
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		src := abs + suffix
		if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		dst := src + stamp
		if from != "" {
			err = os.Rename(src, dst) // it is being replaced
		} else if suffix != "-shm" { // the shared-memory index is rebuilt from the WAL
			err = copyFile(src, dst)
		}
		if err != nil {
			return rec, fmt.Errorf("set aside %s: %w", src, err)
		}
		if from != "" || suffix != "-shm" {
			rec.SetAside = append(rec.SetAside, dst)
		}
	}
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return rec, err
	}
	if from != "" {
		if err := install(from, abs); err != nil {
			return rec, fmt.Errorf("restore %s: %w", from, err)
		}
	}

	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Opened
	db, err := openPool(ctx, abs, &opts, log, &res)
	if err != nil {
		return rec, err
	}
	defer db.Close()
	if rec.Now, err = progress(ctx, db, opts.Progress); err != nil {
		return rec, err
	}
	if from != "" && rec.Now.Generation != backup.Generation {
		return rec, fmt.Errorf("restored file reads as generation %d, the backup as %d", rec.Now.Generation, backup.Generation)
	}
	if err := m.reset(rec.Now); err != nil {
		return rec, err
	}
	rec.Changed = true
	return rec, nil
}

// inspectAbs is Inspect without the Options check.
func inspectAbs(ctx context.Context, abs string, opts *Options) (Record, error) {
	if _, err := os.Stat(abs); err != nil {
		return Record{}, err
	}
	return Inspect(ctx, abs, *opts)
}

// install copies the file src to dst (which must not exist) through a
// temporary file beside dst, fsynced, so dst is never half written.
func install(src, dst string) error {
	dir := filepath.Dir(dst)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = copyInto(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = matchOwner(tmp, dir)
	}
	if err == nil {
		err = os.Link(tmp, dst)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// copyFile copies src to the new file dst (mode 0600, owned as src), and
// fsyncs it.
func copyFile(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = copyInto(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = matchOwner(dst, src)
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

func copyInto(f *os.File, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := io.Copy(f, in); err != nil {
		return err
	}
	return f.Sync()
}
