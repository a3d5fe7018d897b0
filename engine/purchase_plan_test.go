package engine

import (
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// usesTx answers RuleUses from a map; a plan's check reads nothing else.
type usesTx struct {
	Tx
	n map[string]int64
}

func (u usesTx) RuleUses(memberID, rule, period string) (int64, error) {
	return u.n[rule+"/"+period], nil
}

// TestEarnPlanHoldsOnlyWhileItsInputsDo: a plan made in a read transaction
// is used by the write one only if the member as the rules see it and the
// capped rules' counters it read are unchanged.
func TestEarnPlanHoldsOnlyWhileItsInputsDo(t *testing.T) {
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	m := rules.Member{ID: "m1", Tier: "green", PurchaseCount: 3, Attributes: map[string]string{"store": "7"}}
	plan := &earnPlan{member: m, uses: map[string]rules.RuleUses{"win-back": {Total: 0}}, bd: rules.Breakdown{Total: 23}}
	reader := func(n map[string]int64) *ruleUses { return ruleUsesReader(usesTx{n: n}, prog, "m1", at) }

	if bd := plan.breakdown(m, reader(nil)); bd == nil || bd.Total != 23 {
		t.Fatalf("unchanged inputs: breakdown = %v, want the plan's", bd)
	}
	changed := m
	changed.Attributes = map[string]string{"store": "8"}
	if bd := plan.breakdown(changed, reader(nil)); bd != nil {
		t.Fatal("plan used for a member whose attributes changed")
	}
	changed = m
	changed.PurchaseCount++
	if bd := plan.breakdown(changed, reader(nil)); bd != nil {
		t.Fatal("plan used for a member who bought in between")
	}
	if bd := plan.breakdown(m, reader(map[string]int64{"win-back/all": 1})); bd != nil {
		t.Fatal("plan used after a capped rule's counter moved")
	}
	var none *earnPlan
	if bd := none.breakdown(m, reader(nil)); bd != nil {
		t.Fatal("no plan gave a breakdown")
	}
}
