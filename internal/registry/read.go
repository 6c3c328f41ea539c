package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"warden/internal/bittorrent"
)

const entryCols = "t.id, t.v1, t.v2, t.name, t.state, t.reason, t.added_by, t.added_at, t.changed_by, t.changed_at"

type scanner interface{ Scan(dest ...any) error }

func scanEntry(sc scanner) (Entry, error) {
	var (
		e                  Entry
		v1, v2             []byte
		state              string
		addedAt, changedAt int64
	)
	if err := sc.Scan(&e.ID, &v1, &v2, &e.Name, &state, &e.Reason, &e.AddedBy, &addedAt, &e.ChangedBy, &changedAt); err != nil {
		return Entry{}, err
	}
	if err := setHashes(&e.V1, &e.V2, v1, v2); err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", e.ID, err)
	}
	var ok bool
	if e.State, ok = parseState(state); !ok {
		return Entry{}, fmt.Errorf("entry %d: %w: state %q", e.ID, errBadRow, clip(state, 20))
	}
	e.AddedAt, e.ChangedAt = unixNano(addedAt), unixNano(changedAt)
	return e, nil
}

func setHashes(dv1 *bittorrent.InfoHash, dv2 *bittorrent.InfoHashV2, v1, v2 []byte) error {
	if (v1 != nil && len(v1) != len(dv1)) || (v2 != nil && len(v2) != len(dv2)) {
		return fmt.Errorf("%w: info hash of %d/%d bytes", errBadRow, len(v1), len(v2))
	}
	copy(dv1[:], v1)
	copy(dv2[:], v2)
	return nil
}

func entryByKey(ctx context.Context, q querier, ih bittorrent.InfoHash) (Entry, error) {
	e, err := scanEntry(q.QueryRowContext(ctx,
		"SELECT "+entryCols+" FROM keys k JOIN torrents t ON t.id = k.torrent_id WHERE k.key = ?", ih[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, ErrNotFound
	}
	return e, err
}

func entryByID(ctx context.Context, q querier, id int64) (Entry, error) {
	e, err := scanEntry(q.QueryRowContext(ctx, "SELECT "+entryCols+" FROM torrents t WHERE t.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, ErrNotFound
	}
	return e, err
}

// Get returns the entry ih names: a v1 hash or a truncated v2 hash. It
// reads the database, not the snapshot, and returns ErrNotFound if there is
// no such entry.
func (r *Registry) Get(ctx context.Context, ih bittorrent.InfoHash) (Entry, error) {
	if r.isClosed() {
		return Entry{}, ErrClosed
	}
	e, err := entryByKey(ctx, r.db, ih)
	if err != nil {
		return Entry{}, fmt.Errorf("get %s: %w", ih, err)
	}
	return e, nil
}

// GetV2 returns the entry whose full v2 hash is h, or ErrNotFound. Unlike
// Get(h.Truncate()) it does not match on the truncated form alone.
func (r *Registry) GetV2(ctx context.Context, h bittorrent.InfoHashV2) (Entry, error) {
	if r.isClosed() {
		return Entry{}, ErrClosed
	}
	e, err := scanEntry(r.db.QueryRowContext(ctx, "SELECT "+entryCols+" FROM torrents t WHERE t.v2 = ?", h[:]))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("get v2 %s: %w", h, err)
	}
	return e, nil
}

// List returns the entries f selects, in ID order (the order they were
// added). It reads the database and holds every entry selected in memory:
// give f a Limit, or use Walk, for a large registry.
func (r *Registry) List(ctx context.Context, f Filter) ([]Entry, error) {
	var out []Entry
	err := r.Walk(ctx, f, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// Walk calls fn for each entry f selects, in ID order, reading them from
// the database one at a time in one read transaction (writers are not held
// up), so memory stays bounded however many there are. fn must not keep e,
// which is reused. If fn returns an error, Walk stops and returns it.
func (r *Registry) Walk(ctx context.Context, f Filter, fn func(e *Entry) error) error {
	if r.isClosed() {
		return ErrClosed
	}
	var (
		where []string
		args  []any
	)
	switch f.State {
	case 0:
	case Active, Revoked:
		where, args = append(where, "t.state = ?"), append(args, f.State.String())
	default:
		return fmt.Errorf("list: %w: state %d", ErrInvalid, f.State)
	}
	if f.NameContains != "" {
		where = append(where, "instr(lower(t.name), lower(?)) > 0")
		args = append(args, f.NameContains)
	}
	if f.AfterID > 0 {
		where, args = append(where, "t.id > ?"), append(args, f.AfterID)
	}
	q := "SELECT " + entryCols + " FROM torrents t"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY t.id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	return nil
}

const changeQuery = `SELECT a.seq, a.at, a.actor, a.action, a.torrent_id, t.v1, t.v2, t.name,
	coalesce(a.old_state, ''), a.new_state, a.reason
	FROM audit a JOIN torrents t ON t.id = a.torrent_id`

// History returns the audit log of the entry ih names, oldest first, or
// ErrNotFound.
func (r *Registry) History(ctx context.Context, ih bittorrent.InfoHash) ([]Change, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	e, err := entryByKey(ctx, r.db, ih)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", ih, err)
	}
	cs, err := r.changes(ctx, changeQuery+" WHERE a.torrent_id = ? ORDER BY a.seq", e.ID)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", ih, err)
	}
	return cs, nil
}

// Changes returns the audit log after sequence number afterSeq, oldest
// first, at most limit rows (0 means no limit). Pass the last Seq seen to
// page through the log.
func (r *Registry) Changes(ctx context.Context, afterSeq int64, limit int) ([]Change, error) {
	if r.isClosed() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	cs, err := r.changes(ctx, changeQuery+" WHERE a.seq > ? ORDER BY a.seq LIMIT ?", afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	return cs, nil
}

func (r *Registry) changes(ctx context.Context, q string, args ...any) ([]Change, error) {
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var (
			c                  Change
			at                 int64
			action, oldS, newS string
			v1, v2             []byte
			okOld, okNew       bool
		)
		if err := rows.Scan(&c.Seq, &at, &c.Actor, &action, &c.ID, &v1, &v2, &c.Name, &oldS, &newS, &c.Reason); err != nil {
			return nil, err
		}
		if err := setHashes(&c.V1, &c.V2, v1, v2); err != nil {
			return nil, fmt.Errorf("audit %d: %w", c.Seq, err)
		}
		c.At, c.Action = unixNano(at), Action(action)
		c.OldState, okOld = parseState(oldS)
		c.NewState, okNew = parseState(newS)
		if !okNew || (!okOld && oldS != "") {
			return nil, fmt.Errorf("audit %d: %w: states %q → %q", c.Seq, errBadRow, clip(oldS, 20), clip(newS, 20))
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
