package rules

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// earnProgram parses a one-currency program around the given earn list.
func earnProgram(t testing.TB, head, earn string) *Program {
	t.Helper()
	return mustParse(t, "currency: USD\ntimezone: America/New_York\n"+head+"earn:\n"+earn)
}

// ny is the zone of the test programs.
var ny, _ = time.LoadLocation("America/New_York")

// saturday is a Saturday afternoon in New York.
var saturday = time.Date(2026, 3, 7, 15, 0, 0, 0, ny)

func purchase(amount int64, items ...Item) EarnInput {
	return EarnInput{
		Purchase: Purchase{Amount: amount, Currency: "USD", OccurredAt: saturday, Items: items},
		Member:   Member{ID: "m1", Tier: "green"},
	}
}

func TestEarnExample(t *testing.T) {
	src, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, string(src))
	in := purchase(2340,
		Item{SKU: "latte", Category: "coffee", Quantity: 2, Amount: 800},
		Item{SKU: "beans", Category: "beans", Quantity: 1, Amount: 1540},
	)
	in.Member = Member{ID: "m1", Tier: "gold", ChurnRisk: true}
	got, err := p.Earn(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Breakdown{Total: 35 + 24 + 30 + 200, Rules: []RuleResult{
		{Rule: "base", Points: 35}, // 23.40 × 1.5 = 35.1
		{Rule: "coffee-bonus", Points: 24, ItemPoints: []int64{24, 0}},
		{Rule: "weekend-beans", Points: 30, ItemPoints: []int64{0, 30}}, // 15.40 × 2 on a Saturday
		{Rule: "win-back", Points: 200},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestEarnPoints evaluates single-rule programs; the rule is called r.
func TestEarnPoints(t *testing.T) {
	tests := []struct {
		name     string
		head     string // keys before earn
		rule     string // the rule's keys after name
		in       EarnInput
		want     int64
		wantItem []int64
	}{
		{"exact literals", "", "points: 0.29 * 100", purchase(1), 29, nil},
		{"exact money", "", "points: purchase.amount * 100", purchase(29), 29, nil},
		{"floor", "points: {rounding: floor}\n", "points: purchase.amount * 1.5", purchase(1001), 15, nil},
		{"nearest below half", "points: {rounding: nearest}\n", "points: purchase.amount * 1.5", purchase(1001), 15, nil},
		{"nearest half up", "points: {rounding: nearest}\n", "points: 2.5", purchase(1), 3, nil},
		{"ceil", "points: {rounding: ceil}\n", "points: purchase.amount * 1.5", purchase(1001), 16, nil},
		{"integer division is exact", "", "points: 7 / 2 * 2", purchase(1), 7, nil},
		{"decimal minus", "", "points: 10 - -purchase.amount", purchase(500), 15, nil},
		{"negative is zero", "", "points: purchase.amount - 100", purchase(500), 0, nil},
		{"float from a function", "", "points: float(3) * purchase.amount", purchase(1010), 30, nil},
		{"comparison of money", "", "when: purchase.amount >= 10 && purchase.amount != 10.5\npoints: 1", purchase(1000), 1, nil},
		{"money equality ignores scale", "", "when: purchase.amount == 10\npoints: 1", purchase(1000), 1, nil},
		{"money in a list", "", "when: purchase.amount in [5, 10.5, 20]\npoints: 1", purchase(1050), 1, nil},
		{"money not in a list", "", "when: purchase.amount in [5, 10.51]\npoints: 1", purchase(1050), 0, nil},
		{"when false", "", "when: purchase.amount > 10\npoints: 1", purchase(1000), 0, nil},
		{"weekday, hour, day, month in zone", "", `when: purchase.weekday == "Sat" && purchase.hour == 15 && purchase.day == 7 && purchase.month == 3
points: 1`, purchase(1), 1, nil},
		{"integer from a method", "", "points: purchase.occurred_at.Month()", purchase(1), 3, nil},
		{"items list", "", "points: sum(purchase.items, .quantity)", purchase(1, Item{Quantity: 2}, Item{Quantity: 3}), 5, nil},
		{"for each item", "", "for_each: item\nwhen: item.category == \"coffee\"\npoints: item.quantity * 12",
			purchase(1, Item{Category: "coffee", Quantity: 2}, Item{Category: "tea", Quantity: 1}, Item{Category: "coffee", Quantity: 1}), 36, []int64{24, 0, 12}},
		{"for each rounds per item", "", "for_each: item\npoints: item.amount * 1.5",
			purchase(1, Item{Amount: 101}, Item{Amount: 101}), 2, []int64{1, 1}},
		{"for each negative item is zero", "", "for_each: item\npoints: item.quantity - 2",
			purchase(1, Item{Quantity: 5}, Item{Quantity: 1}), 3, []int64{3, 0}},
		{"max per purchase", "", "points: 1000\nmax_per_purchase: 500", purchase(1), 500, nil},
		{"max per purchase trims the last items", "", "for_each: item\npoints: 300\nmax_per_purchase: 500",
			purchase(1, Item{}, Item{}, Item{}), 500, []int64{300, 200, 0}},
		{"for each without items", "", "for_each: item\npoints: 1", purchase(1), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := "  - name: r\n    " + strings.ReplaceAll(tt.rule, "\n", "\n    ") + "\n"
			p := earnProgram(t, tt.head, rule)
			b, err := p.Earn(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if b.Total != tt.want {
				t.Errorf("total = %d, want %d", b.Total, tt.want)
			}
			if tt.want == 0 {
				if len(b.Rules) != 0 {
					t.Errorf("rules = %+v, want none", b.Rules)
				}
				return
			}
			if len(b.Rules) != 1 || b.Rules[0].Rule != "r" || b.Rules[0].Points != tt.want {
				t.Fatalf("rules = %+v", b.Rules)
			}
			if !reflect.DeepEqual(b.Rules[0].ItemPoints, tt.wantItem) {
				t.Errorf("item points = %v, want %v", b.Rules[0].ItemPoints, tt.wantItem)
			}
		})
	}
}

func TestEarnZone(t *testing.T) {
	p := earnProgram(t, "", `  - name: weekend
    when: purchase.weekday in ["Sat", "Sun"]
    points: 10
`)
	// Saturday 03:00 UTC is still Friday evening in New York.
	in := purchase(100)
	in.Purchase.OccurredAt = time.Date(2026, 3, 7, 3, 0, 0, 0, time.UTC)
	if b, _ := p.Earn(in); b.Total != 0 {
		t.Errorf("Friday evening in New York earned %d", b.Total)
	}
	in.Purchase.OccurredAt = time.Date(2026, 3, 7, 5, 0, 0, 0, time.UTC)
	if b, _ := p.Earn(in); b.Total != 10 {
		t.Errorf("Saturday 00:00 in New York earned %d", b.Total)
	}
}

func TestEarnActive(t *testing.T) {
	p := earnProgram(t, "", `  - name: december
    points: 10
    active: {from: 2026-12-01, until: 2026-12-31}
`)
	for _, tt := range []struct {
		at   time.Time
		want int64
	}{
		{time.Date(2026, 11, 30, 23, 59, 59, 0, ny), 0},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, ny), 10},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, ny), 10},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, ny), 0},
		{time.Date(2027, 1, 1, 3, 0, 0, 0, time.UTC), 10}, // still 31 December in New York
	} {
		in := purchase(100)
		in.Purchase.OccurredAt = tt.at
		b, err := p.Earn(in)
		if err != nil {
			t.Fatal(err)
		}
		if b.Total != tt.want {
			t.Errorf("at %v: earned %d, want %d", tt.at, b.Total, tt.want)
		}
	}
}

func TestEarnCaps(t *testing.T) {
	p := earnProgram(t, "", `  - name: once
    points: 200
    max_per_member: 1
  - name: daily
    points: 10
    max_per_day: 2
    max_per_month: 5
    max_per_year: 20
  - name: free
    points: 1
`)
	tests := []struct {
		uses RuleUses
		want int64
	}{
		{RuleUses{}, 211},
		{RuleUses{Total: 1, Day: 1, Month: 1, Year: 1}, 11},
		{RuleUses{Total: 1, Day: 2, Month: 2, Year: 2}, 1},
		{RuleUses{Total: 0, Day: 0, Month: 5, Year: 5}, 201},
		{RuleUses{Total: 0, Day: 0, Month: 0, Year: 20}, 201},
	}
	for _, tt := range tests {
		in := purchase(100)
		var asked []string
		in.Uses = func(rule string) RuleUses {
			asked = append(asked, rule)
			return tt.uses
		}
		b, err := p.Earn(in)
		if err != nil {
			t.Fatal(err)
		}
		if b.Total != tt.want {
			t.Errorf("uses %+v: earned %d, want %d", tt.uses, b.Total, tt.want)
		}
		if strings.Join(asked, ",") != "once,daily" {
			t.Errorf("asked uses of %v; uncapped rules need none", asked)
		}
	}
	// Without a counter, caps cannot be checked and do not apply.
	if b, _ := p.Earn(purchase(100)); b.Total != 211 {
		t.Errorf("without Uses earned %d", b.Total)
	}
}

func TestEarnTierAndMember(t *testing.T) {
	p := mustParse(t, `currency: USD
timezone: America/New_York
tiers:
  levels:
    - {name: green, threshold: "0"}
    - {name: gold, threshold: "500.00", multiplier: 1.5, benefits: [free-refill], bonus: 5}
earn:
  - name: base
    points: purchase.amount * tier.multiplier
  - name: refill
    when: '"free-refill" in tier.benefits'
    points: tier.bonus
  - name: loyal
    when: member.days_enrolled >= 365 && member.purchase_count > 10 && member.lifetime_spend >= 1000.50
    points: 7
  - name: birthday-month
    when: member.birthday_month == purchase.month
    points: 3
  - name: vip
    when: member.attributes["vip"] == "yes" && member.segment == "regular" && member.clv > 99.99
    points: 2
`)
	in := purchase(1000)
	in.Member = Member{
		ID: "m1", Tier: "gold",
		EnrolledAt:    saturday.AddDate(-1, 0, 0),
		PurchaseCount: 11,
		LifetimeSpend: 100050,
		BirthdayMonth: 3,
		Attributes:    map[string]string{"vip": "yes"},
		Segment:       "regular",
		CLV:           10000,
	}
	b, err := p.Earn(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(15 + 5 + 7 + 3 + 2); b.Total != want {
		t.Errorf("gold member earned %d, want %d: %+v", b.Total, want, b.Rules)
	}

	// An unknown tier is treated as the first level.
	in.Member = Member{ID: "m2", Tier: "bronze"}
	b, err = p.Earn(in)
	if err != nil {
		t.Fatal(err)
	}
	if b.Total != 10 {
		t.Errorf("unknown tier earned %d, want 10: %+v", b.Total, b.Rules)
	}
}

func TestEarnErrors(t *testing.T) {
	for _, tt := range []struct{ rule, want string }{
		{"points: 10 / (purchase.amount - 1)", "division by zero"},
		{"points: 10 / (purchase.hour - 15)", "division by zero"},
		{"points: purchase.items[5].quantity", "index out of range"},
	} {
		p := earnProgram(t, "", "  - name: r\n    "+tt.rule+"\n")
		_, err := p.Earn(purchase(100))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `rule "r"`) {
			t.Errorf("%s: got %v, want an error about %s", tt.rule, err, tt.want)
		}
	}
}

func TestEarnConcurrent(t *testing.T) {
	p := earnProgram(t, "", "  - name: r\n    for_each: item\n    points: item.amount * 2\n")
	done := make(chan int64)
	for i := range 8 {
		go func() {
			var sum int64
			for range 200 {
				items := make([]Item, i%4+1)
				for j := range items {
					items[j].Amount = 100
				}
				b, err := p.Earn(purchase(1, items...))
				if err != nil {
					t.Error(err)
				}
				if b.Total != int64(len(items))*2 {
					t.Errorf("%d items earned %d", len(items), b.Total)
				}
				sum += b.Total
			}
			done <- sum
		}()
	}
	for range 8 {
		<-done
	}
}

// BenchmarkEarnExample measures the hot path: the example rules against a
// purchase of three items by a member with a tier.
func BenchmarkEarnExample(b *testing.B) {
	src, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p := mustParse(b, string(src))
	in := purchase(2840,
		Item{SKU: "latte", Category: "coffee", Quantity: 2, Amount: 800},
		Item{SKU: "beans", Category: "beans", Quantity: 1, Amount: 1540},
		Item{SKU: "croissant", Category: "food", Quantity: 1, Amount: 500},
	)
	in.Member = Member{ID: "m1", Tier: "gold", ChurnRisk: true}
	in.Uses = func(string) RuleUses { return RuleUses{} }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Earn(in); err != nil {
			b.Fatal(err)
		}
	}
}
