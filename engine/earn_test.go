package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// gatedStore lets a test stop a purchase where it reads: onRuleUses runs
// on every read of a capped rule's uses, in reads and writes alike, and
// afterView after every read transaction.
type gatedStore struct {
	engine.Store
	mu         sync.Mutex
	onRuleUses func(member string)
	afterView  func()
}

func (g *gatedStore) hooks() (func(string), func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.onRuleUses, g.afterView
}

func (g *gatedStore) View(ctx context.Context, fn func(engine.Tx) error) error {
	err := g.Store.View(ctx, func(tx engine.Tx) error { return fn(gatedTx{tx, g}) })
	if _, after := g.hooks(); after != nil {
		after()
	}
	return err
}

func (g *gatedStore) Update(ctx context.Context, fn func(engine.Tx) error) error {
	return g.Store.Update(ctx, func(tx engine.Tx) error { return fn(gatedTx{tx, g}) })
}

type gatedTx struct {
	engine.Tx
	g *gatedStore
}

func (t gatedTx) RuleUses(member, rule, period string) (int64, error) {
	if on, _ := t.g.hooks(); on != nil {
		on(member)
	}
	return t.Tx.RuleUses(member, rule, period)
}

// cappedRules have a loop, so that they run before the write: rules
// known to be quick run inside it.
const cappedRules = `currency: USD
earn:
  - name: base
    points: purchase.amount + count(purchase.items, .quantity > 100)
  - name: once
    points: 100
    max_per_member: 1
`

// TestSlowRuleDoesNotStallOtherPurchases: while one member's rules are
// being evaluated (here held on a channel, as a slow rule would hold
// them), another member's purchase is recorded. Rules used to run inside
// the write, so every write waited for the slowest rule.
func TestSlowRuleDoesNotStallOtherPurchases(t *testing.T) {
	gate := &gatedStore{}
	h := newHarnessOn(t, cappedRules, func(db engine.Store) engine.Store { gate.Store = db; return gate }, engine.Hooks{})
	slow := h.enrol(engine.MemberInput{ExternalID: "slow"})
	other := h.enrol(engine.MemberInput{ExternalID: "other"})

	evaluating, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	gate.mu.Lock()
	gate.onRuleUses = func(member string) {
		if member == slow.ID && held.CompareAndSwap(false, true) {
			close(evaluating)
			<-release
		}
	}
	gate.mu.Unlock()

	slowDone := make(chan *engine.PurchaseResult)
	go func() {
		res, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "slow-1", MemberID: slow.ID, Currency: "USD", Amount: "10.00"})
		if err != nil {
			t.Error(err)
		}
		slowDone <- res
	}()
	<-evaluating
	otherDone := make(chan *engine.PurchaseResult)
	go func() { otherDone <- h.buy("other-1", other.ID, "20.00") }()
	select {
	case res := <-otherDone:
		if res.Points != 120 {
			t.Errorf("other member earned %d", res.Points)
		}
	case <-time.After(10 * time.Second):
		t.Error("the other member's purchase waited for the slow member's rules")
		close(release)
		<-otherDone
		<-slowDone
		return
	}
	select {
	case <-slowDone:
		t.Fatal("the slow purchase finished while its rules were held")
	default:
	}
	close(release)
	if res := <-slowDone; res == nil || res.Points != 110 {
		t.Fatalf("slow purchase: %+v", res)
	}
}

// TestEarnRetriesOnChangedInputs: a purchase whose member changes between
// the evaluation of its rules and its write evaluates them again, so that
// it never earns on what the member was.
func TestEarnRetriesOnChangedInputs(t *testing.T) {
	gate := &gatedStore{}
	h := newHarnessOn(t, `currency: USD
earn:
  - name: vip
    points: 'member.attributes["vip"] == "yes" ? 100 : count(purchase.items, true) + 1'
`, func(db engine.Store) engine.Store { gate.Store = db; return gate }, engine.Hooks{})
	m := h.enrol(engine.MemberInput{})
	var fired atomic.Bool
	gate.mu.Lock()
	gate.afterView = func() {
		if fired.CompareAndSwap(false, true) {
			yes := "yes"
			if _, err := h.e.UpdateMember(h.ctx, m.ID, engine.MemberPatch{Attributes: map[string]*string{"vip": &yes}}); err != nil {
				t.Error(err)
			}
		}
	}
	gate.mu.Unlock()
	if res := h.buy("p1", m.ID, "1.00"); res.Points != 100 {
		t.Fatalf("earned %d on the member as it was before the write", res.Points)
	}
}

// TestCappedRuleRace: two purchases by one member racing for a rule that
// pays once: the one evaluated first but written second sees the other's
// use and does not earn the rule again.
func TestCappedRuleRace(t *testing.T) {
	gate := &gatedStore{}
	h := newHarnessOn(t, cappedRules, func(db engine.Store) engine.Store { gate.Store = db; return gate }, engine.Hooks{})
	m := h.enrol(engine.MemberInput{})
	var fired atomic.Bool
	var second *engine.PurchaseResult
	gate.mu.Lock()
	gate.afterView = func() {
		if fired.CompareAndSwap(false, true) {
			second = h.buy("p2", m.ID, "2.00")
		}
	}
	gate.mu.Unlock()
	first := h.buy("p1", m.ID, "1.00")
	if second.Points != 102 || first.Points != 1 {
		t.Fatalf("the rule paid %d and %d; once only", first.Points-1, second.Points-2)
	}
	if b := h.balance(m.ID); b.Available != 103 {
		t.Fatalf("balance %d", b.Available)
	}
}

// TestFailingRuleRefusesOnePurchase: a live rule that fails on one
// purchase refuses that purchase, naming the rule; the engine goes on and
// other purchases earn.
func TestFailingRuleRefusesOnePurchase(t *testing.T) {
	var mu sync.Mutex
	failed := map[string]int{}
	h := newHarnessOn(t, exampleRules, func(db engine.Store) engine.Store { return db },
		engine.Hooks{RuleFailed: func(rule string) { mu.Lock(); failed[rule]++; mu.Unlock() }})
	m := h.enrol(engine.MemberInput{})
	// No sample comes from store 13, so the rule passes its trial.
	fragile := strings.Replace(exampleRules, "\nbonuses:", `
  - name: store-13
    when: purchase.store_id == "s13"
    points: 100 / (purchase.amount - 13)

bonuses:`, 1)
	if _, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(fragile), "mkt", nil); err != nil {
		t.Fatalf("publish: %v", err)
	}
	_, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "p13", MemberID: m.ID, StoreID: "s13", Currency: "USD", Amount: "13.00"})
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Code != engine.EUNPROCESSABLE || !strings.Contains(ee.Message, `rule "store-13"`) ||
		len(ee.Details) != 1 || ee.Details[0].Rule != "store-13" || ee.Details[0].Line == 0 || !strings.Contains(ee.Details[0].Message, "division by zero") {
		t.Fatalf("purchase at store 13: %v %+v", err, ee)
	}
	if _, err := h.e.GetPurchase(h.ctx, "p13"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("the refused purchase was recorded: %v", err)
	}
	if res := h.buy("p14", m.ID, "14.00", engine.ItemRequest{SKU: "x", Quantity: 1, Amount: "14.00"}); res.Points != 14 {
		t.Fatalf("another purchase: %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed["store-13"] != 1 || len(failed) != 1 {
		t.Fatalf("failures counted: %v", failed)
	}
}

// TestPublishTriesRules: rules that fail when they run are refused at
// publish, on edge cases and on the database's recent purchases, with the
// rule's name and position; the old rules stay live.
func TestPublishTriesRules(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	if _, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "at-13", MemberID: m.ID, StoreID: "s13", Currency: "USD", Amount: "13.00"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rule, why string }{
		{"    when: 'len(repeat(repeat(\"x\", 999999), 999999)) > 0'\n    points: 1\n", "exceeds the memory budget"},
		{"    points: 'let r = 1..10000; reduce(r, reduce(r, #acc + 1, 0) + #acc, 0) * 0'\n", "exceeds the budget of 1000000 steps"},
		{"    points: purchase.amount / (purchase.amount - purchase.amount)\n", "division by zero"},
		{"    points: purchase.amount * (2 ** 2000)\n", "+Inf is not a number"},
		{"    points: len(repeat(\"ab\", 600000))\n", "exceeds the memory budget"},
		{"    when: purchase.store_id == \"s13\"\n    points: 100 / (purchase.amount - 13)\n", `division by zero (on purchase "at-13")`},
	} {
		src := strings.Replace(exampleRules, "\nbonuses:", "\n  - name: bad\n"+tc.rule+"\nbonuses:", 1)
		nameLine := strings.Count(src[:strings.Index(src, "  - name: bad")], "\n") + 1
		_, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(src), engine.RulesByFile, nil)
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Code != engine.EUNPROCESSABLE || len(ee.Details) != 1 {
			t.Fatalf("%s: %v", tc.why, err)
		}
		if d := ee.Details[0]; d.Rule != "bad" || d.Line <= nameLine || d.Line > nameLine+2 || d.Column < 5 || !strings.Contains(d.Message, tc.why) {
			t.Errorf("%s: detail %+v", tc.why, d)
		}
		if _, v := h.e.Program(); v.Version != 1 {
			t.Fatalf("version %d went live", v.Version)
		}
		if le := h.e.LastRulesError(); le == nil || le.Details[0].Rule != "bad" {
			t.Errorf("last error %+v", le)
		}
	}
	if res := h.buy("p2", m.ID, "10.00"); res.Points != 10 || res.RulesVersion != 1 {
		t.Fatalf("after the refusals: %+v", res)
	}
}

// TestPublishWithAFailingSave: rules that cannot be written to the file do
// not go live, and no version is stored.
func TestPublishWithAFailingSave(t *testing.T) {
	h := newHarness(t, exampleRules)
	double := strings.Replace(exampleRules, "points: purchase.amount * tier.multiplier", "points: purchase.amount * tier.multiplier * 2", 1)
	_, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(double), "mkt", func([]byte) error { return errors.New("no space left on device") })
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Code != engine.EINTERNAL || !strings.Contains(ee.Message, "version 1 stays live") {
		t.Fatalf("publish: %v", err)
	}
	if prog, v := h.e.Program(); v.Version != 1 || prog.Hash == rules.HashOf([]byte(double)) {
		t.Fatalf("live: version %d", v.Version)
	}
	if vs, _ := h.e.RulesVersions(h.ctx); len(vs) != 1 {
		t.Fatalf("%d versions stored", len(vs))
	}
	var saved []byte
	if v, err := h.e.PublishRules(h.ctx, "rules.yaml", []byte(double), "mkt", func(b []byte) error { saved = b; return nil }); err != nil || v.Version != 2 || string(saved) != double {
		t.Fatalf("publish with a working save: %+v %v", v, err)
	}
}
