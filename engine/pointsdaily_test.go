package engine_test

import (
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestPointsByDay: each day of the period lists what its ledger entries
// moved, in the program's time zone, and days outside it are not read.
func TestPointsByDay(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	h.buy("old", m, "500.00") // outside a 2-day period once three days pass
	h.advanceDays(3)
	h.buy("p1", m, "70.00")
	if _, err := h.redeem(m, "r1", 25); err != nil {
		t.Fatal(err)
	}
	h.advanceDays(1)
	h.refund("p1", engine.RefundRequest{ID: "f1", Amount: "7.00"})
	days, err := h.e.PointsByDay(h.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.PointsDay{
		{Date: "2026-03-05", Earned: 70, Redeemed: 25},
		{Date: "2026-03-06", Deducted: 7},
	}
	if len(days) != 2 || days[0] != want[0] || days[1] != want[1] {
		t.Errorf("days = %+v, want %+v", days, want)
	}
	if _, err := h.e.PointsByDay(h.ctx, 91); engine.ErrorCode(err) != engine.EINVALID {
		t.Errorf("91 days: %v", err)
	}
}
