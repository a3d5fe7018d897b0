package store

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyaltyhq/loyalty/internal/storedname"
)

// The binary encoding (version binV2) is a tagged format in the spirit of
// protocol buffers, planned once per Go type by reflection so that a field
// added to an engine type is stored without touching this file:
//
//	record  = 0x02 fields
//	fields  = { tag value }          (zero-valued fields are left out)
//	tag     = uvarint(hash20(stored name) << 1 | wire)
//	wire 0  = a varint: integers (zig-zag when signed) and bools
//	wire 1  = uvarint(length) payload: strings, times, floats, structs
//	          (fields), pointers (0x01 then the value), slices and maps
//	          (uvarint(count) then the elements, map keys sorted)
//
// Every value is self-delimiting, so a reader skips fields it does not know
// (written by a newer program) and leaves missing ones at their zero value,
// as it does with JSON. Nil and empty slices, maps and pointers stay apart: a
// nil one is left out (or, inside a slice or map, has an empty payload). A
// time is its Unix seconds, nanoseconds and zone offset; zone names are not
// kept, as JSON does not keep them either.
//
// A field's stored name is its Go name unless a struct tag pins another:
//
//	TotalSpend int64 `store:"name=LifetimeSpend"`
//
// keeps reading and writing the field a file holds as LifetimeSpend, so a
// rename in Go loses nothing. The same field's key in JSON (version 1)
// records, written before this encoding, is its json tag's name or else its
// stored name; `store:"json=key"` pins that too. testdata/format.golden
// holds every stored name, and TestFormat fails when one changes.
//
// Types the plan cannot express exactly (interfaces, channels, arrays, maps
// with non-string keys, types with their own JSON or text marshalling,
// stored names whose hashes collide) have no plan, and encode refuses them:
// a record written in any other form would not be held to the manifest.

// binV2 marks a value in the binary encoding.
const binV2 = 2

const (
	wireVarint = 0
	wireBytes  = 1
)

var (
	timeType        = reflect.TypeFor[time.Time]()
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	errTruncated    = errors.New("truncated value")
)

// valueCodec encodes one Go type. enc appends the value self-delimited;
// dec reads it from the front of data into v (settable) and returns the
// rest. decJSON reads the value from a JSON (version 1) record into v
// (addressable); jsonAsIs tells that encoding/json would read it alike,
// no store tag having moved a JSON key.
type valueCodec struct {
	wire     int
	enc      func(b []byte, v reflect.Value) []byte
	dec      func(data []byte, v reflect.Value) ([]byte, error)
	decJSON  func(raw []byte, v reflect.Value) error
	jsonAsIs bool
}

type fieldCodec struct {
	index int
	name  string // in Go, for messages
	// stored is the name tag hashes, and jsonKey the field's key in JSON
	// records: what a file holds, whatever the field is called in Go.
	stored  string
	jsonKey string
	tag     uint64
	vc      *valueCodec
}

// structCodec encodes a struct as its non-zero fields, in declaration
// order; decoding expects that order but accepts any.
type structCodec struct {
	fields   []fieldCodec
	byTag    map[uint64]int
	byJSON   map[string]int
	jsonAsIs bool
}

// recordCodec is the plan of a top-level record type, or why it has none.
type recordCodec struct {
	sc  *structCodec
	err error
	// size is the last encoded size, so the next buffer rarely grows.
	size atomic.Int64
}

var recordCodecs sync.Map // reflect.Type → *recordCodec

// codecFor returns the binary plan of type t, or why it has none.
func codecFor(t reflect.Type) (*structCodec, *recordCodec) {
	if c, ok := recordCodecs.Load(t); ok {
		rc := c.(*recordCodec)
		return rc.sc, rc
	}
	rc := &recordCodec{err: fmt.Errorf("%s is not a struct", t)}
	if t.Kind() == reflect.Struct {
		p := planner{building: map[reflect.Type]*valueCodec{}}
		rc.sc, rc.err = p.structCodec(t)
	}
	c, _ := recordCodecs.LoadOrStore(t, rc)
	rc = c.(*recordCodec)
	return rc.sc, rc
}

// binaryPlan plans struct type t afresh, for tests: they read the stored
// names and tags from it.
func binaryPlan(t reflect.Type) (*structCodec, error) {
	p := planner{building: map[reflect.Type]*valueCodec{}}
	return p.structCodec(t)
}

// encodeBinary appends rec (a struct or a non-nil pointer to one) in binV2
// to a new slice.
func encodeBinary(rec any) ([]byte, error) {
	v := reflect.ValueOf(rec)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, errors.New("nil record")
		}
		v = v.Elem()
	}
	sc, rc := codecFor(v.Type())
	if sc == nil {
		return nil, rc.err
	}
	b := make([]byte, 1, rc.size.Load()+16)
	b[0] = binV2
	b = sc.appendFields(b, v)
	rc.size.Store(int64(len(b)))
	return b, nil
}

// recordValue is the struct rec (a non-nil pointer to a struct) points to,
// and its plan.
func recordValue(rec any) (reflect.Value, *structCodec, error) {
	v := reflect.ValueOf(rec)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return v, nil, fmt.Errorf("decode into %T: not a pointer", rec)
	}
	v = v.Elem()
	sc, rc := codecFor(v.Type())
	if sc == nil {
		return v, nil, rc.err
	}
	return v, sc, nil
}

// decodeBinary fills rec (a pointer to a struct) from a binV2 payload.
func decodeBinary(data []byte, rec any) error {
	v, sc, err := recordValue(rec)
	if err != nil {
		return err
	}
	v.SetZero()
	return sc.decodeFields(data, v)
}

// decodeJSON fills rec (a pointer to a struct) from a JSON (version 1)
// payload through the binary plan, so that stored names pinned by store
// tags hold for those records too.
func decodeJSON(data []byte, rec any) error {
	v, sc, err := recordValue(rec)
	if err != nil {
		return err
	}
	v.SetZero()
	return sc.decodeJSON(data, v)
}

func (sc *structCodec) appendFields(b []byte, v reflect.Value) []byte {
	for i := range sc.fields {
		f := &sc.fields[i]
		fv := v.Field(f.index)
		if fv.IsZero() {
			continue
		}
		b = binary.AppendUvarint(b, f.tag)
		b = f.vc.enc(b, fv)
	}
	return b
}

func (sc *structCodec) decodeFields(data []byte, v reflect.Value) error {
	next := 0
	for len(data) > 0 {
		tag, n := binary.Uvarint(data)
		if n <= 0 {
			return errTruncated
		}
		data = data[n:]
		i := -1
		if next < len(sc.fields) && sc.fields[next].tag == tag {
			i = next
		} else if j, ok := sc.byTag[tag]; ok {
			i = j
		}
		if i < 0 {
			var err error
			if data, err = skipValue(data, int(tag&1)); err != nil {
				return err
			}
			continue
		}
		f := &sc.fields[i]
		var err error
		if data, err = f.vc.dec(data, v.Field(f.index)); err != nil {
			return fmt.Errorf("field %s: %w", f.name, err)
		}
		next = i + 1
	}
	return nil
}

// jsonShortcut lets encoding/json read the JSON of types no store tag
// changed. Tests turn it off to hold the plan's reader to the same records.
var jsonShortcut = true

// decodeJSON reads a JSON object into struct v by the fields' JSON keys;
// keys it does not know are skipped, as in binary records.
func (sc *structCodec) decodeJSON(raw []byte, v reflect.Value) error {
	if sc.jsonAsIs && jsonShortcut {
		// Several times faster, and what the first encoding's reader did.
		return unmarshalJSON(raw, v)
	}
	if isJSONNull(raw) {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	for k, r := range obj {
		i, ok := sc.byJSON[k]
		if !ok {
			continue
		}
		f := &sc.fields[i]
		if err := f.vc.decJSON(r, v.Field(f.index)); err != nil {
			return fmt.Errorf("field %s: %w", f.name, err)
		}
	}
	return nil
}

func isJSONNull(raw []byte) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// unmarshalJSON is decJSON for the types encoding/json reads as they are.
func unmarshalJSON(raw []byte, v reflect.Value) error {
	return json.Unmarshal(raw, v.Addr().Interface())
}

func skipValue(data []byte, wire int) ([]byte, error) {
	if wire == wireVarint {
		_, n := binary.Uvarint(data)
		if n <= 0 {
			return nil, errTruncated
		}
		return data[n:], nil
	}
	_, rest, err := payload(data)
	return rest, err
}

// payload splits a length-prefixed payload off the front of data.
func payload(data []byte) (p, rest []byte, err error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return nil, nil, errTruncated
	}
	end := k + int(n)
	return data[k:end:end], data[end:], nil
}

// appendDelimited appends what fn appends, prefixed with its length.
func appendDelimited(b []byte, fn func([]byte) []byte) []byte {
	start := len(b)
	b = fn(append(b, 0))
	n := len(b) - start - 1
	if n < 0x80 {
		b[start] = byte(n)
		return b
	}
	var lb [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(lb[:], uint64(n))
	b = append(b, lb[:k-1]...)
	copy(b[start+k:], b[start+1:start+1+n])
	copy(b[start:], lb[:k])
	return b
}

// planner builds codecs; building holds those under construction so a
// recursive type refers to itself.
type planner struct {
	building map[reflect.Type]*valueCodec
}

func ownMarshalling(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, i := range []reflect.Type{jsonMarshaler, jsonUnmarshaler, textMarshaler, textUnmarshaler} {
		if t.Implements(i) || pt.Implements(i) {
			return true
		}
	}
	return false
}

func (p *planner) structCodec(t reflect.Type) (*structCodec, error) {
	sc := &structCodec{byTag: map[uint64]int{}, byJSON: map[string]int{}, jsonAsIs: true}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			if f.Anonymous {
				return nil, fmt.Errorf("%s: embedded unexported %s", t, f.Name)
			}
			continue
		}
		if tag := f.Tag.Get("json"); tag == "-" {
			continue
		}
		stored, jsonKey, err := storedname.Of(f)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		vc, err := p.valueCodec(f.Type)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		tag := hash20(stored)<<1 | uint64(vc.wire)
		if j, dup := sc.byTag[tag]; dup {
			return nil, fmt.Errorf("%s: fields %s and %s hash alike", t, sc.fields[j].name, f.Name)
		}
		if j, dup := sc.byJSON[jsonKey]; dup {
			return nil, fmt.Errorf("%s: fields %s and %s have the JSON key %s", t, sc.fields[j].name, f.Name, jsonKey)
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); jsonKey != cmp.Or(name, f.Name) || !vc.jsonAsIs {
			sc.jsonAsIs = false
		}
		sc.byTag[tag] = len(sc.fields)
		sc.byJSON[jsonKey] = len(sc.fields)
		sc.fields = append(sc.fields, fieldCodec{index: i, name: f.Name, stored: stored, jsonKey: jsonKey, tag: tag, vc: vc})
	}
	return sc, nil
}

// hash20 is the 20 bits of a stored name that tag its field.
func hash20(name string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return uint64(h.Sum32() & 0xfffff)
}

func (p *planner) valueCodec(t reflect.Type) (*valueCodec, error) {
	if vc, ok := p.building[t]; ok {
		return vc, nil
	}
	if t == timeType {
		return timeCodec, nil
	}
	if ownMarshalling(t) {
		return nil, fmt.Errorf("%s marshals itself", t)
	}
	switch t.Kind() {
	case reflect.String:
		return stringCodec, nil
	case reflect.Bool:
		return boolCodec, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intCodec, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintCodec, nil
	case reflect.Float32, reflect.Float64:
		return floatCodec, nil
	case reflect.Struct:
		vc := &valueCodec{wire: wireBytes}
		p.building[t] = vc
		sc, err := p.structCodec(t)
		if err != nil {
			return nil, err
		}
		vc.enc = func(b []byte, v reflect.Value) []byte {
			return appendDelimited(b, func(b []byte) []byte { return sc.appendFields(b, v) })
		}
		vc.dec = func(data []byte, v reflect.Value) ([]byte, error) {
			pl, rest, err := payload(data)
			if err != nil {
				return nil, err
			}
			return rest, sc.decodeFields(pl, v)
		}
		vc.decJSON, vc.jsonAsIs = sc.decodeJSON, sc.jsonAsIs
		return vc, nil
	case reflect.Pointer:
		vc := &valueCodec{wire: wireBytes}
		p.building[t] = vc
		elem, err := p.valueCodec(t.Elem())
		if err != nil {
			return nil, err
		}
		vc.enc = func(b []byte, v reflect.Value) []byte {
			if v.IsNil() {
				return append(b, 0)
			}
			return appendDelimited(b, func(b []byte) []byte { return elem.enc(append(b, 1), v.Elem()) })
		}
		vc.dec = func(data []byte, v reflect.Value) ([]byte, error) {
			pl, rest, err := payload(data)
			if err != nil || len(pl) == 0 {
				return rest, err
			}
			nv := reflect.New(t.Elem())
			if _, err := elem.dec(pl[1:], nv.Elem()); err != nil {
				return nil, err
			}
			v.Set(nv)
			return rest, nil
		}
		vc.jsonAsIs = elem.jsonAsIs
		vc.decJSON = func(raw []byte, v reflect.Value) error {
			if isJSONNull(raw) {
				return nil
			}
			nv := reflect.New(t.Elem())
			if err := elem.decJSON(raw, nv.Elem()); err != nil {
				return err
			}
			v.Set(nv)
			return nil
		}
		return vc, nil
	case reflect.Slice:
		vc := &valueCodec{wire: wireBytes}
		p.building[t] = vc
		elem, err := p.valueCodec(t.Elem())
		if err != nil {
			return nil, err
		}
		vc.enc = func(b []byte, v reflect.Value) []byte {
			if v.IsNil() {
				return append(b, 0)
			}
			return appendDelimited(b, func(b []byte) []byte {
				n := v.Len()
				b = binary.AppendUvarint(b, uint64(n))
				for i := range n {
					b = elem.enc(b, v.Index(i))
				}
				return b
			})
		}
		vc.dec = func(data []byte, v reflect.Value) ([]byte, error) {
			pl, rest, err := payload(data)
			if err != nil || len(pl) == 0 {
				return rest, err
			}
			n, k := binary.Uvarint(pl)
			if k <= 0 || n > uint64(len(pl)) {
				return nil, errTruncated
			}
			pl = pl[k:]
			s := reflect.MakeSlice(t, int(n), int(n))
			for i := range int(n) {
				if pl, err = elem.dec(pl, s.Index(i)); err != nil {
					return nil, err
				}
			}
			v.Set(s)
			return rest, nil
		}
		vc.jsonAsIs = elem.jsonAsIs
		vc.decJSON = func(raw []byte, v reflect.Value) error {
			// encoding/json wrote byte slices as base64 strings.
			if t.Elem().Kind() == reflect.Uint8 || isJSONNull(raw) {
				return unmarshalJSON(raw, v)
			}
			var elems []json.RawMessage
			if err := json.Unmarshal(raw, &elems); err != nil {
				return err
			}
			s := reflect.MakeSlice(t, len(elems), len(elems))
			for i, r := range elems {
				if err := elem.decJSON(r, s.Index(i)); err != nil {
					return err
				}
			}
			v.Set(s)
			return nil
		}
		return vc, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String || ownMarshalling(t.Key()) {
			return nil, fmt.Errorf("map key %s is not a plain string", t.Key())
		}
		vc := &valueCodec{wire: wireBytes}
		p.building[t] = vc
		elem, err := p.valueCodec(t.Elem())
		if err != nil {
			return nil, err
		}
		vc.enc = func(b []byte, v reflect.Value) []byte {
			if v.IsNil() {
				return append(b, 0)
			}
			return appendDelimited(b, func(b []byte) []byte {
				keys := v.MapKeys()
				slices.SortFunc(keys, func(x, y reflect.Value) int {
					switch a, c := x.String(), y.String(); {
					case a < c:
						return -1
					case a > c:
						return 1
					}
					return 0
				})
				b = binary.AppendUvarint(b, uint64(len(keys)))
				for _, k := range keys {
					b = stringCodec.enc(b, k)
					b = elem.enc(b, v.MapIndex(k))
				}
				return b
			})
		}
		vc.dec = func(data []byte, v reflect.Value) ([]byte, error) {
			pl, rest, err := payload(data)
			if err != nil || len(pl) == 0 {
				return rest, err
			}
			n, k := binary.Uvarint(pl)
			if k <= 0 || n > uint64(len(pl)) {
				return nil, errTruncated
			}
			pl = pl[k:]
			m := reflect.MakeMapWithSize(t, int(n))
			key, val := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			for range int(n) {
				if pl, err = stringCodec.dec(pl, key); err != nil {
					return nil, err
				}
				val.SetZero()
				if pl, err = elem.dec(pl, val); err != nil {
					return nil, err
				}
				m.SetMapIndex(key, val)
			}
			v.Set(m)
			return rest, nil
		}
		vc.jsonAsIs = elem.jsonAsIs
		vc.decJSON = func(raw []byte, v reflect.Value) error {
			if isJSONNull(raw) {
				return nil
			}
			var elems map[string]json.RawMessage
			if err := json.Unmarshal(raw, &elems); err != nil {
				return err
			}
			m := reflect.MakeMapWithSize(t, len(elems))
			val := reflect.New(t.Elem()).Elem()
			for k, r := range elems {
				val.SetZero()
				if err := elem.decJSON(r, val); err != nil {
					return err
				}
				m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), val)
			}
			v.Set(m)
			return nil
		}
		return vc, nil
	}
	return nil, fmt.Errorf("kind %s has no binary form", t.Kind())
}

var stringCodec = &valueCodec{
	decJSON:  unmarshalJSON,
	jsonAsIs: true,
	wire:     wireBytes,
	enc: func(b []byte, v reflect.Value) []byte {
		s := v.String()
		return append(binary.AppendUvarint(b, uint64(len(s))), s...)
	},
	dec: func(data []byte, v reflect.Value) ([]byte, error) {
		pl, rest, err := payload(data)
		if err != nil {
			return nil, err
		}
		v.SetString(string(pl))
		return rest, nil
	},
}

var boolCodec = &valueCodec{
	decJSON:  unmarshalJSON,
	jsonAsIs: true,
	wire:     wireVarint,
	enc: func(b []byte, v reflect.Value) []byte {
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	},
	dec: func(data []byte, v reflect.Value) ([]byte, error) {
		x, n := binary.Uvarint(data)
		if n <= 0 || x > 1 {
			return nil, errTruncated
		}
		v.SetBool(x == 1)
		return data[n:], nil
	},
}

var intCodec = &valueCodec{
	decJSON:  unmarshalJSON,
	jsonAsIs: true,
	wire:     wireVarint,
	enc:      func(b []byte, v reflect.Value) []byte { return binary.AppendVarint(b, v.Int()) },
	dec: func(data []byte, v reflect.Value) ([]byte, error) {
		x, n := binary.Varint(data)
		if n <= 0 {
			return nil, errTruncated
		}
		if v.OverflowInt(x) {
			return nil, fmt.Errorf("%d overflows %s", x, v.Type())
		}
		v.SetInt(x)
		return data[n:], nil
	},
}

var uintCodec = &valueCodec{
	decJSON:  unmarshalJSON,
	jsonAsIs: true,
	wire:     wireVarint,
	enc:      func(b []byte, v reflect.Value) []byte { return binary.AppendUvarint(b, v.Uint()) },
	dec: func(data []byte, v reflect.Value) ([]byte, error) {
		x, n := binary.Uvarint(data)
		if n <= 0 {
			return nil, errTruncated
		}
		if v.OverflowUint(x) {
			return nil, fmt.Errorf("%d overflows %s", x, v.Type())
		}
		v.SetUint(x)
		return data[n:], nil
	},
}

var floatCodec = &valueCodec{
	decJSON:  unmarshalJSON,
	jsonAsIs: true,
	wire:     wireBytes,
	enc: func(b []byte, v reflect.Value) []byte {
		return binary.LittleEndian.AppendUint64(append(b, 8), math.Float64bits(v.Float()))
	},
	dec: func(data []byte, v reflect.Value) ([]byte, error) {
		pl, rest, err := payload(data)
		if err != nil || len(pl) != 8 {
			return nil, errTruncated
		}
		v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(pl)))
		return rest, nil
	},
}

var timeCodec = &valueCodec{
	decJSON:  unmarshalJSON,
	jsonAsIs: true,
	wire:     wireBytes,
	enc: func(b []byte, v reflect.Value) []byte {
		var t time.Time
		if v.CanAddr() {
			t = *v.Addr().Interface().(*time.Time)
		} else {
			t = v.Interface().(time.Time)
		}
		_, off := t.Zone()
		return appendDelimited(b, func(b []byte) []byte {
			b = binary.AppendVarint(b, t.Unix())
			b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
			return binary.AppendVarint(b, int64(off))
		})
	},
	dec: func(data []byte, v reflect.Value) ([]byte, error) {
		pl, rest, err := payload(data)
		if err != nil {
			return nil, err
		}
		sec, n1 := binary.Varint(pl)
		if n1 <= 0 {
			return nil, errTruncated
		}
		nsec, n2 := binary.Uvarint(pl[n1:])
		if n2 <= 0 || nsec >= 1e9 {
			return nil, errTruncated
		}
		off, n3 := binary.Varint(pl[n1+n2:])
		if n3 <= 0 || off < -1e6 || off > 1e6 {
			return nil, errTruncated
		}
		t := time.Unix(sec, int64(nsec))
		if off == 0 {
			t = t.UTC()
		} else {
			t = t.In(time.FixedZone("", int(off)))
		}
		*v.Addr().Interface().(*time.Time) = t
		return rest, nil
	},
}
