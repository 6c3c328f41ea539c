package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimitTableTooLarge starts `warden serve` with limit.table_bytes
// beyond what it can have. At the old documented maximum of 1 TiB it
// passed validation, the memory map failed, the table fell back to the
// heap and the runtime died with "fatal error: out of memory" and a stack
// dump. Now:
//
//   - 1 TiB is refused by validation, naming the key;
//   - 3 GiB (allowed) under an address-space limit of 2 GiB (prlimit --as,
//     as ulimit -v would set) is refused at start, naming the key, once
//     the system refuses the map.
//
// Either way warden exits with a message and no stack dump.
func TestLimitTableTooLarge(t *testing.T) {
	bin, err := wardenBinary()
	if err != nil {
		t.Fatalf("build warden: %v", err)
	}
	tests := []struct {
		name, config string
		prlimitAS    int64 // bytes of address space, 0 for no limit
		want         []string
	}{
		{
			name:   "1 TiB",
			config: "[limit]\ntable_bytes = 1099511627776\n",
			want:   []string{"limit.table_bytes: must be at most 4294967296 (4 GiB), got 1099511627776"},
		},
		{
			name:      "3 GiB under a 2 GiB address space",
			config:    "[limit]\ntable_bytes = 3221225472\n",
			prlimitAS: 2 << 30,
			want:      []string{"limit.table_bytes: 3221225472 bytes: the system refused a table that large"},
		},
		{
			name:      "connect table 3 GiB under a 2 GiB address space",
			config:    "[limit]\nconnect_table_bytes = 3221225472\n",
			prlimitAS: 2 << 30,
			want:      []string{"limit.connect_table_bytes: 3221225472 bytes: the system refused a table that large"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prlimitAS > 0 && raceEnabled {
				t.Skip("the race detector's shadow memory does not fit under an address-space limit")
			}
			serveRefused(t, bin, tt.config, tt.prlimitAS, tt.want...)
		})
	}
}

// TestAbuseContactRefusedAtStart starts warden with a tracker.abuse_contact
// that would break every refusal it sends (a NUL ends a BEP 15 error's
// text for libtorrent; a line break splits a client's log line, and
// invalid UTF-8 garbles a bencoded failure reason). warden used to start
// and send it; it must refuse to start, naming the key.
func TestAbuseContactRefusedAtStart(t *testing.T) {
	bin, err := wardenBinary()
	if err != nil {
		t.Fatalf("build warden: %v", err)
	}
	for _, tt := range []struct{ name, toml, want string }{
		{"NUL", `"abuse@example.org\u0000"`, `tracker.abuse_contact: "abuse@example.org\x00" has U+0000 at byte 17`},
		{"line break", `"abuse@example.org\r\nX-Evil: 1"`, `tracker.abuse_contact: "abuse@example.org\r\nX-Evil: 1" has U+000D at byte 17`},
		{"bidi override", `"\u202Egro.elpmaxe@esuba"`, `has U+202E at byte 0`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			serveRefused(t, bin, "[tracker]\nabuse_contact = "+tt.toml+"\n", 0, tt.want)
		})
	}
}

// serveRefused runs `warden serve` with config, under prlimit --as if
// asBytes is not 0, and checks that it exits with an error showing each
// of want and no sign of a crash.
func serveRefused(t *testing.T, bin, config string, asBytes int64, want ...string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "warden.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfg, "--data", filepath.Join(dir, "data"),
		"--http", "", "--udp", "127.0.0.1:0", "--admin", ""}
	name := bin
	if asBytes > 0 {
		name = requireBinary(t, "prlimit")
		args = append([]string{fmt.Sprintf("--as=%d", asBytes), "--", bin}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "WARDEN_TOKEN=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("warden still running after %v: it should have refused to start\n%s", cliTimeout, out)
	}
	if err == nil {
		t.Fatalf("warden serve exited 0; want a refusal\n%s", out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, crash := range []string{"fatal error", "goroutine ", "panic:"} {
		if strings.Contains(string(out), crash) {
			t.Errorf("output shows a crash (%q):\n%s", crash, out)
		}
	}
	t.Logf("%v; output:\n%s", err, out)
}
