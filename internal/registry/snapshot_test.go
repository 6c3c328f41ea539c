package registry

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"warden/internal/bittorrent"
)

// TestFoldsSmallRegistryAtOnce checks that a small registry keeps no
// overlay, so a lookup is one map probe.
func TestFoldsSmallRegistryAtOnce(t *testing.T) {
	r, _ := openTest(t)
	for i := range 5 {
		mustAdd(t, r, Entry{V1: hv1(i)})
		if s := r.snap.Load(); s.over != nil {
			t.Fatalf("after add %d the snapshot has an overlay of %d", i, len(s.over))
		}
	}
}

// TestOverlayFolds adds entries one at a time, well past the overlay's
// limit, checking after each that the snapshot matches a plain map (the
// slow reference) and that the overlay stays bounded.
func TestOverlayFolds(t *testing.T) {
	defer func(old int) { foldAlways = old }(foldAlways)
	foldAlways = 0 // keep the overlay even for this small registry
	ctx := context.Background()
	r, path := openTest(t)
	es := make([]Entry, 2000)
	for i := range es {
		es[i] = Entry{V1: hv1(i)}
	}
	if _, err := r.AddMany(ctx, es, "test"); err != nil {
		t.Fatal(err)
	}
	want := map[bittorrent.InfoHash]slot{}
	for i := range 2000 {
		want[hv1(i)] = slot{state: Active}
	}
	folded := false
	for i := range 2 * maxOverlay(2000, 1) {
		switch i % 3 {
		case 0, 1:
			e := mustAdd(t, r, Entry{V2: hv2(i)})
			want[e.V2.Truncate()] = slot{state: Active}
		case 2:
			reason := fmt.Sprint("reason ", i)
			if _, err := r.Revoke(ctx, hv1(i), reason, "a"); err != nil {
				t.Fatal(err)
			}
			want[hv1(i)] = slot{state: Revoked, reason: reason}
			if i%6 == 5 { // and restore the one revoked three changes ago
				if _, err := r.Restore(ctx, hv1(i-3), "a"); err != nil {
					t.Fatal(err)
				}
				want[hv1(i-3)] = slot{state: Active}
			}
		}
		s := r.snap.Load()
		if len(s.over) > maxOverlay(len(s.base), 1) {
			t.Fatalf("overlay has %d entries, limit %d", len(s.over), maxOverlay(len(s.base), 1))
		}
		if len(s.base) > 2000 { // only a fold adds to the base
			folded = true
		}
	}
	if !folded {
		t.Error("the overlay never folded into the base")
	}
	// Batches, as a bulk import sends them, let the overlay grow further.
	for b := range 10 {
		batch := make([]Entry, 300)
		for i := range batch {
			batch[i] = Entry{V1: hv1(10_000 + b*300 + i)}
			want[batch[i].V1] = slot{state: Active}
		}
		if _, err := r.AddMany(ctx, batch, "test"); err != nil {
			t.Fatal(err)
		}
		if s := r.snap.Load(); len(s.over) > maxOverlay(len(s.base), len(batch)) {
			t.Fatalf("after a batch the overlay has %d entries, limit %d", len(s.over), maxOverlay(len(s.base), len(batch)))
		}
	}
	check := func(r *Registry, when string) {
		t.Helper()
		if r.Len() != len(want) {
			t.Errorf("%s: Len() = %d, want %d", when, r.Len(), len(want))
		}
		for ih, w := range want {
			if got, reason, ok := r.Lookup(ih); !ok || got != w.state || reason != w.reason {
				t.Fatalf("%s: Lookup(%s) = %v %q, %v; want %v %q", when, ih, got, reason, ok, w.state, w.reason)
			}
		}
	}
	check(r, "incremental snapshot")
	check(openPath(t, path), "snapshot loaded from the file")
}

// newBenchRegistry returns a registry holding n v1 entries, the first n/10
// of them revoked, built with one AddMany and then reopened so the snapshot
// is one freshly loaded map, plus overlay more single adds on top.
func newBenchRegistry(b *testing.B, n, overlay int) *Registry {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "registry.db")
	r := openPath(b, path)
	es := make([]Entry, n)
	for i := range es {
		es[i] = Entry{V1: hv1(i), Name: fmt.Sprint(i)}
	}
	if _, err := r.AddMany(ctx, es, "bench"); err != nil {
		b.Fatal(err)
	}
	// Revoke a tenth directly (no audit rows needed for a benchmark).
	if _, err := r.db.Exec("UPDATE torrents SET state = 'revoked', reason = 'bench' WHERE id <= ?", n/10); err != nil {
		b.Fatal(err)
	}
	r.Close()
	r = openPath(b, path)
	for i := range overlay {
		mustAdd(b, r, Entry{V2: hv2(i)})
	}
	return r
}

var (
	sinkBool   bool
	sinkState  State
	sinkReason string
)

func TestLookupDoesNotAllocate(t *testing.T) {
	r, _ := openTest(t)
	es := make([]Entry, 100)
	for i := range es {
		es[i] = Entry{V1: hv1(i), V2: hv2(i)}
	}
	if _, err := r.AddMany(context.Background(), es, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(context.Background(), hv1(1), "because", "test"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, r, Entry{V1: hv1(1000)}) // something in the overlay
	for _, ih := range []bittorrent.InfoHash{hv1(0), hv1(1), hv2(2).Truncate(), hv1(1000), hv1(-1)} {
		if n := testing.AllocsPerRun(1000, func() { sinkBool = r.Tracked(ih) }); n != 0 {
			t.Errorf("Tracked(%s) allocates %v times", ih, n)
		}
		if n := testing.AllocsPerRun(1000, func() { sinkState, sinkReason, sinkBool = r.Lookup(ih) }); n != 0 {
			t.Errorf("Lookup(%s) allocates %v times", ih, n)
		}
		if n := testing.AllocsPerRun(1000, func() { sinkBool, sinkBool, sinkReason = r.Status(ih) }); n != 0 {
			t.Errorf("Status(%s) allocates %v times", ih, n)
		}
	}
}

// BenchmarkTracked measures the tracker's per-request check against a
// registry of 100,000 torrents: hits, misses (unregistered hashes, the
// flood case), and hits after recent single adds put entries in the
// overlay.
func BenchmarkTracked(b *testing.B) {
	const n = 100_000
	for _, overlay := range []int{0, 200} {
		r := newBenchRegistry(b, n, overlay)
		hits := make([]bittorrent.InfoHash, 1024)
		misses := make([]bittorrent.InfoHash, 1024)
		for i := range hits {
			hits[i] = hv1(i * 97 % n)
			misses[i] = hv1(n + i)
		}
		for _, c := range []struct {
			name string
			ihs  []bittorrent.InfoHash
		}{{"hit", hits}, {"miss", misses}} {
			b.Run(fmt.Sprintf("entries=%d/overlay=%d/%s", n, overlay, c.name), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					sinkBool = r.Tracked(c.ihs[i&1023])
					i++
				}
			})
			b.Run(fmt.Sprintf("entries=%d/overlay=%d/%s/parallel", n, overlay, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i, ok := 0, false
					for pb.Next() {
						ok = r.Tracked(c.ihs[i&1023])
						i++
					}
					_ = ok
				})
			})
		}
		b.Run(fmt.Sprintf("entries=%d/overlay=%d/lookup", n, overlay), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkState, sinkReason, sinkBool = r.Lookup(hits[i&1023])
				i++
			}
		})
	}
}

// BenchmarkAdd measures one durable Add (a transaction with an fsync) into
// a registry of 100,000 torrents, including publishing the new snapshot.
func BenchmarkAdd(b *testing.B) {
	r := newBenchRegistry(b, 100_000, 0)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.Add(ctx, Entry{V2: hv2(i)}, "bench"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// fillRaw inserts n active v1 entries with random hashes straight into the
// torrents table of the registry at path, the fast way (one statement, no
// keys or audit rows): enough for what loadSnapshot reads.
func fillRaw(b *testing.B, path string, n int) {
	b.Helper()
	r := openPath(b, path)
	defer r.Close()
	_, err := r.db.Exec(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
		INSERT INTO torrents (v1, name, state, reason, added_by, added_at, changed_by, changed_at)
		SELECT randomblob(20), '', 'active', '', 'bench', 0, 'bench', 0 FROM c`, n)
	if err != nil {
		b.Fatal(err)
	}
}

var sinkSnap *snapshot

// BenchmarkLoadSnapshot measures reading the snapshot of a registry of n
// entries, as Open and every outside change do, and the heap the snapshot
// keeps (heap-MB: live heap after a GC with the snapshot held, minus
// before).
func BenchmarkLoadSnapshot(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "registry.db")
			fillRaw(b, path, n)
			r := openPath(b, path)
			ctx := context.Background()
			var before, after runtime.MemStats
			b.ReportAllocs()
			for b.Loop() {
				sinkSnap = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				s, err := loadSnapshot(ctx, r.db)
				if err != nil {
					b.Fatal(err)
				}
				sinkSnap = s
				runtime.GC()
				runtime.ReadMemStats(&after)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/entry")
		})
	}
}
