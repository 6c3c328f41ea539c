package bencode

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestUnmarshalAny(t *testing.T) {
	tests := []struct {
		name, in string
		want     any
	}{
		{name: "zero", in: "i0e", want: int64(0)},
		{name: "positive", in: "i42e", want: int64(42)},
		{name: "negative", in: "i-42e", want: int64(-42)},
		{name: "max int64", in: "i9223372036854775807e", want: int64(math.MaxInt64)},
		{name: "min int64", in: "i-9223372036854775808e", want: int64(math.MinInt64)},
		{name: "empty string", in: "0:", want: ""},
		{name: "string", in: "4:spam", want: "spam"},
		{name: "binary string", in: "3:\x00\xff:", want: "\x00\xff:"},
		{name: "empty list", in: "le", want: []any{}},
		{name: "list", in: "l4:spami7ee", want: []any{"spam", int64(7)}},
		{name: "nested list", in: "llelee", want: []any{[]any{}, []any{}}},
		{name: "empty dict", in: "de", want: map[string]any{}},
		{name: "dict", in: "d3:cow3:moo4:spam4:eggse", want: map[string]any{"cow": "moo", "spam": "eggs"}},
		{name: "empty key", in: "d0:i1ee", want: map[string]any{"": int64(1)}},
		{name: "keys sorted as bytes", in: "d1:Bi1e1:ai2e2:abi3e1:\xffi4ee", want: map[string]any{"B": int64(1), "a": int64(2), "ab": int64(3), "\xff": int64(4)}},
		{name: "dict of list", in: "d4:spaml1:a1:bee", want: map[string]any{"spam": []any{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			if err := Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Unmarshal(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// syntaxTests are inputs every destination must reject with the same error,
// since the whole input is checked before anything is stored.
var syntaxTests = []struct {
	name, in, wantErr string
}{
	{"empty input", "", "bencode: at offset 0: unexpected end of input"},
	{"bad first byte", "x", `bencode: at offset 0: invalid byte 'x' at start of value`},
	{"lone e", "e", `bencode: at offset 0: invalid byte 'e' at start of value`},
	{"integer leading zero", "i03e", "bencode: at offset 1: integer has leading zero"},
	{"integer double zero", "i00e", "bencode: at offset 1: integer has leading zero"},
	{"negative leading zero", "i-03e", "bencode: at offset 2: integer has leading zero"},
	{"negative zero", "i-0e", "bencode: at offset 1: integer is negative zero"},
	{"empty integer", "ie", "bencode: at offset 1: integer has no digits"},
	{"sign only", "i-e", "bencode: at offset 2: integer has no digits"},
	{"plus sign", "i+1e", `bencode: at offset 1: invalid byte '+' in integer`},
	{"double minus", "i--1e", `bencode: at offset 2: invalid byte '-' in integer`},
	{"space in integer", "i 1e", `bencode: at offset 1: invalid byte ' ' in integer`},
	{"float", "i1.5e", `bencode: at offset 2: invalid byte '.' in integer`},
	{"unterminated integer", "i12", "bencode: at offset 3: unexpected end of input"},
	{"integer no end", "i", "bencode: at offset 1: unexpected end of input"},
	{"length leading zero", "03:abc", "bencode: at offset 0: string length has leading zero"},
	{"zero length leading zero", "00:", "bencode: at offset 0: string length has leading zero"},
	{"negative length", "-3:abc", "bencode: at offset 0: string length is negative"},
	{"lone minus", "-", `bencode: at offset 0: invalid byte '-' at start of value`},
	{"length too long", "5:abc", "bencode: at offset 0: string length 5 exceeds remaining 3 bytes"},
	{"length overflows int", "99999999999999999999999:a", "bencode: at offset 0: string length is larger than the input"},
	{"length no colon", "3abc", `bencode: at offset 1: invalid byte 'a' in string length`},
	{"length only", "3", "bencode: at offset 1: unexpected end of input"},
	{"unterminated list", "l", "bencode: at offset 1: unexpected end of input"},
	{"unterminated list item", "li1e", "bencode: at offset 4: unexpected end of input"},
	{"unterminated dict", "d", "bencode: at offset 1: unexpected end of input"},
	{"dict integer key", "di1ei2ee", "bencode: at offset 1: dict key is not a string"},
	{"dict list key", "dlei1ee", "bencode: at offset 1: dict key is not a string"},
	{"dict missing value", "d3:fooe", `bencode: at offset 6: missing value for dict key "foo"`},
	{"dict key then eof", "d3:foo", "bencode: at offset 6: unexpected end of input"},
	{"unsorted keys", "d1:bi1e1:ai2ee", `bencode: at offset 7: dict key "a" is not sorted after "b"`},
	{"duplicate keys", "d1:ai1e1:ai2ee", `bencode: at offset 7: duplicate dict key "a"`},
	{"prefix sorts first", "d2:abi1e1:ai2ee", `bencode: at offset 8: dict key "a" is not sorted after "ab"`},
	{"unsorted nested", "d1:ad1:ci1e1:bi2eee", `bencode: at offset 11: dict key "b" is not sorted after "c"`},
	{"trailing data", "i1ei2e", "bencode: at offset 3: trailing data after top-level value"},
	{"trailing e", "lee", "bencode: at offset 2: trailing data after top-level value"},
	{"trailing newline", "de\n", "bencode: at offset 2: trailing data after top-level value"},
	{"long key quoted short", "d50:" + strings.Repeat("b", 50) + "i1e1:ai1ee", `bencode: at offset 57: dict key "a" is not sorted after "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"...`},
}

func TestUnmarshalSyntaxErrors(t *testing.T) {
	type dest struct {
		A any `bencode:"a"`
	}
	for _, tt := range syntaxTests {
		t.Run(tt.name, func(t *testing.T) {
			dests := map[string]any{
				"any":        new(any),
				"struct":     &dest{A: "untouched"},
				"RawMessage": new(RawMessage),
				"map":        new(map[string]any),
				"string":     new(string),
			}
			for dname, v := range dests {
				before := reflect.ValueOf(v).Elem().Interface()
				err := Unmarshal([]byte(tt.in), v)
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("Unmarshal(%q, %s) = %v, want %q", tt.in, dname, err, tt.wantErr)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Errorf("Unmarshal(%q, %s) error %T is not *SyntaxError", tt.in, dname, err)
				}
				if after := reflect.ValueOf(v).Elem().Interface(); !reflect.DeepEqual(before, after) {
					t.Errorf("Unmarshal(%q, %s) changed destination to %#v", tt.in, dname, after)
				}
			}
		})
	}
}

type torrentFile struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

type torrentInfo struct {
	Name        string        `bencode:"name"`
	PieceLength int64         `bencode:"piece length"`
	Pieces      []byte        `bencode:"pieces"`
	Length      int64         `bencode:"length,omitempty"`
	Files       []torrentFile `bencode:"files,omitempty"`
	Private     *int          `bencode:"private,omitempty"`
}

type torrent struct {
	Announce     string      `bencode:"announce"`
	AnnounceList [][]string  `bencode:"announce-list,omitempty"`
	Comment      string      `bencode:"comment,omitempty"`
	Info         torrentInfo `bencode:"info"`
}

type Inner struct {
	X int `bencode:"x"`
	Y int `bencode:"y"`
}

type withEmbedded struct {
	Inner
	Y   string `bencode:"y"` // shadows Inner.Y
	Own int    `bencode:"own"`
}

type withEmbeddedPtr struct {
	*Inner
	Z int `bencode:"z"`
}

// stringer is a string with a String method, to fill a fmt.Stringer.
type stringer string

func (s *stringer) String() string { return string(*s) }

// upper is an Unmarshaler and Marshaler that stores a string in upper case.
type upper string

func (u *upper) UnmarshalBencode(b []byte) error {
	var s string
	if err := Unmarshal(b, &s); err != nil {
		return err
	}
	*u = upper(strings.ToUpper(s))
	return nil
}

func (u upper) MarshalBencode() ([]byte, error) {
	return AppendString(nil, strings.ToLower(string(u))), nil
}

func TestUnmarshalTyped(t *testing.T) {
	one := 1
	var anyPtr any = new(int)
	tests := []struct {
		name, in string
		into     any // pointer to a zero or pre-filled value
		want     any // value expected behind the pointer
	}{
		{"int", "i-5e", new(int), -5},
		{"int8 min", "i-128e", new(int8), int8(-128)},
		{"uint8 max", "i255e", new(uint8), uint8(255)},
		{"uint64 max", "i18446744073709551615e", new(uint64), uint64(math.MaxUint64)},
		{"int64 min", "i-9223372036854775808e", new(int64), int64(math.MinInt64)},
		{"string", "4:spam", new(string), "spam"},
		{"bytes", "4:spam", new([]byte), []byte("spam")},
		{"empty bytes non-nil", "0:", new([]byte), []byte{}},
		{"byte array", "4:spam", new([4]byte), [4]byte{'s', 'p', 'a', 'm'}},
		{"named string", "1:a", new(upper), upper("A")},
		{"slice", "li1ei2ee", new([]int), []int{1, 2}},
		{"empty slice non-nil", "le", new([]int), []int{}},
		{"slice reset", "li9ee", &[]int{1, 2, 3}, []int{9}},
		{"array zeroes rest", "li9ee", &[3]int{1, 2, 3}, [3]int{9, 0, 0}},
		{"list of bytes", "li1ei2ee", new([]byte), []byte{1, 2}},
		{"map", "d1:ai1e1:bi2ee", new(map[string]int), map[string]int{"a": 1, "b": 2}},
		{"map adds", "d1:bi2ee", &map[string]int{"a": 1}, map[string]int{"a": 1, "b": 2}},
		{"map named key", "d1:ai1ee", new(map[upper]int), map[upper]int{"a": 1}},
		{"pointer", "i7e", new(*int), func() *int { n := 7; return &n }()},
		{"pointer to pointer", "3:abc", new(**string), func() **string { s := "abc"; p := &s; return &p }()},
		{"interface holding pointer", "i3e", &anyPtr, any(func() *int { n := 3; return &n }())},
		{"non-empty interface holding pointer", "1:x", func() *fmt.Stringer { var s fmt.Stringer = new(stringer); return &s }(), fmt.Stringer(func() *stringer { s := stringer("x"); return &s }())},
		{"raw message", "d1:ai1ee", new(RawMessage), RawMessage("d1:ai1ee")},
		{"unmarshaler", "3:abc", new(upper), upper("ABC")},
		{"slice of unmarshaler", "l1:a1:be", new([]upper), []upper{"A", "B"}},
		{"map of any", "d1:ali1eee", new(map[string]any), map[string]any{"a": []any{int64(1)}}},
		{"struct ignores unknown keys", "d1:ad1:bli1eee1:xi1e1:zi2ee", new(Inner), Inner{X: 1}},
		{"struct keys are exact bytes", "d1:Xi1e1:xi2ee", new(Inner), Inner{X: 2}},
		{"embedded promoted and shadowed", "d1:xi1e1:y2:hie", new(withEmbedded), withEmbedded{Inner: Inner{X: 1}, Y: "hi"}},
		{"embedded pointer allocated", "d1:xi1e1:zi2ee", new(withEmbeddedPtr), withEmbeddedPtr{Inner: &Inner{X: 1}, Z: 2}},
		{"embedded pointer untouched", "d1:zi2ee", new(withEmbeddedPtr), withEmbeddedPtr{Z: 2}},
		{
			"torrent",
			"d8:announce15:http://t.ex/ann4:infod5:filesld6:lengthi3e4:pathl1:a1:beee4:name3:dir12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1eee",
			new(torrent),
			torrent{
				Announce: "http://t.ex/ann",
				Info: torrentInfo{
					Name: "dir", PieceLength: 16384, Pieces: []byte(strings.Repeat("a", 20)),
					Files: []torrentFile{{Length: 3, Path: []string{"a", "b"}}}, Private: &one,
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Unmarshal([]byte(tt.in), tt.into); err != nil {
				t.Fatalf("Unmarshal(%q, %T) error: %v", tt.in, tt.into, err)
			}
			got := reflect.ValueOf(tt.into).Elem().Interface()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Unmarshal(%q, %T) = %#v, want %#v", tt.in, tt.into, got, tt.want)
			}
		})
	}
}

// selfPtr is a pointer type that points to itself; following it must stop.
type selfPtr *selfPtr

func TestUnmarshalTypeErrors(t *testing.T) {
	var iface interface{ M() }
	tests := []struct {
		name, in  string
		into      any
		wantErr   string
		wantField string
	}{
		{"int8 overflow", "i128e", new(int8), "bencode: at offset 0: cannot unmarshal integer 128 into Go value of type int8", ""},
		{"int8 underflow", "i-129e", new(int8), "bencode: at offset 0: cannot unmarshal integer -129 into Go value of type int8", ""},
		{"uint negative", "i-1e", new(uint), "bencode: at offset 0: cannot unmarshal integer -1 into Go value of type uint", ""},
		{"uint64 overflow", "i18446744073709551616e", new(uint64), "bencode: at offset 0: cannot unmarshal integer 18446744073709551616 into Go value of type uint64", ""},
		{"int64 overflow", "i9223372036854775808e", new(int64), "bencode: at offset 0: cannot unmarshal integer 9223372036854775808 into Go value of type int64", ""},
		{"any overflow", "li1ei99999999999999999999999999999999999999999999ee", new(any), "bencode: at offset 4: cannot unmarshal integer 999999999999999999999999999999... into field \"[1]\" of type int64", "[1]"},
		{"bool", "i1e", new(bool), "bencode: at offset 0: cannot unmarshal integer into Go value of type bool", ""},
		{"float", "i1e", new(float64), "bencode: at offset 0: cannot unmarshal integer into Go value of type float64", ""},
		{"string into int", "1:a", new(int), "bencode: at offset 0: cannot unmarshal string into Go value of type int", ""},
		{"list into string", "le", new(string), "bencode: at offset 0: cannot unmarshal list into Go value of type string", ""},
		{"dict into slice", "de", new([]int), "bencode: at offset 0: cannot unmarshal dict into Go value of type []int", ""},
		{"integer into map", "i1e", new(map[string]int), "bencode: at offset 0: cannot unmarshal integer into Go value of type map[string]int", ""},
		{"dict into int-keyed map", "de", new(map[int]int), "bencode: at offset 0: cannot unmarshal dict into Go value of type map[int]int", ""},
		{"short byte array", "3:abc", new([4]byte), "bencode: at offset 0: cannot unmarshal string of length 3 into Go value of type [4]uint8", ""},
		{"long list into array", "li1ei2ei3ee", new([2]int), "bencode: at offset 0: cannot unmarshal list longer than 2 into Go value of type [2]int", ""},
		{"self-referential pointer type", "i1e", new(selfPtr), "bencode: at offset 0: cannot unmarshal integer into Go value of type bencode.selfPtr", ""},
		{"non-empty interface", "i1e", &iface, "bencode: at offset 0: cannot unmarshal integer into Go value of type interface { M() }", ""},
		{
			"nested field path",
			"d4:infod5:filesld6:lengthi1eed6:length1:xeeee",
			new(torrent),
			`bencode: at offset 38: cannot unmarshal string into field "info.files[1].length" of type int64`,
			"info.files[1].length",
		},
		{"map value path", "d1:ali1e1:xee", new(map[string][]int), `bencode: at offset 8: cannot unmarshal string into field "a[1]" of type int`, "a[1]"},
		{"any path", "d1:ad1:bi99999999999999999999eee", new(any), `bencode: at offset 8: cannot unmarshal integer 99999999999999999999 into field "a.b" of type int64`, "a.b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal([]byte(tt.in), tt.into)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Unmarshal(%q, %T) = %v, want %q", tt.in, tt.into, err, tt.wantErr)
			}
			var te *UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("Unmarshal(%q, %T) error %T is not *UnmarshalTypeError", tt.in, tt.into, err)
			}
			if te.Field != tt.wantField {
				t.Errorf("Unmarshal(%q, %T) Field = %q, want %q", tt.in, tt.into, te.Field, tt.wantField)
			}
		})
	}
}

func TestUnmarshalInvalidArgument(t *testing.T) {
	var nilPtr *int
	tests := []struct {
		name    string
		v       any
		wantErr string
	}{
		{"nil", nil, "bencode: Unmarshal(nil)"},
		{"non-pointer", 3, "bencode: Unmarshal(non-pointer int)"},
		{"nil pointer", nilPtr, "bencode: Unmarshal(nil *int)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal([]byte("i1e"), tt.v)
			var ie *InvalidUnmarshalError
			if !errors.As(err, &ie) || err.Error() != tt.wantErr {
				t.Errorf("Unmarshal(%#v) = %v, want %q", tt.v, err, tt.wantErr)
			}
		})
	}
}

func TestUnmarshalerError(t *testing.T) {
	var u upper
	err := Unmarshal([]byte("i1e"), &u)
	want := "bencode: at offset 0: cannot unmarshal integer into Go value of type string"
	if err == nil || err.Error() != want {
		t.Errorf("Unmarshal into Unmarshaler = %v, want %q", err, want)
	}
}

func TestDecoderLimits(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("l", n) + strings.Repeat("e", n) }
	tests := []struct {
		name    string
		dec     Decoder
		in      string
		wantErr string
	}{
		{"default depth ok", Decoder{}, nest(64), ""},
		{"default depth exceeded", Decoder{}, nest(65), "bencode: at offset 64: nesting depth exceeds limit of 64"},
		{"default depth in dict", Decoder{}, strings.Repeat("d0:", 64) + "le" + strings.Repeat("e", 64), "bencode: at offset 192: nesting depth exceeds limit of 64"},
		{"depth 1 allows flat list", Decoder{MaxDepth: 1}, "li1e1:ae", ""},
		{"depth 1 rejects nested", Decoder{MaxDepth: 1}, "llee", "bencode: at offset 1: nesting depth exceeds limit of 1"},
		{"deep huge input", Decoder{}, strings.Repeat("l", 1<<20), "bencode: at offset 64: nesting depth exceeds limit of 64"},
		{"max depth limit", Decoder{MaxDepth: 10000}, nest(10000), ""},
		{"string limit ok", Decoder{MaxStringLen: 4}, "4:spam", ""},
		{"string limit exceeded", Decoder{MaxStringLen: 3}, "4:spam", "bencode: at offset 0: string length 4 exceeds limit of 3"},
		{"key limit exceeded", Decoder{MaxStringLen: 3}, "d4:spami1ee", "bencode: at offset 1: string length 4 exceeds limit of 3"},
		{"input limit ok", Decoder{MaxInputBytes: 6}, "4:spam", ""},
		{"input limit exceeded", Decoder{MaxInputBytes: 5}, "4:spam", "bencode: at offset 5: input exceeds limit of 5 bytes"},
		{"largest input limit", Decoder{MaxInputBytes: math.MaxInt64}, "4:spam", ""},
		{"negative depth", Decoder{MaxDepth: -1}, "i1e", "bencode: Decoder.MaxDepth -1 is outside 0-10000"},
		{"depth above cap", Decoder{MaxDepth: 10001}, "i1e", "bencode: Decoder.MaxDepth 10001 is outside 0-10000"},
		{"negative string limit", Decoder{MaxStringLen: -1}, "i1e", "bencode: Decoder.MaxStringLen -1 is negative"},
		{"negative input limit", Decoder{MaxInputBytes: -1}, "i1e", "bencode: Decoder.MaxInputBytes -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, via := range []string{"Unmarshal", "Decode"} {
				var v any
				var err error
				if via == "Unmarshal" {
					err = tt.dec.Unmarshal([]byte(tt.in), &v)
				} else {
					err = tt.dec.Decode(strings.NewReader(tt.in), &v)
				}
				if got := errString(err); got != tt.wantErr {
					t.Errorf("%s(%.20q…) = %q, want %q", via, tt.in, got, tt.wantErr)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// endless is a reader that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'l'
	}
	return len(p), nil
}

func TestDecodeStopsReading(t *testing.T) {
	dec := Decoder{MaxInputBytes: 1 << 16}
	var v any
	err := dec.Decode(endless{}, &v)
	want := "bencode: at offset 65536: input exceeds limit of 65536 bytes"
	if errString(err) != want {
		t.Errorf("Decode(endless) = %v, want %q", err, want)
	}
}

func TestDecodeReaderError(t *testing.T) {
	boom := errors.New("boom")
	var v any
	err := new(Decoder).Decode(io.MultiReader(strings.NewReader("li1e"), &errReader{boom}), &v)
	if !errors.Is(err, boom) {
		t.Errorf("Decode = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestAllowUnsortedKeys(t *testing.T) {
	lenient := Decoder{AllowUnsortedKeys: true}
	tests := []struct {
		name, in string
		want     any
		wantErr  string
	}{
		{name: "unsorted", in: "d1:bi1e1:ai2ee", want: map[string]any{"a": int64(2), "b": int64(1)}},
		{name: "sorted", in: "d1:ai1e1:bi2ee", want: map[string]any{"a": int64(1), "b": int64(2)}},
		{name: "nested unsorted", in: "d1:zd1:yi1e1:xi2ee1:ai3ee", want: map[string]any{"z": map[string]any{"y": int64(1), "x": int64(2)}, "a": int64(3)}},
		{name: "adjacent duplicate", in: "d1:ai1e1:ai2ee", wantErr: `bencode: at offset 7: duplicate dict key "a"`},
		{name: "duplicate of earlier sorted key", in: "d1:ai1e1:ci2e1:ai3ee", wantErr: `bencode: at offset 13: duplicate dict key "a"`},
		{name: "duplicate after disorder", in: "d1:ci1e1:ai2e1:bi3e1:ai4ee", wantErr: `bencode: at offset 19: duplicate dict key "a"`},
		{name: "nested keys do not clash with parent", in: "d1:bd1:ai1ee1:ai2ee", want: map[string]any{"b": map[string]any{"a": int64(1)}, "a": int64(2)}},
		{name: "sibling dicts independent", in: "ld1:bi1e1:ai2eed1:ai3eee", want: []any{map[string]any{"a": int64(2), "b": int64(1)}, map[string]any{"a": int64(3)}}},
		{name: "other rules still apply", in: "d1:bi03ee", wantErr: "bencode: at offset 5: integer has leading zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			err := lenient.Unmarshal([]byte(tt.in), &got)
			if errString(err) != tt.wantErr {
				t.Fatalf("Unmarshal(%q) = %v, want %q", tt.in, err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Unmarshal(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// TestRawMessageKeepsInfoBytes checks the use that motivates RawMessage: the
// info dict of a torrent with unsorted keys is captured byte for byte, so its
// hash is the one clients compute.
func TestRawMessageKeepsInfoBytes(t *testing.T) {
	info := "d6:pieces20:bbbbbbbbbbbbbbbbbbbb4:name1:x12:piece lengthi16384e6:lengthi5ee" // unsorted
	in := []byte("d8:announce3:url4:info" + info + "e")
	var tor struct {
		Announce string     `bencode:"announce"`
		Info     RawMessage `bencode:"info"`
	}
	if err := Unmarshal(in, &tor); err == nil {
		t.Fatalf("strict Unmarshal accepted unsorted info dict")
	}
	if err := (&Decoder{AllowUnsortedKeys: true}).Unmarshal(in, &tor); err != nil {
		t.Fatal(err)
	}
	if string(tor.Info) != info {
		t.Fatalf("Info = %q, want %q", tor.Info, info)
	}
	if sha1.Sum(tor.Info) != sha1.Sum([]byte(info)) {
		t.Error("info hash differs")
	}
	in[len(in)-2] = 'X' // the RawMessage is a copy, not an alias
	if string(tor.Info) != info {
		t.Error("RawMessage aliases the input")
	}
	// Re-encoding keeps the captured bytes verbatim.
	out, err := Marshal(tor)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d8:announce3:url4:info" + info + "e"; string(out) != want {
		t.Errorf("Marshal = %q, want %q", out, want)
	}
}

var sinkBytes []byte

// TestDecodeMemoryBounded feeds inputs built to make a careless decoder
// allocate far more than their size.
func TestDecodeMemoryBounded(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"huge length prefix", []byte("4294967295:abc")},
		{"huge key length", []byte("d999999999:e")},
		{"many huge strings", bytes.Repeat([]byte("9999999:"), 1000)},
		{"deep nesting", bytes.Repeat([]byte("l"), 1<<20)},
		{"many empty lists", append(append([]byte("l"), bytes.Repeat([]byte("le"), 1<<16)...), 'e')},
		{"many small dicts", append(append([]byte("l"), bytes.Repeat([]byte("d0:dee"), 1<<14)...), 'e')},
	}
	if n := allocBytes(func() { sinkBytes = make([]byte, 1<<20) }); n < 1<<20 {
		t.Fatalf("allocBytes(1 MiB) = %d; the counter does not work", n)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dests := []any{new(any), new(RawMessage), new([]map[string]any), new(torrent)}
			for _, v := range dests {
				limit := uint64(256*len(tt.in) + 64<<10)
				n, over := allocBytesOver(func() { _ = Unmarshal(tt.in, v) }, limit)
				t.Logf("%T: %d bytes allocated for %d bytes of input", v, n, len(tt.in))
				if over {
					t.Errorf("Unmarshal(%.20q…, %T) allocated %d bytes for %d bytes of input, limit %d", tt.in, v, n, len(tt.in), limit)
				}
			}
		})
	}
}
