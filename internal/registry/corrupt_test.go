package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenDamaged damages a closed registry file in several ways and checks
// that Open refuses it with an error naming the file, and leaves it alone:
// it must never start over with an empty registry.
func TestOpenDamaged(t *testing.T) {
	// A registry big enough to span many pages.
	src := filepath.Join(t.TempDir(), "good.db")
	r := openPath(t, src)
	var es []Entry
	for i := range 3000 {
		es = append(es, Entry{V1: hv1(i), V2: hv2(i), Name: fmt.Sprintf("torrent %d", i)})
	}
	if _, err := r.AddMany(context.Background(), es, "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	good := readFile(t, src)
	pageSize := int(binary.BigEndian.Uint16(good[16:18]))
	pages := len(good) / pageSize
	t.Logf("registry of %d bytes, %d pages of %d bytes", len(good), pages, pageSize)
	if pages < 20 {
		t.Fatalf("test registry has only %d pages", pages)
	}

	rng := rand.New(rand.NewPCG(3, 4))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	overwrite := func(off int, with []byte) func([]byte) []byte {
		return func(b []byte) []byte { copy(b[off:], with); return b }
	}
	mid := pages / 2 * pageSize
	tests := []struct {
		name    string
		damage  func([]byte) []byte
		wantMsg string // in the error, besides the path and "damaged"
	}{
		{"garbage", func(b []byte) []byte { return garbage(len(b)) }, "not a SQLite database"},
		{"text file", func([]byte) []byte { return []byte("torrents:\n  - debian.iso\n") }, "shorter than a SQLite header"},
		{"empty", func([]byte) []byte { return nil }, "empty"},
		{"truncated inside the header", func(b []byte) []byte { return b[:50] }, "shorter than a SQLite header"},
		{"truncated to half", func(b []byte) []byte { return b[:mid] }, ""},
		{"truncated to one page", func(b []byte) []byte { return b[:pageSize] }, ""},
		{"middle page overwritten with garbage", func(b []byte) []byte { return overwrite(mid, garbage(pageSize))(b) }, ""},
		{"middle page zeroed", func(b []byte) []byte { return overwrite(mid, make([]byte, pageSize))(b) }, ""},
		{"bytes scribbled in the middle", func(b []byte) []byte { return overwrite(mid+pageSize/3, garbage(300))(b) }, ""},
		{"schema page overwritten", func(b []byte) []byte { return overwrite(100, garbage(pageSize-100))(b) }, ""},
		{"last page overwritten", func(b []byte) []byte { return overwrite(len(b)-pageSize, garbage(pageSize))(b) }, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), fmt.Sprintf("damaged%d.db", i))
			damaged := tt.damage(bytes.Clone(good))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			reg, err := Open(path, testLogger(t))
			if err == nil {
				reg.Close()
				t.Fatalf("Open of a damaged file succeeded (%d entries)", reg.Len())
			}
			t.Logf("Open: %v", err)
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("error does not wrap ErrDamaged: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, "damaged") || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q should name %s, say damaged, and contain %q", msg, path, tt.wantMsg)
			}
			if after := readFile(t, path); !bytes.Equal(after, damaged) {
				t.Errorf("Open changed the damaged file (%d bytes, was %d)", len(after), len(damaged))
			}
			if left, _ := filepath.Glob(path + "?*"); len(left) > 0 {
				t.Errorf("Open left files beside the damaged one: %v", left)
			}
			// A second attempt must fail the same way, not find a fresh file.
			if _, err := Open(path, nil); !errors.Is(err, ErrDamaged) {
				t.Errorf("second Open: error = %v, want ErrDamaged", err)
			}
		})
	}
}

// TestCheckFindsSilentDamage changes one stored hash in place: every page
// stays well formed, so the quick check at Open may pass, but the full
// Check sees that the table and its index disagree.
func TestCheckFindsSilentDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	r := openPath(t, path)
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("Check of a good registry: %v", err)
	}
	var es []Entry
	for i := range 500 {
		es = append(es, Entry{V1: hv1(i)})
	}
	if _, err := r.AddMany(context.Background(), es, "test"); err != nil {
		t.Fatal(err)
	}
	r.Close()
	b := readFile(t, path)
	target := hv1(250)
	at := bytes.Index(b, target[:])
	if at < 0 {
		t.Fatal("hash not found in the file")
	}
	b[at+10] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	r, err := Open(path, nil)
	if err != nil {
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open: %v, want success or ErrDamaged", err)
		}
		return
	}
	defer r.Close()
	err = r.Check(context.Background())
	t.Logf("Check: %v", err)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Errorf("Check error = %v, want ErrDamaged naming the file", err)
	}
}
