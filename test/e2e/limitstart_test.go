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
			dir := t.TempDir()
			cfg := filepath.Join(dir, "warden.toml")
			if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"serve", "--config", cfg, "--data", filepath.Join(dir, "data"),
				"--http", "", "--udp", "127.0.0.1:0", "--admin", ""}
			name := bin
			if tt.prlimitAS > 0 {
				if raceEnabled {
					t.Skip("the race detector's shadow memory does not fit under an address-space limit")
				}
				name = requireBinary(t, "prlimit")
				args = append([]string{fmt.Sprintf("--as=%d", tt.prlimitAS), "--", bin}, args...)
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
			for _, w := range tt.want {
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
		})
	}
}
