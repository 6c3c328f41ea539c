package webseed

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		pad     int64
		refused bool
	}{
		{in: "ep1.mkv", name: "ep1.mkv"},
		{in: "show/ep 1.mkv", name: "show/ep 1.mkv"},
		{in: "show/ep/sub/file", name: "show/ep/sub/file"},
		{in: "show/ep/.pad/16383", name: "show/ep", pad: 16383},
		{in: "ep/.pad/1", name: "ep", pad: 1},
		{in: "ep/.pad/67108864", name: "ep", pad: 64 << 20},
		{in: "ep/.pad/67108865", refused: true}, // longer than any pad
		{in: "ep/.pad/0", refused: true},
		{in: "ep/.pad/012", refused: true},
		{in: "ep/.pad/-1", refused: true},
		{in: "ep/.pad/+1", refused: true},
		{in: "ep/.pad/1x", refused: true},
		{in: "ep/.pad/", refused: true},
		{in: "ep/.pad", refused: true},
		{in: ".pad/10", refused: true}, // a pad needs its torrent's directory
		{in: "ep/.pad/10/x", refused: true},
		{in: "ep/.pad/.pad/10", refused: true},
		{in: "", refused: true},
		{in: ".", refused: true},
		{in: "..", refused: true},
		{in: "../etc/passwd", refused: true},
		{in: "show/../../etc/passwd", refused: true},
		{in: "show/./ep", refused: true},
		{in: "/etc/passwd", refused: true},
		{in: "show//ep", refused: true},
		{in: "show/", refused: true},
		{in: ".hidden", refused: true},
		{in: "show/.git/config", refused: true},
		{in: "..\\..\\etc\\passwd", refused: true},
		{in: "a\x00b", refused: true},
		{in: strings.Repeat("a", 256), refused: true},
		{in: strings.Repeat("a/", 2100) + "a", refused: true},
	}
	for _, tt := range tests {
		name, pad, err := parsePath(tt.in)
		if tt.refused {
			if err == nil {
				t.Errorf("parsePath(%q) = %q, %d, want refused", tt.in, name, pad)
			}
			continue
		}
		if err != nil || name != tt.name || pad != tt.pad {
			t.Errorf("parsePath(%q) = %q, %d, %v; want %q, %d", tt.in, name, pad, err, tt.name, tt.pad)
		}
	}
}

// FuzzParsePath checks that whatever a client sends, a path accepted
// stays below the directory it is joined to and names no hidden file.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"ep1.mkv", "show/ep/.pad/16383", "../x", "a/../../b", ".pad/1", "a/.pad/0", // ordinary and refused
		"a/.pad/99999999", "%2e%2e/x", "a\\b", "a//b", "ü/ß.mkv", // edges: long pad, still-encoded dots, separators
		"a/.pad/+1", // once taken for a pad of 1: strconv.ParseInt reads a sign
	} {
		f.Add(s)
	}
	const root = "/srv/content"
	f.Fuzz(func(t *testing.T, p string) {
		name, pad, err := parsePath(p)
		if err != nil {
			return
		}
		if !fs.ValidPath(name) || name == "." {
			t.Fatalf("parsePath(%q) = %q: not a valid path", p, name)
		}
		joined := filepath.Join(root, name)
		if !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("parsePath(%q) = %q, which joins to %q outside %s", p, name, joined, root)
		}
		for elem := range strings.SplitSeq(name, "/") {
			if strings.HasPrefix(elem, ".") {
				t.Fatalf("parsePath(%q) = %q: a hidden element", p, name)
			}
		}
		if pad < 0 || pad > maxPad {
			t.Fatalf("parsePath(%q): pad %d", p, pad)
		}
		if pad > 0 && !strings.HasSuffix(p, "/.pad/"+strings.TrimPrefix(p[len(name):], "/.pad/")) {
			t.Fatalf("parsePath(%q) = %q, pad %d: not a pad path", p, name, pad)
		}
	})
}
