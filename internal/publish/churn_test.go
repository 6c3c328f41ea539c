package publish

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"warden/internal/registry"
)

// TestChurn makes 100 random additions, replacements and removals while
// the publisher runs (a short stability window, polling every 20 ms), then
// checks that what is published is exactly what is on disk: every file
// has one active registration, one .torrent and one item in its feeds,
// and nothing else is active, served or listed.
func TestChurn(t *testing.T) {
	b := newBench(t)
	b.skew = 0
	cfg := b.config()
	cfg.Settle, cfg.Poll, cfg.FeedItems = 100*time.Millisecond, 20*time.Millisecond, 1000
	b.pubConfig = &cfg
	b.mustOpen()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.pub.Run(ctx) }()

	r := rand.New(rand.NewPCG(12, 0))
	var files []string
	adds, replaces, removes := 0, 0, 0
	for i := range 100 {
		switch op := r.IntN(4); {
		case op <= 1 || len(files) < 3:
			show := []string{"", "a/", "b/", "c/"}[r.IntN(4)]
			rel := fmt.Sprintf("%sep%03d.bin", show, i)
			b.write(rel, 1000+r.IntN(50_000), byte(i))
			files = append(files, rel)
			adds++
		case op == 2:
			b.write(files[r.IntN(len(files))], 1000+r.IntN(50_000), byte(i)) // new bytes
			replaces++
		default:
			j := r.IntN(len(files))
			if err := os.Remove(filepath.Join(b.content, filepath.FromSlash(files[j]))); err != nil {
				t.Fatal(err)
			}
			files = slices.Delete(files, j, j+1)
			removes++
		}
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
	}
	// Wait until every file is settled and published.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := b.pub.Stats()
		if st.Settling == 0 && st.Items == int64(len(files)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after 30 s: %+v, %d files", st, len(files))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d additions, %d replacements, %d removals; %d files left; %+v", adds, replaces, removes, len(files), b.pub.Stats())
	if f := b.pub.Stats().Failed; f != 0 {
		t.Errorf("%d failures counted in ordinary churn", f)
	}
	b.checkConsistent(files)
}

// checkConsistent checks that the files on disk, the state, the registry's
// active entries, the .torrent files and the feeds all say the same.
func (b *bench) checkConsistent(files []string) {
	t := b.t
	t.Helper()
	want := map[string]string{} // path -> id
	for _, f := range files {
		it := b.pub.byPath[f]
		if it == nil || it.Pending {
			t.Errorf("%s: on disk, not published (%+v)", f, it)
			continue
		}
		st, err := os.Lstat(filepath.Join(b.content, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		if fileSignature(st) != it.Sig {
			t.Errorf("%s: published from another version of the file", f)
		}
		want[f] = it.ID
	}
	if len(b.pub.st.Items) != len(files) {
		t.Errorf("state has %d items for %d files", len(b.pub.st.Items), len(files))
	}
	ids := map[string]bool{}
	for _, id := range want {
		ids[id] = true
	}
	active, err := b.reg.List(context.Background(), registry.Filter{State: registry.Active})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range active {
		if !ids[e.V1.String()] {
			t.Errorf("registry: %s (%s) active, but no file is published as it", e.V1, e.Name)
		}
	}
	if len(active) != len(ids) {
		t.Errorf("registry: %d active entries for %d files", len(active), len(ids))
	}
	entries, err := os.ReadDir(filepath.Join(b.data, "publish", "torrents"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(ids) {
		t.Errorf("%d .torrent files for %d files", len(entries), len(ids))
	}
	for _, e := range entries {
		if !ids[strings.TrimSuffix(e.Name(), ".torrent")] {
			t.Errorf("stale torrent file %s", e.Name())
		}
	}
	feedWant := map[string][]string{"all": {}}
	for f, id := range want {
		feedWant["all"] = append(feedWant["all"], id)
		if show, _, ok := strings.Cut(f, "/"); ok {
			feedWant[show] = append(feedWant[show], id)
		}
	}
	for _, show := range []string{"all", "a", "b", "c"} {
		if _, err := os.Stat(filepath.Join(b.data, "publish", "feeds", show+".xml")); err != nil && feedWant[show] == nil {
			continue
		}
		got, _, _ := b.feedItems(show)
		slices.Sort(got)
		w := slices.Sorted(slices.Values(feedWant[show]))
		if !slices.Equal(got, w) {
			t.Errorf("%s.xml lists %d items %v, want %d %v", show, len(got), got, len(w), w)
		}
	}
}

// TestLatency checks that a file is registered and in its feeds within the
// stability window plus one second (a poll and the work) after its last
// write, hashing aside.
func TestLatency(t *testing.T) {
	b := newBench(t)
	b.skew = 0
	cfg := b.config()
	cfg.Settle = time.Second
	b.pubConfig = &cfg
	var hashStart time.Time
	testHookCreate = func(string) { hashStart = time.Now() }
	b.mustOpen()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.pub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond) // between polls
	b.write("show/ep.mkv", 3<<20, 1)
	written := time.Now()
	for b.pub.Stats().Items == 0 {
		if time.Since(written) > 10*time.Second {
			t.Fatal("not published after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	seen := time.Now()
	work := seen.Sub(hashStart) // hashing, registering, writing the feeds
	lat := seen.Sub(written)
	t.Logf("published %v after the last write (window %v; hashing and the rest %v)", lat.Round(time.Millisecond), cfg.Settle, work.Round(time.Millisecond))
	if lat-work > cfg.Settle+time.Second {
		t.Fatalf("published %v after the last write, of which %v hashing: more than the window (%v) plus 1 s", lat, work, cfg.Settle)
	}
	if ids, _, _ := b.feedItems("show"); len(ids) != 1 {
		t.Fatal("not in the feed")
	}
}
