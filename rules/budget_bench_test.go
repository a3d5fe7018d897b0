package rules

import (
	"strings"
	"testing"
)

// budgetWorkloads are expressions that spend the whole budget in
// different ways: cheap loop turns, decimal arithmetic, scanning and
// building text, sorting. BenchmarkBudget reports what a step costs in
// each, which is how DefaultSteps is chosen: the slowest of them must
// spend DefaultSteps in a few milliseconds.
var budgetWorkloads = []struct{ name, expr string }{
	{"map", `let r = 1..1000; len(map(r, map(r, "x")))`},
	{"count", `let r = 1..1000; count(r, count(r, # > 5) > 0)`},
	{"nested-reduce", `let r = 1..10000; reduce(r, reduce(r, #acc + 1, 0) + #acc, 0) * 0`},
	{"decimals", `let r = 1..1000; count(r, count(r, purchase.amount * 1.5 - 0.25 > 3) > 0)`},
	{"contains", `let s = repeat("ab", 50000); count(1..1000, s contains "c")`},
	{"matches", `let s = repeat("ab", 50000); count(1..1000, s matches "a[bc]*d")`},
	{"concat", `reduce(1..1000, #acc + "xyz", "") == "" ? 1 : 0`},
	{"sort", `let r = 1..100; count(r, len(sort(map(r, -#))) > 0)`},
	{"upper", `let s = repeat("ab", 50000); count(1..1000, upper(s) == "")`},
	{"straight-line", strings.Repeat("purchase.amount * 1.1 + ", 300) + "0"},
}

func BenchmarkBudget(b *testing.B) {
	for _, w := range budgetWorkloads {
		b.Run(w.name, func(b *testing.B) {
			src := "currency: USD\nearn:\n  - name: r\n    for_each: item\n    points: '" + w.expr + "'\n"
			p := mustParse(b, src)
			items := make([]Item, 200)
			for i := range items {
				items[i] = Item{SKU: "a", Category: "coffee", Quantity: 2, Amount: 500}
			}
			in := purchase(1000, items...)
			var steps int64
			var err error
			for b.Loop() {
				var m meter
				_, m, err = p.earn(in)
				steps += min(m.steps, m.maxSteps)
			}
			if err != nil {
				b.Log(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
		})
	}
}
