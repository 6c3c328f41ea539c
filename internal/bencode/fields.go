package bencode

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// A field is one dictionary key of a struct type.
type field struct {
	name      string // the dict key
	index     []int  // path for reflect, through embedded structs
	omitEmpty bool

	depth  int  // embedding depth; only used while building
	tagged bool // name came from a tag; only used while building
}

// structFields describes how a struct type maps to a dictionary.
type structFields struct {
	list   []field        // sorted by name as raw bytes: the encoding order
	byName map[string]int // name -> index in list
}

var fieldCache sync.Map // reflect.Type -> *structFields

func cachedFields(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f, _ := fieldCache.LoadOrStore(t, typeFields(t))
	return f.(*structFields)
}

// typeFields lists the keys of struct type t. Exported fields are keys, named
// by their `bencode:"name,omitempty"` tag or else by the field name; a tag of
// "-" skips the field. Fields of embedded structs without a tag name are
// promoted as encoding/json does: when several fields claim one name, the
// shallowest wins, then a tagged one, and if that leaves a tie the name is
// dropped. Embedded pointers to unexported struct types are ignored, as they
// cannot be allocated while decoding.
func typeFields(t reflect.Type) *structFields {
	type queued struct {
		typ   reflect.Type
		index []int
	}
	var all []field
	visited := map[reflect.Type]bool{}
	current := []queued{{typ: t}}
	for depth := 0; len(current) > 0; depth++ {
		for _, q := range current {
			visited[q.typ] = true
		}
		var next []queued
		for _, q := range current {
			for i := range q.typ.NumField() {
				sf := q.typ.Field(i)
				tag := sf.Tag.Get("bencode")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				index := append(slices.Clone(q.index), i)
				if sf.Anonymous {
					ft := sf.Type
					isPtr := ft.Kind() == reflect.Pointer
					if isPtr {
						ft = ft.Elem()
					}
					if name == "" && ft.Kind() == reflect.Struct {
						if isPtr && !sf.IsExported() {
							continue
						}
						if !visited[ft] {
							next = append(next, queued{typ: ft, index: index})
						}
						continue
					}
				}
				if !sf.IsExported() {
					continue
				}
				f := field{name: name, index: index, depth: depth, tagged: name != ""}
				if f.name == "" {
					f.name = sf.Name
				}
				for opts != "" {
					var opt string
					opt, opts, _ = strings.Cut(opts, ",")
					if opt == "omitempty" {
						f.omitEmpty = true
					}
				}
				all = append(all, f)
			}
		}
		current = next
	}

	slices.SortStableFunc(all, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		switch {
		case a.tagged && !b.tagged:
			return -1
		case !a.tagged && b.tagged:
			return 1
		}
		return 0
	})
	sf := &structFields{byName: map[string]int{}}
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		// all[i] dominates unless the runner-up is equally shallow and
		// equally tagged.
		if j == i+1 || all[i+1].depth != all[i].depth || all[i+1].tagged != all[i].tagged {
			sf.byName[all[i].name] = len(sf.list)
			sf.list = append(sf.list, all[i])
		}
		i = j
	}
	return sf
}

// fieldForDecode returns the field of struct v at index, allocating nil
// embedded pointers on the way.
func fieldForDecode(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// fieldForEncode returns the field of struct v at index, or false if a nil
// embedded pointer is in the way.
func fieldForEncode(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}
