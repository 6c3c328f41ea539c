package bittorrent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Real hashes: metainfo/testdata's v1.torrent and v2.torrent, per libtorrent.
const (
	fullV2 = "e20aa2eaef25c3a427a73d1170eb620afc4f00e6cb1d206ba77a2aea7ead44b7"
	v1     = "e938faabb0721c700e7b6b0b497bde437d9053c0"
)

func TestParseInfoHash(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // hex of the result; "" means an error
	}{
		{"v1", v1, v1},
		{"v1 upper case", strings.ToUpper(v1), v1},
		{"full v2 is truncated", fullV2, fullV2[:40]},
		{"full v2 upper case", strings.ToUpper(fullV2), fullV2[:40]},
		{"empty", "", ""},
		{"one short", v1[:39], ""},
		{"one long", v1 + "0", ""},
		{"between the lengths", fullV2[:50], ""},
		{"v2 one long", fullV2 + "0", ""},
		{"not hex", "zz" + v1[2:], ""},
		{"not hex in the v2 tail", fullV2[:60] + "zzzz", ""},
		{"0x prefix", "0x" + v1[2:], ""},
		{"base32", "5E4PVK5QOIOHADT3NMFUS666IN6ZAU6A", ""},
		{"spaces", " " + v1[1:], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInfoHash(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrBadInfoHash) {
					t.Errorf("ParseInfoHash(%q) = %v, %v; want ErrBadInfoHash", tt.in, got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("ParseInfoHash(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseInfoHashV2(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "" means an error
	}{
		{"lower", fullV2, fullV2},
		{"upper", strings.ToUpper(fullV2), fullV2},
		{"v1 length", v1, ""},
		{"truncated v2", fullV2[:40], ""},
		{"too long", fullV2 + "00", ""},
		{"not hex", "zz" + fullV2[2:], ""},
		{"starts like a multihash", "1220" + fullV2[4:], "1220" + fullV2[4:]}, // 64 digits are just a hash
		{"multihash prefixed", "1220" + fullV2, ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInfoHashV2(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrBadInfoHashV2) || !got.IsZero() {
					t.Errorf("ParseInfoHashV2(%q) = %v, %v; want zero and ErrBadInfoHashV2", tt.in, got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("ParseInfoHashV2(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	h, err := ParseInfoHashV2(fullV2)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Truncate().String(); got != fullV2[:40] {
		t.Errorf("Truncate() = %s, want the first 20 bytes %s", got, fullV2[:40])
	}
	var zero InfoHashV2
	if !zero.IsZero() || h.IsZero() || !zero.Truncate().IsZero() {
		t.Error("IsZero disagrees with the zero value")
	}
	// A hash that is zero only in its first 20 bytes is still a hash.
	var tail InfoHashV2
	tail[31] = 1
	if tail.IsZero() || !tail.Truncate().IsZero() {
		t.Errorf("IsZero(%v) = true or its truncation is not zero", tail)
	}
}

// TestJSON checks the text forms inside a struct, as the registry's entries
// and the admin API use them: hex both ways, and omitzero leaves an absent
// hash out.
func TestJSON(t *testing.T) {
	type pair struct {
		V1 InfoHash   `json:"v1,omitzero"`
		V2 InfoHashV2 `json:"v2,omitzero"`
	}
	ih, _ := ParseInfoHash(v1)
	h, _ := ParseInfoHashV2(fullV2)
	tests := []struct {
		name string
		in   pair
		want string
	}{
		{"both", pair{ih, h}, `{"v1":"` + v1 + `","v2":"` + fullV2 + `"}`},
		{"v2 only", pair{V2: h}, `{"v2":"` + fullV2 + `"}`},
		{"none", pair{}, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil || string(b) != tt.want {
				t.Fatalf("json.Marshal = %s, %v; want %s", b, err, tt.want)
			}
			var back pair
			if err := json.Unmarshal(b, &back); err != nil || back != tt.in {
				t.Errorf("round trip = %+v, %v; want %+v", back, err, tt.in)
			}
		})
	}
	var p pair
	if err := json.Unmarshal([]byte(`{"v2":"`+v1+`"}`), &p); !errors.Is(err, ErrBadInfoHashV2) {
		t.Errorf("a 40-digit v2 in JSON: error = %v, want ErrBadInfoHashV2", err)
	}
}

// FuzzParseInfoHash checks both parsers against each other and against the
// text forms: no panic, a parsed hash prints as the input in lower case,
// and a 64-digit input parses as v2 exactly when it parses as a truncated
// hash.
func FuzzParseInfoHash(f *testing.F) {
	f.Add(v1)                          // a v1 hash
	f.Add(strings.ToUpper(fullV2))     // a v2 hash, upper case
	f.Add(fullV2[:63] + "g")           // one bad digit at the very end
	f.Add("")                          // nothing
	f.Add(strings.Repeat("é", 20))     // 40 bytes, not hex
	f.Add("urn:btmh:1220" + fullV2)    // a magnet's multihash, not a bare hash
	f.Add(strings.Repeat("0", 40))     // the zero hash parses; it is the registry that refuses it
	f.Add(strings.Repeat("\xff", 200)) // long and unprintable: an error quotes a bounded part
	f.Fuzz(func(t *testing.T, s string) {
		ih, err := ParseInfoHash(s)
		h2, err2 := ParseInfoHashV2(s)
		if err == nil {
			if len(s) != 40 && len(s) != 64 {
				t.Fatalf("ParseInfoHash(%q) accepted %d characters", s, len(s))
			}
			if got := ih.String(); got != strings.ToLower(s[:40]) {
				t.Fatalf("ParseInfoHash(%q) = %s", s, got)
			}
			var back InfoHash
			if txt, _ := ih.MarshalText(); back.UnmarshalText(txt) != nil || back != ih {
				t.Fatalf("text round trip of %s = %s", ih, back)
			}
		} else if !errors.Is(err, ErrBadInfoHash) {
			t.Fatalf("ParseInfoHash(%q) error %v does not wrap ErrBadInfoHash", s, err)
		}
		if err2 == nil {
			if got := h2.String(); got != strings.ToLower(s) {
				t.Fatalf("ParseInfoHashV2(%q) = %s", s, got)
			}
			if err != nil || h2.Truncate() != ih {
				t.Fatalf("ParseInfoHash(%q) = %s, %v; want the truncated v2 hash %s", s, ih, err, h2.Truncate())
			}
		} else if !errors.Is(err2, ErrBadInfoHashV2) {
			t.Fatalf("ParseInfoHashV2(%q) error %v does not wrap ErrBadInfoHashV2", s, err2)
		}
		if len(s) == 64 && (err == nil) != (err2 == nil) {
			t.Fatalf("%q: ParseInfoHash error %v, ParseInfoHashV2 error %v: they disagree", s, err, err2)
		}
		// Errors quote at most 80 bytes of the input (each up to 4 when escaped).
		for _, e := range []error{err, err2} {
			if e != nil && len(e.Error()) > 400 {
				t.Fatalf("an error of %d bytes for %d bytes of input", len(e.Error()), len(s))
			}
		}
	})
}
