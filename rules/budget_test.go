package rules

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// pointsRule is a program with one rule whose points are expr.
func pointsRule(t testing.TB, head, expr string) *Program {
	t.Helper()
	return mustParse(t, "currency: USD\n"+head+"earn:\n  - name: r\n    points: '"+strings.ReplaceAll(expr, "'", "''")+"'\n")
}

// runaways are expressions that take the process down or hold a core for
// seconds without a budget, and the limit each reaches.
var runaways = []struct{ name, expr, resource string }{
	{"nested repeat", `len(repeat(repeat("x", 999999), 999999)) > 0 ? 1 : 0`, "memory"},
	{"nested reduce", `let r = 1..10000; reduce(r, reduce(r, #acc + 1, 0) + #acc, 0) * 0`, "steps"},
	{"text over the budget", `len(repeat("x", 2000000))`, "memory"},
	{"doubling text", `reduce(1..64, #acc + #acc, "x") == "" ? 1 : 0`, "memory"},
	{"doubling through lets", `let a = repeat("x", 1000); let b = a + a; let c = b + b; let d = c + c; let e = d + d; let f = e + e; let g = f + f; let h = g + g; let i = h + h; let j = i + i; let k = j + j; len(k)`, "memory"},
	{"huge range", `len(1..100000000) * 0`, "memory"},
	{"ranges in a loop", `let r = 1..1000; count(r, len(1..1000) > 0)`, "memory"},
	{"join with a long separator", `len(join(map(1..50000, "x"), repeat("y", 1000)))`, "memory"},
	{"replace everywhere", `len(replace(repeat("x", 5000), "", repeat("y", 1000)))`, "memory"},
	{"scanning text in a loop", `let s = repeat("ab", 100000); count(1..100000, s contains "c")`, "steps"},
	{"regular expressions", `let s = repeat("ab", 100000); count(1..100, s matches "a[bc]*d")`, "steps"},
	{"comparing lists", `let a = 1..100000; count(1..1000, a == a)`, "steps"},
	{"sorting", `let r = 1..100000; count(1..1000, len(sort(r)) > 0)`, "steps"},
	{"searching a list", `let a = 1..50000; count(1..1000, 5 in a)`, "steps"},
	{"many loops", `let r = 1..1000; count(r, count(r, count(r, # > 0) > 0) > 0)`, "steps"},
}

// TestBudgetStopsRunaways runs expressions that would take the process
// down or hold a core for seconds without a budget: each ends with a
// BudgetError, having allocated a bounded multiple of the memory budget.
func TestBudgetStopsRunaways(t *testing.T) {
	for _, tc := range runaways {
		t.Run(tc.name, func(t *testing.T) {
			p := pointsRule(t, "", tc.expr)
			var err error
			bytes := allocated(func() { _, err = p.Earn(purchase(1000)) })
			var be *BudgetError
			if !errors.As(err, &be) || be.Resource != tc.resource {
				t.Fatalf("Earn: %v, want the %s budget exceeded", err, tc.resource)
			}
			var re *RuleError
			if !errors.As(err, &re) || re.Rule != "r" || re.Line != 4 || re.Column < 13 {
				t.Errorf("error %v is not positioned in rule r: %+v", err, re)
			}
			if limit := uint64(8 * DefaultMemory); bytes > limit {
				t.Errorf("allocated %d bytes, more than %d", bytes, limit)
			}
		})
	}
}

// TestBudgetFromTheFile: a limits section lowers and raises the budget.
func TestBudgetFromTheFile(t *testing.T) {
	expr := `count(1..1000, # % 7 == 0)`
	if _, err := pointsRule(t, "", expr).Earn(purchase(1000)); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	_, err := pointsRule(t, "limits: {steps: 5000}\n", expr).Earn(purchase(1000))
	var be *BudgetError
	if !errors.As(err, &be) || be.Limit != 5000 || !strings.Contains(err.Error(), "exceeds the budget of 5000 steps per purchase (limits.steps)") {
		t.Fatalf("limits.steps 5000: %v", err)
	}
	big := `len(repeat("x", 3000000))`
	if _, err := pointsRule(t, "", big).Earn(purchase(1000)); err == nil {
		t.Fatal("3 MB of text within the default memory budget")
	}
	// Making text costs steps too, one for every 2 bytes.
	b, err := pointsRule(t, "limits: {memory: 4000000, steps: 2000000}\n", big).Earn(purchase(1000))
	if err != nil || b.Total != 3000000 {
		t.Fatalf("limits.memory 4000000: %v %v", b, err)
	}
	if p := pointsRule(t, "", "1"); p.Limits != DefaultLimits {
		t.Errorf("limits %+v, want the defaults", p.Limits)
	}
}

// TestBudgetIsPerPurchase: the rules share one budget per purchase, and
// the next purchase starts afresh.
func TestBudgetIsPerPurchase(t *testing.T) {
	turn := `count(1..100, # > 0)`
	src := "currency: USD\nlimits: {steps: 5000}\nearn:\n"
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		src += "  - name: " + name + "\n    points: '" + turn + "'\n"
	}
	p := mustParse(t, src)
	_, m, err := p.earn(purchase(1000))
	var re *RuleError
	if !errors.As(err, &re) || re.Rule == "a" {
		t.Fatalf("six loops of 100 within 5000 steps: %v", err)
	}
	if m.steps <= m.maxSteps {
		t.Errorf("failed at %d of %d steps", m.steps, m.maxSteps)
	}
	one := mustParse(t, "currency: USD\nlimits: {steps: 5000}\nearn:\n  - name: a\n    points: '"+turn+"'\n")
	for range 3 {
		if _, err := one.Earn(purchase(1000)); err != nil {
			t.Fatalf("the budget carried over between purchases: %v", err)
		}
	}
}

// TestMeteredExpressionsKeepTheirMeaning: the patch that charges the
// budget changes no result.
func TestMeteredExpressionsKeepTheirMeaning(t *testing.T) {
	in := purchase(2340,
		Item{SKU: "latte", Category: "coffee", Quantity: 2, Amount: 800},
		Item{SKU: "beans", Category: "beans", Quantity: 1, Amount: 1540},
	)
	in.Member.Attributes = map[string]string{"store": "s1", "tags": "a,b,c"}
	for _, tc := range []struct {
		expr string
		want int64
	}{
		{`len(repeat("ab", 3))`, 6},
		{`len(replace("a-b-c", "-", "--"))`, 7},
		{`len(replace("a-b-c", "-", "", 1))`, 4},
		{`len(join(["a", "bb", "ccc"], ", "))`, 10},
		{`len(join(split(member.attributes["tags"], ",")))`, 3},
		{`len(split(member.attributes["tags"], ","))`, 3},
		{`let s = upper(member.attributes["store"]); s == "S1" ? 5 : 0`, 5},
		{`let t = member.attributes["tags"]; t contains "b" && t startsWith "a" && t endsWith "c" && t matches "^a,.,c$" ? 1 : 0`, 1},
		{`let t = member.attributes["tags"] + ",d"; len(t)`, 7},
		{`let xs = map(purchase.items, .sku); "beans" in xs ? 2 : 0`, 2},
		{`let xs = filter(purchase.items, .category == "coffee"); len(xs) * 10`, 10},
		{`reduce(1..10, #acc + #, 0)`, 55},
		{`sum(map(1..4, # * #))`, 30},
		{`let r = 3..5; len(r) + first(r)`, 6},
		{`5 in 1..9 ? 1 : 0`, 1},
		{`len(sort(map(purchase.items, .sku)))`, 2},
		{`len(uniq(["a", "b", "a"]))`, 2},
		{`let xs = sortBy(purchase.items, .quantity, "desc"); xs[0].quantity`, 2},
		{`len(toJSON(map(purchase.items, .quantity)))`, int64(len("[\n  2,\n  1\n]"))},
		{`len(keys(member.attributes))`, 2},
		{`int(string(purchase.items[0].quantity) + "0")`, 20},
		{`let a = "x"; let b = a + a; len(b + b)`, 4},
		{`all(purchase.items, .quantity > 0) && any(purchase.items, .sku == "beans") ? 3 : 0`, 3},
		{`count(purchase.items, .amount > 10) + findIndex(purchase.items, .sku == "beans")`, 2},
		{`purchase.amount * 2 / 3`, 15},
		{`7 / 2 * 2`, 7},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			b, err := pointsRule(t, "", tc.expr).Earn(in)
			if err != nil || b.Total != tc.want {
				t.Fatalf("got %d, %v; want %d", b.Total, err, tc.want)
			}
		})
	}
}

// TestArithmeticIsChecked: integers do not wrap around and decimals do not
// grow without end; both are errors of the rule.
func TestArithmeticIsChecked(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`9223372036854775807 + purchase.hour`, "integer overflow"},
		{`-9223372036854775807 - purchase.hour * 2`, "integer overflow"},
		{`purchase.hour * 4611686018427387904`, "integer overflow"},
		{`purchase.amount * (2 ** 2000)`, "+Inf is not a number"},
		{`purchase.amount * 1000000000000000000 * 1000000000000000000`, "number too large"},
		{`purchase.amount / (purchase.amount - purchase.amount)`, "division by zero"},
		{`purchase.amount * (2 ** 64)`, "points do not fit in 64 bits"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := pointsRule(t, "", tc.expr).Earn(purchase(1000))
			var re *RuleError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a rule error with %q", err, tc.want)
			}
		})
	}
	b, err := pointsRule(t, "timezone: America/New_York\n", `(purchase.hour * 1000 - 7) + purchase.amount / 3`).Earn(purchase(3000))
	if err != nil || b.Total != 15000-7+10 {
		t.Fatalf("ordinary arithmetic: %v %v", b, err)
	}
}

// TestRuleErrorPosition: a failing rule is named and positioned at the
// part of its expression that failed.
func TestRuleErrorPosition(t *testing.T) {
	p := mustParse(t, `currency: USD
earn:
  - name: fine
    points: 1
  - name: broken
    when: purchase.amount >= 0
    points: purchase.amount / (purchase.amount - purchase.amount)
`)
	_, err := p.Earn(purchase(1000))
	var re *RuleError
	if !errors.As(err, &re) {
		t.Fatalf("Earn: %v", err)
	}
	if re.Rule != "broken" || re.Line != 7 || re.Column != 29 || !errors.Is(err, errDivByZero) {
		t.Errorf("got %q at %d:%d (%v), want broken at 7:29, the division", re.Rule, re.Line, re.Column, re.Err)
	}
	if got := err.Error(); got != `rule "broken": points: division by zero` {
		t.Errorf("message %q", got)
	}
}

// TestFixedCost: rules without loops or data-sized operations have a cost
// known before they run, an upper bound of what they spend; the others do
// not.
func TestFixedCost(t *testing.T) {
	p := mustParse(t, string(Example))
	in := purchase(2840,
		Item{SKU: "latte", Category: "coffee", Quantity: 2, Amount: 800},
		Item{SKU: "beans", Category: "beans", Quantity: 1, Amount: 1540},
		Item{SKU: "croissant", Category: "food", Quantity: 1, Amount: 500},
	)
	in.Member = Member{ID: "m1", Tier: "gold", ChurnRisk: true}
	_, m, err := p.earn(in)
	if err != nil {
		t.Fatal(err)
	}
	cost, fixed := p.FixedCost(len(in.Purchase.Items))
	if !fixed || cost < m.steps || cost > 2*m.steps {
		t.Fatalf("fixed cost %d (%v) for %d steps spent", cost, fixed, m.steps)
	}
	if more, _ := p.FixedCost(200); more <= cost {
		t.Errorf("200 items cost %d, 3 cost %d", more, cost)
	}
	for _, expr := range []string{`count(purchase.items, .quantity > 1)`, `len(upper(member.id + member.id + member.tier) + repeat("x", 2))`, `len(repeat("x", purchase.hour))`} {
		if _, fixed := pointsRule(t, "", expr).FixedCost(1); fixed {
			t.Errorf("%s has a fixed cost", expr)
		}
	}
}
