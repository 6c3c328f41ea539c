package bencode

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// maxEncodeDepth bounds how deeply Marshal follows pointers, interfaces and
// containers, so a cyclic value is an error rather than a stack overflow.
const maxEncodeDepth = maxDepthLimit

// Marshal returns the canonical bencoding of v. Dictionary keys, whether
// from a map or a struct, are written sorted as raw byte strings, as BEP 3
// requires; struct fields follow their tags, not their declaration order.
// See the package comment for the mapping of Go types. Values implementing
// [Marshaler] and [RawMessage] values are copied verbatim once checked to be
// one well-formed value.
//
// Marshal returns an [*UnsupportedTypeError] for a type with no bencode form
// (bool, floats, maps without string keys, …), an [*UnsupportedValueError]
// for a nil pointer or interface outside a dictionary or a value nested more
// than 10000 levels deep, and a [*MarshalerError] for a failing Marshaler.
func Marshal(v any) ([]byte, error) {
	return AppendMarshal(nil, v)
}

// AppendMarshal appends the encoding of v to dst, as [Marshal] does. On error
// it returns dst with its original length, though bytes past that length may
// have been overwritten. It allocates to grow dst and to sort map keys, and
// reflection may box values; for no allocation at all use [AppendString],
// [AppendInt] and friends.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	e := encodeState{buf: dst}
	if err := e.marshal(v); err != nil {
		return dst, err
	}
	return e.buf, nil
}

type encodeState struct {
	buf   []byte
	depth int
}

func (e *encodeState) enter(t reflect.Type) error {
	e.depth++
	if e.depth > maxEncodeDepth {
		return &UnsupportedValueError{Type: t, Msg: "nested more than 10000 levels deep (cyclic value?)"}
	}
	return nil
}

// errAbsent is the error for a nil value outside a dictionary.
func errAbsent(t reflect.Type) error {
	return &UnsupportedValueError{Type: t, Msg: "nil or empty value outside a dict (bencode has no null)"}
}

// marshal encodes v, taking fast paths for the types a reply or a decoded
// `any` is made of before falling back to reflection.
func (e *encodeState) marshal(v any) error {
	switch x := v.(type) {
	case nil:
		return errAbsent(nil)
	case string:
		e.buf = AppendString(e.buf, x)
	case []byte:
		e.buf = AppendBytes(e.buf, x)
	case int:
		e.buf = AppendInt(e.buf, int64(x))
	case int64:
		e.buf = AppendInt(e.buf, x)
	case int32:
		e.buf = AppendInt(e.buf, int64(x))
	case uint64:
		e.buf = AppendUint(e.buf, x)
	case uint32:
		e.buf = AppendUint(e.buf, uint64(x))
	case uint16:
		e.buf = AppendUint(e.buf, uint64(x))
	case RawMessage:
		return e.raw(x)
	case []any:
		if err := e.enter(nil); err != nil {
			return err
		}
		e.buf = append(e.buf, 'l')
		for _, el := range x {
			if err := e.marshal(el); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
	case map[string]any:
		if err := e.enter(nil); err != nil {
			return err
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // Go strings compare as raw bytes
		e.buf = append(e.buf, 'd')
		for _, k := range keys {
			el := x[k]
			if absentAny(el) {
				continue
			}
			e.buf = AppendString(e.buf, k)
			if err := e.marshal(el); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
	default:
		return e.value(reflect.ValueOf(v))
	}
	return nil
}

// raw appends an already encoded value after checking it.
func (e *encodeState) raw(b []byte) error {
	if len(b) == 0 {
		return errAbsent(rawMessageType)
	}
	if err := checkRaw(b); err != nil {
		return &MarshalerError{Type: rawMessageType, Err: err}
	}
	e.buf = append(e.buf, b...)
	return nil
}

// checkRaw reports whether b is exactly one well-formed value. Key order is
// not checked, so bytes captured from a lenient decode pass through.
func checkRaw(b []byte) error {
	d := decodeState{data: b, maxDepth: maxDepthLimit, lenient: true}
	return d.validate()
}

func (e *encodeState) marshaler(m Marshaler, t reflect.Type) error {
	b, err := m.MarshalBencode()
	if err != nil {
		return &MarshalerError{Type: t, Err: err}
	}
	if err := checkRaw(b); err != nil {
		return &MarshalerError{Type: t, Err: err}
	}
	e.buf = append(e.buf, b...)
	return nil
}

func (e *encodeState) value(v reflect.Value) error {
	if !v.IsValid() {
		return errAbsent(nil)
	}
	t := v.Type()
	if t == rawMessageType {
		return e.raw(v.Bytes())
	}
	if t.Implements(marshalerType) {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return errAbsent(t)
		}
		return e.marshaler(v.Interface().(Marshaler), t)
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(t).Implements(marshalerType) {
		return e.marshaler(v.Addr().Interface().(Marshaler), t)
	}

	switch v.Kind() {
	case reflect.String:
		e.buf = AppendString(e.buf, v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = AppendInt(e.buf, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = AppendUint(e.buf, v.Uint())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			e.buf = AppendBytes(e.buf, v.Bytes())
			return nil
		}
		return e.list(v)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			n := v.Len()
			e.buf = strconv.AppendUint(e.buf, uint64(n), 10)
			e.buf = append(e.buf, ':')
			if v.CanAddr() {
				e.buf = append(e.buf, v.Bytes()...)
			} else {
				for i := range n {
					e.buf = append(e.buf, byte(v.Index(i).Uint()))
				}
			}
			return nil
		}
		return e.list(v)
	case reflect.Map:
		return e.dictMap(v)
	case reflect.Struct:
		return e.dictStruct(v)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return errAbsent(t)
		}
		if err := e.enter(t); err != nil {
			return err
		}
		err := e.value(v.Elem())
		e.depth--
		return err
	default:
		return &UnsupportedTypeError{Type: t}
	}
	return nil
}

func (e *encodeState) list(v reflect.Value) error {
	if err := e.enter(v.Type()); err != nil {
		return err
	}
	e.buf = append(e.buf, 'l')
	for i := range v.Len() {
		if err := e.value(v.Index(i)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	e.depth--
	return nil
}

func (e *encodeState) dictMap(v reflect.Value) error {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		return &UnsupportedTypeError{Type: t}
	}
	if err := e.enter(t); err != nil {
		return err
	}
	type entry struct {
		key string
		val reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		entries = append(entries, entry{it.Key().String(), it.Value()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	e.buf = append(e.buf, 'd')
	for _, en := range entries {
		if absent(en.val) {
			continue
		}
		e.buf = AppendString(e.buf, en.key)
		if err := e.value(en.val); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	e.depth--
	return nil
}

func (e *encodeState) dictStruct(v reflect.Value) error {
	if err := e.enter(v.Type()); err != nil {
		return err
	}
	fields := cachedFields(v.Type())
	e.buf = append(e.buf, 'd')
	for i := range fields.list {
		f := &fields.list[i]
		fv, ok := fieldForEncode(v, f.index)
		if !ok || absent(fv) || (f.omitEmpty && isEmpty(fv)) {
			continue
		}
		e.buf = AppendString(e.buf, f.name)
		if err := e.value(fv); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	e.depth--
	return nil
}

// absent reports whether v is bencode's "no value": a nil pointer or
// interface, possibly inside interfaces, or an empty RawMessage.
func absent(v reflect.Value) bool {
	for v.Kind() == reflect.Interface {
		if v.IsNil() {
			return true
		}
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.Pointer:
		return v.IsNil()
	case v.Type() == rawMessageType:
		return v.Len() == 0
	}
	return false
}

// absentAny is absent for a value already in an interface.
func absentAny(x any) bool {
	switch x := x.(type) {
	case nil:
		return true
	case string, int64, int, []any, map[string]any, []byte:
		return false
	case RawMessage:
		return len(x) == 0
	}
	return absent(reflect.ValueOf(x))
}

// isEmpty reports whether omitempty leaves v out.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return v.Len() == 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}
