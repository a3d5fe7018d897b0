// Package storedname says under which names the stores keep the fields of
// the engine's records, so that both stores follow one manifest
// (store/testdata/format.golden) and a field renamed in Go keeps its data.
//
// A field's stored name is its Go name unless a struct tag pins another,
// `store:"name=Old"`. Its JSON key, used where a store keeps a record or a
// part of one as JSON (bbolt's records written before its binary encoding,
// PostgreSQL's jsonb columns), is its json tag's name, else its stored
// name, unless `store:"json=old_key"` pins it.
package storedname

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Of returns the name f is stored under and its JSON key, from its store
// and json tags.
func Of(f reflect.StructField) (stored, jsonKey string, err error) {
	stored = f.Name
	name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name != "" {
		jsonKey = name
	}
	if slices.Contains(strings.Split(opts, ","), "string") {
		return "", "", errors.New("json tag option string: JSON records would hold the value quoted")
	}
	if tag, ok := f.Tag.Lookup("store"); ok {
		for opt := range strings.SplitSeq(tag, ",") {
			k, val, _ := strings.Cut(opt, "=")
			switch {
			case val == "":
				return "", "", fmt.Errorf("store tag %q: want name=… or json=…", tag)
			case k == "name":
				stored = val
			case k == "json":
				jsonKey = val
			default:
				return "", "", fmt.Errorf("store tag %q: unknown option %s", tag, k)
			}
		}
	}
	if jsonKey == "" {
		jsonKey = stored
	}
	return stored, jsonKey, nil
}

// Skipped tells whether a struct field is not stored at all: unexported,
// or tagged json:"-".
func Skipped(f reflect.StructField) bool {
	return !f.IsExported() || f.Tag.Get("json") == "-"
}
