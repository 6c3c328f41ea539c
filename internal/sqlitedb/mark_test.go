package sqlitedb

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseMark(t *testing.T) {
	a, b := Record{Generation: 7, Count: 5}, Record{Generation: 9, Count: 6}
	good := appendSlot(appendSlot(nil, a), b)
	torn := func(slot int) []byte { // one byte of a slot's numbers changed: its checksum fails
		x := bytes.Clone(good)
		x[slot*slotSize+10] ^= 0x40
		return x
	}
	negative := appendSlot(appendSlot(nil, a), Record{Generation: -1})
	tests := []struct {
		name    string
		in      []byte
		want    Record
		wantErr string
	}{
		{"both slots valid: the higher", good, b, ""},
		{"order does not matter", appendSlot(appendSlot(nil, b), a), b, ""},
		{"second slot torn: the first", torn(1), a, ""},
		{"first slot torn: the second", torn(0), b, ""},
		{"a negative generation is not valid", negative, a, ""},
		{"both torn", append(torn(0)[:slotSize:slotSize], torn(1)[slotSize:]...), Record{}, "no valid slot"},
		{"zeros", make([]byte, markSize), Record{}, "no valid slot"},
		{"empty", nil, Record{}, "0 bytes, want 64"},
		{"short", good[:markSize-1], Record{}, "63 bytes, want 64"},
		{"long", append(bytes.Clone(good), 0), Record{}, "65 bytes, want 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMark(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMark = %+v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMark = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseMark checks that any bytes either parse to a record one of the
// slots encodes, or fail; never a panic.
func FuzzParseMark(f *testing.F) {
	a, b := Record{Generation: 7, Count: 5}, Record{Generation: 9, Count: 6}
	f.Add(appendSlot(appendSlot(nil, a), b))                      // two valid slots
	f.Add(appendSlot(appendSlot(nil, Record{}), Record{}))        // a new record
	f.Add(append(appendSlot(nil, a), make([]byte, 32)...))        // one slot never written
	f.Add(make([]byte, markSize))                                 // zeros, as a crash may leave
	f.Add([]byte("wmk1"))                                         // truncated
	f.Add(appendSlot(appendSlot(nil, Record{Generation: -5}), a)) // negative generation
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseMark(in)
		if err != nil {
			return
		}
		if len(in) != markSize {
			t.Fatalf("ParseMark accepted %d bytes", len(in))
		}
		s0, ok0 := parseSlot(in[:slotSize])
		s1, ok1 := parseSlot(in[slotSize:])
		if !(ok0 && r == s0) && !(ok1 && r == s1) {
			t.Fatalf("ParseMark = %+v, which neither slot holds", r)
		}
		if r.Generation < 0 || r.Count < 0 {
			t.Fatalf("ParseMark = %+v: negative", r)
		}
		if again, err := ParseMark(appendSlot(appendSlot(nil, r), r)); err != nil || again != r {
			t.Fatalf("round trip of %+v = %+v, %v", r, again, err)
		}
	})
}

// readMark returns the record of the database at abs as a new reader
// would see it.
func readMark(t *testing.T, abs string) Record {
	t.Helper()
	r, err := ParseMark(readFile(t, abs+MarkSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMarkAdvance(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "f.db")
	m, _, found, err := openMark(abs, true)
	if err != nil || found {
		t.Fatalf("openMark of a new record = found %v, %v", found, err)
	}
	defer m.Close()
	if fi, err := os.Stat(m.Path()); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != markSize {
		t.Fatalf("new record: %v, %v; want %d bytes, mode 0600", fi, err, markSize)
	}
	steps := []struct {
		advance, want Record
	}{
		{Record{3, 1}, Record{3, 1}},
		{Record{5, 2}, Record{5, 2}},
		{Record{4, 9}, Record{5, 2}}, // never lowered
		{Record{5, 7}, Record{5, 2}}, // nor rewritten at the same generation
		{Record{6, 3}, Record{6, 3}},
	}
	for _, s := range steps {
		if err := m.Advance(s.advance); err != nil {
			t.Fatal(err)
		}
		if got := readMark(t, abs); got != s.want {
			t.Fatalf("after Advance(%+v) the record reads %+v, want %+v", s.advance, got, s.want)
		}
	}
	// A write torn by a crash damages only the slot being written: the
	// record falls back to the previous one, never to nothing.
	b := readFile(t, m.Path())
	r0, _ := parseSlot(b[:slotSize])
	torn := slotSize // the slot the next Advance writes is the one not holding 6
	if r0.Generation != 6 {
		torn = 0
	}
	b[torn+5] ^= 0xff
	os.WriteFile(m.Path(), b, 0o600)
	if got := readMark(t, abs); got != (Record{6, 3}) {
		t.Fatalf("with the older slot torn the record reads %+v, want {6 3}", got)
	}
	if err := m.Advance(Record{8, 4}); err != nil {
		t.Fatal(err)
	}
	if got := readMark(t, abs); got != (Record{8, 4}) {
		t.Fatalf("Advance over a torn slot: record reads %+v, want {8 4}", got)
	}
	if err := m.reset(Record{2, 1}); err != nil {
		t.Fatal(err)
	}
	if got := readMark(t, abs); got != (Record{2, 1}) {
		t.Fatalf("after reset the record reads %+v, want {2 1}", got)
	}
	os.WriteFile(m.Path(), make([]byte, markSize), 0o600)
	if err := m.Advance(Record{9, 9}); err == nil || !strings.Contains(err.Error(), "no valid slot") {
		t.Fatalf("Advance over a damaged record = %v, want an error", err)
	}
}

// TestMarkConcurrent advances one record from many goroutines through
// separate open files, as separate processes would: once Advance(g)
// returns, the record never reads below g, and it ends at the highest
// generation any of them wrote.
func TestMarkConcurrent(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "f.db")
	const writers, each = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		m, _, _, err := openMark(abs, true)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		wg.Go(func() {
			for i := range each {
				g := int64(i*writers + w + 1)
				if err := m.Advance(Record{Generation: g}); err != nil {
					t.Error(err)
					return
				}
				b, err := os.ReadFile(m.Path())
				if err != nil {
					t.Error(err)
					return
				}
				if r, err := ParseMark(b); err != nil || r.Generation < g {
					t.Errorf("after Advance(%d) returned, the record reads %+v, %v", g, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := readMark(t, abs); got.Generation != writers*each {
		t.Fatalf("record reads generation %d, want %d", got.Generation, writers*each)
	}
}
