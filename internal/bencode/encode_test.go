package bencode

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

type tagged struct {
	Zeta    int               `bencode:"zeta"`
	Alpha   string            `bencode:"alpha"`
	Skipped string            `bencode:"-"`
	Dash    int               `bencode:"-,"`
	Empty   string            `bencode:"empty,omitempty"`
	Nums    []int             `bencode:"nums,omitempty"`
	Ptr     *int              `bencode:"ptr"`
	Iface   any               `bencode:"iface"`
	Raw     RawMessage        `bencode:"raw"`
	Named   int               // key "Named" sorts before the lower-case keys
	private int               // unexported: never encoded
	Map     map[string]string `bencode:"map,omitempty"`
}

// counter is a Marshaler with a value receiver.
type counter int

func (c counter) MarshalBencode() ([]byte, error) {
	return AppendString(nil, strings.Repeat("*", int(c))), nil
}

// ptrMarshaler is a Marshaler with a pointer receiver.
type ptrMarshaler struct{ n int }

func (p *ptrMarshaler) MarshalBencode() ([]byte, error) { return AppendInt(nil, int64(p.n)*10), nil }

// badMarshaler returns what it holds, or an error.
type badMarshaler struct {
	out string
	err error
}

func (b badMarshaler) MarshalBencode() ([]byte, error) { return []byte(b.out), b.err }

type cyclic struct {
	Next *cyclic `bencode:"next"`
}

type strKey string

func TestMarshal(t *testing.T) {
	seven := 7
	loop := &cyclic{}
	loop.Next = loop
	anyLoop := []any{nil}
	anyLoop[0] = anyLoop
	tests := []struct {
		name    string
		in      any
		want    string
		wantErr string
	}{
		{name: "string", in: "spam", want: "4:spam"},
		{name: "empty string", in: "", want: "0:"},
		{name: "binary string", in: "\x00\xff", want: "2:\x00\xff"},
		{name: "bytes", in: []byte("spam"), want: "4:spam"},
		{name: "nil bytes", in: []byte(nil), want: "0:"},
		{name: "byte array", in: [3]byte{'a', 'b', 'c'}, want: "3:abc"},
		{name: "byte array pointer", in: &[2]byte{'h', 'i'}, want: "2:hi"},
		{name: "named string", in: strKey("k"), want: "1:k"},
		{name: "int", in: 42, want: "i42e"},
		{name: "zero", in: 0, want: "i0e"},
		{name: "negative", in: -42, want: "i-42e"},
		{name: "int8 min", in: int8(math.MinInt8), want: "i-128e"},
		{name: "int16", in: int16(-300), want: "i-300e"},
		{name: "int32", in: int32(70000), want: "i70000e"},
		{name: "int64 min", in: int64(math.MinInt64), want: "i-9223372036854775808e"},
		{name: "uint8", in: uint8(255), want: "i255e"},
		{name: "uint16", in: uint16(65535), want: "i65535e"},
		{name: "uint32", in: uint32(math.MaxUint32), want: "i4294967295e"},
		{name: "uint64 max", in: uint64(math.MaxUint64), want: "i18446744073709551615e"},
		{name: "uint", in: uint(1), want: "i1e"},
		{name: "uintptr", in: uintptr(9), want: "i9e"},
		{name: "pointer", in: &seven, want: "i7e"},
		{name: "empty list", in: []int{}, want: "le"},
		{name: "nil list", in: []string(nil), want: "le"},
		{name: "list", in: []any{"spam", 7, []any{}}, want: "l4:spami7elee"},
		{name: "int array", in: [2]int{1, 2}, want: "li1ei2ee"},
		{name: "list of bytes", in: [][]byte{[]byte("a")}, want: "l1:ae"},
		{name: "empty map", in: map[string]int{}, want: "de"},
		{name: "nil map", in: map[string]int(nil), want: "de"},
		{name: "map sorted", in: map[string]int{"b": 2, "a": 1, "c": 3}, want: "d1:ai1e1:bi2e1:ci3ee"},
		{name: "map sorted as raw bytes", in: map[string]int{"a": 1, "B": 2, "ab": 3, "\xff": 4, "": 5}, want: "d0:i5e1:Bi2e1:ai1e2:abi3e1:\xffi4ee"},
		{name: "any map sorted as raw bytes", in: map[string]any{"a": 1, "B": 2, "ab": 3, "\xff": 4}, want: "d1:Bi2e1:ai1e2:abi3e1:\xffi4ee"},
		{name: "map named key", in: map[strKey]int{"y": 1, "x": 2}, want: "d1:xi2e1:yi1ee"},
		{name: "map nil values left out", in: map[string]any{"a": nil, "b": (*int)(nil), "c": RawMessage(nil), "d": 1}, want: "d1:di1ee"},
		{name: "typed map nil values left out", in: map[string]*int{"a": nil, "b": &seven}, want: "d1:bi7ee"},
		{
			name: "struct fields sorted by key",
			in:   tagged{Zeta: 1, Alpha: "a", Skipped: "x", Dash: 2, Ptr: &seven, Iface: "i", Raw: RawMessage("le"), Named: 3, private: 4},
			want: "d1:-i2e5:Namedi3e5:alpha1:a5:iface1:i3:ptri7e3:raw" + "le" + "4:zetai1ee",
		},
		{
			name: "struct omitempty and nil fields",
			in:   tagged{},
			want: "d1:-i0e5:Namedi0e5:alpha0:4:zetai0ee",
		},
		{name: "struct omitempty set", in: tagged{Empty: "e", Nums: []int{1}, Map: map[string]string{"k": "v"}}, want: "d1:-i0e5:Namedi0e5:alpha0:5:empty1:e3:mapd1:k1:ve4:numsli1ee4:zetai0ee"},
		{name: "struct pointer", in: &Inner{X: 1, Y: 2}, want: "d1:xi1e1:yi2ee"},
		{name: "embedded promoted and shadowed", in: withEmbedded{Inner: Inner{X: 1, Y: 9}, Y: "s", Own: 2}, want: "d3:owni2e1:xi1e1:y1:se"},
		{name: "embedded nil pointer", in: withEmbeddedPtr{Z: 1}, want: "d1:zi1ee"},
		{name: "embedded pointer", in: withEmbeddedPtr{Inner: &Inner{X: 1}, Z: 2}, want: "d1:xi1e1:yi0e1:zi2ee"},
		{name: "anonymous struct", in: struct {
			B int `bencode:"b"`
			A int `bencode:"a"`
		}{1, 2}, want: "d1:ai2e1:bi1ee"},
		{name: "raw message verbatim", in: RawMessage("d1:bi1e1:ai2ee"), want: "d1:bi1e1:ai2ee"},
		{name: "raw message in list", in: []RawMessage{RawMessage("i1e"), RawMessage("0:")}, want: "li1e0:e"},
		{name: "marshaler value receiver", in: counter(3), want: "3:***"},
		{name: "marshaler in map", in: map[string]counter{"a": 1}, want: "d1:a1:*e"},
		{name: "marshaler pointer receiver", in: &ptrMarshaler{n: 4}, want: "i40e"},
		{name: "marshaler pointer receiver addressable", in: &struct {
			P ptrMarshaler `bencode:"p"`
		}{ptrMarshaler{n: 2}}, want: "d1:pi20ee"},
		{name: "unmarshaler round-trips", in: upper("ABC"), want: "3:abc"},

		{name: "bool", in: true, wantErr: "bencode: unsupported type bool (BEP 3 has no booleans; encode 0 or 1 as an integer)"},
		{name: "bool field", in: struct{ B bool }{true}, wantErr: "bencode: unsupported type bool (BEP 3 has no booleans; encode 0 or 1 as an integer)"},
		{name: "float", in: 1.5, wantErr: "bencode: unsupported type float64"},
		{name: "complex", in: 1i, wantErr: "bencode: unsupported type complex128"},
		{name: "chan", in: make(chan int), wantErr: "bencode: unsupported type chan int"},
		{name: "func", in: func() {}, wantErr: "bencode: unsupported type func()"},
		{name: "int-keyed map", in: map[int]string{1: "a"}, wantErr: "bencode: unsupported type map[int]string"},
		{name: "nil", in: nil, wantErr: "bencode: unsupported value: nil or empty value outside a dict (bencode has no null)"},
		{name: "nil pointer", in: (*int)(nil), wantErr: "bencode: unsupported value of type *int: nil or empty value outside a dict (bencode has no null)"},
		{name: "nil in list", in: []any{1, nil}, wantErr: "bencode: unsupported value: nil or empty value outside a dict (bencode has no null)"},
		{name: "nil pointer in list", in: []*int{nil}, wantErr: "bencode: unsupported value of type *int: nil or empty value outside a dict (bencode has no null)"},
		{name: "empty raw message", in: RawMessage{}, wantErr: "bencode: unsupported value of type bencode.RawMessage: nil or empty value outside a dict (bencode has no null)"},
		{name: "raw message truncated", in: RawMessage("i1"), wantErr: "bencode: marshaling bencode.RawMessage: bencode: at offset 2: unexpected end of input"},
		{name: "raw message two values", in: RawMessage("i1ei2e"), wantErr: "bencode: marshaling bencode.RawMessage: bencode: at offset 3: trailing data after top-level value"},
		{name: "raw message duplicate key", in: RawMessage("d1:a0:1:a0:e"), wantErr: `bencode: marshaling bencode.RawMessage: bencode: at offset 6: duplicate dict key "a"`},
		{name: "marshaler error", in: badMarshaler{err: errors.New("boom")}, wantErr: "bencode: marshaling bencode.badMarshaler: boom"},
		{name: "marshaler invalid output", in: badMarshaler{out: "i01e"}, wantErr: "bencode: marshaling bencode.badMarshaler: bencode: at offset 1: integer has leading zero"},
		{name: "marshaler empty output", in: badMarshaler{}, wantErr: "bencode: marshaling bencode.badMarshaler: bencode: at offset 0: unexpected end of input"},
		{name: "nil marshaler pointer", in: (*ptrMarshaler)(nil), wantErr: "bencode: unsupported value of type *bencode.ptrMarshaler: nil or empty value outside a dict (bencode has no null)"},
		{name: "cyclic pointer", in: loop, wantErr: "bencode: unsupported value of type *bencode.cyclic: nested more than 10000 levels deep (cyclic value?)"},
		{name: "cyclic any", in: anyLoop, wantErr: "bencode: unsupported value: nested more than 10000 levels deep (cyclic value?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if errString(err) != tt.wantErr {
				t.Fatalf("Marshal(%#v) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("Marshal(%#v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMarshalErrorTypes(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		in     any
		target any // pointer to the error type expected
	}{
		{true, new(*UnsupportedTypeError)},
		{nil, new(*UnsupportedValueError)},
		{badMarshaler{err: boom}, new(*MarshalerError)},
		{RawMessage("x"), new(*MarshalerError)},
	}
	for _, tt := range tests {
		_, err := Marshal(tt.in)
		if !errors.As(err, tt.target) {
			t.Errorf("Marshal(%#v) = %T, want %T", tt.in, err, reflect.ValueOf(tt.target).Elem().Interface())
		}
	}
	if _, err := Marshal(badMarshaler{err: boom}); !errors.Is(err, boom) {
		t.Errorf("Marshal(failing Marshaler) = %v, does not wrap %v", err, boom)
	}
}

func TestAppendMarshal(t *testing.T) {
	dst := append(make([]byte, 0, 64), "prefix"...)
	got, err := AppendMarshal(dst, map[string]int{"a": 1})
	if err != nil || string(got) != "prefixd1:ai1ee" {
		t.Errorf("AppendMarshal = %q, %v; want %q", got, err, "prefixd1:ai1ee")
	}
	got, err = AppendMarshal(dst, []any{1, true})
	if err == nil || string(got) != "prefix" {
		t.Errorf("AppendMarshal(bad) = %q, %v; want %q and an error", got, err, "prefix")
	}
	if cap(got) != cap(dst) {
		t.Errorf("AppendMarshal(bad) returned cap %d, want the buffer back (cap %d)", cap(got), cap(dst))
	}
}

// TestMarshalStructMatchesMap checks that a struct encodes exactly as a map
// with the same keys, whatever the declaration order.
func TestMarshalStructMatchesMap(t *testing.T) {
	type reply struct {
		Peers      []byte `bencode:"peers"`
		Interval   int    `bencode:"interval"`
		Complete   int    `bencode:"complete"`
		MinInterv  int    `bencode:"min interval"`
		Incomplete int    `bencode:"incomplete"`
	}
	s, err := Marshal(reply{Peers: []byte{1, 2, 3, 4, 5, 6}, Interval: 1800, Complete: 5, MinInterv: 900, Incomplete: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Marshal(map[string]any{"peers": []byte{1, 2, 3, 4, 5, 6}, "interval": 1800, "complete": 5, "min interval": 900, "incomplete": 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(s) != string(m) {
		t.Errorf("struct = %q\nmap    = %q", s, m)
	}
	const want = "d8:completei5e10:incompletei2e8:intervali1800e12:min intervali900e5:peers6:\x01\x02\x03\x04\x05\x06e"
	if string(s) != want {
		t.Errorf("Marshal = %q, want %q", s, want)
	}
}

// TestEmbeddedAmbiguous checks that a name two embedded structs claim at the
// same depth is dropped, as in encoding/json.
func TestEmbeddedAmbiguous(t *testing.T) {
	type A struct{ N int }
	type B struct{ N int }
	type both struct {
		A
		B
		M int
	}
	got, err := Marshal(both{A{1}, B{2}, 3})
	if err != nil || string(got) != "d1:Mi3ee" {
		t.Errorf("Marshal = %q, %v; want %q", got, err, "d1:Mi3ee")
	}
	var v both
	if err := Unmarshal([]byte("d1:Mi3e1:Ni4ee"), &v); err != nil || v != (both{M: 3}) {
		t.Errorf("Unmarshal = %+v, %v; want %+v", v, err, both{M: 3})
	}
}
