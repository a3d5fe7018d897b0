package rules

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// fuzzLimits are small, so that a run that spends them all is quick.
var fuzzLimits = Limits{Steps: 20_000, Memory: 64 << 10}

// FuzzEvalBudget compiles an arbitrary expression as a rule's points (or,
// with forEach, as a rule per item) and runs it: whatever it does, the run
// ends within its budget or with a BudgetError, never panics, and
// allocates no more than the memory budget and what the steps it was
// charged can allocate. Time is not measured: the steps stand for it, and
// BenchmarkBudget is what ties a step to nanoseconds.
func FuzzEvalBudget(f *testing.F) {
	for _, w := range budgetWorkloads {
		f.Add(w.expr, true, uint8(3))
	}
	for _, r := range runaways {
		f.Add(r.expr, false, uint8(1))
	}
	f.Fuzz(func(t *testing.T, expr string, forEach bool, items uint8) {
		if strings.ContainsAny(expr, "\n\r") || len(expr) > 2000 {
			return
		}
		rule := "  - name: r\n    points: '" + strings.ReplaceAll(expr, "'", "''") + "'\n"
		if forEach {
			rule += "    for_each: item\n"
		}
		src := "currency: USD\nlimits: {steps: 20000, memory: 65536}\ntiers:\n  levels:\n    - {name: a, threshold: 0, perks: [x, y]}\nearn:\n" + rule
		p, err := Parse("fuzz.yaml", []byte(src))
		if err != nil {
			return
		}
		in := purchase(123456)
		in.Member.Attributes = map[string]string{"store": "s1", "tags": "a,b"}
		in.Member.Tier = "a"
		for i := range int(items % 8) {
			in.Purchase.Items = append(in.Purchase.Items, Item{SKU: "sku", Category: "coffee", Quantity: int64(i + 1), Amount: 1000})
		}
		var m meter
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, m, err = p.earn(in)
		runtime.ReadMemStats(&after)

		var be *BudgetError
		switch {
		case err == nil && (m.steps > fuzzLimits.Steps || m.memory > fuzzLimits.Memory):
			t.Fatalf("succeeded beyond the budget: %d steps, %d bytes", m.steps, m.memory)
		case err != nil && errors.As(err, &be) && m.steps <= fuzzLimits.Steps && m.memory <= fuzzLimits.Memory && be.Resource != "memory":
			t.Fatalf("%v within the budget: %d steps", err, m.steps)
		}
		// A step allocates a few dozen bytes at most (a decimal operation
		// costs 50 steps); text and lists are charged byte for byte.
		bound := uint64(4*fuzzLimits.Memory + 64*fuzzLimits.Steps + 1<<20)
		if got := after.TotalAlloc - before.TotalAlloc; got > bound {
			t.Fatalf("allocated %d bytes, more than %d (%d steps, %d bytes charged; %v)", got, bound, m.steps, m.memory, err)
		}
		if got := after.Mallocs - before.Mallocs; got > uint64(fuzzLimits.Steps)+10_000 {
			t.Fatalf("%d allocations for %d steps", got, m.steps)
		}
	})
}
