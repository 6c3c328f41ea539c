package evidence

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"warden/internal/sqlitedb"
)

// ErrTampered is what every *VerifyError wraps: the log or bundle does not
// match its own hashes and signatures.
var ErrTampered = errors.New("tampered")

// VerifyError says where verification first failed.
type VerifyError struct {
	Table  string // "records", "hashes", "checkpoints", "meta" or "bundle"
	Row    int64  // the row's key (a bundle's record index or byte offset), or -1
	Index  int64  // the first record that may be bad, or -1 if no record is to blame
	Reason string
}

func (e *VerifyError) Error() string {
	s := "tampered: " + e.Reason
	if e.Index >= 0 {
		s += fmt.Sprintf(" (first bad record: %d)", e.Index)
	}
	return s
}

func (e *VerifyError) Unwrap() error { return ErrTampered }

func tampered(table string, row, index int64, format string, args ...any) *VerifyError {
	return &VerifyError{Table: table, Row: row, Index: index, Reason: fmt.Sprintf(format, args...)}
}

// VerifyOptions say what to check a log against.
type VerifyOptions struct {
	// Key is the verifier key the checkpoints must be signed with; empty
	// reads the data directory's PubFile. Give the key you were sent, not
	// the one beside the log, to rule out a log re-signed with a new key.
	Key string
	// Earlier is a signed checkpoint saved before (`warden evidence
	// checkpoint`), or nil. The log must still hold the records it
	// covers, unchanged: a consistency proof from it to the log's current
	// tree is checked.
	Earlier []byte
}

// Report describes a log that verified.
type Report struct {
	Path        string
	Key         string
	Records     int64          // records in the log, pruned ones included
	Kinds       map[Kind]int64 // records by kind, pruned ones not included
	Prunings    []Pruning      // the prune records, oldest first
	Pruned      int64          // records whose bodies were pruned
	Checkpoints int64
	Latest      Checkpoint
	Unsigned    int64       // records after the latest checkpoint (left by a writer that died)
	Earlier     *Checkpoint // VerifyOptions.Earlier, proved consistent with the log
}

// A Pruning is one prune record: at Logged it removed the bodies of Count
// records, those below index Below logged before Cutoff.
type Pruning struct {
	Index     int64 // of the prune record
	Logged    time.Time
	Below     int64
	Count     int64
	Cutoff    time.Time
	Retention string
}

// Verify checks the whole evidence log in dataDir, offline: every record
// against its leaf hash, every stored hash against the records below it,
// every checkpoint's signature and root, the chain of checkpoints, and each
// table's rows against the others, so that a change to any row, a row
// removed, two rows swapped or the newest records cut off are found.
// Pruned records are checked through their kept leaf hashes and the prune
// record that removed them. With opts.Earlier it also proves the log
// consistent with that checkpoint, which catches the log cut back below
// it. It reads the log in one read transaction, so it may run beside the
// writer, and holds O(log n) hashes in memory.
//
// It returns a *VerifyError (wrapping ErrTampered) naming the first
// problem, and other errors for a file it cannot read (an *sqlitedb.Error
// for a damaged one).
func Verify(ctx context.Context, dataDir string, opts VerifyOptions) (*Report, error) {
	key := opts.Key
	if key == "" {
		var err error
		if key, err = ReadVerifierKey(dataDir); err != nil {
			return nil, err
		}
	}
	v, err := parseVerifierKey(key)
	if err != nil {
		return nil, err
	}
	db, path, err := openForRead(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	defer tx.Rollback()

	vr := &verifyRun{ctx: ctx, tx: tx, v: v, rep: &Report{Path: path, Key: key, Kinds: map[Kind]int64{}}}
	if opts.Earlier != nil {
		e, err := openCheckpoint(opts.Earlier, v)
		if err != nil {
			return nil, fmt.Errorf("earlier checkpoint: %w", err)
		}
		vr.earlier = &e
	}
	if err := vr.run(); err != nil {
		if sqlitedb.IsCorrupt(err) {
			err = &sqlitedb.Error{Err: sqlitedb.ErrDamaged, Detail: err.Error()}
		}
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	return vr.rep, nil
}

// openForRead opens an existing log's file without creating one.
func openForRead(ctx context.Context, dataDir string) (*sql.DB, string, error) {
	path, err := filepath.Abs(filepath.Join(dataDir, DBFile))
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, "", fmt.Errorf("no evidence log: %w", err)
	}
	db, _, err := sqlitedb.Open(ctx, path, sqlitedb.Options{
		ApplicationID: applicationID,
		Migrations:    migrations(nil),
		MaxOpenConns:  2,
	})
	if err != nil {
		return nil, "", openError(path, err)
	}
	return db, path, nil
}

// verifyRun walks the tables in key order, side by side.
type verifyRun struct {
	ctx     context.Context
	tx      *sql.Tx
	v       note.Verifier
	rep     *Report
	earlier *Checkpoint

	tree       frontier
	prevLogged time.Time
	goodSize   int64 // size of the last checkpoint found to match

	hashes *rowIter[[]byte]
	cps    *rowIter[string]
	prev   *Checkpoint // the last checkpoint checked against the tree
	next   *Checkpoint // the next one, parsed, not yet reached
	// pending counts, per prune record not yet reached, the pruned rows
	// that name it, and the lowest of them.
	pending map[int64]*pendingPrune
}

type pendingPrune struct{ rows, first, last int64 }

// maxPending bounds the prune records pending at once; a log has one per
// hour of running at most, all of them behind the records they pruned.
const maxPending = 1 << 16

func (vr *verifyRun) run() error {
	ctx, tx := vr.ctx, vr.tx
	if err := checkSchema(ctx, tx); err != nil {
		return err
	}
	var metaKey string
	var metaSeq int64
	var n int
	rows, err := tx.QueryContext(ctx, `SELECT id, verifier, checkpoint FROM meta`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &metaKey, &metaSeq); err != nil {
			rows.Close()
			return tampered("meta", -1, -1, "meta row: %v", err)
		}
		if n++; id != 1 {
			rows.Close()
			return tampered("meta", id, -1, "meta row %d: only row 1 may exist", id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if n != 1 {
		return tampered("meta", 1, -1, "the meta row is missing")
	}
	if metaKey != vr.rep.Key {
		return tampered("meta", 1, -1, "the log names %s as its key, not %s", metaKey, vr.rep.Key)
	}

	vr.pending = map[int64]*pendingPrune{}
	vr.hashes = newRowIter(ctx, tx, `SELECT id, hash FROM hashes WHERE id %s ? ORDER BY id LIMIT 4096`,
		func(r *sql.Rows) (int64, []byte, error) {
			var id int64
			var h []byte
			err := r.Scan(&id, &h)
			return id, h, err
		})
	vr.cps = newRowIter(ctx, tx, `SELECT seq, note FROM checkpoints WHERE seq %s ? ORDER BY seq LIMIT 256`,
		func(r *sql.Rows) (int64, string, error) {
			var seq int64
			var msg string
			err := r.Scan(&seq, &msg)
			return seq, msg, err
		})
	recs := newRowIter(ctx, tx, `SELECT idx, kind, logged, data, leaf, pruned_by FROM records WHERE idx %s ? ORDER BY idx LIMIT 1024`,
		func(r *sql.Rows) (int64, recordRow, error) {
			var rr recordRow
			err := r.Scan(&rr.idx, &rr.kind, &rr.logged, &rr.data, &rr.leaf, &rr.prunedBy)
			return rr.idx, rr, err
		})

	for {
		if err := vr.checkpointsAt(vr.tree.size); err != nil {
			return err
		}
		idx, row, ok, err := recs.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := vr.record(idx, row); err != nil {
			return err
		}
	}
	size := vr.tree.size
	vr.rep.Records = size
	if id, _, ok, err := vr.hashes.next(); err != nil {
		return err
	} else if ok {
		return tampered("hashes", id, size, "hashes row %d belongs to no record: the log holds %d records (the newest may have been removed)", id, size)
	}
	if c, err := vr.nextCheckpoint(); err != nil {
		return err
	} else if c != nil {
		return tampered("records", size, size, "checkpoint %d covers %d records, but records from %d on are missing", c.Seq, c.Size, size)
	}
	if vr.prev == nil {
		return tampered("checkpoints", 1, -1, "there is no checkpoint")
	}
	if vr.prev.Seq != metaSeq {
		return tampered("meta", 1, -1, "the latest checkpoint is %d, but meta says %d: a checkpoint was removed or added", vr.prev.Seq, metaSeq)
	}
	vr.rep.Latest = *vr.prev
	vr.rep.Checkpoints = vr.prev.Seq
	vr.rep.Unsigned = size - vr.prev.Size
	if e := vr.earlier; e != nil {
		if e.Size > size {
			return tampered("records", size, size, "the log was cut back: the earlier checkpoint %d covers %d records, the log holds %d", e.Seq, e.Size, size)
		}
		if e.Seq > vr.prev.Seq {
			return tampered("checkpoints", vr.prev.Seq+1, -1, "checkpoints were removed: the earlier checkpoint is number %d, the log's latest %d", e.Seq, vr.prev.Seq)
		}
		if e.Size > 0 {
			// The records below e.Size gave e.Root (checked on the way);
			// the proof is what a third party holding only roots checks.
			root, err := tlog.TreeHash(size, &vr.tree)
			if err != nil {
				return err
			}
			proof, err := tlog.ProveTree(size, e.Size, &dbHashes{ctx: ctx, q: tx})
			if err != nil {
				return err
			}
			if err := tlog.CheckTree(proof, size, root, e.Size, e.Root); err != nil {
				return tampered("records", 0, 0, "the log is not consistent with the earlier checkpoint %d: %v", e.Seq, err)
			}
		}
		vr.rep.Earlier = e
	}
	if len(vr.pending) > 0 {
		p, pp := int64(-1), &pendingPrune{first: math.MaxInt64}
		for q, qq := range vr.pending {
			if qq.first < pp.first {
				p, pp = q, qq
			}
		}
		if p >= size {
			return tampered("records", size, size, "records from %d on are missing: records %d-%d are marked pruned by record %d", size, pp.first, pp.last, p)
		}
		return tampered("records", pp.first, pp.first, "records %d-%d are marked pruned by record %d, which is not a prune record", pp.first, pp.last, p)
	}
	return nil
}

// checkSchema requires the file's tables, indexes and triggers to be
// exactly those warden creates, so nothing was added beside the tables
// Verify reads, nor a table redefined.
func checkSchema(ctx context.Context, tx *sql.Tx) error {
	want, err := schemaOf(ctx, nil)
	if err != nil {
		return err
	}
	got, err := schemaOf(ctx, tx)
	if err != nil {
		return err
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return tampered("schema", -1, -1, "schema entry %.200q is missing or changed", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			return tampered("schema", -1, -1, "unexpected schema entry %.200q", g)
		}
	}
	return nil
}

// schemaOf lists the schema entries (type, name and SQL) of tx's file, or
// with a nil tx of a new in-memory database made with schemaV1.
func schemaOf(ctx context.Context, tx *sql.Tx) ([]string, error) {
	q := interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}(tx)
	if tx == nil {
		db, err := sql.Open("sqlite", ":memory:")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, schemaV1); err != nil {
			return nil, err
		}
		q = db
	}
	rows, err := q.QueryContext(ctx, `SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			return nil, err
		}
		out = append(out, typ+" "+name+": "+text)
	}
	return out, rows.Err()
}

type recordRow struct {
	idx      int64
	kind     sql.NullString
	logged   sql.NullInt64
	data     sql.NullString
	leaf     []byte
	prunedBy sql.NullInt64
}

// record checks the row of record number vr.tree.size and adds it to the
// tree.
func (vr *verifyRun) record(idx int64, row recordRow) error {
	want := vr.tree.size
	switch {
	case idx < want:
		return tampered("records", idx, idx, "records row %d: not a record index", idx)
	case idx > want:
		return tampered("records", want, want, "record %d is missing", want)
	}
	var h tlog.Hash
	if row.prunedBy.Valid {
		if row.kind.Valid || row.logged.Valid || row.data.Valid || len(row.leaf) != tlog.HashSize {
			return tampered("records", idx, idx, "record %d: a pruned record keeps its leaf hash and nothing else", idx)
		}
		p := row.prunedBy.Int64
		if p <= idx {
			return tampered("records", idx, idx, "record %d: pruned by record %d, which is not after it", idx, p)
		}
		pp := vr.pending[p]
		if pp == nil {
			if len(vr.pending) >= maxPending {
				return tampered("records", idx, idx, "record %d: more than %d prune records pending", idx, maxPending)
			}
			pp = &pendingPrune{first: idx}
			vr.pending[p] = pp
		}
		pp.rows++
		pp.last = idx
		copy(h[:], row.leaf)
		vr.rep.Pruned++
	} else {
		if !row.data.Valid || row.leaf != nil {
			return tampered("records", idx, idx, "record %d: no data, or a leaf hash without being pruned", idx)
		}
		data := []byte(row.data.String)
		lf, err := parseLeaf(data)
		if err != nil {
			return tampered("records", idx, idx, "record %d: %v", idx, err)
		}
		switch {
		case lf.Index != idx:
			return tampered("records", idx, idx, "record %d holds the record with index %d", idx, lf.Index)
		case !row.kind.Valid || Kind(row.kind.String) != lf.Kind:
			return tampered("records", idx, idx, "record %d: kind column %q differs from the record's %q", idx, row.kind.String, lf.Kind)
		case !row.logged.Valid || row.logged.Int64 != lf.Logged.UnixNano():
			return tampered("records", idx, idx, "record %d: logged column differs from the record's %v", idx, lf.Logged)
		case lf.Logged.Before(vr.prevLogged):
			return tampered("records", idx, idx, "record %d was logged at %v, before the record before it (%v)", idx, lf.Logged, vr.prevLogged)
		}
		vr.prevLogged = lf.Logged
		vr.rep.Kinds[lf.Kind]++
		if lf.Kind == KindPrune {
			if err := vr.prune(idx, lf); err != nil {
				return err
			}
		} else if pp := vr.pending[idx]; pp != nil {
			return tampered("records", pp.first, pp.first, "records %d-%d are marked pruned by record %d, which is a %s record", pp.first, pp.last, idx, lf.Kind)
		}
		h = tlog.RecordHash(data)
	}

	hashes, err := tlog.StoredHashesForRecordHash(idx, h, &vr.tree)
	if err != nil {
		return err
	}
	base := tlog.StoredHashIndex(0, idx)
	for i, want := range hashes {
		wantID := base + int64(i)
		id, got, ok, err := vr.hashes.next()
		switch {
		case err != nil:
			return err
		case !ok || id > wantID:
			return tampered("hashes", wantID, idx, "hashes row %d, written with record %d, is missing", wantID, idx)
		case id < wantID:
			return tampered("hashes", id, idx, "hashes row %d is out of place (expected row %d, of record %d)", id, wantID, idx)
		case !bytes.Equal(got, want[:]) && i == 0:
			return tampered("records", idx, idx, "record %d does not match its leaf hash (hashes row %d): the record or that hash was changed", idx, id)
		case !bytes.Equal(got, want[:]):
			level, n := tlog.SplitStoredHashIndex(id)
			return tampered("hashes", id, idx, "hashes row %d (level %d over records %d-%d) does not match those records", id, level, n<<level, (n+1)<<level-1)
		}
	}
	vr.tree.add(hashes)
	return nil
}

// prune checks a prune record against the pruned rows that named it.
func (vr *verifyRun) prune(idx int64, lf leaf) error {
	var b pruneBody
	d := json.NewDecoder(bytes.NewReader(lf.Body))
	d.DisallowUnknownFields()
	err := d.Decode(&b)
	var cutoff time.Time
	if err == nil {
		cutoff, err = time.Parse(time.RFC3339Nano, b.Cutoff)
	}
	if err != nil {
		return tampered("records", idx, idx, "prune record %d: %v", idx, err)
	}
	pp := vr.pending[idx]
	delete(vr.pending, idx)
	var rows, last int64 = 0, -1
	if pp != nil {
		rows, last = pp.rows, pp.last
	}
	if last >= b.Below {
		return tampered("records", last, last, "record %d is marked pruned by record %d, which pruned only records below %d", last, idx, b.Below)
	}
	if rows != b.Count {
		first := idx
		if pp != nil {
			first = pp.first
		}
		return tampered("records", first, first, "prune record %d says it pruned %d records, but %d rows name it", idx, b.Count, rows)
	}
	vr.rep.Prunings = append(vr.rep.Prunings, Pruning{Index: idx, Logged: lf.Logged, Below: b.Below, Count: b.Count, Cutoff: cutoff, Retention: b.Retention})
	return nil
}

// checkpointsAt checks every checkpoint covering exactly size records
// against the tree, and the earlier checkpoint if it has that size.
func (vr *verifyRun) checkpointsAt(size int64) error {
	if vr.earlier != nil && vr.earlier.Size == size {
		if root, err := tlog.TreeHash(size, &vr.tree); err != nil {
			return err
		} else if root != vr.earlier.Root {
			return tampered("records", vr.goodSize, vr.goodSize, "records %d-%d differ from those the earlier checkpoint %d covered", vr.goodSize, size-1, vr.earlier.Seq)
		}
	}
	for {
		c, err := vr.nextCheckpoint()
		if err != nil || c == nil || c.Size > size {
			return err
		}
		seq := c.Seq
		vr.cps.next()
		vr.next = nil
		if c.Size < size { // cannot happen: sizes never shrink and are checked in order
			return tampered("checkpoints", seq, -1, "checkpoint %d was not reached in order", seq)
		}
		root, err := tlog.TreeHash(size, &vr.tree)
		if err != nil {
			return err
		}
		if root != c.Root {
			return tampered("checkpoints", seq, vr.goodSize, "records %d-%d do not match checkpoint %d: a record or the stored hashes over them were rewritten", vr.goodSize, size-1, seq)
		}
		vr.goodSize = size
		vr.prev = c
	}
}

// nextCheckpoint returns the next checkpoint row, parsed and checked
// (see checkpoint), without consuming it; nil after the last.
func (vr *verifyRun) nextCheckpoint() (*Checkpoint, error) {
	if vr.next != nil {
		return vr.next, nil
	}
	seq, msg, ok, err := vr.cps.peek()
	if err != nil || !ok {
		return nil, err
	}
	c, err := vr.checkpoint(seq, msg)
	if err != nil {
		return nil, err
	}
	vr.next = &c
	return vr.next, nil
}

// checkpoint parses the checkpoint in row seq and checks it follows
// vr.prev: signed, numbered and chained in order, never shrinking nor
// going back in time.
func (vr *verifyRun) checkpoint(seq int64, msg string) (Checkpoint, error) {
	c, err := openCheckpoint([]byte(msg), vr.v)
	if err != nil {
		return c, tampered("checkpoints", seq, -1, "checkpoint %d: %v", seq, err)
	}
	wantSeq, prevSize, prevTime := int64(1), int64(0), time.Time{}
	var prevHash [32]byte
	if p := vr.prev; p != nil {
		wantSeq, prevSize, prevTime, prevHash = p.Seq+1, p.Size, p.Time, noteHash(p.Note)
	}
	switch {
	case seq != c.Seq:
		return c, tampered("checkpoints", seq, -1, "checkpoints row %d holds checkpoint %d", seq, c.Seq)
	case seq != wantSeq:
		return c, tampered("checkpoints", wantSeq, -1, "checkpoint %d is missing", wantSeq)
	case c.Prev != prevHash:
		return c, tampered("checkpoints", seq, -1, "checkpoint %d does not follow checkpoint %d", seq, seq-1)
	case c.Size < prevSize:
		return c, tampered("checkpoints", seq, -1, "checkpoint %d covers fewer records than the one before", seq)
	case c.Time.Before(prevTime):
		return c, tampered("checkpoints", seq, -1, "checkpoint %d is older than the one before", seq)
	}
	if e := vr.earlier; e != nil && e.Seq == c.Seq && !bytes.Equal(e.Note, c.Note) {
		return c, tampered("checkpoints", seq, -1, "checkpoint %d differs from the earlier copy given", seq)
	}
	return c, nil
}

// rowIter reads a table in key order, a page at a time.
type rowIter[T any] struct {
	ctx   context.Context
	tx    *sql.Tx
	query string // "key %s ?": rows from the key given on, in order
	scan  func(*sql.Rows) (int64, T, error)

	keys    []int64
	vals    []T
	after   int64 // the last key read, or the first key wanted
	started bool  // after was read, so the next page starts above it
	eof     bool
}

// newRowIter reads every row, from the lowest key; set after (and leave
// started false) before the first read to start at a key.
func newRowIter[T any](ctx context.Context, tx *sql.Tx, query string, scan func(*sql.Rows) (int64, T, error)) *rowIter[T] {
	return &rowIter[T]{ctx: ctx, tx: tx, query: query, scan: scan, after: math.MinInt64}
}

// peek returns the next row without consuming it.
func (it *rowIter[T]) peek() (int64, T, bool, error) {
	var zero T
	if len(it.keys) == 0 && !it.eof {
		if err := it.fill(); err != nil {
			return 0, zero, false, err
		}
	}
	if len(it.keys) == 0 {
		return 0, zero, false, nil
	}
	return it.keys[0], it.vals[0], true, nil
}

// next returns the next row and consumes it.
func (it *rowIter[T]) next() (int64, T, bool, error) {
	k, v, ok, err := it.peek()
	if ok {
		it.keys, it.vals = it.keys[1:], it.vals[1:]
	}
	return k, v, ok, err
}

func (it *rowIter[T]) fill() error {
	op := ">="
	if it.started {
		op = ">"
	}
	rows, err := it.tx.QueryContext(it.ctx, fmt.Sprintf(it.query, op), it.after)
	if err != nil {
		return err
	}
	defer rows.Close()
	it.keys, it.vals = it.keys[:0], it.vals[:0]
	for rows.Next() {
		k, v, err := it.scan(rows)
		if err != nil {
			return err
		}
		it.keys = append(it.keys, k)
		it.vals = append(it.vals, v)
		it.after, it.started = k, true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	it.eof = len(it.keys) == 0
	return nil
}

// LatestCheckpoint returns the latest signed checkpoint of the log in
// dataDir, checked against the verifier key in its PubFile.
func LatestCheckpoint(ctx context.Context, dataDir string) (Checkpoint, error) {
	key, err := ReadVerifierKey(dataDir)
	if err != nil {
		return Checkpoint{}, err
	}
	v, err := parseVerifierKey(key)
	if err != nil {
		return Checkpoint{}, err
	}
	db, path, err := openForRead(ctx, dataDir)
	if err != nil {
		return Checkpoint{}, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Checkpoint{}, err
	}
	defer tx.Rollback()
	cp, err := latestIn(ctx, tx, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	return cp, nil
}

// latestIn reads the checkpoint meta names as the latest.
func latestIn(ctx context.Context, tx *sql.Tx, v note.Verifier) (Checkpoint, error) {
	var msg string
	var seq int64
	err := tx.QueryRowContext(ctx, `SELECT c.seq, c.note FROM meta m JOIN checkpoints c ON c.seq = m.checkpoint WHERE m.id = 1`).Scan(&seq, &msg)
	if err != nil {
		return Checkpoint{}, tampered("meta", 1, -1, "cannot read the latest checkpoint: %v", err)
	}
	cp, err := openCheckpoint([]byte(msg), v)
	if err != nil || cp.Seq != seq {
		return Checkpoint{}, tampered("checkpoints", seq, -1, "checkpoint %d: %v", seq, err)
	}
	return cp, nil
}
