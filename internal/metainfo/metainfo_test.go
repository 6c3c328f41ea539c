package metainfo

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/bittorrent"
)

// TestReadFileMatchesLibtorrent checks our hashes against the ones
// libtorrent computed for the fixtures (testdata/hashes.txt).
func TestReadFileMatchesLibtorrent(t *testing.T) {
	f, err := os.Open("testdata/hashes.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			t.Fatalf("hashes.txt: %q: want name, v1, v2", line)
		}
		name, v1, v2 := fields[0], fields[1], fields[2]
		n++
		t.Run(name, func(t *testing.T) {
			h, err := ReadFile(filepath.Join("testdata", name+".torrent"))
			if err != nil {
				t.Fatal(err)
			}
			if got := hexOr(h.V1 != nil, func() string { return h.V1.String() }); got != v1 {
				t.Errorf("v1 = %s, want %s", got, v1)
			}
			if got := hexOr(h.V2 != nil, func() string { return h.V2.String() }); got != v2 {
				t.Errorf("v2 = %s, want %s", got, v2)
			}
			if h.Name != "payload" {
				t.Errorf("name = %q, want payload", h.Name)
			}
		})
	}
	if n != 3 {
		t.Fatalf("read %d fixtures, want 3", n)
	}
}

func hexOr(ok bool, f func() string) string {
	if !ok {
		return "-"
	}
	return f()
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, data, wantErr string }{
		{"not bencode", "hello", "not a .torrent file"},
		{"no info", "d8:announce3:urle", "no info dictionary"},
		{"info not a dict", "d4:info3:abce", "info dictionary"},
		{"ragged pieces", "d4:infod4:name1:x6:pieces3:abcee", "not a multiple of 20"},
		{"no pieces no v2", "d4:infod4:name1:xee", "neither v1 pieces nor meta version 2"},
		{"unknown meta version", "d4:infod12:meta versioni3e4:name1:xee", "unknown meta version 3"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Parse(%q) = %v, want error containing %q", tt.name, tt.data, err, tt.wantErr)
		}
	}
}

func TestParseArg(t *testing.T) {
	const v1 = "e938faabb0721c700e7b6b0b497bde437d9053c0"
	const v2 = "e20aa2eaef25c3a427a73d1170eb620afc4f00e6cb1d206ba77a2aea7ead44b7"
	tests := []struct {
		arg, wantV1, wantV2, wantName, wantErr string
	}{
		{arg: v1, wantV1: v1},
		{arg: strings.ToUpper(v1), wantV1: v1},
		{arg: v2, wantV2: v2},
		{arg: "magnet:?xt=urn:btih:" + v1 + "&dn=Show+1", wantV1: v1, wantName: "Show 1"},
		{arg: "magnet:?xt=urn:btih:5E4PVK5QOIOHADT3NMFUS666IN6ZAU6A", wantV1: v1},
		{arg: "magnet:?xt=urn:btmh:1220" + v2, wantV2: v2},
		{arg: "magnet:?xt=urn:btih:" + v1 + "&xt=urn:btmh:1220" + v2, wantV1: v1, wantV2: v2},
		{arg: "testdata/v1.torrent", wantV1: v1, wantName: "payload"},
		{arg: "magnet:?dn=x", wantErr: "no urn:btih:"},
		{arg: "magnet:?xt=urn:btih:abc", wantErr: "40 hex or 32 base32"},
		{arg: "magnet:?xt=urn:btmh:1114" + v2, wantErr: "SHA-256 multihash"},
		{arg: "nosuchfile.torrent", wantErr: "not a magnet link"},
		{arg: "testdata/hashes.txt", wantErr: "not a .torrent file"},
	}
	for _, tt := range tests {
		h, err := ParseArg(tt.arg)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseArg(%q) = %v, want error containing %q", tt.arg, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseArg(%q): %v", tt.arg, err)
			continue
		}
		gotV1 := ""
		if h.V1 != nil {
			gotV1 = h.V1.String()
		}
		gotV2 := ""
		if h.V2 != nil {
			gotV2 = h.V2.String()
		}
		if gotV1 != tt.wantV1 || gotV2 != tt.wantV2 || h.Name != tt.wantName {
			t.Errorf("ParseArg(%q) = v1 %q v2 %q name %q, want %q %q %q", tt.arg, gotV1, gotV2, h.Name, tt.wantV1, tt.wantV2, tt.wantName)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"v1", "v2", "hybrid"} {
		data, err := os.ReadFile(filepath.Join("testdata", name+".torrent"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data) // a real torrent made by libtorrent
	}
	f.Add([]byte("d4:infod6:pieces20:aaaaaaaaaaaaaaaaaaaaee")) // minimal v1
	f.Add([]byte("d4:infod12:meta versioni2eee"))              // minimal v2
	// A whole single-file v1 torrent of 3 bytes.
	f.Add([]byte("d4:infod6:lengthi3e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))
	// A v2 file tree with a nested directory and an empty file.
	f.Add([]byte("d4:infod9:file treed1:ad1:bd0:d6:lengthi0eeee1:cd0:d6:lengthi1e11:pieces root32:" +
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbeee12:meta versioni2e4:name1:x12:piece lengthi16384eee"))
	// Hybrid torrents warden made are in testdata/fuzz/FuzzParse.
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Parse(data)
		if err == nil && h.V1 == nil && h.V2 == nil {
			t.Fatal("Parse succeeded without a hash")
		}
		checkParseTorrent(t, data)
	})
}

func FuzzParseMagnet(f *testing.F) {
	f.Add("magnet:?xt=urn:btih:e938faabb0721c700e7b6b0b497bde437d9053c0&dn=x") // v1 hex
	f.Add("magnet:?xt=urn:btih:5E4PVK5QOIOHADT3NMFUS666IN6ZAU6A")              // v1 base32
	f.Add("magnet:?xt=urn:btmh:1220e20aa2eaef25c3a427a73d1170eb620afc4f00e6cb1d206ba77a2aea7ead44b7")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseMagnet(s)
		if err == nil && h.V1 == nil && h.V2 == nil {
			t.Fatal("ParseMagnet succeeded without a hash")
		}
	})
}

func TestParseHash(t *testing.T) {
	const v2 = "e20aa2eaef25c3a427a73d1170eb620afc4f00e6cb1d206ba77a2aea7ead44b7"
	tests := []struct {
		in, wantV1, wantV2 string // both "" means an error
	}{
		{in: v2[:40], wantV1: v2[:40]}, // 40 digits are a v1 hash, even if they begin a v2 one
		{in: v2, wantV2: v2},           // 64 digits are kept whole, not truncated
		{in: "zz" + v2[2:]},
		{in: v2[:50]},
		{in: ""},
	}
	for _, tt := range tests {
		h, err := ParseHash(tt.in)
		if tt.wantV1 == "" && tt.wantV2 == "" {
			if !errors.Is(err, bittorrent.ErrBadInfoHash) {
				t.Errorf("ParseHash(%q) error = %v, want ErrBadInfoHash", tt.in, err)
			}
			continue
		}
		if err != nil || (h.V1 != nil) != (tt.wantV1 != "") || (h.V2 != nil) != (tt.wantV2 != "") ||
			h.V1 != nil && h.V1.String() != tt.wantV1 || h.V2 != nil && h.V2.String() != tt.wantV2 {
			t.Errorf("ParseHash(%q) = %+v, %v; want v1 %q v2 %q", tt.in, h, err, tt.wantV1, tt.wantV2)
		}
	}
}
