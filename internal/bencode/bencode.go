// Package bencode encodes and decodes the bencoding of BEP 3: integers,
// byte strings, lists and dictionaries.
//
// The package owns the wire format and nothing above it. Encoding is
// canonical: dictionary keys are written sorted as raw byte strings, integers
// without leading zeros, so equal values always encode to equal bytes.
// Decoding is strict by default (see [Decoder]) and bounded: nesting depth,
// string length and total input are limited, no allocation is sized by a
// length prefix the input has not backed with bytes, and no input makes the
// package panic. What a .torrent file means is left to package metainfo; the
// layout of tracker replies is left to the frontends, which can build them
// without reflection using [AppendString], [AppendInt] and friends.
//
// Mapping between bencode and Go values:
//
//	integer     int, int8…int64, uint, uint8…uint64, uintptr (range-checked on decode)
//	string      string, []byte, [N]byte (decode needs exactly N bytes)
//	list        slice, array
//	dictionary  map with string keys, struct (fields by `bencode:"name,omitempty"` tags)
//
// Decoding into an empty interface yields int64, string, []any and
// map[string]any. Booleans, floats, complex numbers, channels and functions
// have no bencode form and are rejected with an error. Bencode has no null:
// a nil pointer, nil interface or empty [RawMessage] is left out when it is a
// dictionary value (struct field or map entry) and is an error anywhere else.
package bencode

import (
	"fmt"
	"reflect"
	"strconv"
)

// Marshaler is implemented by types that encode themselves. MarshalBencode
// must return exactly one well-formed bencode value, which Marshal copies
// into its output verbatim; dictionary key order inside it is not checked.
// As in encoding/json, a method with a pointer receiver is only called for
// addressable values, that is, values Marshal reached through a pointer.
type Marshaler interface {
	MarshalBencode() ([]byte, error)
}

// Unmarshaler is implemented by types that decode themselves. The argument
// is the complete encoding of one value, already checked to be well-formed
// under the Decoder's rules. It aliases the decoder's input, so
// UnmarshalBencode must copy it to keep it after returning.
type Unmarshaler interface {
	UnmarshalBencode([]byte) error
}

// RawMessage is the encoding of one bencode value, kept as bytes.
//
// Decoding into a RawMessage copies the exact input bytes of the value, so a
// .torrent's info dictionary can be hashed as it was written, even when it
// was accepted with [Decoder.AllowUnsortedKeys]. Encoding a RawMessage writes
// it verbatim after checking that it holds exactly one well-formed value. An
// empty RawMessage is treated like a nil pointer: it is left out as a
// dictionary value and is an error elsewhere.
type RawMessage []byte

var (
	rawMessageType = reflect.TypeFor[RawMessage]()
	marshalerType  = reflect.TypeFor[Marshaler]()
)

// A SyntaxError reports input that is not well-formed bencode under the
// decoder's rules, or that exceeds one of its limits.
type SyntaxError struct {
	Offset int64  // byte offset in the input where the problem was found
	Msg    string // what is wrong, e.g. "integer has leading zero"
}

func (e *SyntaxError) Error() string {
	return "bencode: at offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Msg
}

// An UnmarshalTypeError reports a well-formed bencode value that does not fit
// the Go value it is decoded into: a list into an int, an integer out of
// range for its type, a string of the wrong length for a byte array.
type UnmarshalTypeError struct {
	Value  string       // the bencode value, e.g. "list" or "integer 300"
	Type   reflect.Type // the Go type it could not be stored in
	Offset int64        // byte offset of the value in the input
	Field  string       // path of dict keys and list indexes to it, e.g. "info.files[2].length"; "" at top level
}

func (e *UnmarshalTypeError) Error() string {
	where := "Go value"
	if e.Field != "" {
		where = "field " + strconv.Quote(e.Field)
	}
	return fmt.Sprintf("bencode: at offset %d: cannot unmarshal %s into %s of type %s", e.Offset, e.Value, where, e.Type)
}

// An InvalidUnmarshalError reports an argument to Unmarshal that is not a
// non-nil pointer.
type InvalidUnmarshalError struct {
	Type reflect.Type
}

func (e *InvalidUnmarshalError) Error() string {
	switch {
	case e.Type == nil:
		return "bencode: Unmarshal(nil)"
	case e.Type.Kind() != reflect.Pointer:
		return "bencode: Unmarshal(non-pointer " + e.Type.String() + ")"
	default:
		return "bencode: Unmarshal(nil " + e.Type.String() + ")"
	}
}

// An UnsupportedTypeError is returned by Marshal for a Go type with no
// bencode form, such as bool, float64 or a map whose keys are not strings.
type UnsupportedTypeError struct {
	Type reflect.Type
}

func (e *UnsupportedTypeError) Error() string {
	if e.Type.Kind() == reflect.Bool {
		return "bencode: unsupported type " + e.Type.String() + " (BEP 3 has no booleans; encode 0 or 1 as an integer)"
	}
	return "bencode: unsupported type " + e.Type.String()
}

// An UnsupportedValueError is returned by Marshal for a value of a supported
// type that still cannot be encoded: a nil pointer outside a dictionary, or
// a value nested too deeply (usually a cycle).
type UnsupportedValueError struct {
	Type reflect.Type // nil for a nil interface
	Msg  string
}

func (e *UnsupportedValueError) Error() string {
	if e.Type == nil {
		return "bencode: unsupported value: " + e.Msg
	}
	return "bencode: unsupported value of type " + e.Type.String() + ": " + e.Msg
}

// A MarshalerError wraps an error from a [Marshaler], or reports that a
// Marshaler or [RawMessage] produced bytes that are not exactly one
// well-formed bencode value.
type MarshalerError struct {
	Type reflect.Type
	Err  error
}

func (e *MarshalerError) Error() string {
	return "bencode: marshaling " + e.Type.String() + ": " + e.Err.Error()
}

func (e *MarshalerError) Unwrap() error { return e.Err }
