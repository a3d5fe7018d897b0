package postgres

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/loyaltyhq/loyalty/internal/storedname"
)

// The jsonb columns hold the engine's values as JSON whose keys are the
// fields' JSON keys in the stored format (internal/storedname): a field's
// json tag or Go name, unless a store tag pins another. Those keys are
// pinned by store/testdata/format.golden, which fails when one changes, so
// a field renamed in Go with `store:"name=Old"` keeps its data here as in
// bbolt; encoding/json would follow the new Go name and read every
// existing value as zero. Unlike encoding/json it ignores omitempty and
// keeps nil and empty slices and maps apart (null and []), so a value
// reads back exactly as it was written.

var timeType = reflect.TypeFor[time.Time]()

// storedField is a struct field as the jsonb columns keep it.
type storedField struct {
	index int
	name  string // in Go
	key   string
}

var storedFields sync.Map // reflect.Type → []storedField

// fieldsOf lists the stored fields of struct type t.
func fieldsOf(t reflect.Type) ([]storedField, error) {
	if fs, ok := storedFields.Load(t); ok {
		return fs.([]storedField), nil
	}
	var fs []storedField
	seen := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if storedname.Skipped(f) {
			continue
		}
		_, key, err := storedname.Of(f)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		if other, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s: fields %s and %s have the JSON key %s", t, other, f.Name, key)
		}
		seen[key] = f.Name
		fs = append(fs, storedField{index: i, name: f.Name, key: key})
	}
	storedFields.Store(t, fs)
	return fs, nil
}

// marshalStored encodes v for a jsonb column.
func marshalStored(v any) ([]byte, error) {
	return appendStored(nil, reflect.ValueOf(v))
}

func appendStored(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	t := v.Type()
	if t == timeType {
		raw, err := v.Interface().(time.Time).MarshalJSON()
		return append(b, raw...), err
	}
	switch v.Kind() {
	case reflect.Struct:
		fs, err := fieldsOf(t)
		if err != nil {
			return nil, err
		}
		b = append(b, '{')
		for i, f := range fs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, f.key)
			b = append(b, ':')
			if b, err = appendStored(b, v.Field(f.index)); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return append(b, '}'), nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		return appendStored(b, v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			raw, err := json.Marshal(v.Bytes())
			return append(b, raw...), err
		}
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendStored(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: map keys must be strings", t)
		}
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			raw, err := json.Marshal(k.String())
			if err != nil {
				return nil, err
			}
			b = append(append(b, raw...), ':')
			if b, err = appendStored(b, v.MapIndex(k)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.String, reflect.Float32, reflect.Float64:
		raw, err := json.Marshal(v.Interface())
		return append(b, raw...), err
	}
	return nil, fmt.Errorf("%s cannot be stored", t)
}

var jsonNull = []byte("null")

// unmarshalStored decodes a jsonb value into *v, as marshalStored wrote it.
func unmarshalStored(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("unmarshalStored: want a non-nil pointer")
	}
	return decodeStored(data, rv.Elem(), nil)
}

// decodeStored reads raw into v (settable). legacy maps keys of a struct
// at this level that older schemas wrote to the Go field they hold.
func decodeStored(raw []byte, v reflect.Value, legacy map[string]string) error {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, jsonNull) {
		v.SetZero()
		return nil
	}
	t := v.Type()
	if t == timeType || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) {
		return json.Unmarshal(raw, v.Addr().Interface())
	}
	switch v.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		fs, err := fieldsOf(t)
		if err != nil {
			return err
		}
		for old, name := range legacy {
			if r, ok := obj[old]; ok {
				for _, f := range fs {
					if f.name == name {
						if _, has := obj[f.key]; !has {
							obj[f.key] = r
						}
					}
				}
			}
		}
		for _, f := range fs {
			r, ok := obj[f.key]
			if !ok {
				v.Field(f.index).SetZero()
				continue
			}
			if err := decodeStored(r, v.Field(f.index), nil); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return nil
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := decodeStored(raw, p.Elem(), nil); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return err
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, r := range items {
			if err := decodeStored(r, s.Index(i), nil); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, len(obj))
		for k, r := range obj {
			e := reflect.New(t.Elem()).Elem()
			if err := decodeStored(r, e, nil); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		}
		v.Set(m)
		return nil
	}
	return json.Unmarshal(raw, v.Addr().Interface())
}

// detail is how a record whose table has a detail column splits into its
// columns and the rest: every stored field that has no column goes into
// detail, so a field added to the record is kept without a change here.
// legacy maps the keys the first schema's hand-written detail used to the
// fields they held.
type detail struct {
	t       reflect.Type
	columns []string // Go names of the fields with a column
	legacy  map[string]string
}

// key returns the detail key of the field called name in Go.
func (d *detail) key(name string) string {
	fs, err := fieldsOf(d.t)
	if err != nil {
		panic(err) // the record types are fixed at build time; a test checks them
	}
	for _, f := range fs {
		if f.name == name {
			return f.key
		}
	}
	panic(fmt.Sprintf("%s has no field %s", d.t, name))
}

// encode returns the detail column of rec (a pointer to d.t).
func (d *detail) encode(rec any) (string, error) {
	v := reflect.ValueOf(rec).Elem()
	fs, err := fieldsOf(d.t)
	if err != nil {
		return "", err
	}
	b := []byte{'{'}
	first := true
	for _, f := range fs {
		if slices.Contains(d.columns, f.name) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, f.key)
		b = append(b, ':')
		if b, err = appendStored(b, v.Field(f.index)); err != nil {
			return "", fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return string(append(b, '}')), nil
}

// decode sets the fields of rec (a pointer to d.t) that detail holds,
// leaving the column fields as they are.
func (d *detail) decode(raw []byte, rec any) error {
	v := reflect.ValueOf(rec).Elem()
	saved := make([]reflect.Value, len(d.columns))
	for i, name := range d.columns {
		saved[i] = reflect.New(v.FieldByName(name).Type()).Elem()
		saved[i].Set(v.FieldByName(name))
	}
	if err := decodeStored(raw, v, d.legacy); err != nil {
		return err
	}
	for i, name := range d.columns {
		v.FieldByName(name).Set(saved[i])
	}
	return nil
}
