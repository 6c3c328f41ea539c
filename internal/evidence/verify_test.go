package evidence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"warden/internal/sqlitedb"
)

// fixture is a closed log with records of several kinds, pruned records,
// a lost record and many checkpoints, and the checkpoints taken on the
// way.
type fixture struct {
	dir     string
	size    int64
	latest  Checkpoint
	earlier []Checkpoint // every checkpoint Checkpoint() returned, oldest first
}

func newFixture(t testing.TB) *fixture { return newFixtureKey(t, "") }

// newFixtureKey makes the fixture with signer key skey, or a new key if
// skey is empty.
func newFixtureKey(t testing.TB, skey string) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir()}
	if skey != "" {
		if err := os.WriteFile(filepath.Join(fx.dir, KeyFile), []byte(skey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, clk := openTest(t, fx.dir, Config{Retention: 24 * time.Hour})
	ctx := context.Background()
	cp := func() {
		c, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fx.earlier = append(fx.earlier, c)
	}
	appendN(t, l, KindEpisode, 0, 12)
	cp()
	clk.add(2 * time.Hour)
	appendN(t, l, KindBan, 12, 9)
	cp()
	l.maxQueue = 2 * (recordOverhead + 40) // two fit; the third is lost
	appendN(t, l, KindRegistryAdd, 21, 2)
	l.Append(ctx, rec(t, KindRegistryAdd, 23))
	l.maxQueue = maxQueueBytes
	cp()
	clk.add(23 * time.Hour)
	if n, err := l.Prune(ctx); err != nil || n != 12 {
		t.Fatalf("Prune = %d, %v; want 12", n, err)
	}
	for i := range 5 {
		appendN(t, l, KindUnban, 30+3*i, 3)
		clk.add(time.Second)
		cp()
	}
	appendN(t, l, KindConfig, 50, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, fx.dir, VerifyOptions{})
	fx.size, fx.latest = rep.Records, rep.Latest
	if rep.Pruned != 12 || rep.Kinds[KindLost] != 1 || rep.Unsigned != 0 {
		t.Fatalf("fixture: %+v, want 12 pruned, one lost record, all signed", rep)
	}
	return fx
}

// copyTo copies the fixture's files to a new directory.
func (fx *fixture) copyTo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{DBFile, PubFile} {
		b, err := os.ReadFile(filepath.Join(fx.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sqlExec runs statements on the log's file as a tamperer would: plain
// SQLite, no checks.
func sqlExec(t testing.TB, dir string, stmts ...string) error {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// recordOfHash is the record whose append wrote stored hash id.
func recordOfHash(id int64) int64 {
	level, n := tlog.SplitStoredHashIndex(id)
	return (n+1)<<level - 1
}

func TestVerifyNamesTampering(t *testing.T) {
	fx := newFixture(t)
	last := fx.size - 1
	h := tlog.StoredHashIndex(0, 30)
	tests := []struct {
		name      string
		stmts     []string
		earlier   int // use fx.earlier[earlier-1]; 0: none; -1: the latest
		wantTable string
		wantIndex int64
		wantIn    string
	}{
		{name: "change a body", stmts: []string{`UPDATE records SET data = replace(data, '192.0.2.1', '192.0.2.2') WHERE idx = 33`},
			wantTable: "records", wantIndex: 33, wantIn: "does not match its leaf hash"},
		{name: "change a kind", stmts: []string{`UPDATE records SET kind = 'ban' WHERE idx = 31`},
			wantTable: "records", wantIndex: 31, wantIn: "kind column"},
		{name: "change a body and its hashes", stmts: []string{`UPDATE records SET data = replace(data, '192.0.2.1', '192.0.2.2') WHERE idx = 33`,
			fmt.Sprintf(`UPDATE hashes SET hash = randomblob(32) WHERE id = %d`, tlog.StoredHashIndex(0, 33))},
			wantTable: "records", wantIndex: 33},
		{name: "delete a record", stmts: []string{`DELETE FROM records WHERE idx = 40`},
			wantTable: "records", wantIndex: 40, wantIn: "record 40 is missing"},
		{name: "delete the newest record", stmts: []string{fmt.Sprintf(`DELETE FROM records WHERE idx = %d`, last)},
			wantIndex: last},
		{name: "swap two records", stmts: []string{
			`UPDATE records SET idx = -1 WHERE idx = 35`, `UPDATE records SET idx = 35 WHERE idx = 36`, `UPDATE records SET idx = 36 WHERE idx = -1`},
			wantTable: "records", wantIndex: 35, wantIn: "holds the record with index 36"},
		{name: "unprune nothing: a pruned leaf hash", stmts: []string{`UPDATE records SET leaf = randomblob(32) WHERE idx = 3`},
			wantTable: "records", wantIndex: 3},
		{name: "prune a record by hand", stmts: []string{
			fmt.Sprintf(`UPDATE records SET kind = NULL, logged = NULL, data = NULL, pruned_by = 24,
				leaf = (SELECT hash FROM hashes WHERE id = %d) WHERE idx = 14`, tlog.StoredHashIndex(0, 14))},
			wantTable: "records", wantIndex: 14, wantIn: "pruned only records below 12"},
		{name: "prune a record by hand, naming another record", stmts: []string{
			fmt.Sprintf(`UPDATE records SET kind = NULL, logged = NULL, data = NULL, pruned_by = 27,
				leaf = (SELECT hash FROM hashes WHERE id = %d) WHERE idx = 14`, tlog.StoredHashIndex(0, 14))},
			wantTable: "records", wantIndex: 14, wantIn: "which is a unban record"},
		{name: "change a stored hash", stmts: []string{fmt.Sprintf(`UPDATE hashes SET hash = randomblob(32) WHERE id = %d`, h+2)},
			wantTable: "hashes", wantIndex: recordOfHash(h + 2), wantIn: "level 1 over records 30-31"},
		{name: "delete a checkpoint", stmts: []string{`DELETE FROM checkpoints WHERE seq = 4`},
			wantTable: "checkpoints", wantIndex: -1, wantIn: "checkpoint 4 is missing"},
		{name: "delete the newest checkpoint", stmts: []string{fmt.Sprintf(`DELETE FROM checkpoints WHERE seq = %d`, fx.latest.Seq)},
			wantTable: "meta", wantIndex: -1},
		{name: "add a row below every key", stmts: []string{`INSERT INTO records (idx, kind) VALUES (-9223372036854775808, 'ban')`},
			wantTable: "records", wantIndex: -9223372036854775808, wantIn: "not a record index"},
		{name: "add a trigger", stmts: []string{`CREATE TRIGGER t AFTER INSERT ON records BEGIN DELETE FROM records WHERE idx = 0; END`},
			wantTable: "schema", wantIndex: -1, wantIn: "unexpected schema entry"},
		{name: "drop an index", stmts: []string{`DROP INDEX records_logged`},
			wantTable: "schema", wantIndex: -1, wantIn: "records_logged"},
		{name: "remove the newest checkpoint consistently", stmts: []string{
			fmt.Sprintf(`DELETE FROM checkpoints WHERE seq = %d`, fx.latest.Seq), fmt.Sprintf(`UPDATE meta SET checkpoint = %d`, fx.latest.Seq-1)},
			earlier: -1, wantTable: "checkpoints", wantIndex: -1, wantIn: "checkpoints were removed"},
		{name: "truncate consistently", stmts: []string{
			`DELETE FROM records WHERE idx >= 30`,
			fmt.Sprintf(`DELETE FROM hashes WHERE id >= %d`, tlog.StoredHashCount(30)),
			`DELETE FROM checkpoints WHERE seq > 5`, `UPDATE meta SET checkpoint = 5`},
			earlier: 5, wantTable: "records", wantIndex: 30, wantIn: "cut back"},
		{name: "rewrite consistently below an earlier checkpoint", stmts: []string{
			`DELETE FROM records WHERE idx >= 30`,
			fmt.Sprintf(`DELETE FROM hashes WHERE id >= %d`, tlog.StoredHashCount(30)),
			`DELETE FROM checkpoints WHERE seq > 5`, `UPDATE meta SET checkpoint = 5`},
			earlier: 7, wantTable: "records", wantIndex: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fx.copyTo(t)
			var opts VerifyOptions
			if tt.earlier != 0 {
				e := fx.latest
				if tt.earlier > 0 {
					e = fx.earlier[tt.earlier-1]
				}
				opts.Earlier = e.Note
				if _, err := Verify(context.Background(), dir, opts); err != nil {
					t.Fatalf("before tampering: %v", err)
				}
			}
			if err := sqlExec(t, dir, tt.stmts...); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(context.Background(), dir, opts)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if (tt.wantTable != "" && ve.Table != tt.wantTable) || ve.Index != tt.wantIndex || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Verify = %v (table %s, index %d), want table %q, index %d, %q", err, ve.Table, ve.Index, tt.wantTable, tt.wantIndex, tt.wantIn)
			}
		})
	}
}

// TestVerifyRandomTampering makes 1,000 random tamperings of a copy of
// the fixture's file (a byte of any column of any row of any table
// changed, a row deleted, two rows swapped, the newest records cut off,
// the file cut short) and requires Verify to catch each one, naming the
// right record where one is to blame.
func TestVerifyRandomTampering(t *testing.T) {
	fx := newFixture(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	base := fx.copyTo(t)
	counts := map[string]int{}
	const want = 1000
	scratch := memTempDir(t)
	for done := 0; done < want; {
		dir, err := os.MkdirTemp(scratch, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{DBFile, PubFile} {
			copyFile(t, filepath.Join(base, name), filepath.Join(dir, name))
		}
		tp, ok := tamper(t, rng, dir, fx)
		if !ok {
			continue // SQLite refused it (a key taken): not a tampering
		}
		done++
		counts[tp.op]++
		opts := VerifyOptions{}
		if tp.earlier != nil {
			opts.Earlier = tp.earlier
		}
		_, err = Verify(context.Background(), dir, opts)
		if err == nil {
			t.Fatalf("tampering %d (%s) not detected", done, tp)
		}
		os.RemoveAll(dir)
		var ve *VerifyError
		switch {
		case tp.op == "cut file":
			if !errors.As(err, &ve) && !errors.Is(err, sqlitedb.ErrDamaged) {
				t.Fatalf("tampering %d (%s): Verify = %v, want damage or tampering", done, tp, err)
			}
		case !errors.As(err, &ve):
			t.Fatalf("tampering %d (%s): Verify = %v, want a *VerifyError", done, tp, err)
		case tp.index != nil && ve.Index != *tp.index:
			t.Fatalf("tampering %d (%s): Verify = %v, names record %d, want %d", done, tp, err, ve.Index, *tp.index)
		}
	}
	t.Logf("%d tamperings, all detected: %v", want, counts)
}

// memTempDir returns a temporary directory in memory (/dev/shm) where
// there is one, so that a test making a thousand small files does not wait
// for the disk's fsyncs; elsewhere t.TempDir.
func memTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("/dev/shm", "warden-evidence-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// tampering is one change made by tamper.
type tampering struct {
	op, what string
	index    *int64 // the record Verify must name, if one is to blame
	earlier  []byte // checkpoint to verify against
}

func (tp tampering) String() string { return tp.op + ": " + tp.what }

// tables lists each table's columns, key first.
var tables = map[string][]string{
	"records":     {"idx", "kind", "logged", "data", "leaf", "pruned_by"},
	"hashes":      {"id", "hash"},
	"checkpoints": {"seq", "note"},
	"meta":        {"id", "verifier", "checkpoint"},
}

var tableNames = []string{"records", "hashes", "checkpoints", "meta"}

// tamper makes one random change to the log in dir. It returns false if
// SQLite refused the change.
func tamper(t *testing.T, rng *rand.Rand, dir string, fx *fixture) (tampering, bool) {
	t.Helper()
	path := filepath.Join(dir, DBFile)
	if rng.IntN(50) == 0 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		n := rng.Int64N(fi.Size())
		if err := os.Truncate(path, n); err != nil {
			t.Fatal(err)
		}
		return tampering{op: "cut file", what: fmt.Sprintf("to %d of %d bytes", n, fi.Size())}, true
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) bool {
		_, err := db.Exec(q, args...)
		return err == nil
	}
	idxOf := func(table string, key int64) *int64 {
		var i int64
		switch table {
		case "records":
			i = key
		case "hashes":
			i = recordOfHash(key)
		default:
			return nil
		}
		return &i
	}
	keys := func(table string) []int64 {
		col := tables[table][0]
		rows, err := db.Query(fmt.Sprintf(`SELECT %s FROM %s ORDER BY %s`, col, table, col))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ks []int64
		for rows.Next() {
			var k int64
			rows.Scan(&k)
			ks = append(ks, k)
		}
		return ks
	}

	table := tableNames[rng.IntN(len(tableNames))]
	cols := tables[table]
	ks := keys(table)
	key := ks[rng.IntN(len(ks))]
	switch op := rng.IntN(10); {
	case op < 6: // change a byte of a column
		col := cols[rng.IntN(len(cols))]
		var typ string
		var v any
		db.QueryRow(fmt.Sprintf(`SELECT typeof(%s), %s FROM %s WHERE %s = ?`, col, col, table, cols[0]), key).Scan(&typ, &v)
		var nv any
		switch typ {
		case "integer":
			nv = v.(int64) ^ 1<<rng.IntN(63)
		case "text", "blob":
			var b []byte
			switch x := v.(type) {
			case string:
				b = []byte(x)
			case []byte:
				b = x
			}
			i := rng.IntN(len(b))
			b[i] ^= byte(1 + rng.IntN(255))
			if typ == "text" {
				nv = string(b)
			} else {
				nv = b
			}
		case "null":
			switch col {
			case "kind":
				nv = "episode"
			case "data":
				nv = "{}"
			case "leaf":
				nv = make([]byte, 32)
			default:
				nv = rng.Int64N(fx.size)
			}
		}
		if !exec(fmt.Sprintf(`UPDATE %s SET %s = ? WHERE %s = ?`, table, col, cols[0]), nv, key) {
			return tampering{}, false
		}
		tp := tampering{op: "change byte", what: fmt.Sprintf("%s %s=%d column %s (%s)", table, cols[0], key, col, typ)}
		if col != "pruned_by" {
			tp.index = idxOf(table, key)
		}
		return tp, true
	case op < 8: // delete a row
		if !exec(fmt.Sprintf(`DELETE FROM %s WHERE %s = ?`, table, cols[0]), key) {
			return tampering{}, false
		}
		return tampering{op: "delete row", what: fmt.Sprintf("%s %s=%d", table, cols[0], key), index: idxOf(table, key)}, true
	case op < 9: // swap two rows
		if len(ks) < 2 {
			return tampering{}, false
		}
		other := ks[rng.IntN(len(ks))]
		if other == key {
			return tampering{}, false
		}
		a, b := min(key, other), max(key, other)
		k := cols[0]
		if !exec(fmt.Sprintf(`UPDATE %s SET %s = -999 WHERE %s = ?`, table, k, k), a) ||
			!exec(fmt.Sprintf(`UPDATE %s SET %s = ? WHERE %s = ?`, table, k, k), a, b) ||
			!exec(fmt.Sprintf(`UPDATE %s SET %s = ? WHERE %s = -999`, table, k, k), b) {
			return tampering{}, false
		}
		return tampering{op: "swap rows", what: fmt.Sprintf("%s %d and %d", table, a, b), index: idxOf(table, a)}, true
	default: // cut off the newest records, consistently or not, below an earlier checkpoint
		e := fx.earlier[rng.IntN(len(fx.earlier))]
		if e.Size == 0 {
			return tampering{}, false
		}
		keep := rng.Int64N(e.Size)
		tp := tampering{op: "truncate", earlier: e.Note, index: &keep}
		exec(`DELETE FROM records WHERE idx >= ?`, keep)
		if rng.IntN(2) == 0 {
			tp.what = fmt.Sprintf("to %d records, tree and checkpoints too, below checkpoint %d (%d records)", keep, e.Seq, e.Size)
			exec(`DELETE FROM hashes WHERE id >= ?`, tlog.StoredHashCount(keep))
			var seq int64
			db.QueryRow(`SELECT max(seq) FROM checkpoints WHERE note LIKE ?`, fmt.Sprintf("%%\n%d\n%%", keep)).Scan(&seq)
			if seq == 0 {
				seq = 1 // no checkpoint of that size: keep only the first
			}
			exec(`DELETE FROM checkpoints WHERE seq > ?`, seq)
			exec(`UPDATE meta SET checkpoint = ?`, seq)
		} else {
			tp.what = fmt.Sprintf("to %d records, rows only", keep)
		}
		return tp, true
	}
}
