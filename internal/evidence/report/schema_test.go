package report

import (
	"encoding/json"
	"fmt"
	"math"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// jsonSchema checks a JSON value against the vendored XARF schemas
// (testdata/xarf): the subset of JSON Schema 2020-12 they use, formats
// asserted. A keyword it does not know is an error, so a schema that
// grows one is never half-checked.
type jsonSchema struct {
	files map[string]any // loaded schema files, by path
}

// annotations are keywords that do not constrain.
var annotations = []string{"$schema", "$id", "$defs", "title", "description", "examples", "default", "x-recommended", "contentEncoding"}

func (s *jsonSchema) load(path string) (any, error) {
	if v, ok := s.files[path]; ok {
		return v, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.files == nil {
		s.files = map[string]any{}
	}
	s.files[path] = v
	return v, nil
}

// validate returns every place v breaks the schema in file.
func (s *jsonSchema) validate(file string, v any) []string {
	root, err := s.load(file)
	if err != nil {
		return []string{err.Error()}
	}
	return s.check(file, root, root, v, "$")
}

func (s *jsonSchema) check(file string, root, schema, v any, at string) []string {
	sc, ok := schema.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: schema is not an object", at)}
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	for kw, arg := range sc {
		switch kw {
		case "$ref":
			ref := arg.(string)
			f, r, frag := file, root, ref
			if path, fr, _ := strings.Cut(ref, "#"); path != "" {
				f = filepath.Join(filepath.Dir(file), path)
				var err error
				if r, err = s.load(f); err != nil {
					fail("%v", err)
					continue
				}
				frag = "#" + fr
			}
			target := r
			for _, part := range strings.Split(strings.TrimPrefix(frag, "#"), "/") {
				if part != "" {
					target = target.(map[string]any)[part]
				}
			}
			errs = append(errs, s.check(f, r, target, v, at)...)
		case "allOf":
			for _, sub := range arg.([]any) {
				errs = append(errs, s.check(file, root, sub, v, at)...)
			}
		case "anyOf":
			ok := false
			for _, sub := range arg.([]any) {
				if len(s.check(file, root, sub, v, at)) == 0 {
					ok = true
				}
			}
			if !ok {
				fail("matches none of anyOf")
			}
		case "type":
			if !hasType(v, arg.(string)) {
				fail("want %s, got %T", arg, v)
			}
		case "required":
			obj, _ := v.(map[string]any)
			for _, k := range arg.([]any) {
				if _, ok := obj[k.(string)]; obj != nil && !ok {
					fail("missing required %q", k)
				}
			}
		case "properties":
			obj, _ := v.(map[string]any)
			for k, sub := range arg.(map[string]any) {
				if pv, ok := obj[k]; ok {
					errs = append(errs, s.check(file, root, sub, pv, at+"."+k)...)
				}
			}
		case "additionalProperties":
			obj, _ := v.(map[string]any)
			props, _ := sc["properties"].(map[string]any)
			if allowed, _ := arg.(bool); !allowed {
				for k := range obj {
					if _, ok := props[k]; !ok {
						fail("property %q not allowed", k)
					}
				}
			}
		case "items":
			arr, _ := v.([]any)
			for i, item := range arr {
				errs = append(errs, s.check(file, root, arg, item, fmt.Sprintf("%s[%d]", at, i))...)
			}
		case "maxItems":
			if arr, ok := v.([]any); ok && float64(len(arr)) > arg.(float64) {
				fail("%d items, more than %v", len(arr), arg)
			}
		case "const":
			if fmt.Sprint(v) != fmt.Sprint(arg) {
				fail("want %v, got %v", arg, v)
			}
		case "enum":
			if !slices.ContainsFunc(arg.([]any), func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
				fail("%v is not one of %v", v, arg)
			}
		case "pattern":
			if str, ok := v.(string); ok && !regexp.MustCompile(arg.(string)).MatchString(str) {
				fail("%q does not match %s", str, arg)
			}
		case "maxLength":
			if str, ok := v.(string); ok && float64(utf8.RuneCountInString(str)) > arg.(float64) {
				fail("%d characters, more than %v", utf8.RuneCountInString(str), arg)
			}
		case "minimum":
			if n, ok := v.(float64); ok && n < arg.(float64) {
				fail("%v below %v", n, arg)
			}
		case "maximum":
			if n, ok := v.(float64); ok && n > arg.(float64) {
				fail("%v above %v", n, arg)
			}
		case "format":
			if str, ok := v.(string); ok && !hasFormat(str, arg.(string)) {
				fail("%q is not a %s", str, arg)
			}
		default:
			if !slices.Contains(annotations, kw) {
				fail("schema keyword %q is not implemented by this checker", kw)
			}
		}
	}
	return errs
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == math.Trunc(n)
	case "boolean":
		_, ok := v.(bool)
		return ok
	}
	return false
}

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	hostnameRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
)

func hasFormat(s, f string) bool {
	switch f {
	case "date-time":
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	case "email":
		a, err := mail.ParseAddress(s)
		return err == nil && a.Address == s
	case "hostname":
		return len(s) <= 253 && hostnameRE.MatchString(s)
	case "uuid":
		return uuidRE.MatchString(s)
	case "ipv4":
		a, err := netip.ParseAddr(s)
		return err == nil && a.Is4()
	case "ipv6":
		a, err := netip.ParseAddr(s)
		return err == nil && a.Is6()
	}
	return false
}
