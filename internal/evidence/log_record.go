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
	"unicode"
	"unicode/utf16"
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
	p := jsonParser{in: in}
	out, err := p.value(nil, 0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.in) {
		return nil, errors.New("data after the JSON value")
	}
	return out, nil
}

// jsonParser reads one JSON value (RFC 8259) and writes its canonical form.
// It accepts what encoding/json's Decoder accepts, and gives the same
// strings; log_record_test.go checks it against a slow reference built on
// the Decoder.
type jsonParser struct {
	in []byte
	i  int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.i < len(p.in) {
		switch p.in[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(dst []byte, depth int) ([]byte, error) {
	p.space()
	if p.i >= len(p.in) {
		return nil, io.ErrUnexpectedEOF
	}
	switch c := p.in[p.i]; {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return nil, fmt.Errorf("nested deeper than %d", maxDepth)
		}
		if c == '[' {
			return p.array(dst, depth)
		}
		return p.object(dst, depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return appendString(dst, s), nil
	case c == '-' || c >= '0' && c <= '9':
		lit, err := p.number()
		if err != nil {
			return nil, err
		}
		return appendNumber(dst, lit)
	}
	rest := string(p.in[p.i:min(len(p.in), p.i+5)])
	for _, lit := range []string{"true", "false", "null"} {
		switch {
		case strings.HasPrefix(rest, lit):
			p.i += len(lit)
			return append(dst, lit...), nil
		case len(rest) < len(lit) && strings.HasPrefix(lit, rest):
			return nil, io.ErrUnexpectedEOF
		}
	}
	return nil, p.errorf("invalid character %q looking for a value", p.in[p.i])
}

func (p *jsonParser) array(dst []byte, depth int) ([]byte, error) {
	p.i++ // '['
	dst = append(dst, '[')
	p.space()
	if p.i < len(p.in) && p.in[p.i] == ']' {
		p.i++
		return append(dst, ']'), nil
	}
	for {
		var err error
		if dst, err = p.value(dst, depth+1); err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) {
			return nil, io.ErrUnexpectedEOF
		}
		switch p.in[p.i] {
		case ',':
			p.i++
			dst = append(dst, ',')
		case ']':
			p.i++
			return append(dst, ']'), nil
		default:
			return nil, p.errorf("invalid character %q after array element", p.in[p.i])
		}
	}
}

func (p *jsonParser) object(dst []byte, depth int) ([]byte, error) {
	p.i++ // '{'
	type member struct {
		key string
		val []byte
	}
	var ms []member
	p.space()
	if p.i < len(p.in) && p.in[p.i] == '}' {
		p.i++
		return append(dst, '{', '}'), nil
	}
	for {
		p.space()
		if p.i >= len(p.in) {
			return nil, io.ErrUnexpectedEOF
		}
		if p.in[p.i] != '"' {
			return nil, p.errorf("invalid character %q looking for an object key", p.in[p.i])
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.in) {
			return nil, io.ErrUnexpectedEOF
		}
		if p.in[p.i] != ':' {
			return nil, p.errorf("invalid character %q after object key", p.in[p.i])
		}
		p.i++
		val, err := p.value(nil, depth+1)
		if err != nil {
			return nil, err
		}
		ms = append(ms, member{key, val})
		p.space()
		if p.i >= len(p.in) {
			return nil, io.ErrUnexpectedEOF
		}
		if c := p.in[p.i]; c == '}' {
			p.i++
			break
		} else if c != ',' {
			return nil, p.errorf("invalid character %q after object value", c)
		}
		p.i++
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

// str reads a string and returns it decoded, as encoding/json does:
// invalid UTF-8 and unpaired surrogates become U+FFFD.
func (p *jsonParser) str() (string, error) {
	p.i++ // '"'
	start := p.i
	// Fast path: no escapes and nothing to replace.
	for p.i < len(p.in) {
		c := p.in[p.i]
		if c == '"' {
			s := string(p.in[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	b := append([]byte(nil), p.in[start:p.i]...)
	for p.i < len(p.in) {
		c := p.in[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), nil
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.in[p.i:])
			b = utf8.AppendRune(b, r)
			p.i += size
		case c != '\\':
			b = append(b, c)
			p.i++
		default:
			if p.i+1 >= len(p.in) {
				return "", io.ErrUnexpectedEOF
			}
			e := p.in[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) {
					dec := unicode.ReplacementChar
					if r < 0xDC00 { // a high surrogate: a low one may follow
						if r2, ok := p.lowSurrogate(); ok {
							dec = utf16.DecodeRune(r, r2)
						}
					}
					r = dec
				}
				b = utf8.AppendRune(b, r)
			default:
				p.i--
				return "", p.errorf("invalid escape \\%c in string literal", e)
			}
		}
	}
	return "", io.ErrUnexpectedEOF
}

// hex4 reads the four hex digits after \u.
func (p *jsonParser) hex4() (rune, error) {
	if p.i+4 > len(p.in) {
		return 0, io.ErrUnexpectedEOF
	}
	var r rune
	for _, c := range p.in[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, p.errorf("invalid character %q in \\u escape", c)
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, nil
}

// lowSurrogate consumes a following \uXXXX escape if it is a low
// surrogate.
func (p *jsonParser) lowSurrogate() (rune, bool) {
	if p.i+6 > len(p.in) || p.in[p.i] != '\\' || p.in[p.i+1] != 'u' {
		return 0, false
	}
	save := p.i
	p.i += 2
	r, err := p.hex4()
	if err != nil || r < 0xDC00 || r > 0xDFFF {
		p.i = save
		return 0, false
	}
	return r, true
}

// number reads a number literal (RFC 8259 grammar).
func (p *jsonParser) number() (string, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.in) && p.in[p.i] >= '0' && p.in[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.in[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i >= len(p.in):
		return "", io.ErrUnexpectedEOF
	case p.in[p.i] == '0':
		p.i++
	case p.in[p.i] >= '1' && p.in[p.i] <= '9':
		digits()
	default:
		return "", p.errorf("invalid character %q in numeric literal", p.in[p.i])
	}
	if p.i < len(p.in) && p.in[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.numberEnd()
		}
	}
	if p.i < len(p.in) && (p.in[p.i] == 'e' || p.in[p.i] == 'E') {
		p.i++
		if p.i < len(p.in) && (p.in[p.i] == '+' || p.in[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.numberEnd()
		}
	}
	return string(p.in[start:p.i]), nil
}

func (p *jsonParser) numberEnd() error {
	if p.i >= len(p.in) {
		return io.ErrUnexpectedEOF
	}
	return p.errorf("invalid character %q in numeric literal", p.in[p.i])
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
