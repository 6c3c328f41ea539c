package bencode

import (
	"math"
	"testing"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"string", AppendString([]byte("x"), "spam"), "x4:spam"},
		{"empty string", AppendString(nil, ""), "0:"},
		{"bytes", AppendBytes(nil, []byte{0, 0xff}), "2:\x00\xff"},
		{"nil bytes", AppendBytes(nil, nil), "0:"},
		{"int", AppendInt(nil, -17), "i-17e"},
		{"int zero", AppendInt(nil, 0), "i0e"},
		{"int min", AppendInt(nil, math.MinInt64), "i-9223372036854775808e"},
		{"uint max", AppendUint(nil, math.MaxUint64), "i18446744073709551615e"},
		{"ten-byte string", AppendString(nil, "0123456789"), "10:0123456789"},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// appendReply builds the body of a compact announce reply the way the HTTP
// tracker will: keys in sorted order by hand, no reflection.
func appendReply(dst []byte, complete, incomplete, interval int64, peers []byte) []byte {
	dst = append(dst, 'd')
	dst = AppendString(dst, "complete")
	dst = AppendInt(dst, complete)
	dst = AppendString(dst, "incomplete")
	dst = AppendInt(dst, incomplete)
	dst = AppendString(dst, "interval")
	dst = AppendInt(dst, interval)
	dst = AppendString(dst, "peers")
	dst = AppendBytes(dst, peers)
	return append(dst, 'e')
}

func TestAppendReplyIsCanonical(t *testing.T) {
	peers := []byte{127, 0, 0, 1, 0x1a, 0xe1}
	got := appendReply(nil, 3, 1, 1800, peers)
	want, err := Marshal(map[string]any{"complete": 3, "incomplete": 1, "interval": 1800, "peers": peers})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("appendReply = %q, want %q", got, want)
	}
	var v any
	if err := Unmarshal(got, &v); err != nil {
		t.Errorf("strict Unmarshal(appendReply) = %v", err)
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	peers := make([]byte, 6*50)
	b := []byte("spam")
	tests := []struct {
		name string
		f    func()
	}{
		{"AppendString", func() { buf = AppendString(buf[:0], "interval") }},
		{"AppendBytes", func() { buf = AppendBytes(buf[:0], b) }},
		{"AppendInt", func() { buf = AppendInt(buf[:0], math.MinInt64) }},
		{"AppendUint", func() { buf = AppendUint(buf[:0], math.MaxUint64) }},
		{"reply", func() { buf = appendReply(buf[:0], 100, 20, 1800, peers) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", tt.name, n)
		}
	}
}
