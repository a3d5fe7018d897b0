package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/loyaltyhq/loyalty/engine"
)

// maxJSONDepth bounds how deeply a body may nest. The deepest request
// (a simulation's purchase items) is four levels.
const maxJSONDepth = 32

// DecodeJSON decodes body into v strictly. encoding/json alone lets the
// last of two equal keys win, matches field names whatever their case, and
// replaces invalid UTF-8 with U+FFFD without a word; here each of those is
// an invalid error naming the field, as are control characters in strings,
// unknown fields and trailing data. textFields names the top-level fields
// that hold a file's text, where tabs and line breaks are allowed.
func DecodeJSON(body []byte, v any, textFields ...string) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return engine.Errorf(engine.EINVALID, "a JSON body is required")
	}
	var path [8]pathElem
	sc := scanner{b: body, textFields: textFields, path: path[:0]}
	if err := sc.value(reflect.TypeOf(v), 0); err != nil && err != errMalformed {
		return err
	}
	// The scanner has refused unknown fields (by the names encoding/json
	// matches) and data after the value, so Unmarshal, which reads the body
	// in place, decodes what a Decoder with DisallowUnknownFields would,
	// without copying the body into a buffer of its own on every request.
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) && strings.HasPrefix(syn.Error(), "invalid character") && strings.Contains(syn.Error(), "after top-level value") {
			return engine.Errorf(engine.EINVALID, "malformed JSON: unexpected data after the object")
		}
		return decodeError(err)
	}
	return nil
}

// errMalformed stops the scanner at JSON that is not well formed, which
// encoding/json then reports with its position.
var errMalformed = errors.New("malformed JSON")

// scanner checks a body against the type it will be decoded into, before
// encoding/json decodes it, so that what that decoder forgives is refused
// with the path of the field (items[2].sku). It reads the bytes once and
// allocates only to report an error: it runs on every request.
type scanner struct {
	b          []byte
	i          int
	textFields []string
	path       []pathElem // where the scanner is, for the field an error names
}

// pathElem is an object key, or an array index when isKey is unset.
type pathElem struct {
	key   []byte
	index int
	isKey bool
}

func (sc *scanner) field() string {
	var b strings.Builder
	for _, e := range sc.path {
		switch {
		case !e.isKey:
			fmt.Fprintf(&b, "[%d]", e.index)
		case b.Len() > 0:
			b.WriteString("." + string(e.key))
		default:
			b.Write(e.key)
		}
	}
	return b.String()
}

// refuse is an invalid error about the field the scanner is at, or about
// the body when it is the whole value.
func (sc *scanner) refuse(format string, args ...any) error {
	if f := sc.field(); f != "" {
		return engine.FieldErrorf(engine.EINVALID, f, format, args...)
	}
	return engine.Errorf(engine.EINVALID, "the body "+format, args...)
}

func (sc *scanner) skipSpace() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// next skips white space and returns the byte there, or 0 at the end.
func (sc *scanner) next() byte {
	sc.skipSpace()
	if sc.i < len(sc.b) {
		return sc.b[sc.i]
	}
	return 0
}

// value scans one value; t is the Go type it decodes into, nil when any
// value may come (an interface, or a type the JSON does not fit, which
// encoding/json reports afterwards).
func (sc *scanner) value(t reflect.Type, depth int) error {
	if depth > maxJSONDepth {
		return engine.Errorf(engine.EINVALID, "malformed JSON: nested deeper than %d levels at %s", maxJSONDepth, sc.field())
	}
	switch sc.next() {
	case '{':
		return sc.object(t, depth)
	case '[':
		return sc.array(t, depth)
	case '"':
		_, _, complaint, err := sc.str(len(sc.path) == 1 && sc.isText(sc.path[0].key))
		if err == nil && complaint != "" {
			err = sc.refuse("%s", complaint)
		}
		return err
	case 0:
		return errMalformed
	}
	// A number, true, false or null: encoding/json checks its spelling.
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return nil
		}
		sc.i++
	}
	return nil
}

func (sc *scanner) isText(field []byte) bool {
	for _, f := range sc.textFields {
		if f == string(field) {
			return true
		}
	}
	return false
}

func (sc *scanner) object(t reflect.Type, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch t = indirect(t); {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = fieldsOf(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	sc.i++
	if sc.next() == '}' {
		sc.i++
		return nil
	}
	var seen [16][]byte // the keys so far, on the stack for small objects
	keys := seen[:0]
	for {
		if sc.next() != '"' {
			return errMalformed
		}
		key, escaped, complaint, err := sc.str(false)
		if err != nil {
			return err
		}
		if escaped {
			var decoded string
			if json.Unmarshal(sc.b[sc.i-len(key)-2:sc.i], &decoded) != nil {
				return errMalformed
			}
			key = []byte(decoded)
		}
		sc.path = append(sc.path, pathElem{key: key, isKey: true})
		if complaint != "" {
			return sc.refuse("%s", complaint)
		}
		for _, k := range keys {
			if bytes.Equal(k, key) {
				return sc.refuse("appears twice in the object; send each field once")
			}
		}
		keys = append(keys, key)
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[string(key)]; !ok {
				for name := range fields {
					if strings.EqualFold(name, string(key)) {
						return sc.refuse("is not a known field (names are case-sensitive: %q)", name)
					}
				}
				return sc.refuse("is not a known field")
			}
		}
		if sc.next() != ':' {
			return errMalformed
		}
		sc.i++
		if err := sc.value(ft, depth+1); err != nil {
			return err
		}
		sc.path = sc.path[:len(sc.path)-1]
		switch sc.next() {
		case ',':
			sc.i++
		case '}':
			sc.i++
			return nil
		default:
			return errMalformed
		}
	}
}

func (sc *scanner) array(t reflect.Type, depth int) error {
	var elem reflect.Type
	if t = indirect(t); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	sc.i++
	if sc.next() == ']' {
		sc.i++
		return nil
	}
	for i := 0; ; i++ {
		sc.path = append(sc.path, pathElem{index: i})
		if err := sc.value(elem, depth+1); err != nil {
			return err
		}
		sc.path = sc.path[:len(sc.path)-1]
		switch sc.next() {
		case ',':
			sc.i++
		case ']':
			sc.i++
			return nil
		default:
			return errMalformed
		}
	}
}

// str reads the string literal at sc.i and returns its content as sent,
// whether it holds escapes, and what is wrong with it, if anything: bytes
// that are not UTF-8 or half of an escaped surrogate pair (encoding/json
// turns both into U+FFFD), or control characters, of which a file's text
// may hold tabs and line breaks.
func (sc *scanner) str(text bool) (content []byte, escaped bool, complaint string, err error) {
	start := sc.i + 1
	for i := start; i < len(sc.b); {
		c := sc.b[i]
		switch {
		case c == '"':
			sc.i = i + 1
			return sc.b[start:i], escaped, complaint, nil
		case c == '\\':
			if i+1 >= len(sc.b) {
				return nil, false, "", errMalformed
			}
			escaped = true
			r, n := unescape(sc.b[i:])
			if n == 0 {
				return nil, false, "", errMalformed
			}
			if r == utf8.RuneError && complaint == "" {
				complaint = "must be valid UTF-8"
			}
			if complaint == "" {
				complaint = control(r, text)
			}
			i += n
		case c < utf8.RuneSelf:
			if complaint == "" {
				complaint = control(rune(c), text)
			}
			i++
		default:
			r, n := utf8.DecodeRune(sc.b[i:])
			if r == utf8.RuneError && n == 1 && complaint == "" {
				complaint = "must be valid UTF-8"
			}
			if complaint == "" {
				complaint = control(r, text)
			}
			i += n
		}
	}
	return nil, false, "", errMalformed
}

func control(r rune, text bool) string {
	if unicode.IsControl(r) && !(text && (r == '\n' || r == '\r' || r == '\t')) {
		return fmt.Sprintf("must not contain control characters (U+%04X)", r)
	}
	return ""
}

// unescape decodes the escape at the start of b and returns the rune and
// how many bytes it took (0: malformed). Half of a surrogate pair is
// utf8.RuneError.
func unescape(b []byte) (rune, int) {
	switch b[1] {
	case '"', '\\', '/':
		return rune(b[1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0
		}
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if lo, ok := hex4(b[8:]); ok {
				if pair := utf16.DecodeRune(r, lo); pair != utf8.RuneError {
					return pair, 12
				}
			}
		}
		return utf8.RuneError, 6
	}
	return 0, 0
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// indirect returns the type a value decodes into through pointers, or nil
// when any JSON may come: an interface, or a type that decodes itself.
func indirect(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	return t
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf maps the JSON names of a struct's fields to their types, with
// the fields of untagged embedded structs promoted as encoding/json does.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if et := indirect(f.Type); et != nil && et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	for _, et := range embedded {
		for name, ft := range fieldsOf(et) {
			if _, shadowed := fields[name]; !shadowed {
				fields[name] = ft
			}
		}
	}
	fieldCache.Store(t, fields)
	return fields
}
