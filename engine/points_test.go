package engine_test

import (
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

func (h *harness) refund(purchase string, req engine.RefundRequest) *engine.RefundResult {
	h.t.Helper()
	res, _, err := h.e.Refund(h.ctx, purchase, req)
	if err != nil {
		h.t.Fatalf("refund %s: %v", req.ID, err)
	}
	return res
}

func (h *harness) redeem(member, id string, points int64) (*engine.RedemptionResult, error) {
	h.t.Helper()
	res, _, err := h.e.Redeem(h.ctx, member, engine.RedemptionRequest{ID: id, Points: points, Reward: "free-drink"})
	return res, err
}

// lattes is a purchase the example rules pay 10 base + 4 × 12 coffee points
// for: two lines, so a refund by line has something to choose.
var lattes = []engine.ItemRequest{
	{SKU: "LATTE-L", Category: "coffee", Quantity: 3, Amount: "6.00"},
	{SKU: "MUG", Category: "merch", Quantity: 1, Amount: "4.00"},
}

// Each step of a scenario acts on the harness and checks the member's
// available balance afterwards.
type step struct {
	name      string
	do        func(h *harness, member string)
	available int64
}

func runSteps(t *testing.T, rulesSrc string, steps []step) {
	h := newHarness(t, rulesSrc)
	m := h.enrol(engine.MemberInput{})
	for _, s := range steps {
		s.do(h, m.ID)
		if got := h.balance(m.ID).Available; got != s.available {
			t.Fatalf("after %s: available = %d, want %d", s.name, got, s.available)
		}
	}
}

func TestPointsScenarios(t *testing.T) {
	noBonus := strings.Replace(exampleRules, "enrol: 50", "enrol: 0", 1)
	cases := []struct {
		name  string
		rules string
		steps []step
	}{
		{"earn, refund a line, redeem, cancel, expire", noBonus, []step{
			{"earn", func(h *harness, m string) {
				if p := h.buy("p1", m, "10.00", lattes...).Points; p != 46 {
					t.Fatalf("earned %d, want 10 + 36", p)
				}
			}, 46},
			{"refund one latte", func(h *harness, m string) {
				// One of three lattes: its 12 coffee points exactly, and
				// 2.00 of 10.00 of the base points: floor(10 × 2/10) = 2.
				r := h.refund("p1", engine.RefundRequest{ID: "r1", Items: []engine.ItemRequest{{SKU: "LATTE-L", Quantity: 1}}})
				if r.Points != -14 || r.Amount != "2.00" {
					t.Fatalf("refund = %+v, want -14 points for 2.00", r)
				}
			}, 32},
			{"redeem", func(h *harness, m string) {
				if _, err := h.redeem(m, "x1", 30); err != nil {
					t.Fatal(err)
				}
			}, 2},
			{"cancel", func(h *harness, m string) {
				if _, err := h.e.CancelRedemption(h.ctx, "x1"); err != nil {
					t.Fatal(err)
				}
				if _, err := h.e.CancelRedemption(h.ctx, "x1"); err != nil {
					t.Fatalf("second cancel: %v", err)
				}
			}, 32},
			{"expire", func(h *harness, m string) {
				h.advanceDays(366)
				h.run(engine.JobExpirePoints)
			}, 0},
		}},
		{"refund after the points were spent", noBonus, []step{
			{"earn", func(h *harness, m string) { h.buy("p1", m, "100.00") }, 100},
			{"spend all", func(h *harness, m string) {
				if _, err := h.redeem(m, "x1", 100); err != nil {
					t.Fatal(err)
				}
			}, 0},
			{"full refund", func(h *harness, m string) {
				if r := h.refund("p1", engine.RefundRequest{ID: "r1"}); r.Points != -100 || r.Balance.Available != -100 {
					t.Fatalf("refund = %+v", r)
				}
			}, -100},
			{"redemption refused", func(h *harness, m string) {
				_, err := h.redeem(m, "x2", 1)
				wantCode(t, err, engine.EINSUFFICIENT)
			}, -100},
			{"next earning repays the debt", func(h *harness, m string) { h.buy("p2", m, "150.00") }, 50},
			{"and the rest can be spent", func(h *harness, m string) {
				if _, err := h.redeem(m, "x3", 50); err != nil {
					t.Fatal(err)
				}
			}, 0},
		}},
		{"partial refunds never take back more than was earned", noBonus, []step{
			{"earn", func(h *harness, m string) { h.buy("p1", m, "10.00") }, 10},
			{"a third", func(h *harness, m string) { h.refund("p1", engine.RefundRequest{ID: "r1", Amount: "3.33"}) }, 7},
			{"another third", func(h *harness, m string) { h.refund("p1", engine.RefundRequest{ID: "r2", Amount: "3.33"}) }, 4},
			{"the rest", func(h *harness, m string) {
				if r := h.refund("p1", engine.RefundRequest{ID: "r3"}); r.Amount != "3.34" || r.Points != -4 {
					t.Fatalf("last refund = %+v", r)
				}
			}, 0},
			{"nothing left", func(h *harness, m string) {
				_, _, err := h.e.Refund(h.ctx, "p1", engine.RefundRequest{ID: "r4"})
				wantCode(t, err, engine.EUNPROCESSABLE)
			}, 0},
		}},
		{"pending points", strings.Replace(noBonus, "pending: 0d", "pending: 14d", 1), []step{
			{"earn and wait", func(h *harness, m string) {
				h.buy("p1", m, "40.00")
				h.advanceDays(15)
			}, 40},
			{"earn again", func(h *harness, m string) {
				h.buy("p2", m, "30.00")
				b := h.balance(m)
				if b.Pending != 30 {
					t.Fatalf("pending = %d, want 30", b.Pending)
				}
				_, err := h.redeem(m, "x1", 41)
				wantCode(t, err, engine.EINSUFFICIENT)
			}, 40},
			{"refund inside the pending period takes pending first", func(h *harness, m string) {
				h.refund("p1", engine.RefundRequest{ID: "r1", Amount: "10.00"})
				b := h.balance(m)
				if b.Pending != 30 || b.Available != 30 {
					t.Fatalf("balance = %+v: a refund of p1 takes from p1's own lot", b)
				}
				h.refund("p2", engine.RefundRequest{ID: "r2", Amount: "10.00"})
				if b := h.balance(m); b.Pending != 20 {
					t.Fatalf("pending = %d, want 20", b.Pending)
				}
			}, 30},
			{"matures", func(h *harness, m string) { h.advanceDays(14) }, 50},
		}},
		{"adjustments", noBonus, []step{
			{"credit", func(h *harness, m string) {
				if _, _, err := h.e.Adjust(h.ctx, m, "ops", engine.AdjustmentRequest{ID: "a1", Points: 30, Reason: "goodwill"}); err != nil {
					t.Fatal(err)
				}
			}, 30},
			{"no reason", func(h *harness, m string) {
				_, _, err := h.e.Adjust(h.ctx, m, "ops", engine.AdjustmentRequest{ID: "a2", Points: -5})
				wantCode(t, err, engine.EINVALID)
			}, 30},
			{"debit", func(h *harness, m string) {
				if _, _, err := h.e.Adjust(h.ctx, m, "ops", engine.AdjustmentRequest{ID: "a3", Points: -40, Reason: "duplicate receipt"}); err != nil {
					t.Fatal(err)
				}
				led := h.ledger(m)
				if led[0].Type != "adjust" || led[0].Note != "duplicate receipt" || led[0].Ref != "a3" {
					t.Fatalf("ledger = %+v", led[0])
				}
			}, -10},
			{"positive adjustments expire", func(h *harness, m string) {
				h.e.Adjust(h.ctx, m, "ops", engine.AdjustmentRequest{ID: "a4", Points: 25, Reason: "apology"})
				h.advanceDays(366)
				h.run(engine.JobExpirePoints)
			}, 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.rules, tc.steps) })
	}
}

func TestRefundErrors(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "10.00", lattes...)
	for _, tc := range []struct {
		name     string
		purchase string
		req      engine.RefundRequest
		code     string
	}{
		{"unknown purchase", "nope", engine.RefundRequest{ID: "r"}, engine.ENOTFOUND},
		{"above what is left", "p1", engine.RefundRequest{ID: "r", Amount: "10.01"}, engine.EUNPROCESSABLE},
		{"other currency", "p1", engine.RefundRequest{ID: "r", Amount: "1.00", Currency: "EUR"}, engine.EUNPROCESSABLE},
		{"negative", "p1", engine.RefundRequest{ID: "r", Amount: "-1.00"}, engine.EINVALID},
		{"unknown line", "p1", engine.RefundRequest{ID: "r", Items: []engine.ItemRequest{{SKU: "TEA", Quantity: 1}}}, engine.EUNPROCESSABLE},
		{"too many of a line", "p1", engine.RefundRequest{ID: "r", Items: []engine.ItemRequest{{SKU: "LATTE-L", Quantity: 4}}}, engine.EUNPROCESSABLE},
		{"amount and items", "p1", engine.RefundRequest{ID: "r", Amount: "1.00", Items: []engine.ItemRequest{{SKU: "MUG", Quantity: 1}}}, engine.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := h.e.Refund(h.ctx, tc.purchase, tc.req)
			wantCode(t, err, tc.code)
		})
	}
	if led := h.ledger(m.ID); len(led) != 2 {
		t.Fatalf("failed refunds wrote to the ledger: %+v", led)
	}
	first := h.refund("p1", engine.RefundRequest{ID: "r1", Amount: "1.00"})
	again, replayed, err := h.e.Refund(h.ctx, "p1", engine.RefundRequest{ID: "r1", Amount: "1.00"})
	if err != nil || !replayed || !reflect.DeepEqual(again, first) {
		t.Fatalf("replay: %v %v %+v", err, replayed, again)
	}
	_, _, err = h.e.Refund(h.ctx, "p1", engine.RefundRequest{ID: "r1", Amount: "2.00"})
	wantCode(t, err, engine.ECONFLICT)
}

func TestRefundUndoesPromotion(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "100.00")
	if res := h.buy("p2", m.ID, "450.00"); res.Tier.Name != "gold" {
		t.Fatal("not promoted")
	}
	h.refund("p2", engine.RefundRequest{ID: "r1"})
	h.run(engine.JobEvaluateTiers)
	if got := h.tier(m.ID); got != "green" {
		t.Fatalf("tier = %s: the refunded purchase still counts", got)
	}
}

func TestConcurrentRedemptionsForTheLastPoints(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{}) // 50 points
	const racers = 20
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.redeem(m.ID, "race-"+string(rune('a'+i)), 50)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch engine.ErrorCode(err) {
		case "":
			won++
		case engine.EINSUFFICIENT:
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d redemptions won, want exactly 1", won)
	}
	if b := h.balance(m.ID); b.Available != 0 {
		t.Fatalf("available = %d", b.Available)
	}
}

func TestRedemptionSpendsSoonestExpiringFirst(t *testing.T) {
	h := newHarness(t, strings.Replace(exampleRules, "enrol: 50", "enrol: 0", 1))
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "30.00")
	h.advanceDays(200)
	h.buy("p2", m.ID, "30.00")
	if _, err := h.redeem(m.ID, "x1", 40); err != nil {
		t.Fatal(err)
	}
	b := h.balance(m.ID)
	if len(b.Expiring) != 1 || b.Expiring[0].Points != 20 {
		t.Fatalf("expiring = %+v: the older lot should be spent first", b.Expiring)
	}
	for _, bad := range []int64{0, -5} {
		_, err := h.redeem(m.ID, "x-bad", bad)
		wantCode(t, err, engine.EINVALID)
	}
}
