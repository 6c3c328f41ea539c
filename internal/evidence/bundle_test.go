package evidence

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// exportFixture exports the fixture's records logged since since.
func exportFixture(t testing.TB, fx *fixture, since time.Time) ([]byte, ExportReport) {
	t.Helper()
	var buf bytes.Buffer
	rep, err := Export(context.Background(), fx.dir, since, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), rep
}

func TestExportVerifyBundle(t *testing.T) {
	fx := newFixture(t)
	key, err := ReadVerifierKey(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		since       time.Time
		wantRecords int
		wantPruned  int
	}{
		{name: "everything", since: time.Time{}, wantRecords: int(fx.size) - 12, wantPruned: 0}, // the pruned ones come first
		{name: "nothing", since: fx.latest.Time.Add(time.Hour), wantRecords: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, rep := exportFixture(t, fx, tt.since)
			if rep.Records != tt.wantRecords || rep.Pruned != tt.wantPruned || rep.Checkpoint.Seq != fx.latest.Seq {
				t.Fatalf("Export = %+v, want %d records, %d pruned, checkpoint %d", rep, tt.wantRecords, tt.wantPruned, fx.latest.Seq)
			}
			br, err := VerifyBundle(b, "")
			if err != nil {
				t.Fatalf("VerifyBundle: %v", err)
			}
			if len(br.Records) != tt.wantRecords || br.Key != key || br.Checkpoint.Size != fx.size {
				t.Fatalf("VerifyBundle = %d records, key %s, size %d", len(br.Records), br.Key, br.Checkpoint.Size)
			}
			if _, err := VerifyBundle(b, key); err != nil {
				t.Fatalf("VerifyBundle with its key: %v", err)
			}
		})
	}
	// With another log's key given, the bundle is refused.
	other := t.TempDir()
	l, _ := openTest(t, other, DefaultConfig())
	l.Close()
	otherKey, _ := ReadVerifierKey(other)
	b, _ := exportFixture(t, fx, time.Time{})
	if _, err := VerifyBundle(b, otherKey); !errors.Is(err, ErrTampered) {
		t.Fatalf("VerifyBundle with another key = %v, want ErrTampered", err)
	}
}

// TestBundleEveryByte changes each byte of a bundle, in two ways, and
// requires VerifyBundle to refuse every result.
func TestBundleEveryByte(t *testing.T) {
	fx := newFixture(t)
	// A few records keep the test quick while covering every part.
	b, rep := exportFixture(t, fx, fx.earlier[len(fx.earlier)-2].Time)
	if rep.Records < 3 {
		t.Fatalf("bundle of %d records, want a few", rep.Records)
	}
	if _, err := VerifyBundle(b, ""); err != nil {
		t.Fatal(err)
	}
	changed := make([]byte, len(b))
	for i := range b {
		for _, x := range []byte{0x01, 0x20} {
			copy(changed, b)
			changed[i] ^= x
			if _, err := VerifyBundle(changed, ""); err == nil {
				t.Fatalf("byte %d (%q) xor %#x: the bundle still verifies", i, b[i], x)
			} else if !errors.Is(err, ErrTampered) {
				t.Fatalf("byte %d: VerifyBundle = %v, want ErrTampered", i, err)
			}
		}
	}
	t.Logf("%d bytes, each changed twice: all refused", len(b))
}

func TestVerifyBundleRefuses(t *testing.T) {
	fx := newFixture(t)
	b, _ := exportFixture(t, fx, fx.earlier[len(fx.earlier)-2].Time)
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "pretty-printed", data: bytes.ReplaceAll(b, []byte(`,"`), []byte(", \""))},
		{name: "no final newline", data: bytes.TrimSuffix(b, []byte("\n"))},
		{name: "trailing data", data: append(bytes.Clone(b), "{}\n"...)},
		{name: "a record dropped", data: bytes.Replace(b, []byte(`"records":[{`), []byte(`"records":[{"index":-1},{`), 1)},
		{name: "too big", data: make([]byte, MaxBundleBytes+1)},
	}
	for _, tt := range tests {
		if _, err := VerifyBundle(tt.data, ""); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: VerifyBundle = %v, want ErrTampered", tt.name, err)
		}
	}
}

func FuzzVerifyBundle(f *testing.F) {
	// One key for every fuzzing process, so each knows the key of the
	// bundles the others made.
	skey, vkey, err := note.GenerateKey(bytes.NewReader(make([]byte, 32)), keyName)
	if err != nil {
		f.Fatal(err)
	}
	fx := newFixtureKey(f, skey)
	b, _ := exportFixture(f, fx, fx.earlier[len(fx.earlier)-2].Time)
	f.Add(b)                                                                    // a good bundle
	f.Add([]byte(`{"checkpoint":"","format":"","key":"","records":[]}` + "\n")) // empty fields
	f.Add([]byte(`{"records":[{"index":0,"proof":null,"record":{}}]}`))         // partial
	if seeds, err := filepath.Glob("testdata/bundle-*.json"); err == nil {
		for _, s := range seeds {
			if data, err := os.ReadFile(s); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyBundle(data, "")
		if err == nil && rep.Key != vkey {
			// Only bundles exported by a log with the fuzzing key verify:
			// anything else would be a forged checkpoint.
			t.Fatalf("a bundle by key %s verifies", rep.Key)
		}
		if err != nil && !errors.Is(err, ErrTampered) {
			t.Fatalf("VerifyBundle = %v, want ErrTampered", err)
		}
	})
}
