package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"

	"warden/internal/bittorrent"
)

// slot is what the snapshot knows of one wire hash.
type slot struct {
	reason string
	state  State
}

// snapshot is an immutable view of the registry, keyed by every hash a
// client may announce (v1 hashes and truncated v2 hashes). It is never
// modified once published; a change publishes a new one.
//
// The base map holds a state of one byte per hash, and the reasons of the
// few revoked entries sit in a map of their own, so a registry of a million
// torrents costs about 30 MB rather than the 110 MB a map of (state,
// reason) pairs took.
//
// A change made through this process is not worth copying a 100,000-entry
// map for, so recent changes go into a small overlay map that is consulted
// first, and the overlay is folded into a fresh base map once it grows past
// a fraction of the base. That keeps a single Add at microseconds while a
// lookup is at most two map probes (three for a revoked hash).
type snapshot struct {
	gen     int64 // meta.generation this snapshot reflects
	entries int   // torrents, not keys
	base    map[bittorrent.InfoHash]State
	reasons map[bittorrent.InfoHash]string // of the revoked hashes in base
	over    map[bittorrent.InfoHash]slot   // recent changes; nil if none
}

func (s *snapshot) lookup(ih bittorrent.InfoHash) (slot, bool) {
	if s.over != nil {
		if v, ok := s.over[ih]; ok {
			return v, true
		}
	}
	st, ok := s.base[ih]
	if st == Revoked {
		return slot{state: st, reason: s.reasons[ih]}, true
	}
	return slot{state: st}, ok
}

// maxOverlay is the overlay size past which with folds it into the base,
// after a change of batch entries. A registry of up to foldAlways keys is
// folded at every change: copying it takes a millisecond or two, and saves
// every lookup a second map probe.
//
// Past that, each change copies the overlay (L keys) and every fold the
// base (B keys), once per L/batch changes: a cost per change of about L +
// B·batch/L, least at L = √(B·batch). Single changes keep B/64 (a few
// thousand keys to copy per Add, and few folds); a bulk import of batches
// of thousands lets the overlay grow to tens of thousands, which folds a
// million-entry base a fifth as often as B/64 would.
func maxOverlay(base, batch int) int {
	if base <= foldAlways {
		return 0
	}
	return 256 + max(base/64, int(math.Sqrt(float64(base)*float64(batch))))
}

var foldAlways = 1 << 16 // a variable so tests can exercise the overlay

// with returns a snapshot of s plus changed (entries as now stored, added of
// which are new), at generation gen.
func (s *snapshot) with(changed []Entry, added int, gen int64) *snapshot {
	over := make(map[bittorrent.InfoHash]slot, len(s.over)+2*len(changed))
	maps.Copy(over, s.over)
	for i := range changed {
		e := &changed[i]
		v := slot{state: e.State, reason: e.Reason}
		ks, n := e.keys()
		for _, k := range ks[:n] {
			over[k] = v
		}
	}
	next := &snapshot{gen: gen, entries: s.entries + added, base: s.base, reasons: s.reasons, over: over}
	if len(over) > maxOverlay(len(s.base), len(changed)) {
		next.base = make(map[bittorrent.InfoHash]State, len(s.base)+len(over))
		maps.Copy(next.base, s.base)
		next.reasons = maps.Clone(s.reasons)
		if next.reasons == nil {
			next.reasons = map[bittorrent.InfoHash]string{}
		}
		for k, v := range over {
			next.base[k] = v.state
			if v.state == Revoked {
				next.reasons[k] = v.reason
			} else {
				delete(next.reasons, k)
			}
		}
		next.over = nil
	}
	return next
}

// errBadRow marks a stored row that breaks the schema's rules, which the
// CHECK constraints should have made impossible: Open reports it as damage.
var errBadRow = errors.New("malformed row")

// loadSnapshot reads every entry in one read transaction, so the snapshot
// and its generation agree.
func loadSnapshot(ctx context.Context, db *sql.DB) (*snapshot, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // plain BEGIN: takes no write lock
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	gen, err := readGeneration(ctx, tx)
	if err != nil {
		return nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM torrents").Scan(&n); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT id, v1, v2, state, reason FROM torrents")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	s := &snapshot{
		gen:     gen,
		base:    make(map[bittorrent.InfoHash]State, n),
		reasons: map[bittorrent.InfoHash]string{},
	}
	var (
		id            int64
		v1, v2, state sql.RawBytes
		reason        string
	)
	for rows.Next() {
		if err := rows.Scan(&id, &v1, &v2, &state, &reason); err != nil {
			return nil, err
		}
		var st State
		switch string(state) {
		case "active":
			st = Active
		case "revoked":
			st = Revoked
		default:
			return nil, fmt.Errorf("torrent %d: %w: state %q", id, errBadRow, clip(string(state), 20))
		}
		switch {
		case v1 == nil && v2 == nil:
			return nil, fmt.Errorf("torrent %d: %w: no info hash", id, errBadRow)
		case v1 != nil && len(v1) != 20, v2 != nil && len(v2) != 32:
			return nil, fmt.Errorf("torrent %d: %w: info hash of %d/%d bytes", id, errBadRow, len(v1), len(v2))
		}
		ks, nk := [2]bittorrent.InfoHash{}, 0
		if v1 != nil {
			ks[nk], nk = bittorrent.InfoHash(v1), nk+1
		}
		if v2 != nil {
			ks[nk], nk = bittorrent.InfoHashV2(v2).Truncate(), nk+1
		}
		for _, k := range ks[:nk] {
			s.base[k] = st
			if st == Revoked {
				s.reasons[k] = reason
			}
		}
		s.entries++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return s, nil
}
