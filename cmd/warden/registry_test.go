package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/admin"
	"warden/internal/bittorrent"
	"warden/internal/evidence"
	"warden/internal/limit"
	"warden/internal/registry"
	"warden/internal/status"
)

const testToken = "0123456789abcdef0123456789abcdef"

// adminFixture is a real registry behind the real admin API on loopback,
// and a data directory holding its token, as the CLI finds them.
type adminFixture struct {
	reg  *registry.Registry
	url  string
	data string
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	data := t.TempDir()
	reg, err := registry.Open(filepath.Join(data, registryFile), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	guard, err := limit.NewGuard(limit.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Listen(admin.Config{Listen: "127.0.0.1:0"}, admin.Deps{
		Token: testToken, Registry: reg, Guard: guard, Knocks: evidence.NewKnocks(),
		Status: func() status.Snapshot { return status.Snapshot{} },
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	if err := os.WriteFile(filepath.Join(data, admin.TokenFile), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(admin.TokenEnv, "")
	return &adminFixture{reg: reg, url: ts.URL, data: data}
}

// cli runs `warden registry ARGS` against f and returns its output.
func (f *adminFixture) cli(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	args = append(append([]string{"registry"}, args...), "--admin", f.url, "--data", f.data)
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeHashes writes a --from file of the given lines.
func writeHashes(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hashes.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRegistryAddBatches imports more than two batches: every hash is
// registered, the ones already there are counted as such, comments and
// blank lines are skipped, and progress goes to stderr.
func TestRegistryAddBatches(t *testing.T) {
	f := newAdminFixture(t)
	const n = 2*addBatch + 345
	lines := []string{"# exported from the old tracker", ""}
	for range n {
		lines = append(lines, randomHex(20))
	}
	if out, _, err := f.cli(append([]string{"add"}, lines[2:102]...)...); err != nil || !strings.Contains(out, "registered 100") {
		t.Fatalf("adding the first 100: %q, %v", out, err)
	}
	out, errOut, err := f.cli("add", "--from", writeHashes(t, lines), "--json")
	if err != nil {
		t.Fatalf("registry add --from: %v\n%s", err, errOut)
	}
	var got admin.AddResponse
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Added != n-100 || got.Existing != 100 {
		t.Fatalf("registry add --from printed %q (%v), want %d added, 100 existing", out, err, n-100)
	}
	if f.reg.Len() != n {
		t.Fatalf("registry holds %d entries, want %d", f.reg.Len(), n)
	}
	if !strings.Contains(errOut, fmt.Sprintf("%d of %d sent", n, n)) {
		t.Errorf("no final progress line on stderr: %q", errOut)
	}
}

// TestRegistryAddBadLine: a bad line anywhere stops the import before
// anything is sent, naming the line.
func TestRegistryAddBadLine(t *testing.T) {
	f := newAdminFixture(t)
	lines := make([]string, 2*addBatch)
	for i := range lines {
		lines[i] = randomHex(20)
	}
	lines[addBatch+7] = "not-a-hash"
	path := writeHashes(t, lines)
	_, _, err := f.cli("add", "--from", path)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s:%d", path, addBatch+8)) {
		t.Fatalf("registry add --from with a bad line = %v, want an error naming line %d", err, addBatch+8)
	}
	if f.reg.Len() != 0 {
		t.Fatalf("a file with a bad line registered %d entries, want none", f.reg.Len())
	}
}

// TestRegistryAddConflictMidway: the server refuses the second batch (a
// hash that is another entry's): the error names that batch's lines, says
// none of it was registered and that the first batch stays, and running
// again after fixing the line finishes the import.
func TestRegistryAddConflictMidway(t *testing.T) {
	f := newAdminFixture(t)
	v2, _ := bittorrent.ParseInfoHashV2(randomHex(32))
	if _, err := f.reg.Add(context.Background(), registry.Entry{V2: v2}, "test"); err != nil {
		t.Fatal(err)
	}
	lines := make([]string, 2*addBatch+10)
	for i := range lines {
		lines[i] = randomHex(20)
	}
	bad := addBatch + 3
	lines[bad] = v2.Truncate().String() // a v1 hash equal to the entry's truncated v2 hash
	path := writeHashes(t, lines)
	_, _, err := f.cli("add", "--from", path)
	t.Logf("registry add: %v", err)
	for _, want := range []string{
		fmt.Sprintf("the batch %s:%d to %s:%d was refused and none of it registered", path, addBatch+1, path, 2*addBatch),
		fmt.Sprintf("the %d of %d sent before it stay registered", addBatch, len(lines)),
		"run the same command again",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q", want)
		}
	}
	if f.reg.Len() != 1+addBatch {
		t.Fatalf("after the refused batch the registry holds %d entries, want %d", f.reg.Len(), 1+addBatch)
	}
	lines[bad] = randomHex(20)
	out, errOut, err := f.cli("add", "--from", writeHashes(t, lines))
	if err != nil || !strings.Contains(out, fmt.Sprintf("registered %d, already registered %d", len(lines)-addBatch, addBatch)) {
		t.Fatalf("second run: %q, %v\n%s", out, err, errOut)
	}
}

// TestRegistryAddWaitsOutBusy: another connection holds the registry's
// write lock when the import starts; the batch refused as busy is sent
// again once it is released, and the import completes.
func TestRegistryAddWaitsOutBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the registry's busy timeout")
	}
	f := newAdminFixture(t)
	other, err := sql.Open("sqlite", "file:"+f.reg.Path()+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE meta SET generation = generation"); err != nil {
		t.Fatal(err)
	}
	release := time.AfterFunc(12*time.Second, func() { tx.Rollback() }) // after the first 503
	defer release.Stop()
	lines := make([]string, addBatch+1)
	for i := range lines {
		lines[i] = randomHex(20)
	}
	out, errOut, err := f.cli("add", "--from", writeHashes(t, lines))
	t.Logf("stderr: %s", errOut)
	if err != nil || !strings.Contains(out, fmt.Sprintf("registered %d", len(lines))) {
		t.Fatalf("registry add beside a writer: %q, %v", out, err)
	}
	if !strings.Contains(errOut, "registry busy") || !strings.Contains(errOut, "retrying in") {
		t.Errorf("stderr does not say the batch was retried: %q", errOut)
	}
}

// TestRegistryList lists more than a page, as JSON and as a table.
func TestRegistryList(t *testing.T) {
	f := newAdminFixture(t)
	const n = admin.MaxListLimit + 20
	es := make([]registry.Entry, n)
	for i := range es {
		ih, _ := bittorrent.ParseInfoHash(randomHex(20))
		es[i] = registry.Entry{V1: ih, Name: fmt.Sprint("t", i)}
	}
	if _, err := f.reg.AddMany(context.Background(), es, "test"); err != nil {
		t.Fatal(err)
	}
	out, _, err := f.cli("list", "--json")
	var got []registry.Entry
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got) != n {
		t.Fatalf("registry list --json: %d entries, %v; want %d", len(got), err, n)
	}
	for i := range got {
		if got[i].V1 != es[i].V1 {
			t.Fatalf("entry %d is %s, want %s (in the order added)", i, got[i].V1, es[i].V1)
		}
	}
	out, _, err = f.cli("list", "--limit", "3")
	if err != nil || strings.Count(out, "\n") != 4 || !strings.HasPrefix(out, "STATE") {
		t.Fatalf("registry list --limit 3 = %q, %v; want a header and 3 rows", out, err)
	}
	if out, _, err := f.cli("list", "--json", "--name", "nothing like it"); err != nil || out != "[]\n" {
		t.Fatalf("empty registry list --json = %q, %v; want []", out, err)
	}
}
