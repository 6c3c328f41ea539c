package metainfo

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/bencode"
)

// makeTorrent creates a torrent of the corpus and returns it decoded, for
// a test to damage.
func makeTorrent(t *testing.T, v Version) map[string]any {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	writeTree(t, dir, corpus)
	tr, err := Create(context.Background(), dir, CreateOptions{Version: v, PieceLength: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := bencode.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func info(m map[string]any) map[string]any { return m["info"].(map[string]any) }

func TestParseTorrentRejects(t *testing.T) {
	tests := []struct {
		name    string
		v       Version
		damage  func(m map[string]any)
		wantErr string
	}{
		{"path escapes with ..", V1, func(m map[string]any) {
			info(m)["files"].([]any)[0].(map[string]any)["path"] = []any{"..", "etc", "passwd"}
		}, `files[0]: path "../etc/passwd": not a file name`},
		{"slash in a component", V1, func(m map[string]any) {
			info(m)["files"].([]any)[0].(map[string]any)["path"] = []any{"a/b"}
		}, "holds a slash"},
		{"name is ..", V1, func(m map[string]any) { info(m)["name"] = ".." }, `name "..": not a file name`},
		{"negative length", V1, func(m map[string]any) {
			info(m)["files"].([]any)[0].(map[string]any)["length"] = int64(-1)
		}, "files[0]: length -1 out of range"},
		{"a piece hash short", V1, func(m map[string]any) {
			p := info(m)["pieces"].(string)
			info(m)["pieces"] = p[:len(p)-20]
		}, "pieces has"},
		{"piece length zero", V1, func(m map[string]any) { info(m)["piece length"] = int64(0) }, "piece length 0"},
		{"piece length huge", V1, func(m map[string]any) { info(m)["piece length"] = int64(1) << 40 }, "piece length 1099511627776"},
		{"v2 piece length not a power of two", V2, func(m map[string]any) { info(m)["piece length"] = int64(3 << 14) },
			"needs a power of two"},
		{"piece layer missing", V2, func(m map[string]any) { m["piece layers"] = map[string]any{} }, "piece layers: none for one-piece"},
		{"piece layer wrong", V2, func(m map[string]any) {
			for k, v := range m["piece layers"].(map[string]any) {
				b := []byte(v.(string))
				b[0] ^= 1
				m["piece layers"].(map[string]any)[k] = string(b)
			}
		}, "does not hash to the file's pieces root"},
		{"pieces root short", V2, func(m map[string]any) {
			leaf(m, "z.bin")["pieces root"] = "short"
		}, "z.bin: pieces root is 5 bytes, want 32"},
		{"tree file without length", V2, func(m map[string]any) { delete(leaf(m, "z.bin"), "length") }, "z.bin: no length"},
		{"tree dot-dot", V2, func(m map[string]any) {
			ft := info(m)["file tree"].(map[string]any)
			ft[".."] = ft["z.bin"]
		}, `file tree: ..: not a file name`},
		{"hybrid lists differ", Hybrid, func(m map[string]any) {
			info(m)["files"].([]any)[0].(map[string]any)["path"] = []any{"other"}
		}, "v1 files and the v2 file tree differ"},
		{"hybrid without pads", Hybrid, func(m map[string]any) {
			var kept []any
			for _, f := range info(m)["files"].([]any) {
				if f.(map[string]any)["attr"] != "p" {
					kept = append(kept, f)
				}
			}
			info(m)["files"] = kept
		}, ""}, // the piece count no longer fits, or the lists differ
		{"unknown meta version", V2, func(m map[string]any) { info(m)["meta version"] = int64(3) }, "unknown meta version 3"},
		{"url-list not strings", V1, func(m map[string]any) { m["url-list"] = []any{int64(1)} }, "url-list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := makeTorrent(t, tt.v)
			tt.damage(m)
			b, err := bencode.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseTorrent(b)
			if err == nil {
				t.Fatal("ParseTorrent accepted it")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// leaf returns the file entry of a top-level file in the file tree.
func leaf(m map[string]any, name string) map[string]any {
	return info(m)["file tree"].(map[string]any)[name].(map[string]any)[""].(map[string]any)
}

func TestParseTorrentFixtures(t *testing.T) {
	for _, name := range []string{"v1", "v2", "hybrid"} {
		tr, err := ReadTorrent(filepath.Join("testdata", name+".torrent"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h, err := ReadFile(filepath.Join("testdata", name+".torrent"))
		if err != nil || !equalHashes(h, tr.Hashes) {
			t.Fatalf("%s: ReadFile = %+v, %v; ReadTorrent hashes %+v", name, h, err, tr.Hashes)
		}
		if tr.Info.Name != "payload" || tr.Info.TotalLength() == 0 {
			t.Fatalf("%s: name %q, length %d", name, tr.Info.Name, tr.Info.TotalLength())
		}
	}
}

func TestMagnet(t *testing.T) {
	m := makeTorrent(t, Hybrid)
	m["announce"] = "http://t/a"
	m["announce-list"] = []any{[]any{"http://t/a", "udp://u:1"}, []any{"http://backup/a"}}
	m["url-list"] = "https://seed.example/x y"
	b, err := bencode.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseTorrent(b)
	if err != nil {
		t.Fatal(err)
	}
	link := tr.Magnet()
	want := "magnet:?xt=urn:btih:" + tr.Hashes.V1.String() + "&xt=urn:btmh:1220" + tr.Hashes.V2.String() +
		"&dn=data&tr=http%3A%2F%2Ft%2Fa&tr=udp%3A%2F%2Fu%3A1&tr=http%3A%2F%2Fbackup%2Fa&ws=https%3A%2F%2Fseed.example%2Fx+y"
	if link != want {
		t.Fatalf("Magnet() =\n%s\nwant\n%s", link, want)
	}
	back, err := ParseMagnet(link)
	if err != nil || !equalHashes(back, tr.Hashes) || back.Name != "data" {
		t.Fatalf("ParseMagnet(Magnet()) = %+v, %v", back, err)
	}
}

func TestMerkleRootMatchesReference(t *testing.T) {
	// reference builds the whole tree level by level, as BEP 52 describes.
	reference := func(leaves []hash32, width int) hash32 {
		level := make([]hash32, width)
		copy(level, leaves)
		for len(level) > 1 {
			next := make([]hash32, len(level)/2)
			for i := range next {
				next[i] = sha256Pair(level[2*i], level[2*i+1])
			}
			level = next
		}
		return level[0]
	}
	for _, n := range []int{1, 2, 3, 5, 8, 13} {
		for _, width := range []int{nextPow2(n), nextPow2(n) * 4} {
			leaves := make([]hash32, n)
			nodes := make([]byte, 32*n)
			for i := range leaves {
				leaves[i] = sha256Pair(hash32{byte(i)}, hash32{})
				copy(nodes[32*i:], leaves[i][:])
			}
			if got, want := merkleRoot(nodes, n, width, hash32{}), reference(leaves, width); got != want {
				t.Errorf("n=%d width=%d: root %x, want %x", n, width, got, want)
			}
		}
	}
}

func sha256Pair(a, b hash32) hash32 {
	return sha256.Sum256(append(a[:], b[:]...))
}

// checkParseTorrent checks the properties FuzzParse asks of ParseTorrent:
// whatever it accepts, Parse agrees on, and writing it back keeps the
// hashes.
func checkParseTorrent(t *testing.T, data []byte) {
	tr, err := ParseTorrent(data)
	if err != nil {
		return
	}
	h, err := Parse(data)
	if err != nil || !equalHashes(h, tr.Hashes) {
		t.Fatalf("ParseTorrent hashes %+v, Parse %+v, %v", tr.Hashes, h, err)
	}
	b, err := tr.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := ParseTorrent(b)
	if err != nil || !equalHashes(back.Hashes, tr.Hashes) {
		t.Fatalf("ParseTorrent(Marshal()) = %v", err)
	}
	if tr.Info.TotalLength() < 0 || len(tr.Info.Files) > MaxFiles {
		t.Fatalf("accepted %d files of %d bytes", len(tr.Info.Files), tr.Info.TotalLength())
	}
}
