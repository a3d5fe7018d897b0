package rules

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRewardsOfTheExample(t *testing.T) {
	p, err := Parse("example.yaml", Example)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range p.Rewards {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "free-coffee,free-pastry,winter-mug,birthday-cake,welcome-gold" {
		t.Fatalf("rewards = %s", got)
	}
	coffee, mug := p.Reward("free-coffee"), p.Reward("winter-mug")
	if coffee.Cost != 90 || coffee.PerMemberMax != 1 || coffee.PerMemberPer != PerDay || coffee.StockLimited ||
		coffee.CouponLifetime != DefaultCouponLifetime || coffee.RefundOnExpiry || coffee.When != "" {
		t.Errorf("free-coffee = %+v", coffee)
	}
	ny, _ := time.LoadLocation("America/New_York")
	if !mug.StockLimited || mug.Stock != 500 || mug.PerMemberPer != PerEver || !mug.RefundOnExpiry ||
		mug.CouponLifetime != (Duration{Fixed: 60 * 24 * time.Hour}) ||
		!mug.ValidFrom.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, ny)) || !mug.ValidTo.Equal(time.Date(2027, 2, 28, 0, 0, 0, 0, ny)) {
		t.Errorf("winter-mug = %+v", mug)
	}
	if p.Bonuses.BirthdayReward != "birthday-cake" || p.Tiers.Levels[1].Reward != "welcome-gold" || p.Tiers.Levels[2].Reward != "" {
		t.Errorf("bonus rewards: birthday %q, levels %+v", p.Bonuses.BirthdayReward, p.Tiers.Levels)
	}
	if _, ok := p.Tiers.Levels[1].Extra["reward"]; ok {
		t.Error("a level's reward is also one of its own keys")
	}
	if p.Reward("nothing") != nil {
		t.Error("Reward of an unknown name is not nil")
	}
}

// TestRewardWindow: valid's dates are whole days in the program's zone,
// both inclusive.
func TestRewardWindow(t *testing.T) {
	p, err := Parse("r.yaml", []byte("currency: USD\ntimezone: America/New_York\nrewards:\n  - {name: mug, title: Mug, cost: 1, valid: {from: \"2026-12-01\", to: \"2026-12-31\"}}\n  - {name: open, title: Open, cost: 1, valid: {to: \"2026-12-31\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	mug, open := p.Reward("mug"), p.Reward("open")
	for _, tc := range []struct {
		at         time.Time
		mug, open_ bool
	}{
		{time.Date(2026, 11, 30, 23, 59, 59, 0, ny), false, true},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, ny), true, true},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, ny), true, true},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, ny), false, false},
		// Past midnight UTC, still the 31st in New York.
		{time.Date(2027, 1, 1, 3, 0, 0, 0, time.UTC), true, true},
	} {
		if got := mug.ValidAt(tc.at); got != tc.mug {
			t.Errorf("mug.ValidAt(%s) = %v", tc.at, got)
		}
		if got := open.ValidAt(tc.at); got != tc.open_ {
			t.Errorf("open.ValidAt(%s) = %v", tc.at, got)
		}
	}
}

func TestPeriodStart(t *testing.T) {
	p, err := Parse("r.yaml", []byte("currency: USD\ntimezone: Europe/Paris\n"))
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	// Sunday 6 December 2026, 00:30 in Paris: Saturday 23:30 UTC.
	at := time.Date(2026, 12, 5, 23, 30, 0, 0, time.UTC)
	for per, want := range map[Period]time.Time{
		PerDay:   time.Date(2026, 12, 6, 0, 0, 0, 0, paris),
		PerWeek:  time.Date(2026, 11, 30, 0, 0, 0, 0, paris), // the Monday before
		PerMonth: time.Date(2026, 12, 1, 0, 0, 0, 0, paris),
		PerYear:  time.Date(2026, 1, 1, 0, 0, 0, 0, paris),
		PerEver:  {},
	} {
		if got := p.PeriodStart(per, at); !got.Equal(want) {
			t.Errorf("PeriodStart(%s) = %s, want %s", per, got, want)
		}
	}
	monday := time.Date(2026, 11, 30, 8, 0, 0, 0, paris)
	if got := p.PeriodStart(PerWeek, monday); !got.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, paris)) {
		t.Errorf("PeriodStart(week) of a Monday = %s", got)
	}
}

func TestEligible(t *testing.T) {
	src := `currency: USD
tiers:
  levels:
    - {name: green, threshold: "0"}
    - {name: gold, threshold: "500.00", vip: true}
limits: {steps: 2000}
rewards:
  - {name: all, title: All, cost: 1}
  - {name: gold, title: Gold, cost: 1, when: 'tier.vip && member.attributes["store"] == "s1"'}
  - {name: ratio, title: Ratio, cost: 1,
     when: 'member.purchase_count / (member.days_enrolled - 3) > 1'}
  - {name: slow, title: Slow, cost: 1, when: 'len(filter(1..100000, {# % 7 == 0})) > 0'}
`
	p, err := Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	gold := Member{ID: "m", Tier: "gold", Attributes: map[string]string{"store": "s1"}, EnrolledAt: at.AddDate(0, 0, -10), PurchaseCount: 20}
	green := Member{ID: "g", Tier: "green", Attributes: map[string]string{"store": "s1"}, EnrolledAt: at.AddDate(0, 0, -3)}
	for _, tc := range []struct {
		reward string
		m      Member
		want   bool
	}{
		{"all", green, true},
		{"gold", gold, true},
		{"gold", green, false},
		{"ratio", gold, true},
	} {
		got, err := p.Eligible(p.Reward(tc.reward), tc.m, at)
		if err != nil || got != tc.want {
			t.Errorf("Eligible(%s, %s) = %v, %v; want %v", tc.reward, tc.m.Tier, got, err, tc.want)
		}
	}
	// Three days enrolled: a division by zero, named and positioned.
	_, err = p.Eligible(p.Reward("ratio"), green, at)
	var re *RuleError
	if !errors.As(err, &re) || !re.Reward || re.Rule != "ratio" || re.Line != 11 || !strings.Contains(err.Error(), `reward "ratio": when: division by zero`) {
		t.Errorf("failing when: %v (%+v)", err, re)
	}
	_, err = p.Eligible(p.Reward("slow"), gold, at)
	var be *BudgetError
	if !errors.As(err, &be) || be.Resource != "steps" {
		t.Errorf("a when over the budget: %v", err)
	}
}

// TestTrialRunsRewards: a reward whose when fails on a sample's member
// refuses the file, naming the reward, once however many samples fail.
func TestTrialRunsRewards(t *testing.T) {
	src := []byte(`currency: USD
rewards:
  - name: ratio
    title: Ratio
    cost: 1
    when: member.purchase_count / member.days_enrolled > 1
`)
	p, err := Parse("r.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	errs, err := p.Trial(context.Background(), p.EdgeCases(Bounds{MaxAmount: 1000, MaxQuantity: 10, MaxItems: 3, MaxTotal: 1000}, at), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Rule != `reward ratio` || errs[0].Line != 6 || errs[0].Column != 33 ||
		!strings.Contains(errs[0].Message, `reward "ratio": when: division by zero (on a purchase of`) {
		t.Fatalf("trial = %v", errs)
	}
}
