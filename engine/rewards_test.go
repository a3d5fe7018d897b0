package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store"
)

const rewardTestRules = `currency: USD
timezone: UTC
points:
  expiry: {after: 12mo}
tiers:
  levels:
    - {name: green, threshold: "0"}
    - {name: gold, threshold: "100.00", reward: welcome}
earn:
  - name: base
    points: purchase.amount
bonuses:
  birthday: {points: 7, reward: sold-out}
rewards:
  - {name: coffee, title: Coffee, cost: 30, coupon: {expires_after: 2d}, refund_on_expiry: true}
  - {name: ratio, title: Ratio, cost: 1, when: 'member.purchase_count / (member.purchase_count - 1) > 0'}
  - {name: welcome, title: Welcome, cost: 0, when: "false"}
  - {name: sold-out, title: Sold out, cost: 0, stock: 0}
`

func (h *harness) take(member, id, reward string) (*engine.RewardResult, error) {
	h.t.Helper()
	res, _, err := h.e.TakeReward(h.ctx, member, engine.RewardRequest{ID: id, Reward: reward})
	return res, err
}

func (h *harness) mustTake(member, id, reward string) string {
	h.t.Helper()
	res, err := h.take(member, id, reward)
	if err != nil {
		h.t.Fatalf("take %s: %v", reward, err)
	}
	return res.Coupon.Code
}

// TestCouponPointsGoBackToTheirLots: a coupon spends the lot that expires
// soonest first; cancelled, its points go back to that lot, with its
// expiry, as a cancelled redemption's do.
func TestCouponPointsGoBackToTheirLots(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	h.buy("old", m, "20.00")
	h.advanceDays(40)
	h.buy("new", m, "50.00")
	before := h.balance(m).Expiring
	code := h.mustTake(m, "t1", "coffee")
	during := h.balance(m)
	if during.Available != 40 || len(during.Expiring) != 1 || during.Expiring[0].Points != 40 {
		t.Fatalf("after the take: %+v (the older lot of 20 and 10 of the newer should be spent)", during)
	}
	if _, err := h.e.CancelCoupon(h.ctx, code, false); err != nil {
		t.Fatal(err)
	}
	if after := h.balance(m).Expiring; !reflect.DeepEqual(after, before) {
		t.Errorf("expiring after the cancel = %+v, want %+v", after, before)
	}
	entries := h.ledger(m)
	if entries[0].Type != engine.LedgerRewardRefund || entries[0].Points != 30 || entries[0].Ref != code ||
		entries[1].Type != engine.LedgerReward || entries[1].Points != -30 || entries[1].Ref != code {
		t.Errorf("ledger: %+v", entries[:2])
	}
}

// TestExpireCouponsInChunks: the job expires every due coupon, a chunk of
// three per transaction, and gives back the points of a reward with
// refund_on_expiry.
func TestExpireCouponsInChunks(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	h.buy("p", m, "300.00")
	for i := range 7 {
		h.mustTake(m, fmt.Sprintf("t%d", i), "coffee")
	}
	if got := h.balance(m).Available; got != 300-7*30 {
		t.Fatalf("after 7 coupons: %d available", got)
	}
	h.advanceDays(3)
	if n := h.run(engine.JobExpireCoupons).Processed; n != 7 {
		t.Errorf("expired %d coupons, want 7", n)
	}
	if got := h.balance(m).Available; got != 300 {
		t.Errorf("after the refunds: %d available, want 300", got)
	}
	report, err := h.e.RewardsReport(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range report {
		if r.Reward == "coffee" && (r.Issued != 7 || r.Expired != 7 || r.Outstanding != 0 || r.PointsSpent != 0) {
			t.Errorf("coffee report: %+v", r)
		}
	}
}

// TestRewardWhenFails: a reward whose when fails for a member refuses the
// take, naming the reward, and moves nothing; the catalogue shows it as not
// eligible for that member.
func TestRewardWhenFails(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	h.buy("p", m, "20.00") // one purchase: a division by zero
	_, err := h.take(m, "t1", "ratio")
	wantCode(t, err, engine.EUNPROCESSABLE)
	if !strings.Contains(err.Error(), `reward "ratio"`) || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("error: %v", err)
	}
	if got := h.balance(m).Available; got != 20 {
		t.Errorf("a failed take moved points: %d available", got)
	}
	_, offers, err := h.e.Rewards(h.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offers {
		if o.Name == "ratio" && (o.Available || *o.Reason != engine.ReasonNotEligible) {
			t.Errorf("ratio offer: %+v", o)
		}
	}
	h.buy("p2", m, "20.00")
	h.mustTake(m, "t2", "ratio")
}

// TestBonusRewardsOutOfStockAndByTheTierJob: a birthday whose reward is out
// of stock still pays its points, and issues no coupon; a promotion made by
// evaluate-tiers (the rules lowered the threshold) issues the level's
// reward like one made by a purchase.
func TestBonusRewardsOutOfStockAndByTheTierJob(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	today := h.e.Now()
	m := h.enrol(engine.MemberInput{Birthday: fmt.Sprintf("1990-%02d-%02d", today.Month(), today.Day())}).ID
	h.run(engine.JobBirthdayBonus)
	if got := h.balance(m).Available; got != 7 {
		t.Errorf("birthday points: %d, want 7", got)
	}
	coupons, err := h.e.MemberCoupons(h.ctx, m)
	if err != nil || len(coupons) != 0 {
		t.Errorf("coupons of a sold-out birthday reward: %v, %v", coupons, err)
	}

	h.buy("p", m, "60.00")
	h.loadRules(strings.Replace(rewardTestRules, `threshold: "100.00"`, `threshold: "50.00"`, 1))
	h.run(engine.JobEvaluateTiers)
	if h.tier(m) != "gold" {
		t.Fatalf("tier after the threshold fell: %s", h.tier(m))
	}
	coupons, err = h.e.MemberCoupons(h.ctx, m)
	if err != nil || len(coupons) != 1 || coupons[0].Reward != "welcome" || coupons[0].Source != engine.CouponTier {
		t.Errorf("coupons after the job's promotion: %+v, %v", coupons, err)
	}
	h.run(engine.JobEvaluateTiers)
	if coupons, _ = h.e.MemberCoupons(h.ctx, m); len(coupons) != 1 {
		t.Errorf("the job issued the promotion's reward again: %+v", coupons)
	}
}

// TestVerifyChecksCoupons: verify finds counts that disagree with the
// coupons, and a coupon whose points the ledger does not show.
func TestVerifyChecksCoupons(t *testing.T) {
	db, err := store.Open(t.TempDir()+"/loyalty.db", store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := &harness{t: t, ctx: context.Background(), db: db, clock: engine.NewTestClock(&fixedClock{t: start})}
	h.e = engine.New(db, engine.Options{Clock: h.clock})
	h.loadRules(rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	h.buy("p", m, "100.00")
	code := h.mustTake(m, "t1", "coffee")
	verify := func() string {
		t.Helper()
		var out bytes.Buffer
		if _, err := h.e.Verify(h.ctx, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := verify(); got != "" {
		t.Fatalf("verify of a clean database: %s", got)
	}
	canon, _ := engine.CanonicalCode(code)
	tamper := func(fn func(tx engine.Tx) error) {
		t.Helper()
		if err := db.Update(h.ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	tamper(func(tx engine.Tx) error {
		c, err := tx.RewardCount("coffee")
		if err != nil {
			return err
		}
		c.Issued++
		return tx.PutRewardCount(c)
	})
	if got := verify(); !strings.Contains(got, "reward coffee: counts say 2 issued") {
		t.Errorf("verify of counts off by one: %q", got)
	}
	tamper(func(tx engine.Tx) error {
		c, err := tx.RewardCount("coffee")
		if err != nil {
			return err
		}
		c.Issued--
		if err := tx.PutRewardCount(c); err != nil {
			return err
		}
		cp, err := tx.Coupon(canon)
		if err != nil {
			return err
		}
		cp.Points = 20
		cp.Draws[0].Points = 20
		return tx.PutCoupon(cp)
	})
	got := verify()
	if !strings.Contains(got, "coupon "+code+" of member "+m+": cost 20 points but the ledger spent 30 on it") {
		t.Errorf("verify of a coupon the ledger disagrees with: %q", got)
	}
}

// TestSimulatedPromotionIssuesNothing: a simulated purchase that would
// promote shows the coupon the promotion would issue, and stores none.
func TestSimulatedPromotionIssuesNothing(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	sim, err := h.e.Simulate(h.ctx, engine.SimulateRequest{MemberID: m, Purchase: engine.PurchaseRequest{Currency: "USD", Amount: "150.00"}})
	if err != nil {
		t.Fatal(err)
	}
	if !sim.Tier.Changed || len(sim.Coupons) != 1 || sim.Coupons[0].Reward != "welcome" {
		t.Errorf("simulated promotion: %+v", sim)
	}
	coupons, err := h.e.MemberCoupons(h.ctx, m)
	if err != nil || len(coupons) != 0 {
		t.Errorf("a simulation stored coupons: %+v, %v", coupons, err)
	}
	report, err := h.e.RewardsReport(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range report {
		if r.Issued != 0 {
			t.Errorf("a simulation counted a coupon: %+v", r)
		}
	}
}
