package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// The stored format is held to two committed files, so that a change in Go
// that would misread existing databases fails the tests instead:
//
//   - testdata/format.golden lists, for every stored type, each field's
//     stored name, tag, wire kind, form and JSON key (TestFormat);
//   - testdata/records/ holds records written by earlier code from values
//     with every field set, each with the value it holds; every one must
//     still decode to that value (TestGoldenRecords).
//
// `go test ./store -run TestFormat -update` rewrites the manifest and adds
// a golden record for each type the code now writes differently. It never
// changes or removes a golden record: those stand for data already on disk.
var update = flag.Bool("update", false, "rewrite testdata/format.golden and add golden records for the current format")

const (
	manifestPath = "testdata/format.golden"
	recordsDir   = "testdata/records"
	updateCmd    = "go test ./store -run TestFormat -update"
)

// formatField is one line of the manifest.
type formatField struct {
	stored  string // the name its tag hashes
	tag     uint64
	wire    string // varint or bytes
	form    string // the Go type with names reduced to what is stored
	jsonKey string
	goName  string
	goType  string
}

// formatType is one type of the manifest: a record, or a struct inside one.
type formatType struct {
	name   string
	record bool
	in     []string // the types whose fields hold it, for nested types
	fields []formatField
}

func wireName(w int) string {
	if w == wireVarint {
		return "varint"
	}
	return "bytes"
}

// formOf is t as the encoding sees it: named types by their underlying
// kind, structs (listed separately) as "struct", times as "time". Two types
// of one form read each other's records.
func formOf(t reflect.Type) string {
	switch {
	case t == timeType:
		return "time"
	case t.Kind() == reflect.Struct:
		return "struct"
	case t.Kind() == reflect.Pointer:
		return "*" + formOf(t.Elem())
	case t.Kind() == reflect.Slice:
		return "[]" + formOf(t.Elem())
	case t.Kind() == reflect.Map:
		return "map[" + formOf(t.Key()) + "]" + formOf(t.Elem())
	}
	return t.Kind().String()
}

// structsIn returns the struct types t holds (through pointers, slices
// and maps), times aside.
func structsIn(t reflect.Type) []reflect.Type {
	switch {
	case t == timeType:
		return nil
	case t.Kind() == reflect.Struct:
		return []reflect.Type{t}
	case t.Kind() == reflect.Pointer, t.Kind() == reflect.Slice:
		return structsIn(t.Elem())
	case t.Kind() == reflect.Map:
		return append(structsIn(t.Key()), structsIn(t.Elem())...)
	}
	return nil
}

// currentFormat is the manifest of the planned codecs: the records of
// storedTypes and every struct type inside them, by name.
func currentFormat(records []reflect.Type) (map[string]*formatType, error) {
	out := map[string]*formatType{}
	var walk func(t reflect.Type, record bool, in string) error
	walk = func(t reflect.Type, record bool, in string) error {
		name := typeName(t)
		if ft, seen := out[name]; seen {
			ft.record = ft.record || record
			if in != "" && !slices.Contains(ft.in, in) {
				ft.in = append(ft.in, in)
			}
			return nil
		}
		sc, err := binaryPlan(t)
		if err != nil {
			return err
		}
		ft := &formatType{name: name, record: record}
		if in != "" {
			ft.in = []string{in}
		}
		out[name] = ft
		for _, f := range sc.fields {
			sf := t.Field(f.index)
			ft.fields = append(ft.fields, formatField{
				stored: f.stored, tag: f.tag, wire: wireName(f.vc.wire), form: formOf(sf.Type),
				jsonKey: f.jsonKey, goName: sf.Name, goType: sf.Type.String(),
			})
			for _, nested := range structsIn(sf.Type) {
				if err := walk(nested, false, name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, t := range records {
		if err := walk(t, true, ""); err != nil {
			return nil, err
		}
	}
	for _, ft := range out {
		slices.Sort(ft.in)
	}
	return out, nil
}

const manifestHeader = `# The stored format: every type the store encodes, with each field's stored
# name, tag, wire kind, form, JSON key (in records written before the binary
# encoding) and Go field. TestFormat holds the code to it; store/doc.go says
# what to do when it fails. After adding a field or a stored type, rewrite it:
#
#	` + updateCmd + `
`

// writeFormat renders the manifest, types in name order and fields in
// declaration order.
func writeFormat(types map[string]*formatType) []byte {
	var b bytes.Buffer
	b.WriteString(manifestHeader)
	for _, name := range slices.Sorted(maps.Keys(types)) {
		ft := types[name]
		b.WriteString("\n")
		switch {
		case ft.record && len(ft.in) > 0:
			fmt.Fprintf(&b, "%s record, in %s\n", name, strings.Join(ft.in, " "))
		case ft.record:
			fmt.Fprintf(&b, "%s record\n", name)
		default:
			fmt.Fprintf(&b, "%s in %s\n", name, strings.Join(ft.in, " "))
		}
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, f := range ft.fields {
			fmt.Fprintf(tw, "\t%s\ttag=%d\t%s\t%s\tjson=%s\tgo=%s %s\n", f.stored, f.tag, f.wire, f.form, f.jsonKey, f.goName, f.goType)
		}
		tw.Flush()
	}
	return b.Bytes()
}

// parseFormat reads a manifest written by writeFormat.
func parseFormat(data []byte) (map[string]*formatType, error) {
	out := map[string]*formatType{}
	var cur *formatType
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " "):
			words := strings.Fields(line)
			cur = &formatType{name: words[0], record: len(words) > 1 && strings.HasPrefix(words[1], "record")}
			if i := slices.Index(words, "in"); i > 0 {
				cur.in = words[i+1:]
			}
			out[cur.name] = cur
		default:
			words := strings.Fields(line)
			if cur == nil || len(words) < 7 {
				return nil, fmt.Errorf("%s:%d: malformed line", manifestPath, n)
			}
			tag, err := strconv.ParseUint(strings.TrimPrefix(words[1], "tag="), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", manifestPath, n, err)
			}
			cur.fields = append(cur.fields, formatField{
				stored: words[0], tag: tag, wire: words[2], form: words[3],
				jsonKey: strings.TrimPrefix(words[4], "json="), goName: strings.TrimPrefix(words[5], "go="),
				goType: strings.Join(words[6:], " "),
			})
		}
	}
	return out, sc.Err()
}

// formatProblems compares the manifest on disk (old) with the code's (cur)
// and says, per difference, what keeps existing databases readable.
func formatProblems(old, cur map[string]*formatType) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[name]; !ok {
			addf("%s is in %s but the store no longer holds it. If only its Go name changed, run %s (type names are not stored); if it is gone, databases still hold its records: a migration must convert them (store/migrate.go).", name, manifestPath, updateCmd)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cur)) {
		ct, ot := cur[name], old[name]
		if ot == nil {
			addf("%s is stored but is not in %s: run %s and commit store/testdata.", name, manifestPath, updateCmd)
			continue
		}
		was := map[string]formatField{}
		for _, f := range ot.fields {
			was[f.stored] = f
		}
		now := map[string]formatField{}
		for _, f := range ct.fields {
			now[f.stored] = f
		}
		var gone, added []formatField
		for _, f := range ot.fields {
			if _, ok := now[f.stored]; !ok {
				gone = append(gone, f)
			}
		}
		for _, f := range ct.fields {
			if _, ok := was[f.stored]; !ok {
				added = append(added, f)
			}
		}
		renamedTo := map[string]bool{}
		for _, f := range gone {
			var candidates []string
			pin := formatField{goName: "NewName", goType: f.goType, stored: "NewName", jsonKey: "NewName"}
			for _, a := range added {
				if a.form == f.form {
					if len(candidates) == 0 {
						pin = a
					}
					candidates = append(candidates, a.goName)
					renamedTo[a.stored] = true
				}
			}
			hint := ""
			if len(candidates) > 0 {
				hint = " (to " + strings.Join(candidates, " or ") + "?)"
			}
			tag := "name=" + f.stored
			// Pinned, the field's JSON key is its json tag's name if it has
			// one, else the pinned name; schema-1 records need the old one.
			if key := pin.jsonKey; (key == pin.stored && f.stored != f.jsonKey) || (key != pin.stored && key != f.jsonKey) {
				tag += ",json=" + f.jsonKey
			}
			addf("%s.%s: databases hold this field (stored name %s, %s), but no field of %s is stored under that name any more.\n"+
				"\tIf you renamed it%s, keep its stored name with a struct tag so existing records still read:\n"+
				"\t\t%s %s `store:\"%s\"`\n"+
				"\tIf you removed it, the records on disk still hold it: write a migration that converts them (store/migrate.go) before you run %s.",
				name, f.goName, f.stored, f.goType, name, hint, pin.goName, pin.goType, tag, updateCmd)
		}
		for _, f := range added {
			if renamedTo[f.stored] {
				continue
			}
			addf("%s.%s is a new field (stored name %s): run %s and commit store/testdata.", name, f.goName, f.stored, updateCmd)
		}
		for _, f := range ct.fields {
			o, ok := was[f.stored]
			if !ok {
				continue
			}
			switch {
			case o.form != f.form || o.wire != f.wire:
				addf("%s.%s: stored as %s (%s, Go %s) but now %s (%s, Go %s): the records on disk hold the old form and would not read back. Keep the old type, or give the new one a new stored name and write a migration that converts the old records (store/migrate.go); then run %s.",
					name, f.goName, o.form, o.wire, o.goType, f.form, f.wire, f.goType, updateCmd)
			case o.tag != f.tag:
				addf("%s.%s: tag %d, was %d for the same stored name: codec_bin.go's tagging changed, and every record on disk would read as empty; undo that change.", name, f.goName, f.tag, o.tag)
			case o.jsonKey != f.jsonKey:
				addf("%s.%s: its JSON key is now %q, but records written before the binary encoding (schema-1 files) hold it under %q: keep reading them with the struct tag `store:\"json=%s\"`, then run %s.",
					name, f.goName, f.jsonKey, o.jsonKey, o.jsonKey, updateCmd)
			case o.goName != f.goName || o.goType != f.goType:
				addf("%s.%s: the Go field (was %s %s) changed but its stored form did not: run %s.", name, f.goName, o.goName, o.goType, updateCmd)
			}
		}
	}
	return problems
}

// TestFormat fails when the planned codecs differ from the committed
// manifest, saying what to do about each difference.
func TestFormat(t *testing.T) {
	cur, err := currentFormat(storedTypes)
	if err != nil {
		t.Fatalf("a stored type has no binary plan: %v", err)
	}
	text := writeFormat(cur)
	if *update {
		if err := os.MkdirAll(filepath.Dir(manifestPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifestPath, text, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := addGoldenRecords(t); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatalf("%v: run %s", err, updateCmd)
	}
	old, err := parseFormat(data)
	if err != nil {
		t.Fatal(err)
	}
	problems := formatProblems(old, cur)
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) == 0 && !bytes.Equal(data, text) {
		t.Errorf("%s is not what the code would write (an order or a comment changed): run %s", manifestPath, updateCmd)
	}
}

// goldenRecord is a file of testdata/records: one record in both encodings
// and what it holds.
type goldenRecord struct {
	path   string
	typ    string
	binary []byte // the value, from its version byte on
	json   []byte // the same record in JSON (version 1), as schema-1 files hold it
	want   []string
}

const goldenHeader = `# A golden record of %s, written by
#	%s
# from a value with every field set; the JSON form is what encoding/json,
# the first encoding, makes of the same value. Never edit or delete this
# file: it stands for the records of this form already in databases
# (TestGoldenRecords, store/doc.go).
`

func (g *goldenRecord) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, goldenHeader, g.typ, updateCmd)
	fmt.Fprintf(&b, "type %s\nbinary\n", g.typ)
	h := hex.EncodeToString(g.binary)
	for len(h) > 0 {
		n := min(len(h), 64)
		fmt.Fprintf(&b, "\t%s\n", h[:n])
		h = h[n:]
	}
	fmt.Fprintf(&b, "json\n\t%s\nholds\n", g.json)
	for _, l := range g.want {
		fmt.Fprintf(&b, "\t%s\n", l)
	}
	return b.Bytes()
}

func parseGolden(path string) (*goldenRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g := &goldenRecord{path: path}
	section := ""
	var hexText strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "type "):
			g.typ = strings.TrimPrefix(line, "type ")
		case !strings.HasPrefix(line, "\t"):
			section = line
		case section == "binary":
			hexText.WriteString(line[1:])
		case section == "json":
			g.json = []byte(line[1:])
		case section == "holds":
			g.want = append(g.want, line[1:])
		default:
			return nil, fmt.Errorf("%s: line %q outside a section", path, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if g.binary, err = hex.DecodeString(hexText.String()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if g.typ == "" || len(g.binary) == 0 || len(g.json) == 0 || len(g.want) == 0 {
		return nil, fmt.Errorf("%s: want type, binary, json and holds", path)
	}
	return g, nil
}

// describe lists what v holds, one leaf per line, each named by the path
// of stored names that leads to it: a record's content as its bytes see
// it, so a field renamed with its stored name kept describes alike.
// Zero fields are left out, as the encoding leaves them out; containers
// give their length, so nil and empty differ.
func describe(v reflect.Value) []string {
	var out []string
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		t := v.Type()
		switch {
		case t == timeType:
			out = append(out, path+" = "+v.Interface().(time.Time).Format(time.RFC3339Nano))
		case t.Kind() == reflect.Struct:
			sc, err := binaryPlan(t)
			if err != nil {
				out = append(out, path+" = no plan: "+err.Error())
				return
			}
			for _, f := range sc.fields {
				if fv := v.Field(f.index); !fv.IsZero() {
					walk(strings.TrimPrefix(path+"."+f.stored, "."), fv)
				}
			}
		case t.Kind() == reflect.Pointer:
			if v.IsNil() {
				out = append(out, path+" = nil")
				return
			}
			out = append(out, path+" = &")
			walk(path+".*", v.Elem())
		case t.Kind() == reflect.Slice:
			if v.IsNil() {
				out = append(out, path+" = nil")
				return
			}
			out = append(out, fmt.Sprintf("%s = [%d]", path, v.Len()))
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		case t.Kind() == reflect.Map:
			if v.IsNil() {
				out = append(out, path+" = nil")
				return
			}
			out = append(out, fmt.Sprintf("%s = {%d}", path, v.Len()))
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				walk(fmt.Sprintf("%s[%q]", path, k.String()), v.MapIndex(k))
			}
		case t.Kind() == reflect.String:
			out = append(out, path+" = "+strconv.Quote(v.String()))
		case t.Kind() == reflect.Bool:
			out = append(out, path+" = "+strconv.FormatBool(v.Bool()))
		case v.CanInt():
			out = append(out, path+" = "+strconv.FormatInt(v.Int(), 10))
		case v.CanUint():
			out = append(out, path+" = "+strconv.FormatUint(v.Uint(), 10))
		case v.CanFloat():
			out = append(out, path+" = "+strconv.FormatFloat(v.Float(), 'g', -1, 64))
		default:
			out = append(out, path+" = unexpected "+t.String())
		}
	}
	walk("", v)
	return out
}

// diffLines says which lines of want are missing from got and which of
// got are extra, or "" when they are the same.
func diffLines(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	var b strings.Builder
	for _, l := range want {
		if !slices.Contains(got, l) {
			fmt.Fprintf(&b, "\n\tlost:  %s", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			fmt.Fprintf(&b, "\n\textra: %s", l)
		}
	}
	if b.Len() == 0 {
		b.WriteString("\n\tthe same lines in another order")
	}
	return b.String()
}

// newGolden makes the golden record of typ as the code writes it now.
func newGolden(typ reflect.Type) (*goldenRecord, error) {
	rec := reflect.New(typ)
	n := 0
	fill(rec.Elem(), &n, false)
	bin, err := encode(rec.Interface())
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(rec.Interface())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bin)
	name := fmt.Sprintf("%s-%x.golden", typeName(typ), sum[:4])
	return &goldenRecord{
		path: filepath.Join(recordsDir, name), typ: typeName(typ),
		binary: bin, json: append([]byte{jsonV1}, j...), want: describe(rec.Elem()),
	}, nil
}

// addGoldenRecords writes the golden record of each stored type whose
// current form no file holds yet.
func addGoldenRecords(t *testing.T) error {
	if err := os.MkdirAll(recordsDir, 0o755); err != nil {
		return err
	}
	for _, typ := range storedTypes {
		g, err := newGolden(typ)
		if err != nil {
			return err
		}
		if _, err := os.Stat(g.path); err == nil {
			continue
		}
		if err := os.WriteFile(g.path, g.marshal(), 0o644); err != nil {
			return err
		}
		t.Logf("wrote %s", g.path)
	}
	return nil
}

// TestGoldenRecords decodes every committed golden record, in both
// encodings, and compares it with what it holds: records already in
// databases must read back whole. It also fails when the code writes a
// stored type in a form no golden record holds yet.
func TestGoldenRecords(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(recordsDir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]reflect.Type{}
	for _, typ := range storedTypes {
		byName[typeName(typ)] = typ
	}
	have := map[string]bool{}
	broken := map[string]bool{} // types with a golden record that no longer reads
	for _, path := range paths {
		have[path] = true
		g, err := parseGolden(path)
		if err != nil {
			t.Error(err)
			continue
		}
		typ, ok := byName[g.typ]
		if !ok {
			t.Errorf("%s: %s is no longer a stored type, but databases still hold its records: a migration must convert them before this file goes", path, g.typ)
			continue
		}
		for _, enc := range []struct {
			name     string
			v        []byte
			shortcut bool
		}{{"binary", g.binary, true}, {"JSON", g.json, true}, {"JSON (read through the plan)", g.json, false}} {
			got := reflect.New(typ)
			jsonShortcut = enc.shortcut
			err := decode(enc.v, got.Interface())
			jsonShortcut = true
			if err != nil {
				broken[g.typ] = true
				t.Errorf("%s: the %s record no longer decodes: %v", path, enc.name, err)
				continue
			}
			if d := diffLines(g.want, describe(got.Elem())); d != "" {
				broken[g.typ] = true
				t.Errorf("%s: the %s record no longer reads back as it was written; existing databases would lose the same:%s\n"+
					"\tA field renamed in Go keeps its data with `store:\"name=OldName\"` (TestFormat names it); a field removed or retyped needs a migration (store/migrate.go), and only then may this file go.",
					path, enc.name, d)
			}
		}
	}
	for _, typ := range storedTypes {
		g, err := newGolden(typ)
		if err != nil {
			t.Fatal(err)
		}
		// With an old record unreadable, -update is not the fix.
		if !have[g.path] && !broken[g.typ] {
			t.Errorf("no golden record holds %s as the code now writes it (%s): run %s and commit store/testdata", typ, g.path, updateCmd)
		}
	}
}

// spendV1 is a record as an older program stored it; spendV2 is the same
// record after its fields were renamed in Go, with their stored names and
// JSON key pinned; spendRenamed is that rename without the pins.
type spendV1 struct {
	ID            string
	LifetimeSpend int64
	Lines         []lineV1
}

type lineV1 struct {
	Points int64 `json:"points"`
}

type spendV2 struct {
	ID         string
	TotalSpend int64    `store:"name=LifetimeSpend"`
	Items      []lineV2 `store:"name=Lines"`
}

type lineV2 struct {
	Earned int64 `json:"earned" store:"name=Points,json=points"`
}

type spendRenamed struct {
	ID         string
	TotalSpend int64
	Items      []lineRenamed
}

type lineRenamed struct {
	Earned int64 `json:"earned"`
}

// TestStoreTagKeepsRenamedFieldReadable: a field renamed in Go with its
// stored name pinned reads the records written before the rename, binary
// and JSON alike, and writes what the old program wrote; without the pin
// the same rename reads them as zero, which is what TestFormat prevents.
func TestStoreTagKeepsRenamedFieldReadable(t *testing.T) {
	old := &spendV1{ID: "m1", LifetimeSpend: 12345, Lines: []lineV1{{Points: 7}, {Points: -2}}}
	bin, err := encode(old)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	want := spendV2{ID: "m1", TotalSpend: 12345, Items: []lineV2{{Earned: 7}, {Earned: -2}}}
	for _, v := range [][]byte{bin, append([]byte{jsonV1}, j...)} {
		var got spendV2
		if err := decode(v, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pinned rename read %q as %+v, want %+v", v[:1], got, want)
		}
		var lost spendRenamed
		if err := decode(v, &lost); err != nil {
			t.Fatal(err)
		}
		if lost.TotalSpend != 0 || lost.Items != nil {
			t.Errorf("an unpinned rename read %+v: the test no longer shows what the pin is for", lost)
		}
	}
	again, err := encode(&want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, bin) {
		t.Errorf("the renamed type writes %x, the old one wrote %x: an older program would not read it", again, bin)
	}

	oldFormat, err := currentFormat([]reflect.Type{reflect.TypeFor[spendV1]()})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := currentFormat([]reflect.Type{reflect.TypeFor[spendV2]()})
	if err != nil {
		t.Fatal(err)
	}
	rename(pinned, "store.spendV2", "store.spendV1")
	rename(pinned, "store.lineV2", "store.lineV1")
	for _, p := range formatProblems(oldFormat, pinned) {
		if !strings.Contains(p, "run "+updateCmd) || strings.Contains(p, "databases hold this field") {
			t.Errorf("pinned rename: %s", p)
		}
	}
	unpinned, err := currentFormat([]reflect.Type{reflect.TypeFor[spendRenamed]()})
	if err != nil {
		t.Fatal(err)
	}
	rename(unpinned, "store.spendRenamed", "store.spendV1")
	rename(unpinned, "store.lineRenamed", "store.lineV1")
	got := strings.Join(formatProblems(oldFormat, unpinned), "\n")
	for _, want := range []string{
		"store.spendV1.LifetimeSpend: databases hold this field",
		"If you renamed it (to TotalSpend?)",
		"TotalSpend int64 `store:\"name=LifetimeSpend\"`",
		"store.spendV1.Lines: databases hold this field",
		"Items []store.lineRenamed `store:\"name=Lines\"`",
		"Earned int64 `store:\"name=Points,json=points\"`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the problems of an unpinned rename do not say %q:\n%s", want, got)
		}
	}
}

// rename gives a type of a format the name it had in another.
func rename(f map[string]*formatType, from, to string) {
	ft := f[from]
	delete(f, from)
	ft.name = to
	f[to] = ft
}

func TestStoreTagErrors(t *testing.T) {
	for _, tag := range []string{`store:"nme=X"`, `store:"name="`, `store:"name"`} {
		typ := reflect.StructOf([]reflect.StructField{{Name: "A", Type: reflect.TypeFor[int](), Tag: reflect.StructTag(tag)}})
		if _, err := binaryPlan(typ); err == nil || !strings.Contains(err.Error(), "store tag") {
			t.Errorf("%s: plan error %v, want a store tag error", tag, err)
		}
	}
	type clash struct {
		A int64
		B int64 `store:"name=A"`
	}
	if _, err := binaryPlan(reflect.TypeFor[clash]()); err == nil {
		t.Error("two fields stored under one name were planned")
	}
	type quoted struct {
		A int64 `json:"a,string"`
	}
	if _, err := binaryPlan(reflect.TypeFor[quoted]()); err == nil || !strings.Contains(err.Error(), "json tag option string") {
		t.Errorf("a field JSON would quote: plan error %v", err)
	}
}

// TestFormatNamesJSONKeyChange: a json tag changed for the API still
// misreads the JSON records of schema-1 files, and TestFormat says so.
func TestFormatNamesJSONKeyChange(t *testing.T) {
	type line struct {
		Points int64 `json:"pts"`
	}
	old, err := currentFormat([]reflect.Type{reflect.TypeFor[lineV1]()})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := currentFormat([]reflect.Type{reflect.TypeFor[line]()})
	if err != nil {
		t.Fatal(err)
	}
	rename(cur, "store.line", "store.lineV1")
	got := strings.Join(formatProblems(old, cur), "\n")
	if want := "keep reading them with the struct tag `store:\"json=points\"`"; !strings.Contains(got, want) {
		t.Errorf("problems %q do not say %q", got, want)
	}
}

// TestFormatProblems: each kind of change gets the advice that fits it.
func TestFormatProblems(t *testing.T) {
	type base struct {
		A int64
		B []string
		C *lineV1
	}
	type added struct {
		A int64
		B []string
		C *lineV1
		D time.Time
	}
	type removed struct {
		A int64
		C *lineV1
	}
	type retyped struct {
		A string
		B []string
		C *lineV1
	}
	type nestedRenamed struct {
		A int64
		B []string
		C *lineV2
	}
	for _, c := range []struct {
		name string
		cur  reflect.Type
		want []string
	}{
		{"added", reflect.TypeFor[added](), []string{"store.base.D is a new field (stored name D): run " + updateCmd}},
		{"removed", reflect.TypeFor[removed](), []string{"store.base.B: databases hold this field", "If you removed it, the records on disk still hold it: write a migration"}},
		{"retyped", reflect.TypeFor[retyped](), []string{"store.base.A: stored as int64 (varint, Go int64) but now string (bytes, Go string)", "write a migration"}},
		{"nested type renamed", reflect.TypeFor[nestedRenamed](), []string{
			"store.lineV1 is in " + manifestPath + " but the store no longer holds it. If only its Go name changed, run " + updateCmd,
			"store.lineV2 is stored but is not in " + manifestPath,
			"store.base.C: the Go field (was C *store.lineV1) changed but its stored form did not: run " + updateCmd,
		}},
	} {
		old, err := currentFormat([]reflect.Type{reflect.TypeFor[base]()})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := currentFormat([]reflect.Type{c.cur})
		if err != nil {
			t.Fatal(err)
		}
		rename(cur, typeName(c.cur), "store.base")
		got := strings.Join(formatProblems(old, cur), "\n")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the problems do not say %q:\n%s", c.name, w, got)
			}
		}
	}
	same, err := currentFormat([]reflect.Type{reflect.TypeFor[base]()})
	if err != nil {
		t.Fatal(err)
	}
	if p := formatProblems(same, same); len(p) > 0 {
		t.Errorf("no change, yet %q", p)
	}
	if back, err := parseFormat(writeFormat(same)); err != nil || !reflect.DeepEqual(back, same) {
		t.Errorf("the manifest does not read back: %v\n%+v\n%+v", err, back, same)
	}
}
