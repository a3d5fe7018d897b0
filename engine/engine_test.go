package engine_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// fixedClock stands still until a test moves it, through the TestClock that
// wraps it.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// storeKind is the store the package's tests run on: TestMain runs them
// once per kind storetesting offers (bbolt, and PostgreSQL when
// LOYALTY_TEST_POSTGRES names a server).
var storeKind = storetesting.Bolt

func TestMain(m *testing.M) { os.Exit(storetesting.RunEach(m, &storeKind)) }

// harness is an engine on a fresh store of storeKind and a clock the test
// moves. Every write function runs twice, the first time rolled back
// (storetesting.Twice), which proves each safe to retry. Its cleanup
// verifies every invariant, so each scenario ends with a consistency
// check.
type harness struct {
	t     *testing.T
	ctx   context.Context
	db    engine.Store
	e     *engine.Engine
	clock *engine.TestClock
}

var start = time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC) // a Monday

func newHarness(t *testing.T, rulesSrc string) *harness {
	t.Helper()
	return newHarnessOn(t, rulesSrc, func(db engine.Store) engine.Store { return db }, engine.Hooks{})
}

// newHarnessOn is newHarness with the engine on wrap(db) and told hooks.
func newHarnessOn(t *testing.T, rulesSrc string, wrap func(engine.Store) engine.Store, hooks engine.Hooks) *harness {
	t.Helper()
	db := storetesting.Open(t, storeKind)
	clock := engine.NewTestClock(&fixedClock{t: start})
	h := &harness{t: t, ctx: context.Background(), db: db, clock: clock}
	h.e = engine.New(wrap(storetesting.Twice(db)), engine.Options{Clock: clock, JobChunk: 3, Hooks: hooks})
	h.loadRules(rulesSrc)
	// Registered after Open's, so it runs first, on the open store.
	t.Cleanup(func() {
		var out bytes.Buffer
		n, err := h.e.Verify(context.Background(), &out)
		if err != nil || n > 0 {
			t.Errorf("engine verify: %d problems, err %v:\n%s", n, err, out.String())
		}
	})
	return h
}

func (h *harness) loadRules(src string) {
	h.t.Helper()
	prog, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		h.t.Fatalf("rules: %v", err)
	}
	if _, err := h.e.LoadRules(context.Background(), prog, "test"); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	if err := h.clock.Advance(d); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) advanceDays(n int) { h.advance(time.Duration(n) * 24 * time.Hour) }

func (h *harness) enrol(in engine.MemberInput) *engine.MemberView {
	h.t.Helper()
	m, err := h.e.CreateMember(h.ctx, in)
	if err != nil {
		h.t.Fatalf("enrol: %v", err)
	}
	return m
}

func (h *harness) buy(id, memberID, amount string, items ...engine.ItemRequest) *engine.PurchaseResult {
	h.t.Helper()
	res, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: id, MemberID: memberID, Currency: "USD", Amount: amount, Items: items})
	if err != nil {
		h.t.Fatalf("purchase %s: %v", id, err)
	}
	return res
}

func (h *harness) balance(id string) *engine.Balance {
	h.t.Helper()
	b, err := h.e.Balance(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) run(job string) *engine.JobRunView {
	h.t.Helper()
	r, err := h.e.RunJob(h.ctx, job)
	if err != nil {
		h.t.Fatalf("run %s: %v", job, err)
	}
	if r.Error != "" {
		h.t.Fatalf("run %s: %s", job, r.Error)
	}
	return r
}

func (h *harness) tier(id string) string {
	h.t.Helper()
	m, err := h.e.Member(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return m.Tier.Name
}

func (h *harness) ledger(id string) []engine.LedgerView {
	h.t.Helper()
	p, err := h.e.Ledger(h.ctx, id, "", engine.MaxPageSize)
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Entries
}

// exampleRules is the shipped example: the scenarios run against what a
// newcomer gets.
var exampleRules = string(rules.Example)

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := engine.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func TestEarnWithBreakdown(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{ExternalID: "card-1"})
	if m.Balance.Available != 50 {
		t.Fatalf("enrolment bonus: available = %d, want 50", m.Balance.Available)
	}
	res := h.buy("p1", m.ID, "23.40",
		engine.ItemRequest{SKU: "LATTE-L", Category: "coffee", Quantity: 2, Amount: "9.80"},
		engine.ItemRequest{SKU: "BEANS-1KG", Category: "beans", Quantity: 1, Amount: "13.60"})
	// base: floor(23.40 × 1) = 23; coffee-bonus: 2 × 12 = 24; a Monday, so
	// no weekend beans.
	if res.Points != 47 {
		t.Fatalf("points = %d, want 47 (%+v)", res.Points, res.Breakdown)
	}
	want := []engine.RuleLine{{Rule: "base", Points: 23}, {Rule: "coffee-bonus", Points: 24}}
	if len(res.Breakdown) != 2 || res.Breakdown[0] != want[0] || res.Breakdown[1] != want[1] {
		t.Fatalf("breakdown = %+v, want %+v", res.Breakdown, want)
	}
	if res.Balance.Available != 97 || res.Tier.Name != "green" || res.Tier.Changed {
		t.Fatalf("answer = %+v", res)
	}
	led := h.ledger(m.ID)
	if len(led) != 2 || led[0].Type != "earn" || led[0].Points != 47 || led[0].BalanceAfter != 97 || led[0].Ref != "p1" || led[1].Type != "bonus" {
		t.Fatalf("ledger = %+v", led)
	}
	if led[0].RulesVersion != res.RulesVersion || res.RulesVersion != 1 {
		t.Fatalf("rules version: ledger %d, answer %d", led[0].RulesVersion, res.RulesVersion)
	}
}

func TestExactDecimalEarning(t *testing.T) {
	h := newHarness(t, strings.Replace(exampleRules, "points: purchase.amount * tier.multiplier", "points: purchase.amount * 100", 1))
	m := h.enrol(engine.MemberInput{})
	if got := h.buy("p1", m.ID, "0.29").Points; got != 29 {
		t.Fatalf("0.29 × 100 earned %d, want 29", got)
	}
}

func TestPurchaseByExternalIDAndIdempotency(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{ExternalID: "card-000123"})
	req := engine.PurchaseRequest{ID: "store7-till2-000981", MemberExternalID: "card-000123", Currency: "USD", Amount: "10.00"}
	first, replayed, err := h.e.Purchase(h.ctx, req)
	if err != nil || replayed {
		t.Fatalf("first: %v replayed=%v", err, replayed)
	}
	again, replayed, err := h.e.Purchase(h.ctx, req)
	if err != nil || !replayed {
		t.Fatalf("retry: %v replayed=%v", err, replayed)
	}
	if again.Points != first.Points || again.Balance != first.Balance {
		t.Fatalf("retry answer %+v differs from first %+v", again, first)
	}
	req.Amount = "11.00"
	_, _, err = h.e.Purchase(h.ctx, req)
	wantCode(t, err, engine.ECONFLICT)
	if b := h.balance(m.ID); b.Available != 60 {
		t.Fatalf("available = %d, want 60 (50 bonus + 10 once)", b.Available)
	}
}

func TestBadPurchasesWriteNothing(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{ExternalID: "c"})
	ok := engine.PurchaseRequest{ID: "p", MemberID: m.ID, Currency: "USD", Amount: "10.00"}
	cases := []struct {
		name  string
		edit  func(*engine.PurchaseRequest)
		code  string
		field string
	}{
		{"negative amount", func(r *engine.PurchaseRequest) { r.Amount = "-1.00" }, engine.EINVALID, "amount"},
		{"over-precise amount", func(r *engine.PurchaseRequest) { r.Amount = "1.005" }, engine.EINVALID, "amount"},
		{"non-numeric amount", func(r *engine.PurchaseRequest) { r.Amount = "ten" }, engine.EINVALID, "amount"},
		{"empty amount", func(r *engine.PurchaseRequest) { r.Amount = "" }, engine.EINVALID, "amount"},
		{"wrong currency", func(r *engine.PurchaseRequest) { r.Currency = "EUR" }, engine.EUNPROCESSABLE, "currency"},
		{"missing currency", func(r *engine.PurchaseRequest) { r.Currency = "" }, engine.EINVALID, "currency"},
		{"unknown member", func(r *engine.PurchaseRequest) { r.MemberID = "nobody" }, engine.ENOTFOUND, ""},
		{"unknown card", func(r *engine.PurchaseRequest) { r.MemberID, r.MemberExternalID = "", "nobody" }, engine.ENOTFOUND, ""},
		{"no member", func(r *engine.PurchaseRequest) { r.MemberID = "" }, engine.EINVALID, "member_id"},
		{"id too long", func(r *engine.PurchaseRequest) { r.ID = strings.Repeat("x", 129) }, engine.EINVALID, "id"},
		{"no id", func(r *engine.PurchaseRequest) { r.ID = "" }, engine.EINVALID, "id"},
		{"future", func(r *engine.PurchaseRequest) { r.OccurredAt = start.Add(48 * time.Hour).Format(time.RFC3339) }, engine.EINVALID, "occurred_at"},
		{"bad time", func(r *engine.PurchaseRequest) { r.OccurredAt = "yesterday" }, engine.EINVALID, "occurred_at"},
		{"items above amount", func(r *engine.PurchaseRequest) {
			r.Items = []engine.ItemRequest{{SKU: "A", Quantity: 1, Amount: "10.01"}}
		}, engine.EINVALID, "items"},
		{"zero quantity", func(r *engine.PurchaseRequest) {
			r.Items = []engine.ItemRequest{{SKU: "A", Quantity: 0, Amount: "1.00"}}
		}, engine.EINVALID, "items[0].quantity"},
		{"item without sku", func(r *engine.PurchaseRequest) {
			r.Items = []engine.ItemRequest{{Quantity: 1, Amount: "1.00"}}
		}, engine.EINVALID, "items[0].sku"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			_, _, err := h.e.Purchase(h.ctx, req)
			wantCode(t, err, tc.code)
			var ee *engine.Error
			if errors.As(err, &ee) && ee.Field != tc.field {
				t.Fatalf("field = %q, want %q", ee.Field, tc.field)
			}
		})
	}
	if led := h.ledger(m.ID); len(led) != 1 {
		t.Fatalf("bad purchases wrote to the ledger: %+v", led)
	}
	if _, err := h.e.GetPurchase(h.ctx, "p"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("a bad purchase was stored: %v", err)
	}
}

func TestBlockedMemberEarnsNothing(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	blocked := engine.StatusBlocked
	if _, err := h.e.UpdateMember(h.ctx, m.ID, engine.MemberPatch{Status: &blocked}); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "p", MemberID: m.ID, Currency: "USD", Amount: "10"})
	wantCode(t, err, engine.EUNPROCESSABLE)
}

func TestPromotionUsesOldTierForThePurchase(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "400.00")
	res := h.buy("p2", m.ID, "200.00")
	if !res.Tier.Changed || res.Tier.Name != "gold" {
		t.Fatalf("tier = %+v, want promoted to gold", res.Tier)
	}
	if res.Points != 200 {
		t.Fatalf("crossing purchase earned %d, want 200 at the green multiplier", res.Points)
	}
	if got := h.buy("p3", m.ID, "10.00").Points; got != 15 {
		t.Fatalf("gold purchase earned %d, want 15", got)
	}
	b := h.balance(m.ID)
	if b.Tier.Name != "gold" || b.Tier.Value != "610.00" || b.Tier.Next == nil || b.Tier.Next.Name != "platinum" || b.Tier.Next.Remaining != "1390.00" {
		t.Fatalf("tier status = %+v next %+v", b.Tier, b.Tier.Next)
	}
	if b.Tier.KeepsUntil == nil {
		t.Fatal("a gold member should see until when the tier is kept")
	}
}

func TestBackdatedPurchaseOutsideWindowDoesNotCount(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	old := start.AddDate(-1, -1, 0).Format(time.RFC3339)
	res, _, err := h.e.Purchase(h.ctx, engine.PurchaseRequest{ID: "old", MemberID: m.ID, Currency: "USD", Amount: "900.00", OccurredAt: old})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tier.Changed || res.Tier.Name != "green" {
		t.Fatalf("a purchase older than the window promoted: %+v", res.Tier)
	}
	if v := h.balance(m.ID).Tier.Value; v != "0.00" {
		t.Fatalf("metric = %s, want 0.00", v)
	}
}

func TestExpiryAfterTwelveMonths(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "30.00")
	h.advanceDays(100)
	h.buy("p2", m.ID, "20.00")
	b := h.balance(m.ID)
	if b.Available != 100 || len(b.Expiring) != 2 || b.Expiring[0].Points != 80 || b.Expiring[1].Points != 20 {
		t.Fatalf("balance = %+v", b)
	}
	if b.Expiring[0].On != "2027-03-02" {
		t.Fatalf("first expiry on %s, want 2027-03-02", b.Expiring[0].On)
	}
	h.advanceDays(266) // a year after the first purchase
	if got := h.run(engine.JobExpirePoints).Processed; got != 2 {
		t.Fatalf("expired %d lots, want 2 (bonus and first purchase)", got)
	}
	b = h.balance(m.ID)
	if b.Available != 20 {
		t.Fatalf("available after expiry = %d, want 20", b.Available)
	}
	led := h.ledger(m.ID)
	if led[0].Type != "expire" || led[0].Points != -80 || led[0].BalanceAfter != 20 {
		t.Fatalf("newest entry = %+v", led[0])
	}
	if got := h.run(engine.JobExpirePoints).Processed; got != 0 {
		t.Fatalf("second run processed %d, want 0", got)
	}
	if n := len(h.ledger(m.ID)); n != len(led) {
		t.Fatalf("second run wrote to the ledger")
	}
}

func TestDemotionAfterWindowAndGrace(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "600.00")
	if h.tier(m.ID) != "gold" {
		t.Fatal("not promoted")
	}
	h.advanceDays(200)
	h.run(engine.JobEvaluateTiers)
	if h.tier(m.ID) != "gold" {
		t.Fatal("demoted while qualified")
	}
	h.advanceDays(166) // 366 days: the purchase has left the window
	h.run(engine.JobEvaluateTiers)
	if h.tier(m.ID) != "gold" {
		t.Fatal("demoted inside grace")
	}
	keeps := h.balance(m.ID).Tier.KeepsUntil
	if keeps == nil || keeps.Before(h.e.Now()) {
		t.Fatalf("keeps_until = %v, want in the future", keeps)
	}
	h.advanceDays(30)
	h.run(engine.JobEvaluateTiers)
	if h.tier(m.ID) != "green" {
		t.Fatalf("tier = %s after grace, want green", h.tier(m.ID))
	}
}

func TestCatchUpAfterMissedMonth(t *testing.T) {
	h := newHarness(t, strings.Replace(exampleRules, "grace: 30d", "grace: 0d", 1))
	var ids []string
	for i := 0; i < 7; i++ { // more than one job chunk (3)
		m := h.enrol(engine.MemberInput{})
		h.buy("p"+string(rune('a'+i)), m.ID, "2100.00")
		ids = append(ids, m.ID)
	}
	if h.tier(ids[0]) != "platinum" {
		t.Fatal("not promoted")
	}
	h.advanceDays(365 + 31) // nobody ran the jobs for the last month
	if got := h.run(engine.JobExpirePoints).Processed; got != 14 {
		t.Fatalf("expired %d lots, want 14", got)
	}
	h.run(engine.JobEvaluateTiers)
	for _, id := range ids {
		if b := h.balance(id); b.Available != 0 {
			t.Fatalf("member %s still has %d points", id, b.Available)
		}
		if got := h.tier(id); got != "gold" {
			t.Fatalf("tier = %s, want gold (one step down)", got)
		}
	}
}

func TestToQualifiedDowngrade(t *testing.T) {
	h := newHarness(t, strings.NewReplacer("grace: 30d", "grace: 0d", "downgrade: one_step", "downgrade: to_qualified").Replace(exampleRules))
	m := h.enrol(engine.MemberInput{})
	h.buy("p1", m.ID, "2100.00")
	h.advanceDays(370)
	h.run(engine.JobEvaluateTiers)
	if got := h.tier(m.ID); got != "green" {
		t.Fatalf("tier = %s, want green", got)
	}
}

func TestMemberUniqueKeys(t *testing.T) {
	h := newHarness(t, exampleRules)
	h.enrol(engine.MemberInput{ExternalID: "card-1", Email: "Ana@Example.com", Phone: "+1 555 0100"})
	for _, tc := range []struct {
		in    engine.MemberInput
		field string
	}{
		{engine.MemberInput{ExternalID: "card-1"}, "external_id"},
		{engine.MemberInput{Email: "ana@example.com"}, "email"},
		{engine.MemberInput{Phone: "+15550100"}, "phone"},
	} {
		_, err := h.e.CreateMember(h.ctx, tc.in)
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Code != engine.ECONFLICT || ee.Field != tc.field {
			t.Fatalf("%+v: err = %v, want conflict on %s", tc.in, err, tc.field)
		}
	}
	found, err := h.e.FindMembers(h.ctx, engine.KeyEmail, "ANA@example.com")
	if err != nil || len(found) != 1 {
		t.Fatalf("find by email: %v %d", err, len(found))
	}
}

func TestLedgerPaging(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{})
	for i := 0; i < 5; i++ {
		h.buy("p"+string(rune('0'+i)), m.ID, "1.00")
	}
	var seen []string
	cursor := ""
	for {
		p, err := h.e.Ledger(h.ctx, m.ID, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			seen = append(seen, e.Ref)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if strings.Join(seen, ",") != "p4,p3,p2,p1,p0,enrol:"+m.ID {
		t.Fatalf("pages = %v", seen)
	}
}
