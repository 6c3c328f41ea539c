package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        string // "" means no error
	}{
		{name: "sorted, compact", in: `{ "b": 1, "a": [true, false, null] }`, want: `{"a":[true,false,null],"b":1}`},
		{name: "nested", in: `{"z":{"y":1,"x":{"b":2,"a":1}}}`, want: `{"z":{"x":{"a":1,"b":2},"y":1}}`},
		{name: "code point order", in: `{"é":1,"z":2,"Z":3}`, want: `{"Z":3,"z":2,"é":1}`},
		{name: "escapes", in: `{"s":"a\u0041\/\"\\\n\u0001\u007f<>&\u2028"}`, want: "{\"s\":\"aA/\\\"\\\\\\n\\u0001\x7f<>&\u2028\"}"},
		{name: "lone surrogate", in: `{"s":"\ud800"}`, want: "{\"s\":\"\uFFFD\"}"},
		{name: "invalid UTF-8", in: "{\"s\":\"\xff\"}", want: "{\"s\":\"\uFFFD\"}"},
		{name: "integers as written", in: `[0,-0,12345678901234567890,-7]`, want: `[0,0,12345678901234567890,-7]`},
		{name: "other numbers", in: `[1.0,1e6,-0.0,1.5,1e21,1E-7,2.50]`, want: `[1,1000000,0,1.5,1e+21,1e-07,2.5]`},
		{name: "duplicate key", in: `{"a":1,"a":2}`, wantErr: `key "a" given twice`},
		{name: "escaped duplicate", in: `{"a":1,"\u0061":2}`, wantErr: `key "a" given twice`},
		{name: "number too big", in: `[1e999]`, wantErr: "out of range"},
		{name: "too deep", in: strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), wantErr: "nested deeper than 32"},
		{name: "deep enough", in: strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), want: strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)},
		{name: "trailing", in: `{} {}`, wantErr: "data after the JSON value"},
		{name: "truncated", in: `{"a":`, wantErr: "unexpected EOF"},
		{name: "empty", in: ``, wantErr: "unexpected EOF"},
		{name: "not JSON", in: `{a:1}`, wantErr: "invalid character"},
		{name: "surrogate pair", in: `["\ud83d\ude00"]`, want: "[\"\U0001F600\"]"},
		{name: "low then low surrogate", in: `["\udc00\udc00"]`, want: "[\"\uFFFD\uFFFD\"]"},
		{name: "high then letter", in: `["\ud800\u0041"]`, want: "[\"\uFFFDA\"]"},
		{name: "truncated literal", in: `[tru`, wantErr: "unexpected EOF"},
		{name: "bad literal", in: `[trux]`, wantErr: "invalid character"},
		{name: "bad escape", in: `["\x"]`, wantErr: "invalid"},
		{name: "raw control character", in: "[\"\t\"]", wantErr: "invalid character"},
		{name: "leading zero", in: `[01]`, wantErr: "invalid character"},
		{name: "fraction without digits", in: `[1.]`, wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := canonicalJSON([]byte(tt.in))
			ref, refErr := canonicalJSONRef([]byte(tt.in))
			if (err == nil) != (refErr == nil) || !bytes.Equal(got, ref) {
				t.Errorf("canonicalJSON(%q) = %q, %v; the reference gives %q, %v", tt.in, got, err, ref, refErr)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("canonicalJSON(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("canonicalJSON(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewRecord(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	type ban struct {
		Source string `json:"source"`
		Reason string `json:"reason"`
		Count  int    `json:"count"`
	}
	tests := []struct {
		name     string
		kind     Kind
		t        time.Time
		body     any
		wantBody string
		wantErr  string
	}{
		{name: "struct, fields sorted", kind: KindBan, t: at, body: ban{"192.0.2.1", "flood <udp>", 3},
			wantBody: `{"count":3,"reason":"flood <udp>","source":"192.0.2.1"}`},
		{name: "raw", kind: "episode", t: at, body: json.RawMessage(`{"b":1, "a":2}`), wantBody: `{"a":2,"b":1}`},
		{name: "bytes", kind: "x.y_z-1", t: at, body: []byte(`{}`), wantBody: `{}`},
		{name: "not an object", kind: KindBan, t: at, body: []int{1}, wantErr: "must be a JSON object"},
		{name: "unmarshalable", kind: KindBan, t: at, body: func() {}, wantErr: "unsupported type"},
		{name: "too big", kind: KindBan, t: at, body: map[string]string{"a": strings.Repeat("x", MaxBodyBytes)}, wantErr: "more than 65536"},
		{name: "empty kind", kind: "", t: at, body: struct{}{}, wantErr: "must be 1-32 characters"},
		{name: "upper-case kind", kind: "Ban", t: at, body: struct{}{}, wantErr: "want a lowercase letter"},
		{name: "kind starting with a digit", kind: "1ban", t: at, body: struct{}{}, wantErr: "want a lowercase letter"},
		{name: "zero time", kind: KindBan, t: time.Time{}, body: struct{}{}, wantErr: "time is zero"},
		{name: "year 10000", kind: KindBan, t: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), body: struct{}{}, wantErr: "year must be 1-9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRecord(tt.kind, tt.t, tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewRecord = %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(r.Body()) != tt.wantBody {
				t.Fatalf("NewRecord = %s, %v; want %s", r.Body(), err, tt.wantBody)
			}
		})
	}
}

func TestLeafRoundTrip(t *testing.T) {
	r, err := NewRecord(KindEpisode, time.Date(2026, 12, 3, 10, 0, 0, 120, time.FixedZone("x", 3600)), map[string]any{"src": "2001:db8::1", "hits": 12})
	if err != nil {
		t.Fatal(err)
	}
	lf := leaf{Index: 42, Kind: r.Kind, Logged: time.Date(2026, 12, 3, 9, 0, 1, 0, time.UTC), Time: r.Time, Body: r.body}
	data := appendLeaf(nil, &lf)
	want := `{"body":{"hits":12,"src":"2001:db8::1"},"index":42,"kind":"episode","logged":"2026-12-03T09:00:01Z","time":"2026-12-03T09:00:00.00000012Z"}`
	if string(data) != want {
		t.Fatalf("leaf = %s\nwant   %s", data, want)
	}
	if canon, _ := canonicalJSON(data); !bytes.Equal(canon, data) {
		t.Fatalf("a leaf is not canonical JSON: %s", canon)
	}
	got, err := parseLeaf(data)
	if err != nil || got.Index != 42 || !got.Time.Equal(r.Time) || !reflect.DeepEqual(got.Body, r.body) {
		t.Fatalf("parseLeaf = %+v, %v", got, err)
	}
	for _, bad := range []string{
		strings.Replace(want, `"index":42`, `"Index":42`, 1),
		strings.Replace(want, `"index":42`, `"index":42.0`, 1),
		strings.Replace(want, `09:00:01Z`, `10:00:01+01:00`, 1),
		strings.Replace(want, `{"hits"`, `{ "hits"`, 1),
		strings.Replace(want, `"kind":"episode"`, `"kind":"Episode"`, 1),
		strings.Replace(want, `,"time"`, `,"extra":1,"time"`, 1),
		want + " ",
	} {
		if _, err := parseLeaf([]byte(bad)); err == nil {
			t.Errorf("parseLeaf(%s) accepted a leaf not in canonical form", bad)
		}
	}
}

// canonicalJSONRef is the slow reference for canonicalJSON: the same
// canonical form, built on encoding/json's Decoder.Token.
func canonicalJSONRef(in []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(in))
	d.UseNumber()
	out, err := refCanonical(nil, d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return out, nil
}

func refCanonical(dst []byte, d *json.Decoder, depth int) ([]byte, error) {
	tok, err := d.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, fmt.Errorf("nested deeper than %d", maxDepth)
		}
		if v == '[' {
			return refArray(dst, d, depth)
		}
		return refObject(dst, d, depth)
	case string:
		return appendString(dst, v), nil
	case json.Number:
		return appendNumber(dst, string(v))
	case bool:
		return strconv.AppendBool(dst, v), nil
	case nil:
		return append(dst, "null"...), nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func refArray(dst []byte, d *json.Decoder, depth int) ([]byte, error) {
	dst = append(dst, '[')
	for i := 0; d.More(); i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = refCanonical(dst, d, depth+1); err != nil {
			return nil, err
		}
	}
	if _, err := d.Token(); err != nil { // ']'
		return nil, err
	}
	return append(dst, ']'), nil
}

func refObject(dst []byte, d *json.Decoder, depth int) ([]byte, error) {
	type member struct {
		key string
		val []byte
	}
	var ms []member
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key %v is not a string", tok)
		}
		val, err := refCanonical(nil, d, depth+1)
		if err != nil {
			return nil, err
		}
		ms = append(ms, member{key, val})
	}
	if _, err := d.Token(); err != nil { // '}'
		return nil, err
	}
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			if ms[i-1].key == m.key {
				return nil, fmt.Errorf("key %q given twice", m.key)
			}
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}'), nil
}

func FuzzCanonicalJSON(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":[1.50,-0,"\u00e9"]}`)) // sorting, numbers, escapes
	f.Add([]byte(`[1e400]`))                        // out of range
	f.Add([]byte(`{"a":1,"\u0061":2}`))             // duplicate after unescaping
	f.Add([]byte("\"\xed\xa0\x80\""))               // a surrogate in raw UTF-8
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := canonicalJSON(in)
		ref, refErr := canonicalJSONRef(in)
		if (err == nil) != (refErr == nil) || !bytes.Equal(out, ref) {
			t.Fatalf("canonicalJSON(%q) = %q, %v; the reference gives %q, %v", in, out, err, ref, refErr)
		}
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("canonicalJSON(%q) = %q, not valid JSON", in, out)
		}
		again, err := canonicalJSON(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("canonicalJSON is not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
		// Invalid UTF-8 grows 1 byte to 3 (U+FFFD), "9e15" 4 bytes to 16.
		if len(out) > 4*len(in) {
			t.Fatalf("canonicalJSON(%d bytes) = %d bytes", len(in), len(out))
		}
	})
}

func FuzzParseLeaf(f *testing.F) {
	lf := leaf{Index: 7, Kind: KindBan, Logged: time.Unix(1_800_000_000, 5).UTC(), Time: time.Unix(1_799_999_999, 0).UTC(), Body: []byte(`{"a":[1,"x"]}`)}
	f.Add(appendLeaf(nil, &lf))                                              // a good leaf
	f.Add([]byte(`{"body":{},"index":-1,"kind":"a","logged":"","time":""}`)) // bad fields
	f.Add([]byte(`{"body":[],"index":0,"kind":"a","logged":"2026-01-01T00:00:00Z","time":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lf, err := parseLeaf(data)
		if err != nil {
			return
		}
		if got := appendLeaf(nil, &lf); !bytes.Equal(got, data) {
			t.Fatalf("parseLeaf accepted %q, which encodes as %q", data, got)
		}
	})
}
