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
		{"misspelt reward key", "    per_member: {max: 2, per: month}", "    per_membr: {max: 2, per: month}"},
		{"bad period", "per: month}", "per: fortnight}"},
		{"reward name with capitals", "- name: free-coffee", "- name: Free-Coffee"},
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

// TestGrammarInStep: the key lists Parse checks against, the schema an
// editor checks against, the grammar of the package doc and docs/RULES.md
// name the same keys.
func TestGrammarInStep(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(Schema, &schema); err != nil {
		t.Fatal(err)
	}
	// props follows a path of property names (and "[]" for a list's items)
	// to the properties of an object in the schema.
	props := func(path ...string) map[string]any {
		node := schema
		for _, p := range path {
			if p == "[]" {
				node = node["items"].(map[string]any)
				continue
			}
			node = node["properties"].(map[string]any)[p].(map[string]any)
		}
		return node["properties"].(map[string]any)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	grammar := string(doc[bytes.Index(doc, []byte("# Grammar")):bytes.Index(doc, []byte("# Expressions"))])
	manual, err := os.ReadFile("../docs/RULES.md")
	if err != nil {
		t.Fatal(err)
	}
	jobs := make([]string, len(defaultJobs))
	for i, j := range defaultJobs {
		jobs[i] = j.Name
	}
	for _, tc := range []struct {
		keys []string
		path []string
		open bool // the schema lets the marketer add keys of their own
	}{
		{topKeys, nil, false},
		{pointsKeys, []string{"points"}, false},
		{expiryKeys, []string{"points", "expiry"}, false},
		{tiersKeys, []string{"tiers"}, false},
		{levelKeys, []string{"tiers", "levels", "[]"}, true},
		{ruleKeys, []string{"earn", "[]"}, false},
		{activeKeys, []string{"earn", "[]", "active"}, false},
		{bonusKeys, []string{"bonuses"}, false},
		{referKeys, []string{"bonuses", "referral"}, false},
		{birthdayKeys, []string{"bonuses", "birthday"}, false},
		{rewardKeys, []string{"rewards", "[]"}, false},
		{validKeys, []string{"rewards", "[]", "valid"}, false},
		{perMemberKeys, []string{"rewards", "[]", "per_member"}, false},
		{couponKeys, []string{"rewards", "[]", "coupon"}, false},
		{jobs, []string{"jobs"}, false},
		{analyticsKeys, []string{"analytics"}, false},
		{limitsKeys, []string{"limits"}, false},
		{eventsKeys, []string{"events"}, false},
	} {
		in := props(tc.path...)
		for _, k := range tc.keys {
			if _, ok := in[k]; !ok {
				t.Errorf("schema %v has no %q", tc.path, k)
			}
			if !strings.Contains(grammar, k+":") {
				t.Errorf("the grammar in doc.go has no %q", k)
			}
			if !strings.Contains(string(manual), k) {
				t.Errorf("docs/RULES.md does not mention %q", k)
			}
		}
		if !tc.open && len(in) != len(tc.keys) {
			t.Errorf("schema %v has %d keys, Parse knows %d: %v", tc.path, len(in), len(tc.keys), tc.keys)
		}
	}
}
