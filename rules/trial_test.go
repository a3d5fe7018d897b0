package rules

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// testBounds are the engine's limits on a request, as it passes them.
var testBounds = Bounds{MaxAmount: 10_000_000_000_000, MaxQuantity: 1_000_000, MaxItems: 200, MaxTotal: 100_000_000_000_000_000}

const testMaxPoints = 10_000_000_000_000

func trial(t *testing.T, src string) Errors {
	t.Helper()
	return mustTrial(t, mustParse(t, src))
}

func mustTrial(t *testing.T, p *Program) Errors {
	t.Helper()
	errs, err := p.Trial(t.Context(), p.EdgeCases(testBounds, saturday), testMaxPoints)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

// TestTrialStopsWhenCancelled: a publication whose client went away stops
// trying the rules.
func TestTrialStopsWhenCancelled(t *testing.T) {
	p := mustParse(t, "currency: USD\nearn:\n  - name: base\n    points: purchase.amount\n")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if errs, err := p.Trial(ctx, p.EdgeCases(testBounds, saturday), testMaxPoints); !errors.Is(err, context.Canceled) || errs != nil {
		t.Fatalf("Trial after cancel = %v, %v; want context.Canceled", errs, err)
	}
}

// TestTrialRefusesFailingRules: each rule the issue found failing at the
// till is refused before it goes live, named, positioned and explained.
func TestTrialRefusesFailingRules(t *testing.T) {
	errs := trial(t, `currency: USD
earn:
  - name: ok
    points: purchase.amount
  - name: oom
    when: 'len(repeat(repeat("x", 999999), 999999)) > 0'
    points: 1
  - name: slow
    points: 'let r = 1..10000; reduce(r, reduce(r, #acc + 1, 0) + #acc, 0) * 0'
  - name: zero
    points: purchase.amount / (purchase.amount - purchase.amount)
  - name: overflow
    points: purchase.amount * (2 ** 2000)
  - name: long-text
    points: len(repeat("ab", 600000))
  - name: guarded
    when: purchase.amount > 0
    points: 100 / purchase.amount
`)
	want := []struct {
		rule      string
		line, col int
		why       string
	}{
		{"oom", 6, 16, "exceeds the memory budget"},
		{"slow", 9, 32, "exceeds the budget of 1000000 steps"},
		{"zero", 11, 29, "division by zero"},
		{"overflow", 13, 29, "+Inf is not a number"},
		{"long-text", 15, 17, "exceeds the memory budget"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		e := errs[i]
		if e.Rule != w.rule || e.Line != w.line || e.Column != w.col || !strings.Contains(e.Message, w.why) ||
			!strings.Contains(e.Message, `rule "`+w.rule+`"`) || !strings.Contains(e.Message, "(on a purchase of ") || e.File != "test.yaml" {
			t.Errorf("problem %d: got %s (rule %q), want rule %q at %d:%d: ...%s...", i, e, e.Rule, w.rule, w.line, w.col, w.why)
		}
	}
}

// TestTrialAcceptsTheExamples: the shipped programs pass their trials.
func TestTrialAcceptsTheExamples(t *testing.T) {
	for _, f := range []string{"example.yaml", "testdata/example.yaml"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if errs := trial(t, string(src)); errs != nil {
			t.Errorf("%s: %v", f, errs)
		}
	}
}

// TestTrialEdges: the edge cases reach what a rule meets only at the edges
// of a request: the most items, the largest quantity, a product the rules
// name, any date whatever the rule's active dates, a top-tier member.
func TestTrialEdges(t *testing.T) {
	for _, tc := range []struct{ name, rule, why string }{
		{"largest quantity", "    for_each: item\n    points: 100 / (item.quantity - 1000000)\n", "item 1: points: division by zero"},
		{"a named product", "    for_each: item\n    when: item.category == \"espresso\"\n    points: 1 / (item.quantity - 1000000)\n", "division by zero"},
		{"many items", "    when: len(purchase.items) == 200\n    points: 1 / 0\n", "division by zero"},
		{"no items", "    points: 1 / len(purchase.items)\n", "division by zero"},
		{"out of its dates", "    active: {from: 2001-01-01, until: 2001-01-31}\n    points: 1 / (purchase.amount - purchase.amount)\n", "division by zero"},
		{"top tier", "    when: tier.name == \"gold\"\n    points: 1 / (tier.multiplier - 2)\n", "division by zero"},
		{"too many points", "    points: purchase.amount * 1000\n", "earns 100000000000000 points, more than the 10000000000000 a rule may earn on one purchase (add max_per_purchase)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "currency: USD\ntiers:\n  levels:\n    - {name: green, threshold: 0}\n    - {name: gold, threshold: \"500\", multiplier: 2}\nearn:\n  - name: r\n" + tc.rule
			errs := trial(t, src)
			if len(errs) != 1 || errs[0].Rule != "r" || !strings.Contains(errs[0].Message, tc.why) {
				t.Fatalf("got %v, want rule r refused: ...%s...", errs, tc.why)
			}
		})
	}
	capped := "currency: USD\nearn:\n  - name: r\n    points: purchase.amount * 1000\n    max_per_purchase: 5000\n"
	if errs := trial(t, capped); errs != nil {
		t.Errorf("a capped rule: %v", errs)
	}
}

// TestTrialTogether: rules that each fit the budget but not together are
// refused at the rule where the purchase runs out.
func TestTrialTogether(t *testing.T) {
	turn := "    points: 'count(1..1000, # % 3 == 0) * 0'\n"
	src := "currency: USD\nlimits: {steps: 30000}\nearn:\n  - name: a\n" + turn + "  - name: b\n" + turn
	p := mustParse(t, src)
	one := mustParse(t, "currency: USD\nlimits: {steps: 30000}\nearn:\n  - name: a\n"+turn)
	if errs := mustTrial(t, one); errs != nil {
		t.Fatalf("one loop: %v", errs)
	}
	errs := mustTrial(t, p)
	if len(errs) != 1 || errs[0].Rule != "b" || !strings.Contains(errs[0].Message, "exceeds the budget of 30000 steps") {
		t.Fatalf("got %v, want rule b over the budget", errs)
	}
}

// TestEdgeCases: the samples span the request's limits, every tier and
// several weekdays.
func TestEdgeCases(t *testing.T) {
	p := mustParse(t, "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0}\n    - {name: b, threshold: 1}\nearn:\n  - name: r\n    when: item.sku == \"x\"\n    for_each: item\n    points: 1\n")
	samples := p.EdgeCases(testBounds, saturday)
	tiers, days := map[string]bool{}, map[time.Weekday]bool{}
	var most, largest bool
	for _, s := range samples {
		in := s.Input.Purchase
		tiers[s.Input.Member.Tier] = true
		days[in.OccurredAt.Weekday()] = true
		var sum int64
		for _, it := range in.Items {
			sum += it.Amount
			if it.Quantity > testBounds.MaxQuantity || it.Amount > testBounds.MaxAmount {
				t.Errorf("%s: item %+v beyond the bounds", s.Name, it)
			}
		}
		if sum > in.Amount {
			t.Errorf("%s: lines add up to more than the amount", s.Name)
		}
		most = most || len(in.Items) == testBounds.MaxItems
		largest = largest || in.Amount == testBounds.MaxAmount
	}
	if !most || !largest || !tiers["a"] || !tiers["b"] || len(days) < 4 {
		t.Errorf("samples: most items %v, largest %v, tiers %v, weekdays %v", most, largest, tiers, days)
	}
}
