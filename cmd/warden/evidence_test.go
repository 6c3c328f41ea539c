package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/evidence"
)

// requireSQLite3 returns the sqlite3 shell, the tool a tamperer would use.
// Under CI=true its absence fails the test.
func requireSQLite3(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("sqlite3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sqlite3 not installed (apt-get install sqlite3): %v", err)
		}
		t.Skipf("sqlite3 not installed: %v", err)
	}
	return path
}

// evidenceLog makes a closed evidence log of n records in a new data
// directory, and returns the directory and the checkpoint taken after the
// first half.
func evidenceLog(t *testing.T, n int) (dir string, half []byte) {
	t.Helper()
	dir = t.TempDir()
	l, err := evidence.Open(dir, evidence.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		r, err := evidence.NewRecord(evidence.KindBan, time.Now(), map[string]any{"source": fmt.Sprintf("192.0.2.%d", i), "reason": "flood"})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i == n/2-1 {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			half = cp.Note
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, half
}

// copyData copies a data directory's evidence files.
func copyData(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{evidence.DBFile, evidence.PubFile} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func runCLI(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestEvidenceVerifyCatchesSQLite3: changes made with the sqlite3 shell
// make `warden evidence verify` fail (exit 1) naming the first bad record.
func TestEvidenceVerifyCatchesSQLite3(t *testing.T) {
	sqlite3 := requireSQLite3(t)
	const n = 20
	dir, half := evidenceLog(t, n)
	cpFile := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.WriteFile(cpFile, half, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("evidence", "verify", "--data", dir, "--checkpoint", cpFile); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("verify untouched log: %v\n%s", err, out)
	}
	tests := []struct {
		name       string
		sql        string
		checkpoint bool
		want       string // in the error
	}{
		{name: "change a record", sql: `UPDATE records SET data = replace(data, 'flood', 'spam') WHERE idx = 5;`,
			want: "first bad record: 5"},
		{name: "change a record's kind", sql: `UPDATE records SET kind = 'unban' WHERE idx = 6;`,
			want: "first bad record: 6"},
		{name: "delete a record", sql: `DELETE FROM records WHERE idx = 7;`,
			want: "record 7 is missing (first bad record: 7)"},
		{name: "reorder two records", sql: `UPDATE records SET idx = -1 WHERE idx = 3; UPDATE records SET idx = 3 WHERE idx = 4; UPDATE records SET idx = 4 WHERE idx = -1;`,
			want: "first bad record: 3"},
		{name: "delete the newest records", sql: fmt.Sprintf(`DELETE FROM records WHERE idx >= %d;`, n-3),
			want: fmt.Sprintf("first bad record: %d", n-3)},
		{name: "cut the log back consistently, checked against an earlier checkpoint", checkpoint: true, sql: fmt.Sprintf(`
			DELETE FROM records WHERE idx >= %d;
			DELETE FROM hashes WHERE id >= %d;
			DELETE FROM checkpoints WHERE seq > 1;
			UPDATE meta SET checkpoint = 1;`, n/2-2, 2*(n/2-2)-1),
			want: fmt.Sprintf("cut back: the earlier checkpoint 2 covers %d records, the log holds %d (first bad record: %d)", n/2, n/2-2, n/2-2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := copyData(t, dir)
			cmd := exec.Command(sqlite3, filepath.Join(d, evidence.DBFile), tt.sql)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sqlite3: %v\n%s", err, out)
			}
			args := []string{"evidence", "verify", "--data", d}
			if tt.checkpoint {
				args = append(args, "--checkpoint", cpFile)
			}
			out, err := runCLI(args...)
			if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("warden %s = %v (exit %d)\n%s\nwant exit 1 and %q", strings.Join(args, " "), err, exitCode(err), out, tt.want)
			}
		})
	}
}

func TestEvidenceCommands(t *testing.T) {
	dir, _ := evidenceLog(t, 10)
	key, err := os.ReadFile(filepath.Join(dir, evidence.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("evidence", "key", "--data", dir); err != nil || out != string(key) {
		t.Fatalf("evidence key = %q, %v; want %q", out, err, key)
	}
	out, err := runCLI("evidence", "checkpoint", "--data", dir)
	if err != nil || !strings.HasPrefix(out, "warden-evidence/") || !strings.Contains(out, "\n10\n") {
		t.Fatalf("evidence checkpoint = %q, %v; want a checkpoint of 10 records", out, err)
	}

	bundle := filepath.Join(t.TempDir(), "bundle.json")
	if out, err := runCLI("evidence", "export", "--data", dir, "--since", "1h", "-o", bundle); err != nil || !strings.Contains(out, "10 records from index 0") {
		t.Fatalf("evidence export = %v\n%s", err, out)
	}
	// The bundle alone, in an empty directory, with nothing else.
	out, err = runCLI("evidence", "verify", "--bundle", bundle, "--data", t.TempDir())
	if err != nil || !strings.Contains(out, "records     10 (indexes 0-9): ban 10") {
		t.Fatalf("verify --bundle = %v\n%s", err, out)
	}
	if _, err := runCLI("evidence", "verify", "--bundle", bundle, "--key", strings.TrimSpace(string(key))); err != nil {
		t.Fatalf("verify --bundle --key KEY = %v", err)
	}
	b, _ := os.ReadFile(bundle)
	b[len(b)/2] ^= 1
	os.WriteFile(bundle, b, 0o644)
	if out, err := runCLI("evidence", "verify", "--bundle", bundle); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("verify --bundle after a byte changed = %v\n%s", err, out)
	}

	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantCode int
	}{
		{name: "no log", args: []string{"evidence", "verify", "--data", t.TempDir(), "--key", strings.TrimSpace(string(key))}, wantErr: "no evidence log", wantCode: 1},
		{name: "no key", args: []string{"evidence", "verify", "--data", t.TempDir()}, wantErr: "read verifier key", wantCode: 1},
		{name: "export without -o", args: []string{"evidence", "export", "--data", dir}, wantErr: "-o BUNDLE is required", wantCode: 2},
		{name: "export bad since", args: []string{"evidence", "export", "--data", dir, "--since", "yesterday", "-o", "x"}, wantErr: "want an RFC 3339 time", wantCode: 2},
		{name: "bundle and checkpoint", args: []string{"evidence", "verify", "--bundle", "b", "--checkpoint", "c"}, wantErr: "--bundle checks the bundle alone", wantCode: 2},
		{name: "stray argument", args: []string{"evidence", "checkpoint", "now"}, wantErr: `unexpected argument "now"`, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != tt.wantCode {
				t.Fatalf("warden %s = %v (exit %d)\n%s\nwant %q, exit %d", strings.Join(tt.args, " "), err, exitCode(err), out, tt.wantErr, tt.wantCode)
			}
		})
	}
}

func TestParseEvidenceSince(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2026-12-01T08:00:00Z", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"2026-12-01", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"72h", now.Add(-72 * time.Hour)},
	}
	for _, tt := range tests {
		if got, err := parseEvidenceSince(tt.in, now); err != nil || !got.Equal(tt.want) {
			t.Errorf("parseEvidenceSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"-1h", "yesterday", "2026-13-01"} {
		if _, err := parseEvidenceSince(bad, now); err == nil {
			t.Errorf("parseEvidenceSince(%q) accepted", bad)
		}
	}
}
