package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/sqlitedb"
)

// write runs fn in a read-write transaction (BEGIN IMMEDIATE, so it first
// waits, up to sqlitedb.BusyTimeout, for other processes' writers),
// commits, and publishes the entries fn reports changed. fn reports no
// change by returning none; the transaction is then rolled back.
//
// If no other process changed the file since the snapshot was taken, the
// new snapshot is the old one plus the change; otherwise it is reloaded
// whole. Either way the change is visible to Lookup when write returns.
func (r *Registry) write(ctx context.Context, fn func(tx *sql.Tx, now time.Time) (changed []Entry, added int, err error)) error {
	if err := r.lockWriter(ctx); err != nil {
		return err
	}
	defer r.unlockWriter()
	return r.busyOr(r.writeLocked(ctx, fn))
}

// busyOr words SQLite's "database is locked" as ErrBusy, saying which file
// and for how long, so callers can answer "try again" rather than fail.
func (r *Registry) busyOr(err error) error {
	if err != nil && sqlitedb.IsBusy(err) {
		return fmt.Errorf("%w: another process has held a write transaction on %s for over %v: %w",
			ErrBusy, r.path, sqlitedb.BusyTimeout, err)
	}
	return err
}

func (r *Registry) writeLocked(ctx context.Context, fn func(tx *sql.Tx, now time.Time) (changed []Entry, added int, err error)) error {

	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	before, err := readGeneration(ctx, tx)
	if err != nil {
		return err
	}
	changed, added, err := fn(tx, r.now())
	if err != nil || len(changed) == 0 {
		return err
	}
	after, err := readGeneration(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		// SQLite rolls back a transaction whose COMMIT fails, but reload
		// anyway rather than trust a guess about what reached the file.
		if rerr := r.reloadLocked(context.WithoutCancel(ctx)); rerr != nil {
			r.log.Error("registry reload after a failed commit", "err", rerr)
		}
		return err
	}

	if cur := r.snap.Load(); cur.gen == before {
		next := cur.with(changed, added, after)
		r.snap.Store(next)
		if next.over == nil && len(next.base) >= collectAfterFold {
			// The old base, tens of megabytes at a million entries, is
			// garbage now. Collect it at once, so that a bulk import,
			// which folds every few batches, keeps the heap near one
			// base rather than letting garbage bases double it. The maps
			// hold no pointers, so the collection is quick.
			runtime.GC()
		}
	} else if err := r.reloadLocked(context.WithoutCancel(ctx)); err != nil {
		// Another process wrote since our snapshot, which must include its
		// change too. The commit stands even if this fails; Run retries.
		r.log.Error("registry reload after a write; Run will retry", "err", err)
	}
	r.advanceLocked(after) // before the caller hears of the change
	return nil
}

// collectAfterFold is the base size (keys) from which a fold is followed
// by a garbage collection.
const collectAfterFold = 1 << 18

// Add registers a torrent as active. Only e.V1, e.V2 and e.Name are read;
// at least one hash must be set. It returns the stored entry.
//
// Add is idempotent: if the torrent is already registered (every hash given
// matches the existing entry's), it returns the existing entry unchanged and
// an error wrapping ErrExists, and also ErrRevoked if that entry is revoked.
// A hash that belongs to another entry, including a v2 hash whose truncated
// form is another entry's wire hash, yields ErrConflict. Bad input yields
// ErrInvalid. The change is durable and in the snapshot when Add returns.
func (r *Registry) Add(ctx context.Context, e Entry, actor string) (Entry, error) {
	if err := checkNew(&e); err != nil {
		return Entry{}, fmt.Errorf("add: %w", err)
	}
	if err := checkText("actor", actor, MaxActorBytes, true); err != nil {
		return Entry{}, fmt.Errorf("add: %w", err)
	}
	var (
		out    Entry
		exists error
	)
	err := r.write(ctx, func(tx *sql.Tx, now time.Time) ([]Entry, int, error) {
		a, err := newAdder(ctx, tx)
		if err != nil {
			return nil, 0, err
		}
		defer a.close()
		out, exists, err = a.add(ctx, e, actor, now)
		if err != nil || exists != nil {
			return nil, 0, err
		}
		return []Entry{out}, 1, nil
	})
	if err != nil {
		return Entry{}, fmt.Errorf("add %s: %w", describe(&e), err)
	}
	if exists != nil {
		return out, fmt.Errorf("add %s: %w", describe(&e), exists)
	}
	r.log.Info("torrent registered", entryAttrs(&out, "by", actor)...)
	return out, nil
}

// AddMany registers entries in one transaction, for bulk import: either all
// of them are written or, on error, none. Entries already registered (see
// Add) are skipped, as is a repeat of an earlier entry in es; revoked ones
// stay revoked. It returns how many entries were added, so len(es)-added
// were skipped. An invalid entry or a conflict aborts the import with an
// error that gives the entry's index.
func (r *Registry) AddMany(ctx context.Context, es []Entry, actor string) (added int, err error) {
	if err := checkText("actor", actor, MaxActorBytes, true); err != nil {
		return 0, fmt.Errorf("add many: %w", err)
	}
	for i := range es {
		if err := checkNew(&es[i]); err != nil {
			return 0, fmt.Errorf("add many: entry %d: %w", i, err)
		}
	}
	err = r.write(ctx, func(tx *sql.Tx, now time.Time) ([]Entry, int, error) {
		a, err := newAdder(ctx, tx)
		if err != nil {
			return nil, 0, err
		}
		defer a.close()
		var changed []Entry
		for i := range es {
			got, exists, err := a.add(ctx, es[i], actor, now)
			if err != nil {
				return nil, 0, fmt.Errorf("entry %d (%s): %w", i, describe(&es[i]), err)
			}
			if exists == nil {
				changed = append(changed, got)
			}
		}
		added = len(changed)
		return changed, added, nil
	})
	if err != nil {
		return 0, fmt.Errorf("add many: %w", err)
	}
	r.log.Info("torrents registered in bulk", "added", added, "skipped", len(es)-added, "by", actor)
	return added, nil
}

// Revoke stops tracking the torrent ih names (a v1 hash or a truncated v2
// hash), recording why and who. Revoking a revoked entry with the same
// reason changes nothing; with a different reason it updates the reason.
// It returns the entry as stored, or ErrNotFound. The change is durable and
// in the snapshot when Revoke returns.
func (r *Registry) Revoke(ctx context.Context, ih bittorrent.InfoHash, reason, actor string) (Entry, error) {
	if err := checkText("reason", reason, MaxReasonBytes, true); err != nil {
		return Entry{}, fmt.Errorf("revoke %s: %w", ih, err)
	}
	out, err := r.setState(ctx, ih, Revoked, reason, actor)
	if err != nil {
		return Entry{}, fmt.Errorf("revoke %s: %w", ih, err)
	}
	return out, nil
}

// Restore makes a revoked torrent active again and clears its reason.
// Restoring an active entry changes nothing. It returns the entry as
// stored, or ErrNotFound. The change is durable and in the snapshot when
// Restore returns.
func (r *Registry) Restore(ctx context.Context, ih bittorrent.InfoHash, actor string) (Entry, error) {
	out, err := r.setState(ctx, ih, Active, "", actor)
	if err != nil {
		return Entry{}, fmt.Errorf("restore %s: %w", ih, err)
	}
	return out, nil
}

func (r *Registry) setState(ctx context.Context, ih bittorrent.InfoHash, to State, reason, actor string) (Entry, error) {
	if err := checkText("actor", actor, MaxActorBytes, true); err != nil {
		return Entry{}, err
	}
	var (
		out     Entry
		from    State
		changed bool
	)
	err := r.write(ctx, func(tx *sql.Tx, now time.Time) ([]Entry, int, error) {
		e, err := entryByKey(ctx, tx, ih)
		if err != nil {
			return nil, 0, err
		}
		out, from = e, e.State
		if e.State == to && e.Reason == reason {
			return nil, 0, nil // already so
		}
		at := now.UnixNano()
		if _, err := tx.ExecContext(ctx,
			"UPDATE torrents SET state = ?, reason = ?, changed_by = ?, changed_at = ? WHERE id = ?",
			to.String(), reason, actor, at, e.ID); err != nil {
			return nil, 0, err
		}
		action := ActionRestore
		if to == Revoked {
			action = ActionRevoke
		}
		if err := insertAudit(ctx, tx, at, actor, action, e.ID, from, to, reason); err != nil {
			return nil, 0, err
		}
		out.State, out.Reason, out.ChangedBy, out.ChangedAt = to, reason, actor, unixNano(at)
		changed = true
		return []Entry{out}, 0, nil
	})
	if err != nil {
		return Entry{}, err
	}
	switch {
	case !changed:
	case to == Revoked:
		r.log.Warn("torrent revoked", entryAttrs(&out, "was", from, "reason", reason, "by", actor)...)
	default:
		r.log.Info("torrent restored", entryAttrs(&out, "by", actor)...)
	}
	return out, nil
}

// adder inserts entries with statements prepared once per transaction.
type adder struct {
	tx                                    *sql.Tx
	findKey, insTorrent, insKey, insAudit *sql.Stmt
}

func newAdder(ctx context.Context, tx *sql.Tx) (*adder, error) {
	a := &adder{tx: tx}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = tx.PrepareContext(ctx, q)
		return s
	}
	a.findKey = prep("SELECT torrent_id FROM keys WHERE key = ?")
	a.insTorrent = prep(`INSERT INTO torrents (v1, v2, name, state, reason, added_by, added_at, changed_by, changed_at)
		VALUES (?, ?, ?, 'active', '', ?, ?, ?, ?)`)
	a.insKey = prep("INSERT INTO keys (key, torrent_id) VALUES (?, ?)")
	a.insAudit = prep(insertAuditSQL)
	if err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *adder) close() {
	for _, s := range []*sql.Stmt{a.findKey, a.insTorrent, a.insKey, a.insAudit} {
		if s != nil {
			s.Close()
		}
	}
}

// add inserts e unless it is registered already, in which case it returns
// the stored entry and exists (wrapping ErrExists, and ErrRevoked if so).
func (a *adder) add(ctx context.Context, e Entry, actor string, now time.Time) (out Entry, exists, err error) {
	ks, n := e.keys()
	var ids [2]int64
	for i, k := range ks[:n] {
		err := a.findKey.QueryRowContext(ctx, k[:]).Scan(&ids[i])
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Entry{}, nil, err
		}
	}
	if ids[0] != 0 || ids[1] != 0 {
		return a.existing(ctx, &e, ids[:n])
	}

	at := now.UnixNano()
	res, err := a.insTorrent.ExecContext(ctx, nullable(e.HasV1(), e.V1[:]), nullable(e.HasV2(), e.V2[:]),
		e.Name, actor, at, actor, at)
	if err != nil {
		return Entry{}, nil, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Entry{}, nil, err
	}
	for _, k := range ks[:n] {
		if _, err := a.insKey.ExecContext(ctx, k[:], id); err != nil {
			return Entry{}, nil, err
		}
	}
	if _, err := a.insAudit.ExecContext(ctx, at, actor, string(ActionAdd), id, nil, Active.String(), ""); err != nil {
		return Entry{}, nil, err
	}
	t := unixNano(at)
	return Entry{
		ID: id, V1: e.V1, V2: e.V2, Name: e.Name, State: Active,
		AddedBy: actor, AddedAt: t, ChangedBy: actor, ChangedAt: t,
	}, nil, nil
}

// existing decides between "already registered" and a conflict, given the
// entry IDs (0 for none) that e's wire hashes already name.
func (a *adder) existing(ctx context.Context, e *Entry, ids []int64) (Entry, error, error) {
	id := ids[0]
	if id == 0 {
		id = ids[1]
	}
	for _, other := range ids {
		if other != 0 && other != id {
			return Entry{}, nil, fmt.Errorf("%w: v1 hash is entry %d, truncated v2 hash is entry %d", ErrConflict, id, other)
		}
	}
	got, err := entryByID(ctx, a.tx, id)
	if err != nil {
		return Entry{}, nil, err
	}
	if (e.HasV1() && e.V1 != got.V1) || (e.HasV2() && e.V2 != got.V2) {
		return Entry{}, nil, fmt.Errorf("%w: entry %d is registered as %s", ErrConflict, got.ID, describe(&got))
	}
	if got.State == Revoked {
		return got, fmt.Errorf("%w (%w: %s)", ErrExists, ErrRevoked, got.Reason), nil
	}
	return got, ErrExists, nil
}

func insertAudit(ctx context.Context, tx *sql.Tx, at int64, actor string, action Action, id int64, from, to State, reason string) error {
	var old any
	if from != 0 {
		old = from.String()
	}
	_, err := tx.ExecContext(ctx, insertAuditSQL, at, actor, string(action), id, old, to.String(), reason)
	return err
}

const insertAuditSQL = "INSERT INTO audit (at, actor, action, torrent_id, old_state, new_state, reason) VALUES (?, ?, ?, ?, ?, ?, ?)"

// nullable returns b, or SQL NULL if !present.
func nullable(present bool, b []byte) any {
	if !present {
		return nil
	}
	return b
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// describe names an entry by its hashes, for errors.
func describe(e *Entry) string {
	switch {
	case e.HasV1() && e.HasV2():
		return "v1 " + e.V1.String() + " v2 " + e.V2.String()
	case e.HasV2():
		return "v2 " + e.V2.String()
	default:
		return "v1 " + e.V1.String()
	}
}

// entryAttrs returns log attributes naming e, followed by more.
func entryAttrs(e *Entry, more ...any) []any {
	args := make([]any, 0, 8+len(more))
	args = append(args, "id", e.ID)
	if e.HasV1() {
		args = append(args, "v1", e.V1)
	}
	if e.HasV2() {
		args = append(args, "v2", e.V2)
	}
	args = append(args, "name", e.Name)
	return append(args, more...)
}
