package rules

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlToJSON turns a rules file into the JSON value an editor's schema
// check sees.
func yamlToJSON(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaAcceptsTheExamples(t *testing.T) {
	s := compileSchema(t)
	files := []string{"example.yaml", "testdata/example.yaml", "../../shared/examples/rules.yaml"}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			if strings.HasPrefix(f, "../../shared") {
				continue // the shared folder is beside the checkout, not in it
			}
			t.Fatal(err)
		}
		if _, err := Parse(filepath.Base(f), src); err != nil {
			t.Fatalf("%s does not parse: %v", f, err)
		}
		if err := s.Validate(yamlToJSON(t, src)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSchemaRejectsWhatParseRejects(t *testing.T) {
	s := compileSchema(t)
	for _, tc := range []struct{ name, edit, with string }{
		{"unknown top-level key", "program: Coffee Club", "programme: Coffee Club"},
		{"misspelt rule key", "    max_per_member: 1", "    max_per_membr: 1"},
		{"bad duration", "after: 12mo", "after: 12 months"},
		{"bad rounding", "rounding: floor", "rounding: down"},
		{"unknown job", "  expire-points:", "  expire-point:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := bytes.Replace(Example, []byte(tc.edit), []byte(tc.with), 1)
			if bytes.Equal(src, Example) {
				t.Fatalf("the example has no %q to edit", tc.edit)
			}
			if _, err := Parse("x.yaml", src); err == nil {
				t.Fatal("Parse accepted it")
			}
			if err := s.Validate(yamlToJSON(t, src)); err == nil {
				t.Fatal("the schema accepted it")
			}
		})
	}
}
