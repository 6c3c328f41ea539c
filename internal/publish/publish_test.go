package publish

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
	"warden/internal/metainfo"
	"warden/internal/registry"
)

// bench is a content directory, a real registry file and a publisher over
// them. The clock runs ahead of the real one by skew, so files written
// just now can be taken as settled without waiting.
type bench struct {
	t       *testing.T
	content string
	data    string
	reg     *registry.Registry
	pub     *Publisher
	skew    time.Duration
	hashed  []string // paths hashed, by testHookCreate
	mu      sync.Mutex
	wrap    func(Registry) Registry // set before open to put a fault in the registry
	// pubConfig, if set, replaces config().
	pubConfig *Config
}

func newBench(t *testing.T) *bench {
	t.Helper()
	root := t.TempDir()
	b := &bench{t: t, content: filepath.Join(root, "content"), data: filepath.Join(root, "data"), skew: time.Hour}
	if err := os.MkdirAll(b.content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b.data, 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.reg, err = registry.Open(filepath.Join(b.data, "registry.db"), quiet()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.reg.Close() })
	testHookCreate = func(p string) {
		b.mu.Lock()
		b.hashed = append(b.hashed, p)
		b.mu.Unlock()
	}
	t.Cleanup(func() { testHookCreate = nil })
	return b
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (b *bench) config() Config {
	c := DefaultConfig()
	c.PieceSize = 16 << 10
	return c
}

func (b *bench) open() error {
	b.t.Helper()
	var reg Registry = Local(b.reg, "publish")
	if b.wrap != nil {
		reg = b.wrap(reg)
	}
	cfg := b.config()
	if b.pubConfig != nil {
		cfg = *b.pubConfig
	}
	p, err := Open(Options{
		Config: cfg, ContentDir: b.content, Dir: filepath.Join(b.data, "publish"),
		PublicURL: "http://media.example:8080", Announce: [][]string{{"http://t.example:6969/announce"}},
		Registry: reg, CreatedBy: "test", Log: testLog,
		Now: func() time.Time { return time.Now().Add(b.skew) },
	})
	if err != nil {
		return err
	}
	if b.pub != nil {
		b.pub.Close()
	}
	b.pub = p
	b.t.Cleanup(func() { p.Close() })
	return nil
}

func (b *bench) mustOpen() {
	b.t.Helper()
	if err := b.open(); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bench) write(rel string, size int, seed byte) {
	b.t.Helper()
	p := filepath.Join(b.content, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{seed, byte(size), byte(size >> 8)}).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bench) scan() Report {
	b.t.Helper()
	rep, err := b.pub.Scan(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return rep
}

// feedItems returns the guids and titles of a feed.
func (b *bench) feedItems(name string) (ids, titles []string, lastBuild string) {
	b.t.Helper()
	data, err := os.ReadFile(filepath.Join(b.data, "publish", "feeds", name+".xml"))
	if err != nil {
		b.t.Fatal(err)
	}
	var doc struct {
		Channel struct {
			LastBuild string `xml:"lastBuildDate"`
			Items     []struct {
				Title string `xml:"title"`
				GUID  string `xml:"guid"`
			} `xml:"item"`
		} `xml:"channel"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		b.t.Fatalf("%s.xml: %v", name, err)
	}
	for _, it := range doc.Channel.Items {
		ids = append(ids, it.GUID)
		titles = append(titles, it.Title)
	}
	return ids, titles, doc.Channel.LastBuild
}

// entry is the registry's entry for an info hash given in hex.
func (b *bench) entry(id string) registry.Entry {
	b.t.Helper()
	ih, err := bittorrent.ParseInfoHash(id)
	if err != nil {
		b.t.Fatal(err)
	}
	e, err := b.reg.Get(context.Background(), ih)
	if err != nil {
		b.t.Fatalf("registry entry %s: %v", id, err)
	}
	return e
}

func (b *bench) itemID(path string) string {
	b.t.Helper()
	it := b.pub.byPath[path]
	if it == nil {
		b.t.Fatalf("%s not published", path)
	}
	return it.ID
}

func TestPublishOnce(t *testing.T) {
	b := newBench(t)
	b.write("top.bin", 100_000, 1)
	b.write("show/ep1.mkv", 70_000, 2)
	b.write("show/ep2/a", 40_000, 3)
	b.write("show/ep2/sub/b", 5, 4)
	b.write("show/.ep3.mkv.part", 10, 5) // hidden: an upload under way
	b.write("other/x.bin", 33, 6)
	b.mustOpen()
	rep := b.scan()
	want := []string{"other/x.bin", "show/ep1.mkv", "show/ep2/", "top.bin"}
	if got := slices.Sorted(slices.Values(rep.Published)); !slices.Equal(got, want) || len(rep.Problems) > 0 {
		t.Fatalf("published %v (problems %v), want %v", got, rep.Problems, want)
	}
	for _, path := range want {
		id := b.itemID(path)
		e := b.entry(id)
		if e.State != registry.Active || e.AddedBy != "publish" {
			t.Errorf("%s: registry entry %+v", path, e)
		}
		tor, err := metainfo.ReadTorrent(filepath.Join(b.data, "publish", "torrents", id+".torrent"))
		if err != nil {
			t.Fatal(err)
		}
		show, _, _ := strings.Cut(path, "/")
		wantSeed := "http://media.example:8080/content/" + show + "/"
		if !strings.Contains(path, "/") {
			wantSeed = "http://media.example:8080/content/"
		}
		if !slices.Equal(tor.URLList, []string{wantSeed}) || tor.Announce != "http://t.example:6969/announce" ||
			!tor.Info.V1 || !tor.Info.V2 || tor.Info.PieceLength != 16<<10 {
			t.Errorf("%s: torrent url-list %v announce %q v1 %t v2 %t", path, tor.URLList, tor.Announce, tor.Info.V1, tor.Info.V2)
		}
		if err := verify(tor, filepath.Join(b.content, filepath.FromSlash(strings.TrimSuffix(path, "/")))); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	ids, titles, _ := b.feedItems("show")
	if len(ids) != 2 || !slices.Contains(titles, "ep1.mkv") || !slices.Contains(titles, "ep2") {
		t.Fatalf("show feed: %v %v", ids, titles)
	}
	if ids, _, _ := b.feedItems("all"); len(ids) != 4 {
		t.Fatalf("feed of everything: %v", ids)
	}
	if ids, _, _ := b.feedItems("other"); len(ids) != 1 {
		t.Fatalf("other feed: %v", ids)
	}
	if rep := b.scan(); len(rep.Published)+len(rep.Revoked) != 0 {
		t.Fatalf("second pass did something: %+v", rep)
	}
}

func verify(tor *metainfo.Torrent, path string) error {
	res, err := metainfo.Verify(context.Background(), tor, path, 1, nil)
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("data does not verify against the torrent: %+v", res)
	}
	return nil
}

// TestSettle checks that a file is published only once its size and times
// have been still for the stability window.
func TestSettle(t *testing.T) {
	b := newBench(t)
	b.skew = 0
	b.write("show/ep.mkv", 1000, 1)
	b.mustOpen()
	if rep := b.scan(); len(rep.Published) != 0 || rep.Settling != 1 {
		t.Fatalf("a file written just now: %+v", rep)
	}
	b.skew = b.config().Settle + time.Second
	if rep := b.scan(); len(rep.Published) != 1 || rep.Settling != 0 {
		t.Fatalf("after the window: %+v", rep)
	}
}

func TestRemoveAndReplace(t *testing.T) {
	b := newBench(t)
	b.write("show/ep1.mkv", 50_000, 1)
	b.write("show/ep2.mkv", 50_000, 2)
	b.mustOpen()
	b.scan()
	id1, id2 := b.itemID("show/ep1.mkv"), b.itemID("show/ep2.mkv")
	_, _, built1 := b.feedItems("show")

	if err := os.Remove(filepath.Join(b.content, "show", "ep1.mkv")); err != nil {
		t.Fatal(err)
	}
	b.write("show/ep2.mkv", 50_000, 9) // same name and size, other bytes
	rep := b.scan()
	if !slices.Equal(rep.Revoked, []string{"show/ep1.mkv", "show/ep2.mkv"}) || !slices.Equal(rep.Published, []string{"show/ep2.mkv"}) {
		t.Fatalf("report %+v", rep)
	}
	for id, why := range map[string]string{id1: "removed from the content directory: show/ep1.mkv", id2: "changed in the content directory: show/ep2.mkv"} {
		e := b.entry(id)
		if e.State != registry.Revoked || e.Reason != why {
			t.Errorf("%s: %s %q, want revoked %q", id, e.State, e.Reason, why)
		}
		if _, err := os.Stat(filepath.Join(b.data, "publish", "torrents", id+".torrent")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s.torrent still there: %v", id, err)
		}
	}
	newID := b.itemID("show/ep2.mkv")
	ids, _, built2 := b.feedItems("show")
	if !slices.Equal(ids, []string{newID}) || newID == id2 {
		t.Fatalf("show feed lists %v, want only the new ep2 %s", ids, newID)
	}
	if built1 == built2 {
		t.Fatalf("lastBuildDate %q did not change", built1)
	}

	// The old file put back as it was: its torrent is restored.
	if err := os.Remove(filepath.Join(b.content, "show", "ep2.mkv")); err != nil {
		t.Fatal(err)
	}
	b.write("show/ep2.mkv", 50_000, 2)
	b.scan()
	if got := b.itemID("show/ep2.mkv"); got != id2 || b.entry(id2).State != registry.Active {
		t.Fatalf("ep2 put back: published as %s (state %s), want %s active again", got, b.entry(id2).State, id2)
	}
}

// TestRestartHashesNothing checks that a publisher opened again on its
// state hashes no file that did not change, and republishes nothing.
func TestRestartHashesNothing(t *testing.T) {
	b := newBench(t)
	b.write("show/ep1.mkv", 50_000, 1)
	b.write("show/ep2/a", 20_000, 2)
	b.write("top.bin", 9_000, 3)
	b.mustOpen()
	b.scan()
	_, _, built := b.feedItems("all")
	b.pub.Close()
	b.pub = nil
	b.hashed = nil
	b.mustOpen()
	rep := b.scan()
	if len(b.hashed) != 0 || len(rep.Published)+len(rep.Revoked) != 0 {
		t.Fatalf("after a restart: hashed %v, report %+v", b.hashed, rep)
	}
	if _, _, again := b.feedItems("all"); again != built {
		t.Fatalf("lastBuildDate moved from %q to %q with nothing changed", built, again)
	}
	b.write("show/ep3.mkv", 1000, 4)
	b.scan()
	if !slices.Equal(b.hashed, []string{"show/ep3.mkv"}) {
		t.Fatalf("hashed %v, want only the new file", b.hashed)
	}
}

// flakyRegistry fails every call while down.
type flakyRegistry struct {
	Registry
	down bool
}

func (f *flakyRegistry) Register(ctx context.Context, h metainfo.Hashes) error {
	if f.down {
		return errors.New("registry down")
	}
	return f.Registry.Register(ctx, h)
}

func (f *flakyRegistry) Revoke(ctx context.Context, h metainfo.Hashes, reason string) error {
	if f.down {
		return errors.New("registry down")
	}
	return f.Registry.Revoke(ctx, h, reason)
}

// TestRegistryFailureRetried checks that an item the registry refused
// stays out of the feeds (pending, in the state) and is registered on a
// later pass, also by a publisher opened after a crash; and that a revoke
// the registry refused keeps the item listed until it succeeds.
func TestRegistryFailureRetried(t *testing.T) {
	b := newBench(t)
	flaky := &flakyRegistry{down: true}
	b.wrap = func(r Registry) Registry { flaky.Registry = r; return flaky }
	b.write("show/ep1.mkv", 10_000, 1)
	b.mustOpen()
	rep := b.scan()
	if len(rep.Published) != 0 || len(rep.Problems) != 1 {
		t.Fatalf("registry down: %+v", rep)
	}
	if ids, _, _ := b.feedItems("all"); len(ids) != 0 {
		t.Fatalf("an unregistered item is in the feed: %v", ids)
	}
	// A crash now: the state holds the item as pending. A new publisher
	// registers it without hashing again.
	b.pub.Close()
	b.pub, b.hashed = nil, nil
	flaky.down = false
	b.mustOpen()
	rep = b.scan()
	if len(b.hashed) != 0 || !slices.Equal(rep.Published, []string{"show/ep1.mkv"}) {
		t.Fatalf("after the crash: hashed %v, report %+v", b.hashed, rep)
	}
	id := b.itemID("show/ep1.mkv")
	if b.entry(id).State != registry.Active {
		t.Fatal("not registered")
	}
	flaky.down = true
	os.Remove(filepath.Join(b.content, "show", "ep1.mkv"))
	if rep := b.scan(); len(rep.Revoked) != 0 {
		t.Fatalf("revoked with the registry down: %+v", rep)
	}
	if ids, _, _ := b.feedItems("all"); len(ids) != 1 {
		t.Fatal("an item whose revocation failed left the feed before its torrent was revoked")
	}
	flaky.down = false
	if rep := b.scan(); len(rep.Revoked) != 1 || b.entry(id).State != registry.Revoked {
		t.Fatalf("registry back: %+v, state %s", rep, b.entry(id).State)
	}
}

// TestOrphansRemoved checks that .torrent files no item names (a crash
// between writing one and the state) are removed at Open.
func TestOrphansRemoved(t *testing.T) {
	b := newBench(t)
	b.write("ep.bin", 1000, 1)
	b.mustOpen()
	b.scan()
	dir := filepath.Join(b.data, "publish", "torrents")
	orphan := filepath.Join(dir, strings.Repeat("ab", 20)+".torrent")
	tmp := filepath.Join(dir, ".x.torrent.new-123")
	for _, p := range []string{orphan, tmp} {
		if err := os.WriteFile(p, []byte("d4:infode"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.pub.Close()
	b.pub = nil
	b.mustOpen()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != b.itemID("ep.bin")+".torrent" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("torrents left: %v", names)
	}
}

// TestDamagedStateRefused checks that a state file changed by a byte, or
// cut short, stops Open with an error naming it, and is left as it was.
func TestDamagedStateRefused(t *testing.T) {
	b := newBench(t)
	b.write("ep.bin", 1000, 1)
	b.mustOpen()
	b.scan()
	b.pub.Close()
	b.pub = nil
	path := filepath.Join(b.data, "publish", "state.json")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"flipped": func() []byte { x := slices.Clone(good); x[len(x)/2] ^= 1; return x }(),
		"cut":     good[:len(good)/2],
		"empty":   {},
	} {
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		err := b.open()
		if err == nil || !errors.Is(err, errDamaged) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: Open = %v, want damage named", name, err)
		}
		after, _ := os.ReadFile(path)
		if !slices.Equal(after, bad) {
			t.Fatalf("%s: the damaged file was changed", name)
		}
	}
}

func TestOnePublisherAtATime(t *testing.T) {
	b := newBench(t)
	b.mustOpen()
	first := b.pub
	b.pub = nil
	err := b.open()
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second Open = %v, want ErrBusy", err)
	}
	first.Close()
	b.mustOpen()
}

// TestLastBuildMoves checks that each change moves lastBuildDate, even
// several within one second: readers compare it as text.
func TestLastBuildMoves(t *testing.T) {
	b := newBench(t)
	b.mustOpen()
	seen := map[string]bool{}
	for i := range 4 {
		b.write(fmt.Sprintf("show/ep%d.bin", i), 1000+i, byte(i))
		b.scan()
		_, _, lb := b.feedItems("show")
		_, _, lbAll := b.feedItems("all")
		if seen[lb] || seen["all"+lbAll] {
			t.Fatalf("change %d: lastBuildDate %q (all %q) seen before", i, lb, lbAll)
		}
		seen[lb], seen["all"+lbAll] = true, true
	}
}

// TestUnpublishable checks what is reported, once, and never published.
func TestUnpublishable(t *testing.T) {
	b := newBench(t)
	b.write("all/ep.bin", 10, 1)       // a show named like the feed of everything
	b.write("show/ep\\x.bin", 10, 2)   // a name the web seed refuses
	b.write("show/dir/.hidden", 10, 3) // a hidden file inside an episode directory
	b.write("show/empty.bin", 0, 4)    // nothing to share
	b.write("show/ok.bin", 10, 5)
	if err := os.Symlink("/etc/passwd", filepath.Join(b.content, "show", "link")); err != nil {
		t.Fatal(err)
	}
	b.mustOpen()
	rep := b.scan()
	if !slices.Equal(rep.Published, []string{"show/ok.bin"}) || len(rep.Problems) != 5 {
		t.Fatalf("report %+v", rep)
	}
	if rep := b.scan(); len(rep.Published) != 0 || b.pub.Stats().Failed != 5 {
		t.Fatalf("second pass: %+v, %+v", rep, b.pub.Stats())
	}
}

var testLog = quiet()
