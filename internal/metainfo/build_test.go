package metainfo

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTree creates files (path → size) under dir with random contents,
// in a random order, so listing order differs from sorted order.
func writeTree(t testing.TB, dir string, files map[string]int) {
	t.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, name := range names {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, files[name])
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// corpus is a directory with the cases the layout rules differ on: an
// empty file, a file of exactly one piece, one a byte over, nested
// directories, and names that sort differently by component than whole.
var corpus = map[string]int{
	"a/y":            5,
	"a-b/x":          3,
	"a.txt":          1,
	"empty":          0,
	"one-piece":      32 << 10,
	"one-piece-plus": 32<<10 + 1,
	"sub/deep/x":     100_000,
	"z.bin":          12_345,
}

func TestCreateIsDeterministic(t *testing.T) {
	var want map[Version][]byte
	for round := range 3 {
		dir := filepath.Join(t.TempDir(), "data")
		writeTreeSeeded(t, dir, corpus)
		got := map[Version][]byte{}
		for _, v := range []Version{Hybrid, V1, V2} {
			for _, threads := range []int{1, 2, 7} {
				tr, err := Create(context.Background(), dir, CreateOptions{Version: v, PieceLength: 32 << 10, Threads: threads,
					Trackers: [][]string{{"http://a/announce", "http://b/announce"}, {"udp://c:1/announce"}}, CreationDate: 1})
				if err != nil {
					t.Fatal(err)
				}
				b, err := tr.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if prev, ok := got[v]; ok && !bytes.Equal(prev, b) {
					t.Fatalf("%s: threads=%d gives other bytes than threads=1", v, threads)
				}
				got[v] = b
			}
		}
		if round > 0 {
			for v, b := range got {
				if !bytes.Equal(want[v], b) {
					t.Fatalf("%s: files written in another order give other bytes", v)
				}
			}
		}
		want = got
	}
}

// writeTreeSeeded writes the same contents each time (seeded by name) in a
// random order.
func writeTreeSeeded(t *testing.T, dir string, files map[string]int) {
	t.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, name := range names {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		seed := sha256.Sum256([]byte(name))
		r := rand.NewChaCha8(seed)
		data := make([]byte, files[name])
		r.Read(data)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCreateLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, corpus)
	tests := []struct {
		v    Version
		want []string // paths in order, pads as ".pad/N"
	}{
		{Hybrid, []string{"a/y", ".pad/32763", "a-b/x", ".pad/32765", "a.txt", ".pad/32767", "empty",
			"one-piece", "one-piece-plus", ".pad/32767", "sub/deep/x", ".pad/31072", "z.bin", ".pad/20423"}},
		{V2, []string{"a/y", "a-b/x", "a.txt", "empty", "one-piece", "one-piece-plus", "sub/deep/x", "z.bin"}},
		// v1 sorts whole paths, as mktorrent does: '-' and '.' sort before '/'.
		{V1, []string{"a-b/x", "a.txt", "a/y", "empty", "one-piece", "one-piece-plus", "sub/deep/x", "z.bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.v.String(), func(t *testing.T) {
			tr, err := Create(context.Background(), dir, CreateOptions{Version: tt.v, PieceLength: 32 << 10})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range tr.Info.Files {
				got = append(got, strings.Join(f.Path, "/"))
				if f.Pad && f.Attr != "p" {
					t.Errorf("pad %v has attr %q, want p", f.Path, f.Attr)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("files = %q\nwant    %q", got, tt.want)
			}
		})
	}
}

func TestCreateRoundTripAndVerify(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	writeTree(t, dir, corpus)
	single := filepath.Join(root, "single.bin")
	writeTree(t, root, map[string]int{"single.bin": 100_001})
	for _, path := range []string{dir, single} {
		for _, v := range []Version{Hybrid, V1, V2} {
			t.Run(filepath.Base(path)+"/"+v.String(), func(t *testing.T) {
				tr, err := Create(context.Background(), path, CreateOptions{Version: v, PieceLength: 16 << 10,
					WebSeeds: []string{"https://example.org/"}, Private: true, Source: "src", Comment: "c"})
				if err != nil {
					t.Fatal(err)
				}
				b, err := tr.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				back, err := ParseTorrent(b)
				if err != nil {
					t.Fatalf("ParseTorrent of what Create made: %v", err)
				}
				if !equalHashes(back.Hashes, tr.Hashes) || back.Info.TotalLength() != tr.Info.TotalLength() ||
					!back.Info.Private || back.Info.Source != "src" || len(back.URLList) != 1 {
					t.Fatalf("round trip: got %+v, want %+v", back.Hashes, tr.Hashes)
				}
				h, err := Parse(b)
				if err != nil || !equalHashes(h, tr.Hashes) {
					t.Fatalf("Parse = %+v, %v; want %+v", h, err, tr.Hashes)
				}
				res, err := Verify(context.Background(), back, path, 2, nil)
				if err != nil || !res.OK() {
					t.Fatalf("Verify of the data just hashed: %+v, %v", res, err)
				}

				// Flip one byte of the largest file: exactly its piece is bad.
				victim := path
				if path == dir {
					victim = filepath.Join(dir, "sub/deep/x")
				}
				flipByte(t, victim, 40_000)
				defer flipByte(t, victim, 40_000)
				res, err = Verify(context.Background(), back, path, 2, nil)
				if err != nil {
					t.Fatal(err)
				}
				if res.OK() || len(res.BadPieces) != 1 {
					t.Fatalf("after flipping a byte: bad pieces %v, want one", res.BadPieces)
				}
				for _, f := range res.Files {
					isVictim := path == single || strings.Join(f.Path, "/") == "sub/deep/x"
					if f.OK == isVictim {
						t.Errorf("%v: OK=%v (%s)", f.Path, f.OK, f.Problem)
					}
				}
			})
		}
	}
}

func equalHashes(a, b Hashes) bool {
	return (a.V1 == nil) == (b.V1 == nil) && (a.V2 == nil) == (b.V2 == nil) &&
		(a.V1 == nil || *a.V1 == *b.V1) && (a.V2 == nil || *a.V2 == *b.V2)
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyMissingAndShort: a missing and a short file are reported and
// the others are good, for a hybrid and for a v1 torrent (whose pieces are
// hashed two at a time where the CPU can).
func TestVerifyMissingAndShort(t *testing.T) {
	for _, v := range []Version{Hybrid, V1} {
		t.Run(v.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			writeTree(t, dir, corpus)
			tr, err := Create(context.Background(), dir, CreateOptions{Version: v, PieceLength: 16 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "z.bin")); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(filepath.Join(dir, "sub/deep/x"), 50_000); err != nil {
				t.Fatal(err)
			}
			res, err := Verify(context.Background(), tr, dir, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			problems := map[string]string{}
			for _, f := range res.Files {
				if !f.OK {
					problems[strings.Join(f.Path, "/")] = f.Problem
				}
			}
			if len(problems) != 2 || problems["z.bin"] != "missing" || problems["sub/deep/x"] != "50000 bytes, want 100000" {
				t.Fatalf("problems = %q", problems)
			}
		})
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) // dir holds a file "f"
		opts    CreateOptions
		wantErr string
		changed bool // the error wraps ErrChanged
	}{
		{name: "symlink", setup: func(t *testing.T, dir string) {
			must(t, os.Symlink("f", filepath.Join(dir, "link")))
		}, wantErr: "link: is a symbolic link"},
		{name: "fifo", setup: func(t *testing.T, dir string) {
			must(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644))
		}, wantErr: "pipe: not a regular file"},
		{name: "only empty files", setup: func(t *testing.T, dir string) {
			must(t, os.Truncate(filepath.Join(dir, "f"), 0))
		}, wantErr: "nothing to share"},
		{name: "piece size not a power of two", opts: CreateOptions{PieceLength: 3 << 14}, wantErr: "want a power of two"},
		{name: "piece size too small", opts: CreateOptions{PieceLength: 8 << 10}, wantErr: "want a power of two from 16384"},
		{name: "grew after listing", setup: func(t *testing.T, dir string) {
			testHookListed = func() { appendTo(t, filepath.Join(dir, "f"), "more") }
		}, changed: true},
		{name: "truncated after listing", setup: func(t *testing.T, dir string) {
			testHookListed = func() { must(t, os.Truncate(filepath.Join(dir, "f"), 10)) }
		}, changed: true},
		{name: "written while hashed", setup: func(t *testing.T, dir string) {
			testHookHashed = func() {
				p := filepath.Join(dir, "f")
				flipByte(t, p, 5)
				// Same size; the modification time tells.
				must(t, os.Chtimes(p, time.Now(), time.Now().Add(time.Second)))
			}
		}, changed: true},
		{name: "removed while hashed", setup: func(t *testing.T, dir string) {
			testHookHashed = func() { must(t, os.Remove(filepath.Join(dir, "f"))) }
		}, changed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() { testHookListed, testHookHashed = nil, nil })
			dir := filepath.Join(t.TempDir(), "data")
			writeTree(t, dir, map[string]int{"f": 50_000})
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			_, err := Create(context.Background(), dir, tt.opts)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if tt.changed && !errors.Is(err, ErrChanged) {
				t.Fatalf("error %q does not wrap ErrChanged", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCreateCancel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, map[string]int{"f": 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Create(ctx, dir, CreateOptions{PieceLength: 16 << 10}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestCreateProgress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, map[string]int{"f": 300_000, "g": 5})
	var last, calls int64
	_, err := Create(context.Background(), dir, CreateOptions{PieceLength: 16 << 10, Progress: func(done, total int64) {
		if done < last || done > total {
			t.Errorf("progress %d of %d after %d", done, total, last)
		}
		last = done
		calls++
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The data as hashed: each file padded to whole pieces, the last too.
	if want := int64(20 * 16 << 10); last != want || calls == 0 {
		t.Fatalf("last progress %d after %d calls, want %d", last, calls, want)
	}
}

func TestAutoPieceLength(t *testing.T) {
	tests := []struct{ total, want int64 }{
		{1, 16 << 10},
		{2048 * 16 << 10, 16 << 10},
		{2048*16<<10 + 1, 32 << 10},
		{1 << 30, 512 << 10},
		{1 << 40, 16 << 20},
	}
	for _, tt := range tests {
		if got := AutoPieceLength(tt.total); got != tt.want {
			t.Errorf("AutoPieceLength(%d) = %d, want %d", tt.total, got, tt.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(s)
	must(t, err)
	must(t, f.Close())
}

func BenchmarkCreate(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	writeTree(b, dir, map[string]int{"f": 64 << 20})
	for _, v := range []Version{V1, V2, Hybrid} {
		for _, threads := range []int{1, 2} {
			b.Run(v.String()+"/threads="+string(rune('0'+threads)), func(b *testing.B) {
				b.SetBytes(64 << 20)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Create(context.Background(), dir, CreateOptions{Version: v, PieceLength: 1 << 20, Threads: threads}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPiece measures hashing one 1 MiB piece already in memory, for
// v1, v2 and both; it must not allocate.
func BenchmarkPiece(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	writeTree(b, dir, map[string]int{"f": 4 << 20})
	for _, tc := range []struct {
		name   string
		v1, v2 bool
	}{{"v1", true, false}, {"v2", false, true}, {"hybrid", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			j := &hashJob{files: []File{{Path: []string{"f"}, Length: 4 << 20}}, disk: []string{filepath.Join(dir, "f")},
				pieceLen: 1 << 20, v1: tc.v1, v2: tc.v2}
			w := newWorker(j)
			defer w.close()
			res := &hashResult{v1: make([]byte, 20*4), v2: make([]byte, 32*4)}
			b.SetBytes(j.pieceLen)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.piece(1, res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestPieceDoesNotAllocate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, map[string]int{"f": 1 << 20})
	j := &hashJob{files: []File{{Path: []string{"f"}, Length: 1 << 20}}, disk: []string{filepath.Join(dir, "f")},
		pieceLen: 256 << 10, v1: true, v2: true}
	w := newWorker(j)
	defer w.close()
	res := &hashResult{v1: make([]byte, 20*4), v2: make([]byte, 32*4)}
	if _, err := w.piece(0, res); err != nil { // opens the file
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { w.piece(2, res) }); n != 0 {
		t.Fatalf("hashing a piece allocates %v times, want 0", n)
	}
	if !haveSHA1x2 {
		return
	}
	j.v2 = false
	w = newWorker(j)
	defer w.close()
	if !w.piecePair(0, res) {
		t.Fatal("piecePair(0) did not hash pieces 0 and 1")
	}
	if n := testing.AllocsPerRun(20, func() { w.piecePair(2, res) }); n != 0 {
		t.Fatalf("hashing two v1 pieces side by side allocates %v times, want 0", n)
	}
}

// TestCreateOneFileDirectoryHasNoPad: libtorrent pads only between two or
// more files, so a directory of one file gets no pad, even at the end.
func TestCreateOneFileDirectoryHasNoPad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, map[string]int{"only": 33_333})
	tr, err := Create(context.Background(), dir, CreateOptions{PieceLength: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Info.Files) != 1 || tr.Info.Single {
		t.Fatalf("files = %+v (single %v), want one file in the multi-file form", tr.Info.Files, tr.Info.Single)
	}
}

// TestFileCutShort: a file truncated while a worker has it open is an
// error wrapping ErrChanged when the worker reads past its new end.
func TestFileCutShort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, map[string]int{"f": 2 << 20})
	p := filepath.Join(dir, "f")
	st, err := os.Lstat(p)
	must(t, err)
	j := &hashJob{files: []File{{Path: []string{"f"}, Length: 2 << 20}}, disk: []string{p},
		listed: []os.FileInfo{st}, pieceLen: 16 << 10, v1: true, v2: true}
	res, err := j.run(context.Background()) // the whole job first, as a control
	if err != nil {
		t.Fatal(err)
	}
	w := newWorker(j)
	defer w.close()
	if _, err := w.piece(0, res); err != nil { // opens the file
		t.Fatal(err)
	}
	must(t, os.Truncate(p, 0))
	if _, err := w.piece(100, res); !errors.Is(err, ErrChanged) {
		t.Fatalf("reading a piece of a file cut short while open: %v, want ErrChanged", err)
	}
}

// TestCreateMatchesWholePieceReference checks the hashes Create makes, read
// in chunks of readBytes, against a reference that holds all the data in
// memory: v1 pieces are SHA-1 of the concatenated files and pads, v2 trees
// are built level by level over zero-padded leaves (BEP 52). The pieces
// are longer than a chunk, and v1 pieces span files and chunk boundaries.
// v1 is checked with pieces hashed one at a time and two at a time.
func TestCreateMatchesWholePieceReference(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeTreeSeeded(t, dir, map[string]int{
		"a":     readBytes + 5,
		"b":     3*readBytes - 1,
		"c/big": 5*256<<10 + 3*BlockSize + 7,
		"d":     1,
		"e":     0,
		"f":     2 * 256 << 10,
	})
	defer func(was bool) { useSHA1x2 = was }(useSHA1x2)
	for _, pairs := range []bool{false, true} {
		if pairs && !haveSHA1x2 {
			t.Log("no SHA extensions: v1 pieces two at a time are not tested")
			continue
		}
		useSHA1x2 = pairs
		for _, pieceLen := range []int64{16 << 10, readBytes, 256 << 10, 1 << 20} {
			for _, v := range []Version{Hybrid, V1, V2} {
				t.Run(fmt.Sprintf("%s/%dK/pairs=%v", v, pieceLen>>10, pairs), func(t *testing.T) {
					tr, err := Create(context.Background(), dir, CreateOptions{Version: v, PieceLength: pieceLen, Threads: 3})
					if err != nil {
						t.Fatal(err)
					}
					var all []byte // the v1 data: files and pads
					for _, f := range tr.Info.Files {
						data := make([]byte, f.Length)
						if !f.Pad {
							data, err = os.ReadFile(filepath.Join(append([]string{dir}, f.Path...)...))
							must(t, err)
							if v != V1 {
								checkV2File(t, tr, f, data, pieceLen)
							}
						}
						all = append(all, data...)
					}
					if v == V2 {
						return
					}
					var want []byte
					for off := 0; off < len(all); off += int(pieceLen) {
						h := sha1.Sum(all[off:min(off+int(pieceLen), len(all))])
						want = append(want, h[:]...)
					}
					if !bytes.Equal(tr.Info.Pieces, want) {
						t.Errorf("v1 pieces differ from SHA-1 of the whole pieces")
					}
				})
			}
		}
	}
}

// checkV2File checks f's pieces root and piece layer against a tree built
// level by level from the file's data.
func checkV2File(t *testing.T, tr *Torrent, f File, data []byte, pieceLen int64) {
	t.Helper()
	if len(data) == 0 {
		if f.PiecesRoot != (hash32{}) {
			t.Errorf("%v: empty file has pieces root %x", f.Path, f.PiecesRoot)
		}
		return
	}
	var leaves []hash32
	for off := 0; off < len(data); off += BlockSize {
		leaves = append(leaves, sha256.Sum256(data[off:min(off+BlockSize, len(data))]))
	}
	level := make([]hash32, nextPow2(len(leaves))) // zero leaves past the end
	copy(level, leaves)
	perPiece := int(pieceLen / BlockSize)
	var layer []byte
	for width := 1; len(level) > 1; width *= 2 {
		if width == perPiece {
			for i := range (int64(len(data)) + pieceLen - 1) / pieceLen {
				layer = append(layer, level[i][:]...)
			}
		}
		next := make([]hash32, len(level)/2)
		for i := range next {
			next[i] = sha256Pair(level[2*i], level[2*i+1])
		}
		level = next
	}
	if f.PiecesRoot != level[0] {
		t.Errorf("%v: pieces root %x, want %x", f.Path, f.PiecesRoot, level[0])
	}
	if int64(len(data)) <= pieceLen {
		if _, ok := tr.PieceLayers[f.PiecesRoot]; ok {
			t.Errorf("%v: a file of one piece has a piece layer", f.Path)
		}
		return
	}
	if got := tr.PieceLayers[f.PiecesRoot]; !bytes.Equal(got, layer) {
		t.Errorf("%v: piece layer of %d bytes differs from the reference's %d", f.Path, len(got), len(layer))
	}
}
