package registry

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/bittorrent"
)

// hv1 and hv2 make distinct, realistic hashes from an integer.
func hv1(i int) bittorrent.InfoHash   { return sha1.Sum(fmt.Appendf(nil, "v1 %d", i)) }
func hv2(i int) bittorrent.InfoHashV2 { return sha256.Sum256(fmt.Appendf(nil, "v2 %d", i)) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openTest opens a new registry in a temporary directory and closes it when
// the test ends.
func openTest(t testing.TB) (*Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	return openPath(t, path), path
}

func openPath(t testing.TB, path string) *Registry {
	t.Helper()
	r, err := Open(path, testLogger(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustAdd(t testing.TB, r *Registry, e Entry) Entry {
	t.Helper()
	got, err := r.Add(context.Background(), e, "test")
	if err != nil {
		t.Fatalf("Add(%s): %v", describe(&e), err)
	}
	return got
}

func TestOpenCreatesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.db")
	r := openPath(t, path)
	if n := r.Len(); n != 0 {
		t.Errorf("new registry Len() = %d, want 0", n)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode = %v, want 0600", mode)
	}
	mustAdd(t, r, Entry{V1: hv1(1), Name: "one"})
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err != nil {
			t.Errorf("while open: %v", err)
		} else if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s mode = %v, want 0600", filepath.Base(p), mode)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".registry.db.new-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	r2 := openPath(t, path)
	if !r2.Tracked(hv1(1)) {
		t.Errorf("after reopen, Tracked(v1 1) = false")
	}
}

func TestOpenMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "registry.db")
	_, err := Open(path, nil)
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestAddGetLookup(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	tests := []struct {
		name string
		in   Entry
	}{
		{"v1 only", Entry{V1: hv1(1), Name: "v1 only"}},
		{"v2 only", Entry{V2: hv2(2), Name: "v2 only"}},
		{"hybrid", Entry{V1: hv1(3), V2: hv2(3), Name: "hybrid ünïcode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Add(ctx, tt.in, "alice")
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if got.ID == 0 || got.State != Active || got.AddedBy != "alice" || got.ChangedBy != "alice" ||
				got.AddedAt.IsZero() || !got.AddedAt.Equal(got.ChangedAt) || got.Name != tt.in.Name {
				t.Errorf("Add returned %+v", got)
			}
			// The snapshot has it as soon as Add returns, under every wire hash.
			for _, ih := range got.InfoHashes() {
				if !r.Tracked(ih) {
					t.Errorf("Tracked(%s) = false right after Add", ih)
				}
				st, reason, ok := r.Lookup(ih)
				if !ok || st != Active || reason != "" {
					t.Errorf("Lookup(%s) = %v, %q, %v; want active", ih, st, reason, ok)
				}
				e, err := r.Get(ctx, ih)
				if err != nil {
					t.Fatalf("Get(%s): %v", ih, err)
				}
				if e != got {
					t.Errorf("Get(%s) = %+v, want %+v", ih, e, got)
				}
			}
			if tt.in.HasV2() {
				e, err := r.GetV2(ctx, tt.in.V2)
				if err != nil || e != got {
					t.Errorf("GetV2 = %+v, %v; want %+v", e, err, got)
				}
			}
		})
	}
	if n := r.Len(); n != len(tests) {
		t.Errorf("Len() = %d, want %d", n, len(tests))
	}
	// The full v2 hash is never itself a wire hash: only its first 20 bytes.
	var tail bittorrent.InfoHash
	v2 := hv2(2)
	copy(tail[:], v2[12:])
	if r.Tracked(tail) {
		t.Error("Tracked(last 20 bytes of v2) = true")
	}
	for _, ih := range []bittorrent.InfoHash{hv1(2), hv1(99), {}} {
		if _, _, ok := r.Lookup(ih); ok {
			t.Errorf("Lookup(%s) found an unregistered hash", ih)
		}
		if _, err := r.Get(ctx, ih); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) error = %v, want ErrNotFound", ih, err)
		}
	}
	if _, err := r.GetV2(ctx, hv2(99)); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetV2(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestAddIdempotent(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	hybrid := mustAdd(t, r, Entry{V1: hv1(1), V2: hv2(1), Name: "hybrid"})
	v1only := mustAdd(t, r, Entry{V1: hv1(2), Name: "v1"})
	revoked := mustAdd(t, r, Entry{V2: hv2(3), Name: "revoked"})
	revoked, err := r.Revoke(ctx, revoked.V2.Truncate(), "dmca 123", "bob")
	if err != nil {
		t.Fatal(err)
	}
	changes, _ := r.Changes(ctx, 0, 0)

	tests := []struct {
		name        string
		in          Entry
		want        Entry
		wantRevoked bool
	}{
		{"same hybrid", Entry{V1: hv1(1), V2: hv2(1), Name: "hybrid"}, hybrid, false},
		{"hybrid by v1 alone, other name", Entry{V1: hv1(1), Name: "renamed"}, hybrid, false},
		{"hybrid by v2 alone", Entry{V2: hv2(1)}, hybrid, false},
		{"v1 again", Entry{V1: hv1(2), Name: "v1"}, v1only, false},
		{"revoked stays revoked", Entry{V2: hv2(3), Name: "revoked"}, revoked, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Add(ctx, tt.in, "carol")
			if !errors.Is(err, ErrExists) {
				t.Fatalf("Add error = %v, want ErrExists", err)
			}
			if errors.Is(err, ErrRevoked) != tt.wantRevoked {
				t.Errorf("errors.Is(%v, ErrRevoked) = %v, want %v", err, !tt.wantRevoked, tt.wantRevoked)
			}
			if got != tt.want {
				t.Errorf("Add returned %+v, want the stored %+v", got, tt.want)
			}
		})
	}
	if after, _ := r.Changes(ctx, 0, 0); len(after) != len(changes) {
		t.Errorf("idempotent adds wrote %d audit rows", len(after)-len(changes))
	}
	if r.Tracked(hv2(3).Truncate()) {
		t.Error("re-adding a revoked torrent made it tracked")
	}
}

func TestAddConflict(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	a := mustAdd(t, r, Entry{V1: hv1(1), Name: "a"})
	b := mustAdd(t, r, Entry{V2: hv2(2), Name: "b"})

	// A v2 hash whose first 20 bytes equal a's v1 hash.
	var collidesWithA bittorrent.InfoHashV2
	copy(collidesWithA[:], a.V1[:])
	collidesWithA[31] = 1
	// A different v2 hash with the same truncated form as b's.
	sameTruncAsB := b.V2
	sameTruncAsB[31] ^= 0xff

	tests := []struct {
		name string
		in   Entry
	}{
		{"truncated v2 is another entry's v1", Entry{V2: collidesWithA}},
		{"v2 truncates like another entry's v2", Entry{V2: sameTruncAsB}},
		{"v1 of one entry, v2 of another", Entry{V1: a.V1, V2: b.V2}},
		{"v1-only entry given a new v2", Entry{V1: a.V1, V2: hv2(9)}},
		{"v2-only entry given a new v1", Entry{V1: hv1(9), V2: b.V2}},
		{"new v1 whose value is a truncated v2", Entry{V1: b.V2.Truncate()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Add(ctx, tt.in, "test")
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Add(%s) error = %v, want ErrConflict", describe(&tt.in), err)
			}
		})
	}
	if n := r.Len(); n != 2 {
		t.Errorf("Len() = %d after conflicts, want 2", n)
	}
	if r.Tracked(hv1(9)) {
		t.Error("a rejected entry's hash is tracked")
	}
}

func TestAddInvalid(t *testing.T) {
	r, _ := openTest(t)
	var sameAsV1 bittorrent.InfoHashV2
	v1 := hv1(1)
	copy(sameAsV1[:], v1[:])
	tests := []struct {
		name    string
		in      Entry
		actor   string
		wantErr string
	}{
		{"no hash", Entry{Name: "x"}, "a", "needs a v1 or a v2"},
		{"v1 equals truncated v2", Entry{V1: v1, V2: sameAsV1}, "a", "equals the truncated v2"},
		{"name too long", Entry{V1: v1, Name: strings.Repeat("n", MaxNameBytes+1)}, "a", "name is 4097 bytes"},
		{"name with newline", Entry{V1: v1, Name: "a\nb"}, "a", "control character"},
		{"name not utf-8", Entry{V1: v1, Name: "\xff"}, "a", "not valid UTF-8"},
		{"empty actor", Entry{V1: v1}, "", "actor is required"},
		{"actor with escape", Entry{V1: v1}, "\x1b[31m", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Add(context.Background(), tt.in, tt.actor)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Add error = %v, want ErrInvalid containing %q", err, tt.wantErr)
			}
			_, err = r.AddMany(context.Background(), []Entry{{V1: hv1(5)}, tt.in}, tt.actor)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("AddMany error = %v, want ErrInvalid", err)
			}
		})
	}
	if n := r.Len(); n != 0 {
		t.Errorf("Len() = %d after invalid adds, want 0", n)
	}
}

func TestRevokeRestore(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	e := mustAdd(t, r, Entry{V1: hv1(1), V2: hv2(1), Name: "hybrid"})
	other := mustAdd(t, r, Entry{V1: hv1(2), Name: "other"})
	r.now = func() time.Time { return e.AddedAt.Add(time.Hour) }

	// Revoke by the v1 hash: both wire hashes stop being tracked.
	got, err := r.Revoke(ctx, e.V1, "DMCA notice 42", "bob")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got.State != Revoked || got.Reason != "DMCA notice 42" || got.ChangedBy != "bob" ||
		!got.ChangedAt.Equal(e.AddedAt.Add(time.Hour)) || got.AddedBy != "test" {
		t.Errorf("Revoke returned %+v", got)
	}
	for _, ih := range e.InfoHashes() {
		if r.Tracked(ih) {
			t.Errorf("Tracked(%s) = true after Revoke", ih)
		}
		st, reason, ok := r.Lookup(ih)
		if !ok || st != Revoked || reason != "DMCA notice 42" {
			t.Errorf("Lookup(%s) = %v, %q, %v; want revoked with reason", ih, st, reason, ok)
		}
	}
	if reg, rev, reason := r.Status(e.V2.Truncate()); !reg || !rev || reason != "DMCA notice 42" {
		t.Errorf("Status = %v, %v, %q; want registered, revoked, reason", reg, rev, reason)
	}
	if reg, rev, reason := r.Status(other.V1); !reg || rev || reason != "" {
		t.Errorf("Status(other) = %v, %v, %q; want registered, active", reg, rev, reason)
	}
	if reg, rev, _ := r.Status(hv1(99)); reg || rev {
		t.Errorf("Status(unknown) = %v, %v; want neither", reg, rev)
	}
	if !r.Tracked(other.V1) {
		t.Error("revoking one entry untracked another")
	}
	if stored, _ := r.Get(ctx, e.V2.Truncate()); stored != got {
		t.Errorf("Get after Revoke = %+v, want %+v", stored, got)
	}

	// Same reason again: no change, no audit row. New reason: updated.
	if again, err := r.Revoke(ctx, e.V2.Truncate(), "DMCA notice 42", "carol"); err != nil || again != got {
		t.Errorf("repeated Revoke = %+v, %v; want unchanged %+v", again, err, got)
	}
	if _, err := r.Revoke(ctx, e.V1, "DMCA notice 43", "carol"); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := r.Lookup(e.V1); reason != "DMCA notice 43" {
		t.Errorf("reason after re-revoke = %q", reason)
	}

	// Restore by the truncated v2 hash.
	restored, err := r.Restore(ctx, e.V2.Truncate(), "dave")
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if restored.State != Active || restored.Reason != "" || restored.ChangedBy != "dave" {
		t.Errorf("Restore returned %+v", restored)
	}
	for _, ih := range e.InfoHashes() {
		if st, reason, ok := r.Lookup(ih); !r.Tracked(ih) || st != Active || reason != "" || !ok {
			t.Errorf("after Restore Lookup(%s) = %v, %q, %v", ih, st, reason, ok)
		}
	}
	if again, err := r.Restore(ctx, e.V1, "erin"); err != nil || again != restored {
		t.Errorf("repeated Restore = %+v, %v; want unchanged", again, err)
	}

	hist, err := r.History(ctx, e.V1)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action   Action
		from, to State
		actor    string
		reason   string
	}{
		{ActionAdd, 0, Active, "test", ""},
		{ActionRevoke, Active, Revoked, "bob", "DMCA notice 42"},
		{ActionRevoke, Revoked, Revoked, "carol", "DMCA notice 43"},
		{ActionRestore, Revoked, Active, "dave", ""},
	}
	if len(hist) != len(want) {
		t.Fatalf("History has %d changes, want %d: %+v", len(hist), len(want), hist)
	}
	for i, w := range want {
		c := hist[i]
		if c.Action != w.action || c.OldState != w.from || c.NewState != w.to || c.Actor != w.actor ||
			c.Reason != w.reason || c.ID != e.ID || c.V1 != e.V1 || c.V2 != e.V2 || c.Name != "hybrid" {
			t.Errorf("History[%d] = %+v, want %+v", i, c, w)
		}
		if i > 0 && c.Seq <= hist[i-1].Seq {
			t.Errorf("History[%d].Seq = %d, not after %d", i, c.Seq, hist[i-1].Seq)
		}
	}
	all, err := r.Changes(ctx, 0, 0)
	if err != nil || len(all) != 5 {
		t.Errorf("Changes(0, 0) = %d rows, %v; want 5", len(all), err)
	}
	page, err := r.Changes(ctx, all[1].Seq, 2)
	if err != nil || len(page) != 2 || page[0].Seq != all[2].Seq {
		t.Errorf("Changes(after %d, 2) = %+v, %v", all[1].Seq, page, err)
	}
}

func TestNotFoundAndInvalid(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	mustAdd(t, r, Entry{V1: hv1(1)})
	unknown := hv1(2)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"revoke unknown", func() error { _, err := r.Revoke(ctx, unknown, "why", "a"); return err }, ErrNotFound},
		{"restore unknown", func() error { _, err := r.Restore(ctx, unknown, "a"); return err }, ErrNotFound},
		{"get unknown", func() error { _, err := r.Get(ctx, unknown); return err }, ErrNotFound},
		{"history unknown", func() error { _, err := r.History(ctx, unknown); return err }, ErrNotFound},
		{"revoke without reason", func() error { _, err := r.Revoke(ctx, hv1(1), "", "a"); return err }, ErrInvalid},
		{"revoke without actor", func() error { _, err := r.Revoke(ctx, hv1(1), "why", ""); return err }, ErrInvalid},
		{"list bad state", func() error { _, err := r.List(ctx, Filter{State: 7}); return err }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
	if !r.Tracked(hv1(1)) {
		t.Error("a failed revoke untracked the entry")
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	var all []Entry
	for i := range 10 {
		all = append(all, mustAdd(t, r, Entry{V1: hv1(i), Name: fmt.Sprintf("Debian %d", i)}))
	}
	for _, i := range []int{2, 5, 7} {
		e, err := r.Revoke(ctx, hv1(i), "test", "a")
		if err != nil {
			t.Fatal(err)
		}
		all[i] = e
	}
	ids := func(es []Entry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	id := func(is ...int) []int64 {
		var out []int64
		for _, i := range is {
			out = append(out, all[i].ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all", Filter{}, id(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"revoked", Filter{State: Revoked}, id(2, 5, 7)},
		{"active limited", Filter{State: Active, Limit: 3}, id(0, 1, 3)},
		{"page after", Filter{State: Active, AfterID: all[3].ID, Limit: 2}, id(4, 6)},
		{"name ignoring case", Filter{NameContains: "DEBIAN 7"}, id(7)},
		{"name none", Filter{NameContains: "ubuntu"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.List(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ids(got)) != fmt.Sprint(tt.want) {
				t.Errorf("List(%+v) IDs = %v, want %v", tt.f, ids(got), tt.want)
			}
		})
	}
	got, _ := r.List(ctx, Filter{})
	for i := range got {
		if got[i] != all[i] {
			t.Errorf("List()[%d] = %+v, want %+v", i, got[i], all[i])
		}
	}
}

func TestAddMany(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	mustAdd(t, r, Entry{V1: hv1(0)})
	var batch []Entry
	for i := range 1000 {
		batch = append(batch, Entry{V1: hv1(i), V2: hv2(i), Name: fmt.Sprint(i)})
	}
	batch[0] = Entry{V1: hv1(0)}                         // already registered
	batch = append(batch, Entry{V1: hv1(1), V2: hv2(1)}) // repeated in the batch
	added, err := r.AddMany(ctx, batch, "importer")
	if err != nil {
		t.Fatalf("AddMany: %v", err)
	}
	if added != 999 {
		t.Errorf("AddMany added %d, want 999", added)
	}
	if n := r.Len(); n != 1000 {
		t.Errorf("Len() = %d, want 1000", n)
	}
	for i := range 1000 {
		if !r.Tracked(hv1(i)) || (i > 0 && !r.Tracked(hv2(i).Truncate())) {
			t.Fatalf("entry %d not tracked after AddMany", i)
		}
	}
	changes, _ := r.Changes(ctx, 0, 0)
	if len(changes) != 1000 {
		t.Errorf("%d audit rows, want 1000", len(changes))
	}

	// All or nothing: a conflict at the end leaves no trace of the rest.
	var collides bittorrent.InfoHashV2
	v1 := hv1(5)
	copy(collides[:], v1[:])
	bad := []Entry{{V1: hv1(5000)}, {V1: hv1(5001)}, {V2: collides}}
	_, err = r.AddMany(ctx, bad, "importer")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "entry 2") {
		t.Fatalf("AddMany with a conflict: error = %v, want ErrConflict naming entry 2", err)
	}
	if r.Tracked(hv1(5000)) || r.Len() != 1000 {
		t.Error("a failed AddMany left entries in the snapshot")
	}
	if _, err := r.Get(ctx, hv1(5000)); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed AddMany left entries in the database: Get error = %v", err)
	}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	r, _ := openTest(t)
	mustAdd(t, r, Entry{V1: hv1(1)})
	for _, q := range []string{
		"UPDATE audit SET actor = 'mallory'",
		"DELETE FROM audit",
		"UPDATE torrents SET v1 = NULL",
		"UPDATE keys SET torrent_id = 99",
		"DELETE FROM torrents",
	} {
		if _, err := r.db.Exec(q); err == nil {
			t.Errorf("%s succeeded", q)
		}
	}
}

// TestSecondRegistrySeesChanges is the "CLI writes, server follows" case:
// two Registry values on one file, the second following through Run.
func TestSecondRegistrySeesChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writer, path := openTest(t)
	follower := openPath(t, path)
	done := make(chan error, 1)
	go func() { done <- follower.Run(ctx) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > time.Second {
				t.Fatalf("follower did not see %s within 1s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("follower saw %s after %v", what, time.Since(start).Round(time.Millisecond))
	}
	e := mustAdd(t, writer, Entry{V1: hv1(1), V2: hv2(1)})
	waitFor("the add", func() bool { return follower.Tracked(e.V1) && follower.Tracked(e.V2.Truncate()) })
	if _, err := writer.Revoke(ctx, e.V1, "gone", "a"); err != nil {
		t.Fatal(err)
	}
	waitFor("the revoke", func() bool {
		st, reason, _ := follower.Lookup(e.V2.Truncate())
		return st == Revoked && reason == "gone"
	})
	if _, err := writer.AddMany(ctx, []Entry{{V1: hv1(2)}, {V1: hv1(3)}}, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor("the bulk add", func() bool { return follower.Len() == 3 })

	// A write by the follower, whose snapshot may lag, still publishes
	// everything in the file.
	if _, err := writer.Add(ctx, Entry{V1: hv1(4)}, "a"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, follower, Entry{V1: hv1(5)})
	for i := 1; i <= 5; i++ {
		if _, _, ok := follower.Lookup(hv1(i)); !ok {
			t.Errorf("follower's snapshot lacks entry %d after its own write", i)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunReturnsOnClose(t *testing.T) {
	r, _ := openTest(t)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	time.Sleep(2 * PollInterval)
	r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	r, _ := openTest(t)
	mustAdd(t, r, Entry{V1: hv1(1)})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !r.Tracked(hv1(1)) {
		t.Error("Tracked after Close = false; want the last snapshot")
	}
	calls := map[string]func() error{
		"Add":     func() error { _, err := r.Add(ctx, Entry{V1: hv1(2)}, "a"); return err },
		"AddMany": func() error { _, err := r.AddMany(ctx, []Entry{{V1: hv1(2)}}, "a"); return err },
		"Revoke":  func() error { _, err := r.Revoke(ctx, hv1(1), "x", "a"); return err },
		"Restore": func() error { _, err := r.Restore(ctx, hv1(1), "a"); return err },
		"Get":     func() error { _, err := r.Get(ctx, hv1(1)); return err },
		"List":    func() error { _, err := r.List(ctx, Filter{}); return err },
		"Changes": func() error { _, err := r.Changes(ctx, 0, 0); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", name, err)
		}
	}
}

// TestConcurrentWriters has two Registry values on one file, each with
// several goroutines adding and revoking. Nothing may be lost or doubled.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	r1, path := openTest(t)
	r2 := openPath(t, path)
	const goroutines, perG = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines*perG)
	for ri, r := range []*Registry{r1, r2} {
		for g := range goroutines {
			wg.Go(func() {
				for i := range perG {
					n := (ri*goroutines+g)*perG + i
					e := Entry{V1: hv1(n), Name: fmt.Sprint(n)}
					if n%2 == 0 {
						e.V2 = hv2(n)
					}
					if _, err := r.Add(ctx, e, fmt.Sprintf("r%d/g%d", ri, g)); err != nil {
						errs <- err
						continue
					}
					// Also add something the other side adds: exactly one wins.
					if _, err := r.Add(ctx, Entry{V1: hv1(-1 - i)}, "both"); err != nil && !errors.Is(err, ErrExists) {
						errs <- err
					}
					if n%3 == 0 {
						if _, err := r.Revoke(ctx, hv1(n), "r", "x"); err != nil {
							errs <- err
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const total = 2*goroutines*perG + perG
	for _, r := range []*Registry{r1, r2} {
		if err := r.poll(ctx); err != nil {
			t.Fatal(err)
		}
		if n := r.Len(); n != total {
			t.Errorf("Len() = %d, want %d", n, total)
		}
		for n := range 2 * goroutines * perG {
			st, _, ok := r.Lookup(hv1(n))
			if want := map[bool]State{true: Revoked, false: Active}[n%3 == 0]; !ok || st != want {
				t.Fatalf("Lookup(entry %d) = %v, %v; want %v", n, st, ok, want)
			}
		}
	}
	all, err := r1.List(ctx, Filter{})
	if err != nil || len(all) != total {
		t.Fatalf("List = %d entries, %v; want %d", len(all), err, total)
	}
	changes, err := r1.Changes(ctx, 0, 0)
	revokes := (2*goroutines*perG + 2) / 3
	if err != nil || len(changes) != total+revokes {
		t.Errorf("%d audit rows, %v; want %d", len(changes), err, total+revokes)
	}
	if err := r1.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestNotARegistry(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		setup string // SQL run on a fresh registry file before reopening
	}{
		{"newer schema", "PRAGMA user_version = 99"},
		{"other application", "PRAGMA application_id = 1234"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("r%d.db", i))
			r := openPath(t, path)
			if _, err := r.db.Exec(tt.setup); err != nil {
				t.Fatal(err)
			}
			r.Close()
			before := readFile(t, path)
			_, err := Open(path, nil)
			if !errors.Is(err, ErrNotRegistry) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open error = %v, want ErrNotRegistry naming the file", err)
			}
			if after := readFile(t, path); string(after) != string(before) {
				t.Error("Open changed the file")
			}
		})
	}
}

// trackerRegistry is package tracker's Registry interface, repeated here
// (registry may not import tracker) so a change to either side is noticed.
type trackerRegistry interface {
	Status(ih bittorrent.InfoHash) (registered, revoked bool, reason string)
	Generation() uint64
}

var _ trackerRegistry = (*Registry)(nil)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
