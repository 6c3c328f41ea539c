package bencode

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// FuzzUnmarshal checks, for any input: no panic; allocation bounded by a
// constant times the input size; every error is a *SyntaxError or an
// *UnmarshalTypeError; and when decoding into `any` succeeds, the input was
// canonical, so Marshal of the result reproduces it byte for byte and decodes
// to an equal value. A lenient decode must agree with the strict one, and its
// result must re-encode to canonical bencode.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte("i0e"))                                                                                                // smallest integer
	f.Add([]byte("i-9223372036854775808e"))                                                                             // int64 minimum
	f.Add([]byte("i9223372036854775808e"))                                                                              // one past int64: valid bencode, no Go any value
	f.Add([]byte("i03e"))                                                                                               // leading zero
	f.Add([]byte("i-0e"))                                                                                               // negative zero
	f.Add([]byte("ie"))                                                                                                 // empty integer
	f.Add([]byte("4:spam"))                                                                                             // plain string
	f.Add([]byte("0:"))                                                                                                 // empty string
	f.Add([]byte("03:abc"))                                                                                             // length with leading zero
	f.Add([]byte("-1:a"))                                                                                               // negative length
	f.Add([]byte("18446744073709551616:x"))                                                                             // length overflowing uint64
	f.Add([]byte("9223372036854775807:x"))                                                                              // length at int64 max
	f.Add([]byte("l4:spami42ee"))                                                                                       // list of mixed values
	f.Add([]byte("d3:cow3:moo4:spam4:eggse"))                                                                           // BEP 3's dict example
	f.Add([]byte("d1:bi1e1:ai2ee"))                                                                                     // unsorted keys: lenient only
	f.Add([]byte("d1:ai1e1:ai2ee"))                                                                                     // duplicate keys: never
	f.Add([]byte("d1:ai1e1:ci2e1:ai3ee"))                                                                               // duplicate after a gap
	f.Add([]byte("d1:ci1e1:ai2e1:bi3e1:ai4ee"))                                                                         // duplicate after disorder
	f.Add([]byte("d3:fooe"))                                                                                            // key without value
	f.Add([]byte("di1ei2ee"))                                                                                           // integer key
	f.Add([]byte("i1ei2e"))                                                                                             // trailing data
	f.Add([]byte(strings.Repeat("l", 70) + strings.Repeat("e", 70)))                                                    // deeper than the default limit
	f.Add([]byte("d8:announce3:url4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee")) // minimal .torrent
	f.Add([]byte("d4:infod4:name1:x6:lengthi5eee"))                                                                     // .torrent with unsorted info dict

	lenient := Decoder{AllowUnsortedKeys: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		var strictErr error
		decode := func() {
			v = nil
			strictErr = Unmarshal(data, &v)
		}
		limit := uint64(256*len(data) + 64<<10)
		if n, over := allocBytesOver(decode, limit); over {
			t.Fatalf("Unmarshal(%q) allocated %d bytes, limit %d", data, n, limit)
		}
		if strictErr != nil {
			checkErrType(t, data, strictErr)
		}

		var raw RawMessage
		rawErr := Unmarshal(data, &raw)
		switch {
		case rawErr == nil && !bytes.Equal(raw, data):
			t.Fatalf("RawMessage of %q = %q", data, raw)
		case strictErr == nil && rawErr != nil:
			t.Fatalf("Unmarshal(%q) into any succeeded but into RawMessage failed: %v", data, rawErr)
		case strictErr != nil && rawErr == nil && !isTypeError(strictErr):
			t.Fatalf("Unmarshal(%q) into RawMessage succeeded but into any failed: %v", data, strictErr)
		}

		var tor torrent // typed destination: only must not panic
		if err := Unmarshal(data, &tor); err != nil {
			checkErrType(t, data, err)
		}

		if strictErr == nil {
			out, err := Marshal(v)
			if err != nil {
				t.Fatalf("Marshal(Unmarshal(%q)) error: %v", data, err)
			}
			if !bytes.Equal(out, data) {
				t.Fatalf("Marshal(Unmarshal(%q)) = %q, want the input (strict input is canonical)", data, out)
			}
		}

		var lv any
		lenientErr := lenient.Unmarshal(data, &lv)
		if strictErr == nil {
			if lenientErr != nil || !reflect.DeepEqual(lv, v) {
				t.Fatalf("lenient Unmarshal(%q) = %#v, %v; strict gave %#v", data, lv, lenientErr, v)
			}
		}
		if lenientErr != nil {
			checkErrType(t, data, lenientErr)
			return
		}
		out, err := Marshal(lv)
		if err != nil {
			t.Fatalf("Marshal(lenient Unmarshal(%q)) error: %v", data, err)
		}
		var again any
		if err := Unmarshal(out, &again); err != nil {
			t.Fatalf("Marshal(lenient Unmarshal(%q)) = %q, which does not decode strictly: %v", data, out, err)
		}
		if !reflect.DeepEqual(again, lv) {
			t.Fatalf("round trip of %q: %#v became %#v", data, lv, again)
		}
	})
}

func isTypeError(err error) bool {
	var te *UnmarshalTypeError
	return errors.As(err, &te)
}

func checkErrType(t *testing.T, data []byte, err error) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) && !isTypeError(err) {
		t.Fatalf("Unmarshal(%q) error %T (%v) is neither *SyntaxError nor *UnmarshalTypeError", data, err, err)
	}
	if se != nil && (se.Offset < 0 || se.Offset > int64(len(data))) {
		t.Fatalf("Unmarshal(%q) error offset %d outside the input", data, se.Offset)
	}
}

// roundTrip is the Go value FuzzRoundTrip builds from its arguments.
type roundTrip struct {
	S    string         `bencode:"s"`
	B    []byte         `bencode:"b"`
	N    int64          `bencode:"n"`
	U    uint64         `bencode:"u"`
	I8   int8           `bencode:"i8"`
	Arr  [4]byte        `bencode:"arr"`
	M    map[string]any `bencode:"m"`
	L    []any          `bencode:"l"`
	Opt  string         `bencode:"opt,omitempty"`
	Ptr  *int64         `bencode:"ptr,omitempty"`
	Keys []string       `bencode:"keys"`
}

// FuzzRoundTrip builds a Go value from fuzzed parts, encodes it, and checks
// that the encoding is canonical (strict decoding accepts it), decodes back
// to the same value both typed and as `any`, and re-encodes to the same
// bytes. The Append helpers must agree with Marshal.
func FuzzRoundTrip(f *testing.F) {
	f.Add("", []byte(nil), int64(0), uint64(0), "", uint8(0))                                   // all zero
	f.Add("spam", []byte("eggs"), int64(-1), uint64(1), "a,b,c", uint8(1))                      // ordinary values
	f.Add("\x00\xff", []byte{0xff, 0}, int64(-1<<63), uint64(1<<64-1), "b,a,B,,\xff", uint8(3)) // extremes, unsorted and empty keys
	f.Add("i1e", []byte("d1:ae"), int64(1<<63-1), uint64(10), "a,a,ab", uint8(70))              // bencode-looking strings, duplicate keys, deep nesting
	f.Add("x:y", []byte("4:"), int64(128), uint64(0), "é,e,\u00e9", uint8(200))                 // int8 overflow source, multi-byte keys

	f.Fuzz(func(t *testing.T, s string, b []byte, n int64, u uint64, keys string, depth uint8) {
		in := roundTrip{S: s, B: b, N: n, U: u, I8: int8(n), Opt: s, Keys: strings.Split(keys, ",")}
		copy(in.Arr[:], b)
		if n%2 == 0 {
			in.Ptr = &n
		}
		in.M = map[string]any{}
		for i, k := range in.Keys {
			in.M[k] = []any{int64(i), k}
		}
		var nest any = s
		for i := range int(depth) % 60 { // stays within DefaultMaxDepth with the outer containers
			if i%2 == 0 {
				nest = []any{int64(i), nest}
			} else {
				nest = map[string]any{in.Keys[0]: nest}
			}
		}
		in.L = []any{n, s, nest}

		enc, err := Marshal(in)
		if err != nil {
			t.Fatalf("Marshal(%#v) error: %v", in, err)
		}
		var out roundTrip
		if err := Unmarshal(enc, &out); err != nil {
			t.Fatalf("Unmarshal(Marshal(%#v)) = %v; encoding %q", in, err, enc)
		}
		want := in
		if want.B == nil {
			want.B = []byte{} // bencode cannot tell nil from empty
		}
		want.M = normalize(want.M).(map[string]any)
		want.L = normalize(want.L).([]any)
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", out, want)
		}
		enc2, err := Marshal(out)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("re-Marshal = %q, %v; want %q", enc2, err, enc)
		}
		var generic any
		err = Unmarshal(enc, &generic)
		if u > math.MaxInt64 {
			// Valid bencode, but `any` holds integers as int64.
			if !isTypeError(err) {
				t.Fatalf("Unmarshal(%q) into any = %v, want an UnmarshalTypeError for u", enc, err)
			}
		} else {
			if err != nil {
				t.Fatal(err)
			}
			enc3, err := Marshal(generic)
			if err != nil || !bytes.Equal(enc, enc3) {
				t.Fatalf("Marshal(any) = %q, %v; want %q", enc3, err, enc)
			}
		}

		// The Append helpers agree with Marshal and decode back.
		for _, pair := range [][2][]byte{
			{AppendString(nil, s), must(Marshal(s))},
			{AppendBytes(nil, b), must(Marshal(b))},
			{AppendInt(nil, n), must(Marshal(n))},
			{AppendUint(nil, u), must(Marshal(u))},
		} {
			if !bytes.Equal(pair[0], pair[1]) {
				t.Fatalf("Append = %q, Marshal = %q", pair[0], pair[1])
			}
		}
		var gotU uint64
		if err := Unmarshal(AppendUint(nil, u), &gotU); err != nil || gotU != u {
			t.Fatalf("Unmarshal(AppendUint(%d)) = %d, %v", u, gotU, err)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// normalize converts the integers in a value built for encoding to the int64
// that decoding into `any` yields.
func normalize(v any) any {
	switch v := v.(type) {
	case int64:
		return v
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalize(x)
		}
		return out
	}
	return v
}
