package engine_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

func TestPublishRules(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})

	typo := strings.Replace(exampleRules, "points: item.quantity * 12", "points: itm.quantity * 12", 1)
	_, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(typo), "mkt", nil)
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Code != engine.EUNPROCESSABLE || len(ee.Details) != 1 {
		t.Fatalf("typo: %v", err)
	}
	if d := ee.Details[0]; d.Line == 0 || d.Column == 0 || !strings.Contains(d.Message, `"item"`) {
		t.Fatalf("detail = %+v, want a position and a hint", d)
	}
	if le := h.e.LastRulesError(); le != nil {
		t.Fatalf("a refused API publish left a last error about the file: %+v", le)
	}
	// The file's refused text is remembered until the file holds the live
	// text again.
	if _, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(typo), engine.RulesByFile, nil); err == nil {
		t.Fatal("the typo was published from the file")
	}
	if le := h.e.LastRulesError(); le == nil || le.By != engine.RulesByFile || le.Details[0].Line == 0 {
		t.Fatalf("last error = %+v", le)
	}
	if _, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte("program: [oops"), "mkt", nil); err == nil {
		t.Fatal("a broken API publish went live")
	}
	if le := h.e.LastRulesError(); le == nil || le.By != engine.RulesByFile {
		t.Fatalf("a refused API publish replaced the file's error: %+v", le)
	}
	if v, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(exampleRules), engine.RulesByFile, nil); err != nil || v.Version != 1 {
		t.Fatalf("the file put back: %+v %v", v, err)
	}
	if le := h.e.LastRulesError(); le != nil {
		t.Fatalf("the file is back to the live text, the error stays: %+v", le)
	}
	h.e.PublishRules(h.ctx, "rules.yaml", []byte(typo), engine.RulesByFile, nil)
	if res := h.buy("p1", m.ID, "10.00"); res.RulesVersion != 1 || res.Points != 10 {
		t.Fatalf("tills must keep earning under version 1: %+v", res)
	}

	double := strings.Replace(exampleRules, "points: purchase.amount * tier.multiplier", "points: purchase.amount * tier.multiplier * 2", 1)
	v, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(double), "mkt", nil)
	if err != nil || v.Version != 2 || v.By != "mkt" {
		t.Fatalf("publish: %+v %v", v, err)
	}
	if h.e.LastRulesError() != nil {
		t.Fatal("a good publish keeps the last error")
	}
	if res := h.buy("p2", m.ID, "10.00"); res.RulesVersion != 2 || res.Points != 20 {
		t.Fatalf("after publish: %+v", res)
	}
	if v, _ := h.e.PublishRules(h.ctx, "rules.yaml", []byte(double), "file", nil); v.Version != 2 {
		t.Fatalf("the same text made version %d", v.Version)
	}
	led := h.ledger(m.ID)
	if led[0].RulesVersion != 2 || led[1].RulesVersion != 1 {
		t.Fatalf("ledger versions: %d, %d", led[0].RulesVersion, led[1].RulesVersion)
	}
	vs, _ := h.e.RulesVersions(h.ctx)
	if len(vs) != 2 || vs[1].By != "mkt" || vs[0].By != "test" {
		t.Fatalf("versions: %+v", vs)
	}
}

func TestPublishReevaluatesPromotions(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "150.00")
	cheaper := strings.Replace(exampleRules, `threshold: "500.00"`, `threshold: "100.00"`, 1)
	if _, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(cheaper), "mkt", nil); err != nil {
		t.Fatal(err)
	}
	h.e.Wait()
	if got := h.tier(m.ID); got != "gold" {
		t.Fatalf("tier = %s after lowering gold to 100.00", got)
	}
	dearer := strings.Replace(exampleRules, `threshold: "500.00"`, `threshold: "900.00"`, 1)
	if _, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(dearer), "mkt", nil); err != nil {
		t.Fatal(err)
	}
	h.e.Wait()
	if got := h.tier(m.ID); got != "gold" {
		t.Fatalf("tier = %s: demotions belong to evaluate-tiers and its grace", got)
	}
}

func TestSimulateStoresNothing(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	req := engine.PurchaseRequest{ID: "p1", MemberID: m.ID, Currency: "USD", Amount: "23.40", Items: []engine.ItemRequest{
		{SKU: "LATTE-L", Category: "coffee", Quantity: 2, Amount: "9.80"}}}
	sim, err := h.e.Simulate(h.ctx, engine.SimulateRequest{MemberID: m.ID, Purchase: req})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.ledger(m.ID)) != 1 {
		t.Fatal("a simulation wrote to the ledger")
	}
	if _, err := h.e.GetPurchase(h.ctx, "p1"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatal("a simulation stored the purchase")
	}
	real := h.buy("p1", m.ID, "23.40", req.Items...)
	if sim.Points != real.Points || sim.Balance != real.Balance || len(sim.Breakdown) != len(real.Breakdown) {
		t.Fatalf("simulated %+v, real %+v", sim, real)
	}

	hypo, err := h.e.Simulate(h.ctx, engine.SimulateRequest{
		Rules:    strings.Replace(exampleRules, "max_per_member: 1", "max_per_member: 2", 1),
		Member:   &engine.SimMember{Tier: "gold", ChurnRisk: true},
		Purchase: engine.PurchaseRequest{Currency: "USD", Amount: "10.00"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if hypo.Points != 15+200 || hypo.Balance.Available != 215 {
		t.Fatalf("hypothetical gold member at churn risk: %+v", hypo)
	}
	_, err = h.e.Simulate(h.ctx, engine.SimulateRequest{Rules: "currency: [", Purchase: req})
	wantCode(t, err, engine.EUNPROCESSABLE)
}

func TestDiffRules(t *testing.T) {
	h := newHarness(t, exampleRules)
	a := h.enrol(engine.MemberInput{ExternalID: "a"})
	b := h.enrol(engine.MemberInput{ExternalID: "b"})
	coffee := engine.ItemRequest{SKU: "LATTE", Category: "coffee", Quantity: 1, Amount: "5.00"}
	h.buy("p1", a.ID, "5.00", coffee)
	h.buy("p2", b.ID, "300.00")
	h.advanceDays(40)
	h.buy("p3", a.ID, "5.00", coffee)

	before, _ := h.e.Program()
	after, err := h.e.CheckRules(h.ctx, "new.yaml", []byte(strings.NewReplacer(
		"points: item.quantity * 12", "points: item.quantity * 20",
		`threshold: "500.00"`, `threshold: "250.00"`).Replace(exampleRules)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := h.e.DiffRules(h.ctx, before, after, h.e.Now().AddDate(0, 0, -30))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Purchases != 1 || rep.Before != 17 || rep.After != 25 || rep.Change != 8 || rep.CostChange != "0.08" {
		t.Fatalf("last 30 days: %+v", rep)
	}
	rep, err = h.e.DiffRules(h.ctx, before, after, h.e.Now().AddDate(0, 0, -60))
	if err != nil {
		t.Fatal(err)
	}
	var coffeeDiff engine.RuleDiff
	for _, r := range rep.Rules {
		if r.Rule == "coffee-bonus" {
			coffeeDiff = r
		}
	}
	if rep.Purchases != 3 || coffeeDiff.Before != 24 || coffeeDiff.After != 40 {
		t.Fatalf("60 days: %+v, coffee %+v", rep, coffeeDiff)
	}
	if rep.TierChangesTotal != 1 || rep.TierChanges[0].MemberID != b.ID || rep.TierChanges[0].After != "gold" {
		t.Fatalf("tier changes: %+v", rep.TierChanges)
	}
}

func TestReferralBonus(t *testing.T) {
	h := newHarness(t, exampleRules)
	referrer := h.enrol(engine.MemberInput{})
	referee := h.enrol(engine.MemberInput{ReferrerID: referrer.ID})
	if h.balance(referrer.ID).Available != 50 {
		t.Fatal("a referral pays nothing before the first purchase")
	}
	res := h.buy("p1", referee.ID, "10.00")
	if len(res.Bonuses) != 1 || res.Bonuses[0].Points != 100 || res.Balance.Available != 50+10+100 {
		t.Fatalf("first purchase: %+v", res)
	}
	if got := h.balance(referrer.ID).Available; got != 250 {
		t.Fatalf("referrer has %d, want 50 + 200", got)
	}
	h.buy("p2", referee.ID, "10.00")
	if got := h.balance(referrer.ID).Available; got != 250 {
		t.Fatalf("referrer paid twice: %d", got)
	}
	_, err := h.e.CreateMember(h.ctx, engine.MemberInput{ReferrerID: "nobody"})
	wantCode(t, err, engine.EINVALID)
}

func TestBirthdayBonus(t *testing.T) {
	h := newHarness(t, exampleRules) // start is 2026-03-02 15:00 UTC, 10:00 in New York
	today := h.enrol(engine.MemberInput{Birthday: "1990-03-02"})
	leap := h.enrol(engine.MemberInput{Birthday: "1992-02-29"})
	later := h.enrol(engine.MemberInput{Birthday: "1990-03-05"})
	if got := h.run(engine.JobBirthdayBonus).Processed; got != 1 {
		t.Fatalf("granted %d, want 1", got)
	}
	if got := h.balance(today.ID).Available; got != 200 {
		t.Fatalf("birthday member has %d, want 50 + 150", got)
	}
	h.run(engine.JobBirthdayBonus)
	if got := h.balance(today.ID).Available; got != 200 {
		t.Fatalf("granted twice: %d", got)
	}
	h.advanceDays(5) // the job did not run for 5 days: it catches up
	h.run(engine.JobBirthdayBonus)
	if got := h.balance(later.ID).Available; got != 200 {
		t.Fatalf("missed birthday not caught up: %d", got)
	}
	if got := h.balance(leap.ID).Available; got != 50 {
		t.Fatalf("leap member got a bonus before the 28th: %d", got)
	}
	h.clock.Set(time.Date(2027, 2, 28, 12, 0, 0, 0, time.UTC))
	h.run(engine.JobBirthdayBonus)
	if got := h.balance(leap.ID).Available; got != 200 {
		t.Fatalf("29 February birthday on 28 February 2027: %d", got)
	}
	led := h.ledger(leap.ID)
	if led[0].Type != "bonus" || led[0].Note != "birthday bonus" {
		t.Fatalf("ledger: %+v", led[0])
	}
}

func TestNotifyExpiring(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "40.00")
	h.advanceDays(340) // 25 days before the points expire
	if got := h.run(engine.JobNotifyExpiring).Processed; got != 1 {
		t.Fatalf("notices = %d, want 1 (bonus and purchase expire the same day)", got)
	}
	h.run(engine.JobNotifyExpiring)
	page, err := h.e.Events(h.ctx, "", "points.expiring", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 {
		t.Fatalf("events = %+v, want one notice", page.Events)
	}
	ev := page.Events[0]
	var data struct {
		MemberID  string `json:"member_id"`
		Points    int64  `json:"points"`
		ExpiresOn string `json:"expires_on"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "points.expiring" || !strings.HasPrefix(ev.ID, "evt_") || data.MemberID != m.ID || data.Points != 90 || data.ExpiresOn != "2027-03-02" {
		t.Fatalf("event = %+v, data %s", ev, ev.Data)
	}
	next, err := h.e.Events(h.ctx, page.NextCursor, "points.expiring", 0)
	if err != nil || len(next.Events) != 0 || next.NextCursor != page.NextCursor {
		t.Fatalf("after the cursor: %+v %v", next, err)
	}
}
