package evidence

// The evidence log: records appended to a Merkle tree (golang.org/x/mod's
// sumdb/tlog) kept in DATA/evidence.db, with checkpoints of its root signed
// by an Ed25519 key (sumdb/note) kept in DATA/evidence.key. A record once
// covered by a checkpoint cannot be changed, removed or moved without
// Verify saying which; a copy of a checkpoint kept elsewhere also catches
// the log being cut back. Bundle export lets a third party check records
// with nothing but the bundle.
//
// Callers never wait for the disk: Append puts the record on an in-memory
// queue, Run writes the queue every FlushInterval in one transaction, and
// Close writes what is left.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"warden/internal/confkey"
	"warden/internal/ratelog"
	"warden/internal/sqlitedb"
)

// Config configures the evidence log: the [evidence] table of the config
// file.
type Config struct {
	// Retention is how long record bodies are kept. Older ones are pruned:
	// each is replaced by its leaf hash, so the log still verifies, and
	// the pruning is itself a record. 0 keeps records forever.
	Retention time.Duration `toml:"retention"`
}

// DefaultConfig keeps records for 90 days.
func DefaultConfig() Config { return Config{Retention: 90 * 24 * time.Hour} }

// Validate returns a *confkey.Error naming a setting that cannot work.
func (c Config) Validate() error {
	if c.Retention != 0 && c.Retention < time.Hour {
		return confkey.Errorf("retention", "must be 0 (keep forever) or at least 1h, got %v", c.Retention)
	}
	return nil
}

// The log's schedule.
const (
	// FlushInterval is how often Run writes the queue. After kill -9 the
	// records appended in the last FlushInterval (plus one commit) are
	// lost; everything before is on disk.
	FlushInterval = 250 * time.Millisecond
	// SignInterval is the shortest time between two checkpoints while
	// records arrive: a record is covered by a signature within about
	// SignInterval + FlushInterval.
	SignInterval = time.Second
	// IdleSignInterval is how often a checkpoint is signed when no record
	// arrives, to show the log was alive and held nothing more.
	IdleSignInterval = time.Minute
	pruneInterval    = time.Hour
)

// maxQueueBytes bounds the memory of records waiting to be written;
// recordOverhead is what one costs beyond its body.
const (
	maxQueueBytes  = 16 << 20
	recordOverhead = 128
)

// Errors of Append.
var (
	ErrClosed        = errors.New("evidence log closed")
	ErrQueueFull     = errors.New("evidence log queue full: record dropped (counted in a \"lost\" record)")
	ErrInvalidRecord = errors.New("evidence record not built by NewRecord")
)

// Log is the evidence log of one data directory, its only writer. Its
// methods are safe for concurrent use.
type Log struct {
	path   string
	key    signingKey
	ver    note.Verifier // key's public half
	origin string
	db     *sql.DB
	cfg    Config
	log    *slog.Logger
	errLog *ratelog.Logger
	now    func() time.Time

	// The schedule; tests shorten it before Run.
	flushEvery, signEvery, idleEvery, pruneEvery time.Duration
	maxQueue                                     int

	qmu        sync.Mutex // guards the fields below: the queue Append fills
	queue      []queued
	spare      []queued // the last batch written, for reuse
	queueBytes int
	lastLogged time.Time // latest logged time handed out
	lost       lostCount
	closed     bool

	wmu      sync.Mutex // guards the fields below; held for a whole write
	tree     frontier   // the tree in the file
	latest   Checkpoint // the latest signed checkpoint
	buf      []byte     // leaf encoding buffer
	dbClosed bool

	appended, dropped, written, signed, flushErrors atomic.Uint64
	size                                            atomic.Int64 // records in the file

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	closeErr  error
}

type queued struct {
	rec    Record
	logged time.Time
}

// lostCount counts records Append refused because the queue was full.
type lostCount struct {
	n           uint64
	first, last time.Time
}

// Open opens the evidence log in dataDir (which must exist), creating it
// if there is none: the signing key (KeyFile, mode 0600), its verifier key
// (PubFile) and the database (DBFile, mode 0600) with a first checkpoint.
// It refuses, leaving the files as they are, a log whose signing key is
// missing, a damaged database, one signed by another key, and one whose
// newest records or checkpoint do not match (an error wrapping
// ErrTampered: run Verify to find the first bad record). Records written
// but not yet signed when the last writer died are checked and signed at
// once. Open starts nothing: call Run, and Close when done. A nil log
// discards.
func Open(dataDir string, cfg Config, log *slog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "evidence")
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open evidence log in %s: %w", dataDir, err)
	}
	path := filepath.Join(dir, DBFile)
	_, statErr := os.Stat(path)
	exists := statErr == nil
	key, _, err := loadOrCreateKey(dir, !exists)
	if err != nil {
		if exists && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open evidence log %s: the signing key %s is missing, so the log cannot be continued: restore it from a backup, or move the log aside to start a new one",
				path, filepath.Join(dir, KeyFile))
		}
		return nil, fmt.Errorf("open evidence log %s: %w", path, err)
	}
	ver, err := parseVerifierKey(key.vkey)
	if err != nil {
		return nil, fmt.Errorf("open evidence log %s: %w", path, err)
	}
	l := &Log{
		path:       path,
		key:        key,
		ver:        ver,
		origin:     originFor(key),
		cfg:        cfg,
		log:        log,
		errLog:     ratelog.New(log, slog.LevelError, time.Minute, nil),
		now:        time.Now,
		flushEvery: FlushInterval,
		signEvery:  SignInterval,
		idleEvery:  IdleSignInterval,
		pruneEvery: pruneInterval,
		maxQueue:   maxQueueBytes,
		done:       make(chan struct{}),
	}
	ctx := context.Background()
	db, opened, err := sqlitedb.Open(ctx, path, sqlitedb.Options{
		ApplicationID: applicationID,
		Migrations:    migrations(l.genesis),
		MaxOpenConns:  2,
		Log:           log,
	})
	if err != nil {
		return nil, openError(path, err)
	}
	l.db = db
	unsigned, err := l.load(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open evidence log %s: %w", path, err)
	}
	if unsigned > 0 {
		if _, err := l.flush(ctx, true, false); err != nil {
			db.Close()
			return nil, fmt.Errorf("open evidence log %s: sign the records left unsigned: %w", path, err)
		}
		log.Info("evidence log: signed records the last run left unsigned", "records", unsigned)
	}
	log.Info("evidence log opened", "path", path, "created", opened.Created, "records", l.tree.size,
		"checkpoint", l.latest.Seq, "verifier_key", key.vkey)
	return l, nil
}

// openError words sqlitedb's refusals for the evidence log.
func openError(path string, err error) error {
	var e *sqlitedb.Error
	if errors.As(err, &e) {
		return fmt.Errorf("open evidence log %s: %w; the file was left as is", path, err)
	}
	if errors.Is(err, errNeverSigned) {
		return fmt.Errorf("open evidence log %s: %w", path, errNeverSigned)
	}
	return fmt.Errorf("open evidence log %s: %w", path, err)
}

// clock returns the wall clock without its monotonic reading, so times
// compare as they are written.
func (l *Log) clock() time.Time { return l.now().Round(0).UTC() }

// genesis writes the meta row and checkpoint 1 (the empty tree) in the
// transaction that creates the file.
func (l *Log) genesis(ctx context.Context, tx *sql.Tx) error {
	root, _ := tlog.TreeHash(0, &frontier{})
	cp := Checkpoint{Origin: l.origin, Root: root, Time: l.clock(), Seq: 1}
	if err := cp.sign(l.key); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (id, verifier, checkpoint) VALUES (1, ?, 1)`, l.key.vkey); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (seq, note) VALUES (1, ?)`, string(cp.Note))
	return err
}

// load reads the writer's state: the tree's size and frontier and the
// latest checkpoint. It checks what the next checkpoint will sign: the
// latest checkpoint against the stored hashes, and every record after it
// against its leaf hashes. It returns how many records are unsigned.
func (l *Log) load(ctx context.Context) (unsigned int64, err error) {
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var vkey string
	var seq, maxSeq, size int64
	if err := tx.QueryRowContext(ctx, `SELECT verifier, checkpoint FROM meta WHERE id = 1`).Scan(&vkey, &seq); err != nil {
		return 0, tampered("meta", 1, -1, "no meta row (%v)", err)
	}
	if vkey != l.key.vkey {
		return 0, tampered("meta", 1, -1, "the log is signed by %s, but %s holds %s", vkey, KeyFile, l.key.vkey)
	}
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM checkpoints`).Scan(&maxSeq); err != nil {
		return 0, err
	}
	if maxSeq != seq {
		return 0, tampered("checkpoints", maxSeq, -1, "the latest checkpoint is %d, but meta says %d", maxSeq, seq)
	}
	var msg string
	if err := tx.QueryRowContext(ctx, `SELECT note FROM checkpoints WHERE seq = ?`, seq).Scan(&msg); err != nil {
		return 0, err
	}
	cp, err := openCheckpoint([]byte(msg), l.ver)
	if err != nil || cp.Seq != seq {
		return 0, tampered("checkpoints", seq, -1, "%v", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM records`).Scan(&size); err != nil {
		return 0, err
	}
	if size < cp.Size {
		return 0, tampered("records", size, size, "checkpoint %d covers %d records, the file holds %d", cp.Seq, cp.Size, size)
	}
	hr := &dbHashes{ctx: ctx, q: tx}
	f := frontier{size: cp.Size}
	for level := range 63 {
		if cp.Size>>level&1 == 1 {
			h, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(level, cp.Size>>level-1)})
			if err != nil {
				return 0, tampered("hashes", tlog.StoredHashIndex(level, cp.Size>>level-1), cp.Size-1, "%v", err)
			}
			f.roots[level] = h[0]
		}
	}
	if root, _ := tlog.TreeHash(cp.Size, &f); root != cp.Root {
		return 0, tampered("hashes", -1, -1, "the stored hashes do not give checkpoint %d's root", cp.Seq)
	}
	rows, err := tx.QueryContext(ctx, `SELECT idx, data FROM records WHERE idx >= ? ORDER BY idx`, cp.Size)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	last := cp.Time
	for rows.Next() {
		var idx int64
		var data sql.NullString
		if err := rows.Scan(&idx, &data); err != nil {
			return 0, err
		}
		if idx != f.size || !data.Valid {
			return 0, tampered("records", f.size, f.size, "record %d is missing or pruned", f.size)
		}
		lf, err := parseLeaf([]byte(data.String))
		if err != nil || lf.Index != idx {
			return 0, tampered("records", idx, idx, "record %d: %v", idx, err)
		}
		want, err := tlog.StoredHashes(idx, []byte(data.String), &f)
		if err != nil {
			return 0, err
		}
		base := tlog.StoredHashIndex(0, idx)
		ids := make([]int64, len(want))
		for i := range want {
			ids[i] = base + int64(i)
		}
		got, err := hr.ReadHashes(ids)
		if err != nil || !slices.Equal(got, want) {
			return 0, tampered("records", idx, idx, "record %d does not match its stored hashes", idx)
		}
		f.add(want)
		last = lf.Logged
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var maxID int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id) + 1, 0) FROM hashes`).Scan(&maxID); err != nil {
		return 0, err
	}
	if maxID != tlog.StoredHashCount(f.size) {
		return 0, tampered("hashes", maxID-1, -1, "%d stored hashes for %d records, want %d", maxID, f.size, tlog.StoredHashCount(f.size))
	}
	l.tree, l.latest = f, cp
	l.size.Store(f.size)
	l.lastLogged = last
	if cp.Time.After(last) {
		l.lastLogged = cp.Time
	}
	return f.size - cp.Size, nil
}

// VerifierKey returns the public key that verifies the log's checkpoints.
func (l *Log) VerifierKey() string { return l.key.vkey }

// Append queues r to be written within FlushInterval and returns at once:
// it never waits for the disk. It fails with ErrInvalidRecord for a
// Record not built by NewRecord or of a kind only the log writes, with
// ErrClosed after Close, and with ErrQueueFull when more than 16 MiB of
// records wait (the disk is failing or Run is not running); the records so
// refused are counted in a record of KindLost. ctx is not used: Append
// does not block. It allocates nothing once the queue has grown.
func (l *Log) Append(ctx context.Context, r Record) error {
	if r.body == nil || r.Kind.reserved() {
		return ErrInvalidRecord
	}
	now := l.clock()
	cost := len(r.body) + recordOverhead
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return ErrClosed
	}
	if now.Before(l.lastLogged) {
		now = l.lastLogged
	}
	l.lastLogged = now
	if l.queueBytes+cost > l.maxQueue {
		if l.lost.n == 0 {
			l.lost.first = now
		}
		l.lost.n++
		l.lost.last = now
		l.qmu.Unlock()
		l.dropped.Add(1)
		return ErrQueueFull
	}
	l.queue = append(l.queue, queued{rec: r, logged: now})
	l.queueBytes += cost
	l.qmu.Unlock()
	l.appended.Add(1)
	return nil
}

// Run writes the queue every FlushInterval, signs checkpoints on the
// schedule (SignInterval while records arrive, IdleSignInterval when
// idle) and prunes expired records hourly, until ctx is done or Close is
// called. A failed write is logged (at most once a minute) and retried
// with the next one; its records stay queued. Run returns nil.
func (l *Log) Run(ctx context.Context) error {
	t := time.NewTicker(l.flushEvery)
	defer t.Stop()
	nextPrune := l.clock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.done:
			return nil
		case <-t.C:
		}
		wctx := context.WithoutCancel(ctx) // a write under way is finished
		if _, err := l.flush(wctx, false, false); err != nil && !errors.Is(err, ErrClosed) {
			l.flushErrors.Add(1)
			l.errLog.Log("evidence log: write failed; records stay queued", slog.String("path", l.path), slog.Any("err", err))
		}
		if now := l.clock(); !now.Before(nextPrune) {
			if _, err := l.Prune(wctx); err != nil && !errors.Is(err, ErrClosed) {
				l.errLog.Log("evidence log: prune failed", slog.String("path", l.path), slog.Any("err", err))
			}
			nextPrune = now.Add(l.pruneEvery)
		}
	}
}

// Checkpoint writes the queue, signs a checkpoint if any record is not
// yet covered (whatever the schedule), and returns the latest checkpoint,
// which covers every record appended before the call.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if _, err := l.flush(ctx, true, false); err != nil {
		return Checkpoint{}, err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	cp := l.latest
	cp.Note = slices.Clone(cp.Note)
	return cp, nil
}

// Close refuses further records, writes the queue, signs a last
// checkpoint and closes the file. It is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.qmu.Lock()
		l.closed = true
		l.qmu.Unlock()
		close(l.done)
		_, err := l.flush(context.Background(), true, false)
		l.wmu.Lock()
		l.dbClosed = true
		err = errors.Join(err, l.db.Close())
		l.wmu.Unlock()
		if err != nil {
			l.closeErr = fmt.Errorf("close evidence log %s: %w", l.path, err)
		}
	})
	return l.closeErr
}

// Stats are the log's counters since Open.
type Stats struct {
	Appended    uint64 // records Append accepted
	Dropped     uint64 // records Append refused: queue full
	Written     uint64 // records written to the file, the log's own included
	Checkpoints uint64 // checkpoints signed
	WriteErrors uint64 // failed writes (retried)
	Queued      int    // records waiting
	Records     int64  // records in the file
}

// Stats returns the counters. It takes the queue's lock but not the
// writer's, so it does not wait for the disk.
func (l *Log) Stats() Stats {
	l.qmu.Lock()
	q := len(l.queue)
	l.qmu.Unlock()
	return Stats{
		Appended:    l.appended.Load(),
		Dropped:     l.dropped.Load(),
		Written:     l.written.Load(),
		Checkpoints: l.signed.Load(),
		WriteErrors: l.flushErrors.Load(),
		Queued:      q,
		Records:     l.size.Load(),
	}
}

// flush writes the queued records in one transaction and signs a
// checkpoint if one is due, or, with force, if any record is unsigned.
// With prune it also prunes (see Prune) and always signs. On failure the
// records go back to the head of the queue. It returns how many records
// were pruned.
func (l *Log) flush(ctx context.Context, force, prune bool) (int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.dbClosed {
		return 0, ErrClosed
	}
	now := l.clock()
	l.qmu.Lock()
	batch, bytes, lost := l.queue, l.queueBytes, l.lost
	l.queue, l.spare, l.queueBytes, l.lost = l.spare[:0], nil, 0, lostCount{}
	// The log's own records come after the batch and before any record
	// queued from now on, and so must their logged times.
	if now.Before(l.lastLogged) {
		now = l.lastLogged
	}
	l.lastLogged = now
	l.qmu.Unlock()

	size := l.tree.size + int64(len(batch))
	if lost.n > 0 {
		size++
	}
	since := now.Sub(l.latest.Time)
	sign := prune || size > l.latest.Size && (force || since >= l.signEvery) || since >= l.idleEvery
	var pruned int64
	if len(batch) > 0 || lost.n > 0 || sign {
		err := l.writeLocked(ctx, now, sign, func(w *writer) error {
			for _, q := range batch {
				if err := w.append(q.rec, q.logged); err != nil {
					return err
				}
			}
			if lost.n > 0 {
				if err := w.append(lostRecord(lost), now); err != nil {
					return err
				}
			}
			if prune {
				var err error
				pruned, err = l.pruneLocked(w, now)
				return err
			}
			return nil
		})
		if err != nil {
			l.qmu.Lock()
			l.queue = append(batch, l.queue...)
			l.queueBytes += bytes
			if lost.n > 0 {
				if l.lost.n == 0 {
					l.lost.last = lost.last
				}
				l.lost.n += lost.n
				l.lost.first = lost.first
			}
			l.qmu.Unlock()
			return 0, err
		}
	}
	clear(batch) // drop the bodies
	l.qmu.Lock()
	l.spare = batch[:0]
	l.qmu.Unlock()
	return pruned, nil
}

// lostRecord says how many records Append refused, and when.
func lostRecord(c lostCount) Record {
	return logRecord(KindLost, c.first, struct {
		Dropped uint64 `json:"dropped"`
		First   string `json:"first"`
		Last    string `json:"last"`
	}{c.n, c.first.Format(time.RFC3339Nano), c.last.Format(time.RFC3339Nano)})
}

// logRecord builds a record the log writes itself.
func logRecord(kind Kind, t time.Time, v any) Record {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("evidence: %s record: %v", kind, err))
	}
	body, err := canonicalObject(raw)
	if err != nil {
		panic(fmt.Sprintf("evidence: %s record: %v", kind, err))
	}
	return Record{Kind: kind, Time: t, body: body}
}

// writeLocked runs fill in a transaction with a writer over the tree, then
// signs a checkpoint if sign is set, and commits. Only after the commit
// does the log's state change. The caller holds wmu.
func (l *Log) writeLocked(ctx context.Context, now time.Time, sign bool, fill func(*writer) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	w := &writer{ctx: ctx, tx: tx, tree: l.tree, buf: l.buf}
	defer func() { l.buf = w.buf[:0] }()
	if w.insRecord, err = tx.PrepareContext(ctx, `INSERT INTO records (idx, kind, logged, data) VALUES (?, ?, ?, ?)`); err != nil {
		return err
	}
	defer w.insRecord.Close()
	if w.insHash, err = tx.PrepareContext(ctx, `INSERT INTO hashes (id, hash) VALUES (?, ?)`); err != nil {
		return err
	}
	defer w.insHash.Close()
	if err := fill(w); err != nil {
		return err
	}
	cp := l.latest
	if sign {
		root, err := tlog.TreeHash(w.tree.size, &w.tree)
		if err != nil {
			return err
		}
		at := now
		if at.Before(l.latest.Time) {
			at = l.latest.Time
		}
		cp = Checkpoint{Origin: l.origin, Size: w.tree.size, Root: root, Time: at, Seq: l.latest.Seq + 1, Prev: noteHash(l.latest.Note)}
		if err := cp.sign(l.key); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (seq, note) VALUES (?, ?)`, cp.Seq, string(cp.Note)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET checkpoint = ? WHERE id = 1`, cp.Seq); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	l.written.Add(uint64(w.tree.size - l.tree.size))
	l.tree = w.tree
	l.size.Store(w.tree.size)
	if sign {
		l.latest = cp
		l.signed.Add(1)
	}
	return nil
}

// writer appends records to the tree inside one transaction.
type writer struct {
	ctx                context.Context
	tx                 *sql.Tx
	tree               frontier // a copy: the log's changes only on commit
	buf                []byte
	insRecord, insHash *sql.Stmt
}

func (w *writer) append(r Record, logged time.Time) error {
	idx := w.tree.size
	lf := leaf{Index: idx, Kind: r.Kind, Logged: logged, Time: r.Time, Body: r.body}
	w.buf = appendLeaf(w.buf[:0], &lf)
	hashes, err := tlog.StoredHashes(idx, w.buf, &w.tree)
	if err != nil {
		return err
	}
	if _, err := w.insRecord.ExecContext(w.ctx, idx, string(r.Kind), logged.UnixNano(), string(w.buf)); err != nil {
		return fmt.Errorf("write record %d: %w", idx, err)
	}
	base := tlog.StoredHashIndex(0, idx)
	for i, h := range hashes {
		if _, err := w.insHash.ExecContext(w.ctx, base+int64(i), h[:]); err != nil {
			return fmt.Errorf("write hash %d: %w", base+int64(i), err)
		}
	}
	w.tree.add(hashes)
	return nil
}

// frontier is a tree of size records reduced to the roots of its complete
// subtrees, largest first: level L's root is kept when bit L of size is
// set. Those are the only stored hashes that appending a record and
// tlog.TreeHash read, so the writer and Verify need O(log n) memory.
type frontier struct {
	size  int64
	roots [63]tlog.Hash
}

// ReadHashes implements tlog.HashReader for the roots it holds.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if level >= len(f.roots) || f.size>>level&1 == 0 || n != f.size>>level-1 {
			return nil, fmt.Errorf("evidence: stored hash %d is not a root of a tree of %d records", x, f.size)
		}
		out[i] = f.roots[level]
	}
	return out, nil
}

// add takes the stored hashes of record f.size (tlog.StoredHashes): the
// leaf hash and one hash per subtree it completes.
func (f *frontier) add(hashes []tlog.Hash) {
	m := len(hashes) - 1 // the subtrees of levels below m merge into one of level m
	clear(f.roots[:m])
	f.roots[m] = hashes[m]
	f.size++
}

// dbHashes reads stored hashes from the file.
type dbHashes struct {
	ctx context.Context
	q   interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

// ReadHashes implements tlog.HashReader.
func (r *dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, id := range indexes {
		rows, err := r.q.QueryContext(r.ctx, `SELECT hash FROM hashes WHERE id = ?`, id)
		if err != nil {
			return nil, err
		}
		var h []byte
		ok := rows.Next()
		if ok {
			err = rows.Scan(&h)
		}
		rows.Close()
		if err != nil {
			return nil, err
		}
		if !ok || len(h) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d is missing", id)
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// Prune writes the queue, then replaces the bodies of records logged
// more than the retention period ago by their leaf hashes, in the same
// transaction that appends a record of KindPrune saying which (below: the
// first index kept; count; cutoff; retention) and signs a checkpoint.
// Prune records themselves are kept. Freed space is overwritten
// (secure_delete) and the WAL emptied, so the bodies do not linger in the
// file. It returns how many records it pruned; with no retention set it
// does nothing. Run calls it hourly.
func (l *Log) Prune(ctx context.Context) (int64, error) {
	if l.cfg.Retention <= 0 {
		return 0, nil
	}
	n, err := l.flush(ctx, true, true)
	if err != nil {
		return 0, fmt.Errorf("prune evidence log %s: %w", l.path, err)
	}
	if n > 0 {
		// Best effort: copy the pages into the file and empty the WAL,
		// which still holds the pruned bodies. A reader may keep it from
		// finishing; the next prune tries again.
		_, _ = l.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
		l.log.Info("evidence log pruned", "records", n, "retention", l.cfg.Retention)
	}
	return n, nil
}

// pruneLocked prunes inside w's transaction; see Prune.
func (l *Log) pruneLocked(w *writer, now time.Time) (int64, error) {
	ctx := w.ctx
	cutoff := now.Add(-l.cfg.Retention)
	if _, err := w.tx.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return 0, err
	}
	below := w.tree.size
	var first sql.NullInt64
	if err := w.tx.QueryRowContext(ctx, `SELECT min(idx) FROM records WHERE logged >= ?`, cutoff.UnixNano()).Scan(&first); err != nil {
		return 0, err
	}
	if first.Valid {
		below = first.Int64
	}
	type doomed struct {
		idx  int64
		hash tlog.Hash
	}
	var ds []doomed
	rows, err := w.tx.QueryContext(ctx, `SELECT idx, data FROM records
		WHERE idx < ? AND pruned_by IS NULL AND kind != ? ORDER BY idx`, below, string(KindPrune))
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var d doomed
		var data []byte
		if err := rows.Scan(&d.idx, &data); err != nil {
			rows.Close()
			return 0, err
		}
		d.hash = tlog.RecordHash(data)
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ds) == 0 {
		return 0, nil
	}
	p := w.tree.size
	rec := logRecord(KindPrune, now, pruneBody{Below: below, Count: int64(len(ds)),
		Cutoff: cutoff.Format(time.RFC3339Nano), Retention: l.cfg.Retention.String()})
	if err := w.append(rec, now); err != nil {
		return 0, err
	}
	upd, err := w.tx.PrepareContext(ctx, `UPDATE records SET kind = NULL, logged = NULL, data = NULL, leaf = ?, pruned_by = ? WHERE idx = ?`)
	if err != nil {
		return 0, err
	}
	defer upd.Close()
	for _, d := range ds {
		if _, err := upd.ExecContext(ctx, d.hash[:], p, d.idx); err != nil {
			return 0, err
		}
	}
	return int64(len(ds)), nil
}

// pruneBody is the body of a KindPrune record: it removed the bodies of
// Count records, all those below index Below logged before Cutoff, other
// than prune records.
type pruneBody struct {
	Below     int64  `json:"below"`
	Count     int64  `json:"count"`
	Cutoff    string `json:"cutoff"`
	Retention string `json:"retention"`
}
