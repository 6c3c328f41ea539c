package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// regEntry is a registry entry as `warden registry ... --json` prints it.
type regEntry struct {
	ID        int64     `json:"id"`
	V1        string    `json:"v1"`
	V2        string    `json:"v2"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Reason    string    `json:"reason"`
	AddedBy   string    `json:"added_by"`
	AddedAt   time.Time `json:"added_at"`
	ChangedBy string    `json:"changed_by"`
	ChangedAt time.Time `json:"changed_at"`
}

func (e regEntry) String() string {
	return fmt.Sprintf("{id %d v1 %s name %q %s reason %q added %s by %s changed %s by %s}",
		e.ID, e.V1, e.Name, e.State, e.Reason, e.AddedAt.Format(time.RFC3339Nano), e.AddedBy,
		e.ChangedAt.Format(time.RFC3339Nano), e.ChangedBy)
}

// equal reports whether e and f are the same entry, times compared as
// instants.
func (e regEntry) equal(f regEntry) bool {
	return e.ID == f.ID && e.V1 == f.V1 && e.V2 == f.V2 && e.Name == f.Name && e.State == f.State &&
		e.Reason == f.Reason && e.AddedBy == f.AddedBy && e.AddedAt.Equal(f.AddedAt) &&
		e.ChangedBy == f.ChangedBy && e.ChangedAt.Equal(f.ChangedAt)
}

// addReply is what `warden registry add --json` prints.
type addReply struct {
	Added    int        `json:"added"`
	Existing int        `json:"existing"`
	Torrents []regEntry `json:"torrents"`
}

func decodeJSON[T any](t *testing.T, what, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s printed %q: %v", what, out, err)
	}
	return v
}

// list returns `warden registry list --json`, sorted by ID.
func (w *wardenProc) list(t *testing.T) []regEntry {
	t.Helper()
	es := decodeJSON[[]regEntry](t, "registry list --json", w.registryCLI(t, "list", "--json"))
	slices.SortFunc(es, func(a, b regEntry) int { return int(a.ID - b.ID) })
	return es
}

// randomHashes returns n random v1 info hashes in lowercase hex.
func randomHashes(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		var b [20]byte
		rand.Read(b[:])
		hs[i] = hex.EncodeToString(b[:])
	}
	return hs
}

// TestRegistrySurvivesKill9 checks that a change warden has acknowledged
// is on disk: each `warden registry` command is followed at once by kill
// -9 of the server, and after a restart on the same data directory the
// registry lists exactly what the commands reported, and announces are
// accepted or refused accordingly. It also runs two CLIs adding at the
// same time and checks that no torrent is lost or registered twice.
func TestRegistrySurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden processes; skipped in -short mode")
	}
	t.Run("kill after each command", func(t *testing.T) {
		t.Parallel()
		testKillAfterEachCommand(t)
	})
	t.Run("parallel CLIs", func(t *testing.T) {
		t.Parallel()
		testParallelCLIs(t)
	})
}

func testKillAfterEachCommand(t *testing.T) {
	hs := randomHashes(4)
	w := startWardenWith(t, wardenOpts{admin: true})
	data := w.dataDir
	var want []regEntry // what the commands reported, in ID order

	// restart kills warden with SIGKILL right after a command returned,
	// starts it again on the same data directory, and checks that the
	// registry lists exactly want.
	restart := func(after string) {
		t.Helper()
		w.kill9(t)
		w = startWardenWith(t, wardenOpts{admin: true, dataDir: data})
		got := w.list(t)
		if !slices.EqualFunc(got, want, regEntry.equal) {
			t.Fatalf("after %s, kill -9 and restart, registry list shows\n%v\nwant\n%v", after, got, want)
		}
	}

	add := func(hash, name string) {
		t.Helper()
		r := decodeJSON[addReply](t, "registry add --json", w.registryCLI(t, "add", hash, "--name", name, "--json"))
		if r.Added != 1 || len(r.Torrents) != 1 || r.Torrents[0].V1 != hash || r.Torrents[0].State != "active" {
			t.Fatalf("registry add %s: %+v, want one active entry added", hash, r)
		}
		want = append(want, r.Torrents[0])
		restart("add " + name)
	}
	add(hs[0], "alpha")
	add(hs[1], "beta")

	// Two at once: the CLI reports counts only, so the new entries are
	// checked by hash, name and state, then taken from the listing.
	r := decodeJSON[addReply](t, "registry add --json", w.registryCLI(t, "add", hs[2], hs[3], "--json"))
	if r.Added != 2 || r.Existing != 0 {
		t.Fatalf("registry add of two new hashes: %+v, want added 2", r)
	}
	w.kill9(t)
	w = startWardenWith(t, wardenOpts{admin: true, dataDir: data})
	got := w.list(t)
	if len(got) != 4 || !slices.EqualFunc(got[:2], want, regEntry.equal) {
		t.Fatalf("after a bulk add, kill -9 and restart, registry list shows\n%v\nwant the first two as\n%v", got, want)
	}
	for i, e := range got[2:] {
		if e.V1 != hs[2+i] || e.State != "active" || e.Name != "" {
			t.Fatalf("after a bulk add, kill -9 and restart, entry %d is %v, want v1 %s active", 2+i, e, hs[2+i])
		}
	}
	want = got

	const reason = "kill -9 test"
	rev := decodeJSON[regEntry](t, "registry revoke --json",
		w.registryCLI(t, "revoke", hs[1], "--reason", reason, "--json"))
	if rev.State != "revoked" || rev.Reason != reason {
		t.Fatalf("registry revoke: %v, want revoked with reason %q", rev, reason)
	}
	want[1] = rev
	restart("revoke")

	for _, proto := range []string{"http", "udp"} {
		for i, h := range hs {
			a, err := w.announce(proto, h)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i == 1 && (!a.refused || a.reason != "revoked: "+reason):
				t.Errorf("%s announce of the revoked torrent: refused %v, reason %q; want refused, %q", proto, a.refused, a.reason, "revoked: "+reason)
			case i != 1 && a.refused:
				t.Errorf("%s announce of registered torrent %d: refused: %q", proto, i, a.reason)
			}
		}
	}
}

func testParallelCLIs(t *testing.T) {
	w := startWardenWith(t, wardenOpts{admin: true})
	if _, err := wardenBinary(); err != nil { // before the goroutines use it
		t.Fatal(err)
	}

	// One at a time: two CLIs run 25 adds each, one process per add, and
	// the last 5 of one are the first 5 of the other. (Not more: under
	// -race each run of the CLI takes about a second to start.)
	single := randomHashes(45)
	lists := [2][]string{single[:25], single[20:]}
	var outs [2][]cliResult
	var wg sync.WaitGroup
	for i, hs := range lists {
		wg.Go(func() {
			for j, h := range hs {
				outs[i] = append(outs[i], runWarden(cliTimeout, w.registryArgs("add", h, "--name", fmt.Sprintf("cli%d-%d", i, j), "--json")...))
			}
		})
	}
	wg.Wait()
	added, existing := 0, 0
	for i := range outs {
		for j, r := range outs[i] {
			if r.err != nil {
				t.Fatalf("CLI %d, add %d: %v\n%s", i, j, r.err, r.stderr)
			}
			a := decodeJSON[addReply](t, "registry add --json", r.stdout)
			added += a.Added
			existing += a.Existing
		}
	}
	if added != 45 || existing != 5 {
		t.Errorf("50 single adds of 45 hashes: %d added, %d already registered; want 45 and 5", added, existing)
	}

	// In bulk: two CLIs add 50 hashes each from a file, 10 in common.
	bulk := randomHashes(90)
	dir := t.TempDir()
	var bulkOuts [2]cliResult
	for i, hs := range [2][]string{bulk[:50], bulk[40:]} {
		path := filepath.Join(dir, fmt.Sprintf("hashes%d.txt", i))
		if err := os.WriteFile(path, []byte(strings.Join(hs, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { bulkOuts[i] = runWarden(cliTimeout, w.registryArgs("add", "--from", path, "--json")...) })
	}
	wg.Wait()
	added, existing = 0, 0
	for i, r := range bulkOuts {
		if r.err != nil {
			t.Fatalf("bulk CLI %d: %v\n%s", i, r.err, r.stderr)
		}
		a := decodeJSON[addReply](t, "registry add --from --json", r.stdout)
		added += a.Added
		existing += a.Existing
	}
	if added != 90 || existing != 10 {
		t.Errorf("two bulk adds of 50 hashes, 10 in common: %d added, %d already registered; want 90 and 10", added, existing)
	}

	before := w.list(t)
	wantHashes := slices.Sorted(slices.Values(append(slices.Clone(single), bulk...)))
	var gotHashes []string
	for _, e := range before {
		gotHashes = append(gotHashes, e.V1)
		if e.State != "active" {
			t.Errorf("entry %v: want active", e)
		}
	}
	slices.Sort(gotHashes)
	if !slices.Equal(gotHashes, wantHashes) {
		t.Fatalf("registry lists %d entries (%d distinct hashes), want the %d hashes added, once each",
			len(gotHashes), len(slices.Compact(slices.Clone(gotHashes))), len(wantHashes))
	}

	w.kill9(t)
	w = startWardenWith(t, wardenOpts{admin: true, dataDir: w.dataDir})
	if after := w.list(t); !slices.EqualFunc(after, before, regEntry.equal) {
		t.Fatalf("after kill -9 and restart, registry lists %d entries, differing from the %d before", len(after), len(before))
	}
}

// TestDamagedRegistryRefusesToStart damages DATA/registry.db in several
// ways and checks that `warden serve` exits at once with an error that
// names the file and says it is damaged, and leaves the file as it was.
func TestDamagedRegistryRefusesToStart(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts warden processes; skipped in -short mode")
	}
	// A registry with a few entries, from a warden stopped cleanly.
	w := startWardenWith(t, wardenOpts{admin: true})
	w.registryCLI(t, append([]string{"add"}, randomHashes(20)...)...)
	w.stop()
	good, err := os.ReadFile(filepath.Join(w.dataDir, "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(good) < 4096 {
		t.Fatalf("registry.db is %d bytes, want at least a page", len(good))
	}

	garbage := make([]byte, len(good))
	rand.Read(garbage)
	tests := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"garbage", func([]byte) []byte { return garbage }},
		{"text", func([]byte) []byte { return []byte("not a registry\n") }},
		{"empty", func([]byte) []byte { return nil }},
		{"truncated inside the header", func(b []byte) []byte { return b[:60] }},
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"last page garbage", func(b []byte) []byte {
			return append(b[:len(b)-4096:len(b)-4096], garbage[:4096]...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(data, "registry.db")
			damaged := tt.damage(bytes.Clone(good))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			r := runWarden(15*time.Second, "serve",
				"--http", loopbackAddr(t), "--udp", loopbackAddr(t), "--admin", loopbackAddr(t), "--data", data)
			t.Logf("warden serve exited after %v (%v): %s", r.took.Round(time.Millisecond), r.err, lastLine(r.stderr))
			if r.err == nil {
				t.Fatalf("warden serve on a damaged registry exited 0\nstderr:\n%s", r.stderr)
			}
			if r.took > 5*time.Second {
				t.Errorf("warden serve took %v to refuse a damaged registry, want under 5s", r.took)
			}
			last := lastLine(r.stderr)
			if !strings.Contains(last, path) || !strings.Contains(last, "damaged") {
				t.Errorf("warden serve's error %q does not name %s and say it is damaged", last, path)
			}
			if !fileMatches(path, damaged) {
				t.Errorf("warden serve changed the damaged registry: %s", describeFile(path, damaged))
			}
		})
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
