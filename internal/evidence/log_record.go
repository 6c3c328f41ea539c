package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A Kind says what a record is about. Other packages use the constants
// below or a name of their own of the same shape: a lowercase letter, then
// up to 31 lowercase letters, digits, '.', '_' or '-'.
type Kind string

// The kinds warden writes. KindPrune and KindLost are written by the log
// itself and refused by Append.
const (
	KindEpisode         Kind = "episode"          // an abuse episode: who, what, from when to when
	KindRegistryAdd     Kind = "registry.add"     // a torrent registered
	KindRegistryRevoke  Kind = "registry.revoke"  // a torrent revoked, with the reason
	KindRegistryRestore Kind = "registry.restore" // a revoked torrent tracked again
	KindBan             Kind = "ban"              // a source banned by hand or by policy
	KindUnban           Kind = "unban"            // a ban lifted
	KindConfig          Kind = "config"           // the effective configuration at start
	KindPrune           Kind = "prune"            // record bodies removed after the retention period
	KindLost            Kind = "lost"             // records Append refused because its queue was full
)

// reserved reports whether only the log may write records of kind k.
func (k Kind) reserved() bool { return k == KindPrune || k == KindLost }

func (k Kind) check() error {
	if len(k) == 0 || len(k) > 32 {
		return fmt.Errorf("kind %q: must be 1-32 characters", string(k))
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("kind %q: want a lowercase letter, then lowercase letters, digits, '.', '_' or '-'", string(k))
		}
	}
	return nil
}

// MaxBodyBytes bounds a record's body in its canonical form, so that one
// record cannot take the queue's memory or a bundle's size.
const MaxBodyBytes = 64 << 10

// maxDepth bounds the nesting of a body's arrays and objects.
const maxDepth = 32

// A Record is one entry of the evidence log: what happened (Kind), when
// (Time, the caller's clock) and the details (a JSON object in canonical
// form, see NewRecord). The log adds its index and the time it was
// appended. The zero Record is not valid: build one with NewRecord.
type Record struct {
	Kind Kind
	Time time.Time
	body []byte // canonical JSON object, at most MaxBodyBytes
}

// NewRecord builds a record of kind at time t whose body is v encoded as
// JSON: v is a json.RawMessage or []byte holding JSON, or any value
// json.Marshal takes. The body must be a JSON object; it is stored in
// canonical form (see canonicalJSON), so two bodies that mean the same have
// the same bytes, and anyone can recompute a record's hash. NewRecord
// allocates; it returns an error naming what is wrong with the body.
func NewRecord(kind Kind, t time.Time, v any) (Record, error) {
	if err := kind.check(); err != nil {
		return Record{}, fmt.Errorf("evidence record: %w", err)
	}
	if t.IsZero() {
		return Record{}, errors.New("evidence record: time is zero: say when it happened")
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return Record{}, fmt.Errorf("evidence record: time %v: year must be 1-9999", t)
	}
	var raw []byte
	switch b := v.(type) {
	case json.RawMessage:
		raw = b
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return Record{}, fmt.Errorf("evidence record body: %w", err)
		}
	}
	body, err := canonicalObject(raw)
	if err != nil {
		return Record{}, fmt.Errorf("evidence record body: %w", err)
	}
	return Record{Kind: kind, Time: t, body: body}, nil
}

// Body returns a copy of the record's canonical JSON body.
func (r Record) Body() json.RawMessage { return slices.Clone(r.body) }

// canonicalObject returns the canonical form of a JSON object, refusing
// other values and bodies over MaxBodyBytes.
func canonicalObject(in []byte) ([]byte, error) {
	if len(in) > 4*MaxBodyBytes { // canonical form is rarely much shorter
		return nil, fmt.Errorf("%d bytes, more than %d", len(in), MaxBodyBytes)
	}
	out, err := canonicalJSON(in)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0] != '{' {
		return nil, errors.New("must be a JSON object")
	}
	if len(out) > MaxBodyBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", len(out), MaxBodyBytes)
	}
	return out, nil
}

// canonicalJSON returns the canonical form of one JSON value, in the manner
// of RFC 8785 (JCS) but simpler in two places:
//   - no whitespace; object members sorted by key, compared as UTF-8 bytes
//     (code point order); a key given twice is an error;
//   - strings as UTF-8, escaping only '"', '\\' and control characters
//     (\b \t \n \f \r, others as \u00xx); invalid UTF-8 and lone surrogates
//     become U+FFFD;
//   - integers (no fraction or exponent) exactly as written, "-0" as "0";
//     other numbers as binary64: integral ones below 2^53 as integers, the
//     rest in Go's shortest 'g' form ("1.5", "1e+21", "1e-07");
//   - true, false, null as themselves.
//
// Nesting deeper than maxDepth is an error. The result is valid JSON, and
// canonicalJSON of it returns it unchanged.
func canonicalJSON(in []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(in))
	d.UseNumber()
	out, err := appendCanonical(nil, d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return out, nil
}

func appendCanonical(dst []byte, d *json.Decoder, depth int) ([]byte, error) {
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
			return appendArray(dst, d, depth)
		}
		return appendObject(dst, d, depth)
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

func appendArray(dst []byte, d *json.Decoder, depth int) ([]byte, error) {
	dst = append(dst, '[')
	for i := 0; d.More(); i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendCanonical(dst, d, depth+1); err != nil {
			return nil, err
		}
	}
	if _, err := d.Token(); err != nil { // ']'
		return nil, err
	}
	return append(dst, ']'), nil
}

func appendObject(dst []byte, d *json.Decoder, depth int) ([]byte, error) {
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
		val, err := appendCanonical(nil, d, depth+1)
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

// appendString appends s as a canonical JSON string.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		dst = utf8.AppendRune(dst, r) // RuneError for invalid bytes
		i += size
	}
	return append(dst, '"')
}

// appendNumber appends the canonical form of the JSON number literal s.
func appendNumber(dst []byte, s string) ([]byte, error) {
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			s = "0"
		}
		return append(dst, s...), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %s is out of range", s)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(dst, int64(f), 10), nil // -0 becomes 0
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64), nil
}

// A leaf is a record as the tree holds it: the canonical JSON object
//
//	{"body":{…},"index":N,"kind":"…","logged":"RFC 3339 time","time":"RFC 3339 time"}
//
// whose bytes are hashed (tlog.RecordHash) into the Merkle tree. "index" is
// the record's position in the log, "logged" when the log accepted it (the
// log's clock, never earlier than the record before), "time" the caller's.
// Times are UTC with as many fractional digits as needed (RFC3339Nano).
type leaf struct {
	Index  int64
	Kind   Kind
	Logged time.Time
	Time   time.Time
	Body   []byte // canonical JSON object
}

// appendLeaf appends the leaf's canonical bytes.
func appendLeaf(dst []byte, l *leaf) []byte {
	dst = append(dst, `{"body":`...)
	dst = append(dst, l.Body...)
	dst = append(dst, `,"index":`...)
	dst = strconv.AppendInt(dst, l.Index, 10)
	dst = append(dst, `,"kind":`...)
	dst = appendString(dst, string(l.Kind))
	dst = append(dst, `,"logged":"`...)
	dst = l.Logged.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","time":"`...)
	dst = l.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}

// errNotCanonical says a leaf or bundle has the right meaning but not the
// bytes its writer would have produced.
var errNotCanonical = errors.New("not in canonical form")

// parseLeaf parses a leaf, accepting only the exact bytes appendLeaf
// writes, so that a leaf has one encoding and its hash one preimage.
func parseLeaf(data []byte) (leaf, error) {
	var raw struct {
		Body   json.RawMessage `json:"body"`
		Index  *int64          `json:"index"`
		Kind   *string         `json:"kind"`
		Logged *string         `json:"logged"`
		Time   *string         `json:"time"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&raw); err != nil {
		return leaf{}, fmt.Errorf("record: %w", err)
	}
	if raw.Body == nil || raw.Index == nil || raw.Kind == nil || raw.Logged == nil || raw.Time == nil {
		return leaf{}, errors.New("record: want body, index, kind, logged and time")
	}
	l := leaf{Index: *raw.Index, Kind: Kind(*raw.Kind), Body: raw.Body}
	if l.Index < 0 {
		return leaf{}, fmt.Errorf("record: index %d is negative", l.Index)
	}
	if err := l.Kind.check(); err != nil {
		return leaf{}, fmt.Errorf("record: %w", err)
	}
	var err error
	if l.Logged, err = time.Parse(time.RFC3339Nano, *raw.Logged); err != nil {
		return leaf{}, fmt.Errorf("record: logged: %w", err)
	}
	if l.Time, err = time.Parse(time.RFC3339Nano, *raw.Time); err != nil {
		return leaf{}, fmt.Errorf("record: time: %w", err)
	}
	if len(l.Body) == 0 || l.Body[0] != '{' || len(l.Body) > MaxBodyBytes {
		return leaf{}, fmt.Errorf("record: body must be a JSON object of at most %d bytes", MaxBodyBytes)
	}
	canon, err := canonicalJSON(l.Body)
	if err != nil {
		return leaf{}, fmt.Errorf("record: body: %w", err)
	}
	if !bytes.Equal(canon, l.Body) {
		return leaf{}, fmt.Errorf("record: body: %w", errNotCanonical)
	}
	if !bytes.Equal(appendLeaf(nil, &l), data) {
		return leaf{}, fmt.Errorf("record: %w", errNotCanonical)
	}
	return l, nil
}
