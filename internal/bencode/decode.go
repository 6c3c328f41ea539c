package bencode

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
)

const (
	// DefaultMaxDepth is the nesting limit of a Decoder whose MaxDepth is 0.
	DefaultMaxDepth = 64
	// DefaultMaxInputBytes is the input limit of a Decoder whose
	// MaxInputBytes is 0. It leaves room for the largest .torrent files
	// (a v2 torrent of a few hundred GiB carries megabytes of piece layers).
	DefaultMaxInputBytes = 64 << 20

	// maxDepthLimit caps Decoder.MaxDepth so that decoding, which recurses
	// once per level, cannot exhaust the goroutine stack.
	maxDepthLimit = 10000
)

// A Decoder decodes bencode under configurable limits. The zero value uses
// the defaults and the strict rules of BEP 3. A Decoder is not modified by
// decoding, so one may be shared by concurrent goroutines.
//
// Input is rejected with a [*SyntaxError] when it is not exactly one value
// (nothing may trail it); when an integer is empty, has a leading zero or is
// "-0"; when a string length has a leading zero, a sign, or exceeds the bytes
// that follow; when a dictionary key is not a string, is repeated, or (unless
// AllowUnsortedKeys) is not greater than the key before it as raw bytes; or
// when a limit below is exceeded. The whole input is checked before anything
// is stored, so on a SyntaxError the destination is untouched.
type Decoder struct {
	// MaxDepth is how deeply lists and dictionaries may nest: 1 allows a
	// list of scalars, not a list of lists. 0 means DefaultMaxDepth; the
	// most allowed is 10000.
	MaxDepth int

	// MaxStringLen, if positive, is the longest byte string (or dict key)
	// accepted. Strings are always bounded by the input that remains, so
	// no length prefix can make the decoder allocate more than the input.
	MaxStringLen int

	// MaxInputBytes is the largest input accepted, in bytes. 0 means
	// DefaultMaxInputBytes.
	MaxInputBytes int64

	// AllowUnsortedKeys accepts dictionaries whose keys are out of order,
	// which some real .torrent files have. Repeated keys are still
	// rejected. Decode the info dictionary into a RawMessage to hash it as
	// written.
	AllowUnsortedKeys bool
}

// Unmarshal decodes data with the default [Decoder] into the value v points
// to: strict BEP 3, nesting up to DefaultMaxDepth, input up to
// DefaultMaxInputBytes. See [Decoder.Unmarshal].
func Unmarshal(data []byte, v any) error {
	var d Decoder
	return d.Unmarshal(data, v)
}

// Unmarshal checks that data is exactly one well-formed bencode value within
// d's limits and stores it in the value v points to.
//
// Integers are range-checked against their Go type. Byte strings decode into
// string, []byte (a fresh copy) or [N]byte (which needs exactly N bytes).
// Lists decode into slices (reset to length 0 first) and arrays (extra Go
// elements are zeroed). Dictionaries decode into maps with string keys
// (entries are added to an existing map) and structs, matching keys to fields
// exactly as bytes; keys without a field are skipped. Pointers are allocated
// as needed. An empty interface receives int64, string, []any or
// map[string]any; an interface that already holds a non-nil pointer has the
// value decoded into what that points to. A [RawMessage] receives a copy of
// the value's bytes, and an [Unmarshaler] is handed them.
//
// Unmarshal returns an [*InvalidUnmarshalError] if v is not a non-nil
// pointer, a [*SyntaxError] for bad input (leaving v untouched), an
// [*UnmarshalTypeError] when a value does not fit its Go destination (v may
// then be partly filled), and any error an Unmarshaler returns. It never
// panics on any input.
func (d *Decoder) Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	ds, err := d.state(data)
	if err != nil {
		return err
	}
	if err := ds.validate(); err != nil {
		return err
	}
	ds.pos = 0
	ds.verified = true
	if p, ok := v.(*any); ok && *p == nil {
		x, err := ds.anyValue()
		if err != nil {
			return err
		}
		*p = x
		return nil
	}
	return ds.value(rv.Elem())
}

// Decode reads r to EOF, failing with a [*SyntaxError] as soon as more than
// MaxInputBytes arrive, and then decodes what it read as [Decoder.Unmarshal]
// does. Errors from r are returned as they are.
func (d *Decoder) Decode(r io.Reader, v any) error {
	limit, err := d.inputLimit()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(r, min(limit, math.MaxInt64-1)+1))
	if err != nil {
		return err
	}
	return d.Unmarshal(data, v)
}

func (d *Decoder) inputLimit() (int64, error) {
	switch {
	case d.MaxInputBytes < 0:
		return 0, fmt.Errorf("bencode: Decoder.MaxInputBytes %d is negative", d.MaxInputBytes)
	case d.MaxInputBytes == 0:
		return DefaultMaxInputBytes, nil
	}
	return d.MaxInputBytes, nil
}

// state checks d's settings and the input size and returns a decodeState for
// data.
func (d *Decoder) state(data []byte) (decodeState, error) {
	limit, err := d.inputLimit()
	if err != nil {
		return decodeState{}, err
	}
	ds := decodeState{data: data, maxDepth: d.MaxDepth, maxStr: d.MaxStringLen, lenient: d.AllowUnsortedKeys}
	switch {
	case d.MaxDepth < 0 || d.MaxDepth > maxDepthLimit:
		return decodeState{}, fmt.Errorf("bencode: Decoder.MaxDepth %d is outside 0-%d", d.MaxDepth, maxDepthLimit)
	case d.MaxDepth == 0:
		ds.maxDepth = DefaultMaxDepth
	}
	if d.MaxStringLen < 0 {
		return decodeState{}, fmt.Errorf("bencode: Decoder.MaxStringLen %d is negative", d.MaxStringLen)
	}
	if int64(len(data)) > limit {
		return decodeState{}, &SyntaxError{Offset: limit, Msg: "input exceeds limit of " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	return ds, nil
}

// decodeState walks one input twice: validate checks all of it, then value
// or anyValue stores it, trusting that it is well-formed.
type decodeState struct {
	data     []byte
	pos      int
	depth    int
	maxDepth int
	maxStr   int  // 0: bounded only by the input
	lenient  bool // AllowUnsortedKeys
	verified bool // validate has passed; skip need not check keys again

	// keys holds, in lenient mode, the keys of each open dictionary while
	// they are still in order, so a later out-of-order key can be checked
	// for repetition. Nested dictionaries push above their parent's keys
	// and truncate back when they end.
	keys [][]byte
}

func (d *decodeState) syntaxError(off int, msg string) error {
	return &SyntaxError{Offset: int64(off), Msg: msg}
}

func (d *decodeState) errEOF() error {
	return d.syntaxError(len(d.data), "unexpected end of input")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// quoteKey quotes a dict key for an error message, shortened if long.
func quoteKey(k []byte) string {
	const maxLen = 40
	if len(k) > maxLen {
		return strconv.Quote(string(k[:maxLen])) + "..."
	}
	return strconv.Quote(string(k))
}

// validate checks that the input is exactly one well-formed value.
func (d *decodeState) validate() error {
	d.pos = 0
	if err := d.skip(); err != nil {
		return err
	}
	if d.pos != len(d.data) {
		return d.syntaxError(d.pos, "trailing data after top-level value")
	}
	return nil
}

// readInt reads the integer starting at d.pos, where d.data[d.pos] == 'i',
// and returns its digits without the sign.
func (d *decodeState) readInt() (digits []byte, neg bool, err error) {
	i := d.pos + 1
	if i < len(d.data) && d.data[i] == '-' {
		neg = true
		i++
	}
	first := i
	for i < len(d.data) && isDigit(d.data[i]) {
		i++
	}
	if i >= len(d.data) {
		return nil, false, d.errEOF()
	}
	if d.data[i] != 'e' {
		return nil, false, d.syntaxError(i, fmt.Sprintf("invalid byte %q in integer", d.data[i]))
	}
	digits = d.data[first:i]
	switch {
	case len(digits) == 0:
		return nil, false, d.syntaxError(i, "integer has no digits")
	case digits[0] == '0' && len(digits) > 1:
		return nil, false, d.syntaxError(first, "integer has leading zero")
	case digits[0] == '0' && neg:
		return nil, false, d.syntaxError(first-1, "integer is negative zero")
	}
	d.pos = i + 1
	return digits, neg, nil
}

// readString reads the byte string starting at d.pos, where d.data[d.pos]
// is a digit. The result aliases the input.
func (d *decodeState) readString() ([]byte, error) {
	start := d.pos
	i := start
	n := 0
	tooBig := false
	for i < len(d.data) && isDigit(d.data[i]) {
		if i > start && d.data[start] == '0' {
			return nil, d.syntaxError(start, "string length has leading zero")
		}
		if !tooBig {
			n = n*10 + int(d.data[i]-'0')
			tooBig = n > len(d.data) // stop before n can overflow
		}
		i++
	}
	if i >= len(d.data) {
		return nil, d.errEOF()
	}
	if d.data[i] != ':' {
		return nil, d.syntaxError(i, fmt.Sprintf("invalid byte %q in string length", d.data[i]))
	}
	if tooBig {
		return nil, d.syntaxError(start, "string length is larger than the input")
	}
	i++
	if d.maxStr > 0 && n > d.maxStr {
		return nil, d.syntaxError(start, fmt.Sprintf("string length %d exceeds limit of %d", n, d.maxStr))
	}
	if rest := len(d.data) - i; n > rest {
		return nil, d.syntaxError(start, fmt.Sprintf("string length %d exceeds remaining %d bytes", n, rest))
	}
	d.pos = i + n
	return d.data[i:d.pos:d.pos], nil
}

func (d *decodeState) badValueStart() error {
	c := d.data[d.pos]
	if c == '-' && d.pos+1 < len(d.data) && isDigit(d.data[d.pos+1]) {
		return d.syntaxError(d.pos, "string length is negative")
	}
	return d.syntaxError(d.pos, fmt.Sprintf("invalid byte %q at start of value", c))
}

func (d *decodeState) enter() error {
	d.depth++
	if d.depth > d.maxDepth {
		return d.syntaxError(d.pos, fmt.Sprintf("nesting depth exceeds limit of %d", d.maxDepth))
	}
	return nil
}

// skip moves past the value at d.pos, checking it unless verified. It
// recurses once per nesting level, which enter bounds.
func (d *decodeState) skip() error {
	if d.pos >= len(d.data) {
		return d.errEOF()
	}
	switch c := d.data[d.pos]; {
	case c == 'i':
		_, _, err := d.readInt()
		return err
	case isDigit(c):
		_, err := d.readString()
		return err
	case c == 'l':
		if err := d.enter(); err != nil {
			return err
		}
		d.pos++
		for {
			if d.pos >= len(d.data) {
				return d.errEOF()
			}
			if d.data[d.pos] == 'e' {
				d.pos++
				d.depth--
				return nil
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == 'd':
		if err := d.enter(); err != nil {
			return err
		}
		d.pos++
		return d.skipDict()
	default:
		return d.badValueStart()
	}
}

// skipDict moves past the entries of a dictionary whose 'd' has been read.
func (d *decodeState) skipDict() error {
	var prev []byte
	first := true
	base := len(d.keys)
	var seen map[string]struct{} // lenient mode, after the first out-of-order key
	for {
		if d.pos >= len(d.data) {
			return d.errEOF()
		}
		c := d.data[d.pos]
		if c == 'e' {
			d.pos++
			d.depth--
			d.keys = d.keys[:base]
			return nil
		}
		if !isDigit(c) {
			return d.syntaxError(d.pos, "dict key is not a string")
		}
		keyOff := d.pos
		key, err := d.readString()
		if err != nil {
			return err
		}
		if !d.verified {
			switch {
			case seen != nil:
				if _, dup := seen[string(key)]; dup {
					return d.syntaxError(keyOff, "duplicate dict key "+quoteKey(key))
				}
				seen[string(key)] = struct{}{}
			case first:
			case bytes.Equal(key, prev):
				return d.syntaxError(keyOff, "duplicate dict key "+quoteKey(key))
			case bytes.Compare(key, prev) < 0:
				if !d.lenient {
					return d.syntaxError(keyOff, "dict key "+quoteKey(key)+" is not sorted after "+quoteKey(prev))
				}
				seen = make(map[string]struct{}, len(d.keys)-base+1)
				for _, k := range d.keys[base:] {
					seen[string(k)] = struct{}{}
				}
				if _, dup := seen[string(key)]; dup {
					return d.syntaxError(keyOff, "duplicate dict key "+quoteKey(key))
				}
				seen[string(key)] = struct{}{}
				d.keys = d.keys[:base]
			}
			if d.lenient && seen == nil {
				d.keys = append(d.keys, key)
			}
			prev = key
			first = false
		}
		if d.pos >= len(d.data) {
			return d.errEOF()
		}
		if d.data[d.pos] == 'e' {
			return d.syntaxError(d.pos, "missing value for dict key "+quoteKey(key))
		}
		if err := d.skip(); err != nil {
			return err
		}
	}
}

// The functions below run after validate and so trust the input's syntax;
// they return only type errors.

// span skips the value at d.pos and returns its bytes.
func (d *decodeState) span() []byte {
	start := d.pos
	if err := d.skip(); err != nil {
		panic("bencode: skip failed after validation: " + err.Error())
	}
	return d.data[start:d.pos:d.pos]
}

func (d *decodeState) typeError(what string, t reflect.Type, off int) error {
	return &UnmarshalTypeError{Value: what, Type: t, Offset: int64(off)}
}

// kindAt names the kind of value at off for a type error.
func (d *decodeState) kindAt(off int) string {
	switch c := d.data[off]; {
	case c == 'i':
		return "integer"
	case c == 'l':
		return "list"
	case c == 'd':
		return "dict"
	}
	return "string"
}

// inField prefixes the path of an UnmarshalTypeError with a dict key.
func inField(err error, key []byte) error {
	if te, ok := err.(*UnmarshalTypeError); ok {
		switch {
		case te.Field == "":
			te.Field = string(key)
		case te.Field[0] == '[':
			te.Field = string(key) + te.Field
		default:
			te.Field = string(key) + "." + te.Field
		}
	}
	return err
}

// inIndex prefixes the path of an UnmarshalTypeError with a list index.
func inIndex(err error, i int) error {
	if te, ok := err.(*UnmarshalTypeError); ok {
		idx := "[" + strconv.Itoa(i) + "]"
		switch {
		case te.Field == "" || te.Field[0] == '[':
			te.Field = idx + te.Field
		default:
			te.Field = idx + "." + te.Field
		}
	}
	return err
}

// parseUint converts decimal digits, reporting false on overflow.
func parseUint(digits []byte) (uint64, bool) {
	var n uint64
	for _, c := range digits {
		if n > math.MaxUint64/10 {
			return 0, false
		}
		n *= 10
		x := uint64(c - '0')
		if n > math.MaxUint64-x {
			return 0, false
		}
		n += x
	}
	return n, true
}

// parseInt converts a sign and decimal digits, reporting false on overflow.
func parseInt(digits []byte, neg bool) (int64, bool) {
	u, ok := parseUint(digits)
	switch {
	case !ok:
		return 0, false
	case neg && u > 1<<63:
		return 0, false
	case neg:
		return int64(-u), true // -(1<<63) wraps to math.MinInt64, as wanted
	case u > math.MaxInt64:
		return 0, false
	}
	return int64(u), true
}

func intDesc(digits []byte, neg bool) string {
	const maxLen = 30
	s := "integer "
	if neg {
		s += "-"
	}
	if len(digits) > maxLen {
		return s + string(digits[:maxLen]) + "..."
	}
	return s + string(digits)
}

// value stores the value at d.pos into v, which must be settable.
func (d *decodeState) value(v reflect.Value) error {
	start := d.pos
	// Follow pointers and interfaces to the destination. The bound only
	// matters for types that point to themselves.
	for n := 0; ; n++ {
		if n > maxDepthLimit {
			return d.typeError(d.kindAt(start), v.Type(), start)
		}
		if v.Type() == rawMessageType {
			raw := d.span()
			v.SetBytes(append(v.Bytes()[:0], raw...))
			return nil
		}
		if v.CanAddr() {
			if u, ok := v.Addr().Interface().(Unmarshaler); ok {
				return u.UnmarshalBencode(d.span())
			}
		}
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
			continue
		case reflect.Interface:
			if e := v.Elem(); e.Kind() == reflect.Pointer && !e.IsNil() {
				v = e
				continue
			}
			if v.NumMethod() != 0 {
				return d.typeError(d.kindAt(start), v.Type(), start)
			}
			x, err := d.anyValue()
			if err != nil {
				return err
			}
			v.Set(reflect.ValueOf(x))
			return nil
		}
		break
	}

	switch c := d.data[d.pos]; {
	case c == 'i':
		digits, neg, _ := d.readInt()
		return d.setInt(v, digits, neg, start)
	case c == 'l':
		return d.list(v)
	case c == 'd':
		return d.dict(v)
	default:
		s, _ := d.readString()
		return d.setString(v, s, start)
	}
}

func (d *decodeState) setInt(v reflect.Value, digits []byte, neg bool, off int) error {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := parseInt(digits, neg)
		if !ok || v.OverflowInt(n) {
			return d.typeError(intDesc(digits, neg), v.Type(), off)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := parseUint(digits)
		if neg || !ok || v.OverflowUint(n) {
			return d.typeError(intDesc(digits, neg), v.Type(), off)
		}
		v.SetUint(n)
	default:
		return d.typeError("integer", v.Type(), off)
	}
	return nil
}

func (d *decodeState) setString(v reflect.Value, s []byte, off int) error {
	t := v.Type()
	switch {
	case v.Kind() == reflect.String:
		v.SetString(string(s))
	case v.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		v.SetBytes(bytes.Clone(s))
	case v.Kind() == reflect.Array && t.Elem().Kind() == reflect.Uint8:
		if v.Len() != len(s) {
			return d.typeError("string of length "+strconv.Itoa(len(s)), t, off)
		}
		copy(v.Bytes(), s) // v is addressable: every destination is reached through a pointer
	default:
		return d.typeError("string", t, off)
	}
	return nil
}

func (d *decodeState) list(v reflect.Value) error {
	start := d.pos
	switch v.Kind() {
	case reflect.Slice:
		d.pos++ // 'l'
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		} else {
			v.SetLen(0)
		}
		for i := 0; d.data[d.pos] != 'e'; i++ {
			if i >= v.Cap() {
				v.Grow(1)
			}
			v.SetLen(i + 1)
			el := v.Index(i)
			el.SetZero()
			if err := d.value(el); err != nil {
				return inIndex(err, i)
			}
		}
		d.pos++
		return nil
	case reflect.Array:
		d.pos++
		i := 0
		for ; d.data[d.pos] != 'e'; i++ {
			if i >= v.Len() {
				return d.typeError("list longer than "+strconv.Itoa(v.Len()), v.Type(), start)
			}
			if err := d.value(v.Index(i)); err != nil {
				return inIndex(err, i)
			}
		}
		for ; i < v.Len(); i++ {
			v.Index(i).SetZero()
		}
		d.pos++
		return nil
	}
	return d.typeError("list", v.Type(), start)
}

func (d *decodeState) dict(v reflect.Value) error {
	start := d.pos
	t := v.Type()
	switch {
	case v.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		d.pos++ // 'd'
		for d.data[d.pos] != 'e' {
			key, _ := d.readString()
			el := reflect.New(t.Elem()).Elem()
			if err := d.value(el); err != nil {
				return inField(err, key)
			}
			kv := reflect.ValueOf(string(key))
			if t.Key() != kv.Type() {
				kv = kv.Convert(t.Key())
			}
			v.SetMapIndex(kv, el)
		}
		d.pos++
		return nil
	case v.Kind() == reflect.Struct:
		fields := cachedFields(t)
		d.pos++
		for d.data[d.pos] != 'e' {
			key, _ := d.readString()
			i, ok := fields.byName[string(key)]
			if !ok {
				_ = d.skip() // cannot fail: the input was validated
				continue
			}
			fv := fieldForDecode(v, fields.list[i].index)
			if err := d.value(fv); err != nil {
				return inField(err, key)
			}
		}
		d.pos++
		return nil
	}
	return d.typeError("dict", t, start)
}

var int64Type = reflect.TypeFor[int64]()

// anyValue returns the value at d.pos as int64, string, []any or
// map[string]any. Its only error is an integer outside int64.
func (d *decodeState) anyValue() (any, error) {
	start := d.pos
	switch c := d.data[d.pos]; {
	case c == 'i':
		digits, neg, _ := d.readInt()
		n, ok := parseInt(digits, neg)
		if !ok {
			return nil, d.typeError(intDesc(digits, neg), int64Type, start)
		}
		return n, nil
	case c == 'l':
		d.pos++
		l := []any{}
		for d.data[d.pos] != 'e' {
			x, err := d.anyValue()
			if err != nil {
				return nil, inIndex(err, len(l))
			}
			l = append(l, x)
		}
		d.pos++
		return l, nil
	case c == 'd':
		d.pos++
		m := map[string]any{}
		for d.data[d.pos] != 'e' {
			key, _ := d.readString()
			x, err := d.anyValue()
			if err != nil {
				return nil, inField(err, key)
			}
			m[string(key)] = x
		}
		d.pos++
		return m, nil
	default:
		s, _ := d.readString()
		return string(s), nil
	}
}
