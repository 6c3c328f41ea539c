// Package registry owns the list of torrents warden tracks. Warden is closed
// by default: a torrent is tracked only while it is registered and active.
//
// A SQLite file is the source of truth; every change is written, with a row
// in an append-only audit log, in one durable transaction before the call
// returns, and then recorded in the commit record beside the file
// (registry.db-mark), so that Open refuses a file that lost acknowledged
// changes (a damaged WAL) rather than start with less; Recover and Backup
// are the ways back. The tracker's hot path never touches the database: [Registry.Lookup]
// and [Registry.Tracked] read an immutable in-memory snapshot published
// through an atomic pointer, so they neither block nor allocate. Changes made
// through a Registry are in its snapshot when the call returns; changes made
// by another process writing the same file (a second warden, the CLI) are
// picked up by [Registry.Run] within a second, or by [Registry.Follow] as
// soon as its [ChangeFeed] says so.
//
// The package knows nothing of HTTP or the announce protocol: the tracker
// reaches it through the interface it declares (tracker.Registry: Status
// and Generation), and the admin API and the CLI call the methods that
// change it.
package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/sqlitedb"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotFound: no entry has the given hash.
	ErrNotFound = errors.New("torrent not registered")
	// ErrExists: Add found the torrent already registered. The returned
	// Entry is the stored one, unchanged.
	ErrExists = errors.New("torrent already registered")
	// ErrRevoked accompanies ErrExists when the existing entry is revoked:
	// adding does not restore it (use Restore).
	ErrRevoked = errors.New("torrent is revoked")
	// ErrConflict: a hash given to Add belongs to a different entry, for
	// example a v2 hash whose truncated form is another entry's v1 hash, or
	// a v1 hash registered without the v2 hash given with it.
	ErrConflict = errors.New("info hash belongs to another entry")
	// ErrInvalid: the input breaks a rule (missing hash, text too long or
	// with control characters, empty actor or reason). The error says which.
	ErrInvalid = errors.New("invalid input")
	// ErrDamaged: Open found a file that is not an intact SQLite database.
	// The file is left as it was.
	ErrDamaged = errors.New("registry file is damaged")
	// ErrNotRegistry: Open found an intact SQLite database that is not a
	// warden registry, or one written by a newer warden.
	ErrNotRegistry = errors.New("not a warden registry")
	// ErrClosed: the Registry was closed.
	ErrClosed = errors.New("registry closed")
	// ErrRolledBack: Open found the file behind its commit record
	// (registry.db-mark): changes acknowledged as committed are missing,
	// because the write-ahead log was damaged after a crash or an older
	// copy was put in the file's place. The files are left as they were;
	// Recover accepts the loss or restores a backup.
	ErrRolledBack = errors.New("registry is missing committed changes")
	// ErrRecordDamaged: Open found the commit record beside the file
	// damaged, so it cannot tell whether changes are missing. Recover
	// rewrites it.
	ErrRecordDamaged = errors.New("registry commit record is damaged")
	// ErrInUse: Recover found the registry open in another process (warden
	// serve must be stopped), or Open found Recover at work on it.
	ErrInUse = errors.New("registry in use by another process")
	// ErrBusy: another process held a write transaction on the file for
	// longer than sqlitedb.BusyTimeout, so the change was not made. It may
	// be retried; reads are not affected.
	ErrBusy = errors.New("registry busy")
)

// PollInterval is how often Run checks the file for changes made by other
// processes, and how often Follow does while its feed is failing.
const PollInterval = 250 * time.Millisecond

// Registry is the set of registered torrents. Its methods are safe for
// concurrent use. Several Registry values, in one process or many, may share
// one file.
type Registry struct {
	path string
	db   *sql.DB
	mark *sqlitedb.Mark // the commit record, advanced after every change
	log  *slog.Logger
	now  func() time.Time

	// snap is what Lookup and Tracked read. It is replaced, never changed,
	// and only by the holder of wsem.
	snap atomic.Pointer[snapshot]

	// wsem is a one-slot semaphore held by the goroutine that writes to the
	// database or publishes a snapshot, so snapshots are published in the
	// order the database changed. Readers never take it.
	wsem chan struct{}

	// backupMu makes backups wait for each other, so that two at once do
	// not need twice the disk space.
	backupMu sync.Mutex

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Lookup reports the state of the torrent a client names by ih, which may
// be a v1 hash or a truncated v2 hash, and the revocation reason if it is
// revoked. ok is false if ih is not registered. Lookup reads the in-memory
// snapshot: it does not block, allocate or touch the database, and it keeps
// working (on the last snapshot) after Close.
func (r *Registry) Lookup(ih bittorrent.InfoHash) (state State, reason string, ok bool) {
	v, ok := r.snap.Load().lookup(ih)
	return v.state, v.reason, ok
}

// Tracked reports whether ih (a v1 hash or a truncated v2 hash) is
// registered and active. Like Lookup it does not block or allocate.
func (r *Registry) Tracked(ih bittorrent.InfoHash) bool {
	v, _ := r.snap.Load().lookup(ih)
	return v.state == Active
}

// Len returns the number of entries, active and revoked, in the snapshot.
func (r *Registry) Len() int { return r.snap.Load().entries }

// Path returns the absolute path of the database file.
func (r *Registry) Path() string { return r.path }

// poll reloads the snapshot if the database's generation differs from it.
//
// The generation (meta.generation, moved by triggers on every change to
// torrents) is used rather than PRAGMA data_version because it tells more:
// data_version is per connection and also moves for this process's own
// commits through other pooled connections, whereas a generation stored
// with the data lets write decide whether its snapshot was current and lets
// poll skip reloading after this process's own changes.
func (r *Registry) poll(ctx context.Context) error {
	gen, err := readGeneration(ctx, r.db)
	if err != nil {
		return err
	}
	if gen == r.snap.Load().gen {
		return nil
	}
	if err := r.lockWriter(ctx); err != nil {
		return err
	}
	defer r.unlockWriter()
	// A change of this process may have committed between the read above
	// and taking the lock; its writer has put it in the snapshot since.
	if gen, err = readGeneration(ctx, r.db); err != nil {
		return err
	}
	if gen == r.snap.Load().gen {
		return nil
	}
	start := time.Now()
	if err := r.reloadLocked(ctx); err != nil {
		return err
	}
	s := r.snap.Load()
	r.log.Debug("registry reloaded after an outside change", "entries", s.entries, "generation", s.gen, "took", time.Since(start))
	r.advanceLocked(s.gen) // the other process may not keep the record
	return nil
}

// advanceLocked raises the commit record to gen (committed, and at most the
// snapshot's), so a damaged WAL cannot take the change with it unnoticed.
// The caller holds wsem. A failure is logged, not returned: the change is
// committed all the same.
func (r *Registry) advanceLocked(gen int64) {
	s := r.snap.Load()
	rec := sqlitedb.Record{Generation: max(gen, s.gen), Count: int64(s.entries)}
	if err := r.mark.Advance(rec); err != nil {
		r.log.Error("commit record not updated: if the WAL is damaged before the next change, this one could be lost unnoticed",
			"err", err, "generation", rec.Generation)
	}
}

// reloadLocked replaces the snapshot with one read from the database. The
// caller holds wsem.
func (r *Registry) reloadLocked(ctx context.Context) error {
	s, err := loadSnapshot(ctx, r.db)
	if err != nil {
		return err
	}
	r.snap.Store(s)
	return nil
}

func (r *Registry) lockWriter(ctx context.Context) error {
	select {
	case r.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.closed:
		return ErrClosed
	}
	if r.isClosed() {
		<-r.wsem
		return ErrClosed
	}
	return nil
}

func (r *Registry) unlockWriter() { <-r.wsem }

func (r *Registry) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// Close waits for a change in progress to finish and closes the database.
// It is idempotent; later calls return the first call's error. Lookup and
// Tracked keep answering from the last snapshot; every other method returns
// ErrClosed.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.wsem <- struct{}{} // wait out a writer; never released
		r.closeErr = r.db.Close()
		if err := r.mark.Close(); r.closeErr == nil {
			r.closeErr = err
		}
		if r.closeErr != nil {
			r.closeErr = fmt.Errorf("close registry %s: %w", r.path, r.closeErr)
		}
		r.log.Info("registry closed", "path", r.path)
	})
	return r.closeErr
}
