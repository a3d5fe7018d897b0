package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// fill gives a member a balance of n lots of MaxPoints each, with the
// ledger entries that account for them, as many earlier credits would.
func (h *harness) fill(memberID string, n int) {
	h.t.Helper()
	err := h.db.Update(context.Background(), func(tx engine.Tx) error {
		m, err := tx.Member(memberID)
		if err != nil {
			return err
		}
		for i := range n {
			lot := &engine.Lot{
				ID: fmt.Sprintf("fill-%d", i), MemberID: m.ID, Points: engine.MaxPoints, Remaining: engine.MaxPoints,
				EarnedAt: start, AvailableAt: start, ExpiresAt: start.AddDate(5, 0, 0),
			}
			if err := tx.PutLot(lot); err != nil {
				return err
			}
			m.Points += engine.MaxPoints
			m.LedgerSeq++
			if err := tx.AppendLedger(&engine.LedgerEntry{
				ID: lot.ID, MemberID: m.ID, Seq: m.LedgerSeq, Type: engine.LedgerAdjust,
				Points: engine.MaxPoints, BalanceAfter: m.Points, At: start,
			}); err != nil {
				return err
			}
		}
		return tx.PutMember(m)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func TestBalanceCannotPassTheLimit(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	// 50 of enrolment plus 9,999 lots: 50 + (10^17 - 10^13).
	h.fill(m.ID, int(engine.MaxMemberTotal/engine.MaxPoints)-1)
	newest := func() string { return h.ledger(m.ID)[0].ID }

	_, _, err := h.e.Adjust(h.ctx, m.ID, "ops", engine.AdjustmentRequest{ID: "a1", Points: engine.MaxPoints, Reason: "too much"})
	wantCode(t, err, engine.EUNPROCESSABLE)
	if !strings.Contains(err.Error(), "balance") {
		t.Errorf("the refusal does not say what would pass the limit: %v", err)
	}
	// Leave room for 10 points: a purchase of 100.00 earns 100.
	if _, _, err := h.e.Adjust(h.ctx, m.ID, "ops", engine.AdjustmentRequest{ID: "a2", Points: engine.MaxPoints - 60, Reason: "nearly full"}); err != nil {
		t.Fatal(err)
	}
	before := newest()
	_, _, err = h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "p1", MemberID: m.ID, Currency: "USD", Amount: "100.00"})
	wantCode(t, err, engine.EUNPROCESSABLE)
	if newest() != before {
		t.Fatalf("the refused purchase wrote to the ledger: %+v", h.ledger(m.ID)[0])
	}
	if _, err := h.e.GetPurchase(h.ctx, "p1"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("the refused purchase was stored: %v", err)
	}
	// What fits still goes through, up to the limit exactly.
	h.buy("p2", m.ID, "10.00")
	if got := h.balance(m.ID).Available; got != engine.MaxMemberTotal {
		t.Fatalf("balance %d, want %d", got, engine.MaxMemberTotal)
	}
}

func TestLifetimeSpendCannotPassTheLimit(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	err := h.db.Update(t.Context(), func(tx engine.Tx) error {
		stored, err := tx.Member(m.ID)
		if err != nil {
			return err
		}
		stored.LifetimeSpend, stored.RefundedSpend = engine.MaxMemberTotal-2_000, 1_000
		return tx.PutMember(stored)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "p1", MemberID: m.ID, Currency: "USD", Amount: "10.01"})
	wantCode(t, err, engine.EUNPROCESSABLE)
	h.buy("p2", m.ID, "10.00")
}

func TestRulesEarningPastTheLimitAreNamed(t *testing.T) {
	h := newHarness(t, strings.Replace(exampleRules, "points: purchase.amount * tier.multiplier", "points: purchase.amount * 1000", 1))
	m := h.enrol(engine.MemberInput{})
	_, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "p1", MemberID: m.ID, Currency: "USD", Amount: "100000000000.00"})
	wantCode(t, err, engine.EUNPROCESSABLE)
	if !strings.Contains(err.Error(), `"base"`) {
		t.Fatalf("the refusal does not name the rule: %v", err)
	}
	if got := h.balance(m.ID).Available; got != 50 {
		t.Fatalf("balance %d after the refusal, want 50", got)
	}
}

// The limit is on each credit: a purchase that earns the most points one
// may, and pays a referral bonus beside them, goes through, and so does its
// full refund, which takes both back.
func TestTheLargestEarningWithAReferralBonus(t *testing.T) {
	h := newHarness(t, strings.Replace(exampleRules, "points: purchase.amount * tier.multiplier", "points: 10000000000000", 1))
	referrer := h.enrol(engine.MemberInput{})
	referee := h.enrol(engine.MemberInput{ReferrerID: referrer.ID})
	res := h.buy("p1", referee.ID, "1.00")
	if res.Points != engine.MaxPoints || len(res.Bonuses) != 1 {
		t.Fatalf("earned %d with bonuses %v, want %d and the referral bonus", res.Points, res.Bonuses, engine.MaxPoints)
	}
	ref, _, err := h.e.Refund(h.ctx, "p1", engine.RefundRequest{ID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if ref.Points != -engine.MaxPoints || len(ref.Bonuses) != 1 {
		t.Fatalf("the full refund took back %d and %v", ref.Points, ref.Bonuses)
	}
	if got := h.balance(referee.ID).Available; got != 50 {
		t.Fatalf("referee has %d after the full refund, want 50", got)
	}
}
