package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/confkey"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens a log in dir with a fake clock; Close runs at cleanup.
func openTest(t testing.TB, dir string, cfg Config) (*Log, *fakeClock) {
	t.Helper()
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: l.latest.Time.Add(time.Second)}
	l.now = clk.now
	t.Cleanup(func() { l.Close() })
	return l, clk
}

// rec builds a record of kind with body {"n": n}.
func rec(t testing.TB, kind Kind, n int) Record {
	t.Helper()
	r, err := NewRecord(kind, time.Date(2026, 12, 3, 10, 0, 0, n, time.UTC), map[string]any{"n": n, "src": "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func appendN(t testing.TB, l *Log, kind Kind, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Append(context.Background(), rec(t, kind, i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func mustVerify(t testing.TB, dir string, opts VerifyOptions) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func TestOpenAppendVerify(t *testing.T) {
	dir := t.TempDir()
	l, clk := openTest(t, dir, DefaultConfig())
	appendN(t, l, KindEpisode, 0, 100)
	clk.add(time.Second)
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 100 || cp.Seq != 2 {
		t.Fatalf("Checkpoint = size %d seq %d, want 100 and 2", cp.Size, cp.Seq)
	}
	appendN(t, l, KindBan, 100, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, dir, VerifyOptions{})
	if rep.Records != 105 || rep.Kinds[KindEpisode] != 100 || rep.Kinds[KindBan] != 5 || rep.Unsigned != 0 || rep.Latest.Size != 105 || rep.Checkpoints != 3 {
		t.Fatalf("Verify = %+v, want 105 records (100 episodes, 5 bans), 3 checkpoints, none unsigned", rep)
	}

	// Reopening continues the same tree.
	l2, _ := openTest(t, dir, DefaultConfig())
	appendN(t, l2, KindUnban, 105, 3)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, dir, VerifyOptions{Earlier: cp.Note}); rep.Records != 108 || rep.Earlier == nil {
		t.Fatalf("Verify after reopen = %+v, want 108 records, consistent with checkpoint 2", rep)
	}
}

func TestAppendRefuses(t *testing.T) {
	l, _ := openTest(t, t.TempDir(), DefaultConfig())
	prune := logRecord(KindPrune, time.Now(), map[string]int{"below": 1})
	tests := []struct {
		name string
		r    Record
		want error
	}{
		{name: "zero record", r: Record{}, want: ErrInvalidRecord},
		{name: "prune kind is the log's", r: prune, want: ErrInvalidRecord},
	}
	for _, tt := range tests {
		if err := l.Append(context.Background(), tt.r); !errors.Is(err, tt.want) {
			t.Errorf("%s: Append = %v, want %v", tt.name, err, tt.want)
		}
	}
	l.Close()
	if err := l.Append(context.Background(), rec(t, KindBan, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestSignSchedule: a checkpoint at most every SignInterval while records
// arrive, one every IdleSignInterval when idle, and every one kept.
func TestSignSchedule(t *testing.T) {
	dir := t.TempDir()
	l, clk := openTest(t, dir, DefaultConfig())
	ctx := context.Background()
	flush := func() {
		t.Helper()
		if _, err := l.flush(ctx, false, false); err != nil {
			t.Fatal(err)
		}
	}
	start := l.Stats().Checkpoints
	// Records for 10 s, flushed every 250 ms: one checkpoint a second.
	for i := range 40 {
		appendN(t, l, KindEpisode, i, 1)
		clk.add(FlushInterval)
		flush()
	}
	if got := l.Stats().Checkpoints - start; got != 10 {
		t.Errorf("10 s of records: %d checkpoints, want 10", got)
	}
	// Idle for 5 minutes: one a minute.
	start = l.Stats().Checkpoints
	for range 5 * 60 * 4 {
		clk.add(FlushInterval)
		flush()
	}
	if got := l.Stats().Checkpoints - start; got != 5 {
		t.Errorf("5 idle minutes: %d checkpoints, want 5", got)
	}
	l.Close()
	if rep := mustVerify(t, dir, VerifyOptions{}); rep.Checkpoints != 1+10+5 {
		t.Errorf("Verify: %d checkpoints kept, want 16", rep.Checkpoints)
	}
}

func TestQueueFullIsCounted(t *testing.T) {
	dir := t.TempDir()
	l, _ := openTest(t, dir, DefaultConfig())
	l.maxQueue = 10 * (recordOverhead + 40)
	var full int
	for i := range 20 {
		if err := l.Append(context.Background(), rec(t, KindEpisode, i)); errors.Is(err, ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full == 0 || l.Stats().Dropped != uint64(full) {
		t.Fatalf("%d refused, Stats().Dropped = %d; want some, counted", full, l.Stats().Dropped)
	}
	l.Close()
	rep := mustVerify(t, dir, VerifyOptions{})
	if rep.Kinds[KindLost] != 1 || rep.Records != int64(20-full+1) {
		t.Fatalf("Verify = %+v, want the accepted records and one lost record", rep)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Run("missing key", func(t *testing.T) {
		dir := t.TempDir()
		l, _ := openTest(t, dir, DefaultConfig())
		l.Close()
		os.Remove(filepath.Join(dir, KeyFile))
		if _, err := Open(dir, DefaultConfig(), nil); err == nil || !strings.Contains(err.Error(), "signing key") {
			t.Fatalf("Open without key = %v, want an error about the signing key", err)
		}
		if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
			t.Fatal("Open made a new key for an existing log")
		}
	})
	t.Run("another key", func(t *testing.T) {
		dir, other := t.TempDir(), t.TempDir()
		for _, d := range []string{dir, other} {
			l, _ := openTest(t, d, DefaultConfig())
			l.Close()
		}
		b, _ := os.ReadFile(filepath.Join(other, KeyFile))
		os.Remove(filepath.Join(dir, KeyFile))
		os.WriteFile(filepath.Join(dir, KeyFile), b, 0o600)
		if _, err := Open(dir, DefaultConfig(), nil); !errors.Is(err, ErrTampered) {
			t.Fatalf("Open with another log's key = %v, want ErrTampered", err)
		}
	})
	t.Run("bad retention", func(t *testing.T) {
		_, err := Open(t.TempDir(), Config{Retention: time.Minute}, nil)
		var ce *confkey.Error
		if !errors.As(err, &ce) || ce.Key != "retention" {
			t.Fatalf("Open with retention 1m = %v, want a confkey error on retention", err)
		}
	})
}

// TestKeyNeverLogged: the signing key is written 0600 and appears in no
// log line.
func TestKeyNeverLogged(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	l, err := Open(dir, DefaultConfig(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("key", "key", l.key) // LogValue redacts
	l.Close()
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	skey, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	secret := strings.SplitN(strings.TrimSpace(string(skey)), "+", 5)[4]
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the signing key is in the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), l.VerifierKey()) {
		t.Errorf("the verifier key is not logged at open:\n%s", logs.String())
	}
}

// TestRunFlushesOnSchedule: with Run, a record is on disk and signed
// within about a second, without Close.
func TestRunFlushesOnSchedule(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	appendN(t, l, KindBan, 0, 3)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, err := LatestCheckpoint(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s the latest checkpoint covers %d records, want 3", cp.Size)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Retention: 24 * time.Hour}
	l, clk := openTest(t, dir, cfg)
	ctx := context.Background()
	appendN(t, l, KindEpisode, 0, 10)
	l.Checkpoint(ctx)
	clk.add(12 * time.Hour)
	appendN(t, l, KindBan, 10, 5)
	before, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(13 * time.Hour) // the first 10 are 25 h old, the next 5 13 h
	if n, err := l.Prune(ctx); err != nil || n != 10 {
		t.Fatalf("Prune = %d, %v; want 10", n, err)
	}
	clk.add(12 * time.Hour) // now the bans too; the first prune record stays
	appendN(t, l, KindUnban, 15, 1)
	if n, err := l.Prune(ctx); err != nil || n != 5 {
		t.Fatalf("second Prune = %d, %v; want 5", n, err)
	}
	if n, err := l.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("third Prune = %d, %v; want 0", n, err)
	}
	l.Close()
	rep := mustVerify(t, dir, VerifyOptions{Earlier: before.Note})
	if rep.Pruned != 15 || len(rep.Prunings) != 2 || rep.Prunings[0].Count != 10 || rep.Prunings[0].Below != 10 ||
		rep.Prunings[1].Count != 5 || rep.Prunings[1].Below != 15 {
		t.Fatalf("Verify = pruned %d, prunings %+v; want 10 below 10, then 5 below 15", rep.Pruned, rep.Prunings)
	}
	// The bodies are gone from the file, not only from the rows.
	db, _ := os.ReadFile(filepath.Join(dir, DBFile))
	wal, _ := os.ReadFile(filepath.Join(dir, DBFile+"-wal"))
	body := func(n int) []byte { return fmt.Appendf(nil, `{"n":%d,"src":"192.0.2.1"}`, n) }
	for n := range 15 {
		if bytes.Contains(db, body(n)) || bytes.Contains(wal, body(n)) {
			t.Errorf("pruned body %s is still in the file", body(n))
		}
	}
	if !bytes.Contains(db, body(15)) {
		t.Errorf("the kept body %s is not in the file", body(15))
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		r       time.Duration
		wantErr string
	}{
		{0, ""},
		{time.Hour, ""},
		{90 * 24 * time.Hour, ""},
		{time.Minute, "retention: must be 0 (keep forever) or at least 1h, got 1m0s"},
		{-time.Hour, "retention: must be 0 (keep forever) or at least 1h, got -1h0m0s"},
	}
	for _, tt := range tests {
		err := Config{Retention: tt.r}.Validate()
		if got := fmt.Sprint(err); (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && got != tt.wantErr) {
			t.Errorf("Validate(retention %v) = %v, want %q", tt.r, err, tt.wantErr)
		}
	}
}

// TestAppendAllocs: once the queue has grown, Append allocates nothing.
func TestAppendAllocs(t *testing.T) {
	l, _ := openTest(t, t.TempDir(), DefaultConfig())
	r := rec(t, KindEpisode, 1)
	ctx := context.Background()
	for range 200 {
		l.Append(ctx, r)
	}
	l.flush(ctx, false, false)
	for range 200 { // the spare batch now has room
		l.Append(ctx, r)
	}
	l.flush(ctx, false, false)
	if n := testing.AllocsPerRun(100, func() { l.Append(ctx, r) }); n != 0 {
		t.Errorf("Append allocates %v times, want 0", n)
	}
}

// TestVerifyBesideWriter: Verify, Export and LatestCheckpoint read a
// consistent state while Run writes.
func TestVerifyBesideWriter(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	stop := make(chan struct{})
	done := make(chan struct{})
	r := rec(t, KindEpisode, 1)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.Append(context.Background(), r); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	var last int64
	for n := 0; time.Now().Before(deadline) || n < 3; n++ {
		rep, err := Verify(context.Background(), dir, VerifyOptions{})
		if err != nil {
			t.Fatalf("Verify beside the writer: %v", err)
		}
		if rep.Records < last {
			t.Fatalf("Verify saw %d records, then %d", last, rep.Records)
		}
		last = rep.Records
		var b bytes.Buffer
		if _, err := Export(context.Background(), dir, time.Time{}, &b); err != nil {
			t.Fatalf("Export beside the writer: %v", err)
		}
		if _, err := VerifyBundle(b.Bytes(), l.VerifierKey()); err != nil {
			t.Fatalf("bundle exported beside the writer: %v", err)
		}
	}
	close(stop)
	<-done
	if last == 0 {
		t.Fatal("Verify never saw a record")
	}
}

// TestOpenChecksUnsignedTail: records written but not signed when the
// writer died are checked before the next Open signs them.
func TestOpenChecksUnsignedTail(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		t.Run(fmt.Sprintf("tampered=%v", tamper), func(t *testing.T) {
			dir := t.TempDir()
			l, clk := openTest(t, dir, DefaultConfig())
			clk.add(-time.Second) // the first checkpoint was just signed
			ctx := context.Background()
			appendN(t, l, KindBan, 0, 5)
			if _, err := l.flush(ctx, false, false); err != nil { // written, not yet due for a signature
				t.Fatal(err)
			}
			if l.latest.Size != 0 {
				t.Fatalf("checkpoint covers %d records, want none yet", l.latest.Size)
			}
			l.db.Close() // the writer dies: no final flush, no checkpoint
			l.dbClosed = true
			if rep := mustVerify(t, dir, VerifyOptions{}); rep.Unsigned != 5 {
				t.Fatalf("Verify after the crash: %d unsigned, want 5", rep.Unsigned)
			}
			if tamper {
				if err := sqlExec(t, dir, `UPDATE records SET data = replace(data, '192.0.2.1', '192.0.2.9') WHERE idx = 3`); err != nil {
					t.Fatal(err)
				}
			}
			l2, err := Open(dir, DefaultConfig(), nil)
			if tamper {
				var ve *VerifyError
				if !errors.As(err, &ve) || ve.Index != 3 {
					t.Fatalf("Open of a log whose unsigned record 3 was changed = %v, want ErrTampered naming record 3", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l2.Close()
			if rep := mustVerify(t, dir, VerifyOptions{}); rep.Unsigned != 0 || rep.Latest.Size != 5 {
				t.Fatalf("after reopening: %d unsigned, latest covers %d; want 0 and 5", rep.Unsigned, rep.Latest.Size)
			}
		})
	}
}
