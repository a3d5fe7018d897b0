package engine_test

import (
	"encoding/json"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// A capped rule's points are a bonus.granted named after the rule, once
// per use; uncapped rules are in purchase.created's breakdown alone.
func TestCappedRuleIsABonus(t *testing.T) {
	h := newHarness(t, `program: P
currency: USD
earn:
  - name: base
    points: purchase.amount
  - name: welcome
    points: 100
    max_per_member: 1
`)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "10.00")
	h.buy("p2", m.ID, "10.00")
	page, err := h.e.Events(h.ctx, "", engine.EventBonusGranted, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 {
		t.Fatalf("bonus events: %+v", page.Events)
	}
	var d struct {
		MemberID string `json:"member_id"`
		Kind     string `json:"kind"`
		Points   int64  `json:"points"`
	}
	if err := json.Unmarshal(page.Events[0].Data, &d); err != nil || d.Kind != "welcome" || d.Points != 100 || d.MemberID != m.ID {
		t.Errorf("bonus: %s %v", page.Events[0].Data, err)
	}
}
