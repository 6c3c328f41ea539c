//go:build linux

package limit

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"warden/internal/confkey"
)

// memChildEnv marks the process TestTableUnmappable runs under a small
// address-space limit.
const memChildEnv = "WARDEN_LIMIT_MEM_CHILD"

// TestTableUnmappable asks for a table the system will not map: a child
// test process, limited to its current address space plus 512 MiB
// (RLIMIT_AS, as ulimit -v would), builds a guard of 4 GiB, the largest
// table_bytes allows. NewGuard must return an error naming table_bytes,
// where the heap fallback died with "fatal error: out of memory" and a
// stack dump; and a table that fits must still be mapped.
func TestTableUnmappable(t *testing.T) {
	if os.Getenv(memChildEnv) != "" {
		unmappableChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTableUnmappable$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), memChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestTableUnmappable") {
		t.Fatalf("child did not pass:\n%s", out)
	}
	t.Logf("child:\n%s", out)
}

func unmappableChild(t *testing.T) {
	vm := vmSize(t)
	limit := vm + 512<<20
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	t.Logf("address space %d MiB, limited to %d MiB", vm>>20, limit>>20)
	for _, tt := range []struct {
		name, key string
		edit      func(*Config)
	}{
		{"rate table", "table_bytes", func(c *Config) { c.TableBytes = maxTableBytes }},
		{"connect table", "connect_table_bytes", func(c *Config) { c.ConnectTableBytes = maxTableBytes }},
	} {
		cfg := DefaultConfig()
		tt.edit(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: Validate = %v, want nil (the size is allowed)", tt.name, err)
		}
		g, err := NewGuard(cfg, slog.New(slog.DiscardHandler))
		var ce *confkey.Error
		if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("%s: NewGuard = %v, %v; want a confkey.Error for %s", tt.name, g, err, tt.key)
		}
		t.Logf("%s: %v", tt.name, err)
	}
	if _, err := NewGuard(DefaultConfig(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("the default 64 MiB under the same limit: %v", err)
	}
}

// vmSize returns the process's address space in bytes, from /proc.
func vmSize(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var pages uint64
	if _, err := fmt.Sscan(string(b), &pages); err != nil {
		t.Fatal(err)
	}
	return pages * uint64(os.Getpagesize())
}
