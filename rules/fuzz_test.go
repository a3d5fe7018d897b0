package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic or hang, that every
// error is positioned, and that an accepted program can evaluate a purchase.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, file := range append(seeds, bad...) {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte("currency: USD\nearn:\n  - name: a\n    for_each: item\n    points: item.amount / (item.quantity - 1)\n"))
	f.Add([]byte("currency: USD\nearn:\n  - name: a\n    points: |\n      -purchase.amount\n        * 0.5\n"))
	f.Add([]byte("currency: USD\nx: &a {b: *a}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.yaml", src)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			for _, e := range errs {
				if e.Line < 1 || e.Column < 1 || e.Message == "" {
					t.Fatalf("unpositioned error: %v", e)
				}
			}
			return
		}
		in := purchase(1234, Item{SKU: "a", Category: "coffee", Quantity: 2, Amount: 600}, Item{Amount: 634})
		in.Uses = func(string) RuleUses { return RuleUses{} }
		b, err := p.Earn(in)
		if err == nil && b.Total < 0 {
			t.Fatalf("negative total %d", b.Total)
		}
	})
}
