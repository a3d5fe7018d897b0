package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// PurchaseRequest is a purchase as a terminal posts it. Money is a decimal
// string in the program's currency.
type PurchaseRequest struct {
	ID               string        `json:"id"`
	MemberID         string        `json:"member_id,omitempty"`
	MemberExternalID string        `json:"member_external_id,omitempty"`
	StoreID          string        `json:"store_id,omitempty"`
	TerminalID       string        `json:"terminal_id,omitempty"`
	OccurredAt       string        `json:"occurred_at,omitempty"`
	Currency         string        `json:"currency"`
	Amount           string        `json:"amount"`
	Items            []ItemRequest `json:"items,omitempty"`
}

// ItemRequest is one line of a purchase or of a refund by lines.
type ItemRequest struct {
	SKU      string `json:"sku"`
	Category string `json:"category,omitempty"`
	Quantity int64  `json:"quantity"`
	Amount   string `json:"amount"`
}

// PurchaseView is a recorded purchase as GET /v1/purchases/{id} shows it.
type PurchaseView struct {
	PurchaseResult
	Amount         string    `json:"amount"`
	Currency       string    `json:"currency"`
	OccurredAt     time.Time `json:"occurred_at"`
	RefundedAmount string    `json:"refunded_amount"`
	RefundedPoints int64     `json:"refunded_points"`
	Refunds        []string  `json:"refunds"`
}

// purchaseData is a validated purchase request.
type purchaseData struct {
	amount     int64
	occurredAt time.Time
	items      []PurchaseItem
}

func (e *Engine) checkPurchase(req *PurchaseRequest, prog *rules.Program, now time.Time) (purchaseData, error) {
	var d purchaseData
	if err := checkRecordID(req.ID); err != nil {
		return d, err
	}
	switch {
	case req.MemberID == "" && req.MemberExternalID == "":
		return d, FieldErrorf(EINVALID, "member_id", "is required (or member_external_id)")
	case req.MemberID != "" && req.MemberExternalID != "":
		return d, FieldErrorf(EINVALID, "member_id", "give member_id or member_external_id, not both")
	}
	for _, f := range []struct{ name, value string }{
		{"member_id", req.MemberID}, {"member_external_id", req.MemberExternalID},
		{"store_id", req.StoreID}, {"terminal_id", req.TerminalID},
	} {
		if err := checkText(f.name, f.value, MaxIDLen); err != nil {
			return d, err
		}
	}
	if req.Currency == "" {
		return d, FieldErrorf(EINVALID, "currency", "is required")
	}
	if req.Currency != prog.Currency {
		return d, FieldErrorf(EUNPROCESSABLE, "currency", "the program runs in %s, not %q", prog.Currency, req.Currency)
	}
	amount, err := parseMoney(prog, "amount", req.Amount, MaxAmount)
	if err != nil {
		return d, err
	}
	d.amount = amount
	if d.occurredAt, err = parseTime("occurred_at", req.OccurredAt, now); err != nil {
		return d, err
	}
	if d.occurredAt.After(now.Add(maxFutureSkew)) {
		return d, FieldErrorf(EINVALID, "occurred_at", "must not be in the future")
	}
	if d.items, err = checkItems(prog, req.Items); err != nil {
		return d, err
	}
	// At most MaxItems lines of at most MaxAmount each: the sum fits.
	var sum int64
	for _, it := range d.items {
		sum += it.Amount
	}
	if sum > d.amount {
		return d, FieldErrorf(EINVALID, "items", "line amounts add up to %s, more than the amount %s", prog.FormatMoney(sum), prog.FormatMoney(d.amount))
	}
	return d, nil
}

func checkItems(prog *rules.Program, in []ItemRequest) ([]PurchaseItem, error) {
	if len(in) > MaxItems {
		return nil, FieldErrorf(EINVALID, "items", "at most %d items", MaxItems)
	}
	items := make([]PurchaseItem, len(in))
	for i, it := range in {
		field := fmt.Sprintf("items[%d]", i)
		if it.SKU == "" {
			return nil, FieldErrorf(EINVALID, field+".sku", "is required")
		}
		if err := checkText(field+".sku", it.SKU, MaxIDLen); err != nil {
			return nil, err
		}
		if err := checkText(field+".category", it.Category, MaxIDLen); err != nil {
			return nil, err
		}
		if it.Quantity <= 0 || it.Quantity > MaxQuantity {
			return nil, FieldErrorf(EINVALID, field+".quantity", "must be a whole number from 1 to %d", MaxQuantity)
		}
		amount, err := parseMoney(prog, field+".amount", it.Amount, MaxAmount)
		if err != nil {
			return nil, err
		}
		items[i] = PurchaseItem{SKU: it.SKU, Category: it.Category, Quantity: it.Quantity, Amount: amount}
	}
	return items, nil
}

// parseMoney reads an amount in the program's currency, at most limit
// minor units.
func parseMoney(prog *rules.Program, field, s string, limit int64) (int64, error) {
	if s == "" {
		return 0, FieldErrorf(EINVALID, field, "is required, as a decimal string like \"12.50\"")
	}
	v, err := prog.ParseMoney(s)
	if err != nil {
		return 0, FieldErrorf(EINVALID, field, "%v", err)
	}
	if v > limit {
		return 0, FieldErrorf(EINVALID, field, "must be at most %s", prog.FormatMoney(limit))
	}
	return v, nil
}

// Purchase records a purchase and credits the points the rules give for it,
// exactly once per purchase id. A retry with the same body returns the first
// answer with replayed set; the same id with another body is a conflict.
//
// Rules that may take long run in a read transaction, outside the write
// lock, so that a slow rule delays its own purchase and no other write.
// The write then checks that what the rules read (the member as rules see
// it, the uses of capped rules) is unchanged, and starts again when it is
// not; after a few tries it runs the rules inside the write. Rules known
// to be quick (Program.FixedCost) run inside the write at once: a second
// transaction would cost more than they do.
func (e *Engine) Purchase(ctx context.Context, req PurchaseRequest) (res *PurchaseResult, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	prog := live.prog
	d, err := e.checkPurchase(&req, prog, now)
	if err != nil {
		return nil, false, err
	}
	hash := hashRequest(req)
	ids := newIDs(now, 6)
	w := writer{now: now, live: live}
	next := purchaseReads(prog, now, d.occurredAt)
	// find looks the purchase and its member up: a recorded purchase is
	// answered from its record.
	find := func(tx Tx) (*Member, error) {
		res, replayed = nil, false
		p, m, err := e.purchaseAndMember(tx, &req, next)
		if err != nil || p != nil {
			if err == nil {
				res, err = replay("purchase", req.ID, hash, p.RequestHash, p.Result)
				replayed = err == nil
			}
			return nil, err
		}
		if m.Status != StatusActive {
			return nil, Errorf(EUNPROCESSABLE, "member %q is %s", m.ID, m.Status)
		}
		return m, nil
	}
	tries := maxEarnTries
	if cost, fixed := prog.FixedCost(len(d.items)); fixed && cost <= quickRules {
		tries = 0
	}
	for range tries {
		var ev *earning
		err = e.store.View(ctx, func(tx Tx) error {
			m, err := find(tx)
			if err != nil || m == nil {
				return err
			}
			ev, err = e.earn(tx, prog, m, &req, d)
			return err
		})
		if err != nil || ev == nil {
			return res, replayed, e.purchaseFailed(&req, err)
		}
		err = e.store.Update(ctx, func(tx Tx) error {
			m, err := find(tx)
			if err != nil || m == nil {
				return err
			}
			if same, err := ev.still(tx, prog, m, d.occurredAt); err != nil || !same {
				if err == nil {
					err = errInputsChanged
				}
				return err
			}
			w.tx = tx
			res, err = e.applyPurchase(w, m, &req, d, hash, ids, ev)
			return err
		})
		if !errors.Is(err, errInputsChanged) {
			return res, replayed, e.purchaseFailed(&req, err)
		}
	}
	err = e.store.Update(ctx, func(tx Tx) error {
		m, err := find(tx)
		if err != nil || m == nil {
			return err
		}
		w.tx = tx
		res, err = e.applyPurchase(w, m, &req, d, hash, ids, nil)
		return err
	})
	return res, replayed, e.purchaseFailed(&req, err)
}

// maxEarnTries bounds how often a purchase evaluates its rules outside the
// write lock before it evaluates them inside: only purchases of the same
// member racing each other need another try.
const maxEarnTries = 3

// quickRules is the cost, in steps, of rules that run inside the write:
// some 10 to 25 µs, about what reading the purchase and the member again
// costs. The example rules take 260 steps on a purchase of three items.
const quickRules = 5_000

// errInputsChanged leaves a write, before it writes anything, whose rules
// were evaluated on inputs that have changed since.
var errInputsChanged = errors.New("the rules' inputs changed since they were evaluated")

// purchaseFailed passes err on, first logging and counting a rule that
// failed on the purchase: that purchase alone is refused.
func (e *Engine) purchaseFailed(req *PurchaseRequest, err error) error {
	var re *rules.RuleError
	if errors.As(err, &re) {
		e.log.Warn("an earn rule failed on a purchase, which is refused", "purchase", req.ID, "rule", re.Rule, "line", re.Line, "column", re.Column, "err", re.Err)
		e.hooks.ruleFailed(re.Rule)
	}
	return err
}

// earning is the rules' answer for a purchase, with the inputs they read,
// so that a write can tell whether it still holds.
type earning struct {
	bd     rules.Breakdown
	member rules.Member
	uses   []ruleUse
}

type ruleUse struct {
	rule string
	seen rules.RuleUses
}

// earn evaluates the rules for a purchase by m, reading through tx. A rule
// that fails is an unprocessable *Error naming it.
func (e *Engine) earn(tx Tx, prog *rules.Program, m *Member, req *PurchaseRequest, d purchaseData) (*earning, error) {
	ev := &earning{member: ruleMember(m)}
	uses := ruleUsesReader(tx, prog, m.ID, d.occurredAt)
	bd, err := prog.Earn(rules.EarnInput{
		Purchase: rules.Purchase{
			Amount: d.amount, Currency: req.Currency, StoreID: req.StoreID, TerminalID: req.TerminalID,
			OccurredAt: d.occurredAt, Items: ruleItems(d.items),
		},
		Member: ev.member,
		Uses: func(rule string) rules.RuleUses {
			u := uses.get(rule)
			ev.uses = append(ev.uses, ruleUse{rule: rule, seen: u})
			return u
		},
	})
	if err != nil {
		var re *rules.RuleError
		if errors.As(err, &re) {
			return nil, &Error{Code: EUNPROCESSABLE, cause: re,
				Message: fmt.Sprintf("rule %q failed on this purchase, which is not recorded: %v", re.Rule, re.Err),
				Details: []Detail{{Rule: re.Rule, Line: re.Line, Column: re.Column, Message: re.Error()}}}
		}
		return nil, fmt.Errorf("evaluate rules for purchase %q: %w", req.ID, err)
	}
	if uses.err != nil {
		return nil, uses.err
	}
	ev.bd = bd
	return ev, nil
}

// still reports whether the rules would read what they read: the member
// as rules see it, and the uses of each capped rule they looked at in the
// periods of a purchase at.
func (ev *earning) still(tx Tx, prog *rules.Program, m *Member, at time.Time) (bool, error) {
	if !sameRuleMember(ev.member, ruleMember(m)) {
		return false, nil
	}
	if len(ev.uses) == 0 {
		return true, nil
	}
	uses := ruleUsesReader(tx, prog, m.ID, at)
	for _, u := range ev.uses {
		if uses.get(u.rule) != u.seen {
			return false, uses.err
		}
	}
	return true, uses.err
}

func (e *Engine) purchaseMember(tx Tx, req *PurchaseRequest) (*Member, error) {
	if req.MemberID != "" {
		return getMember(tx, req.MemberID)
	}
	m, err := tx.MemberByKey(KeyExternalID, req.MemberExternalID)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, Errorf(ENOTFOUND, "no member with external_id %q", req.MemberExternalID)
	}
	return m, nil
}

// purchaseAndMember looks the purchase up and, when it is not recorded,
// the member it names, which must exist: in one go where tx offers it
// (PurchaseFinder), telling it what the purchase reads next.
func (e *Engine) purchaseAndMember(tx Tx, req *PurchaseRequest, next PurchaseReads) (*Purchase, *Member, error) {
	pf, ok := tx.(PurchaseFinder)
	if !ok {
		p, err := tx.Purchase(req.ID)
		if err != nil || p != nil {
			return p, nil, err
		}
		m, err := e.purchaseMember(tx, req)
		if err != nil {
			return nil, nil, err
		}
		m, err = survivor(tx, m)
		return nil, m, err
	}
	key, value := "", req.MemberID
	if value == "" {
		key, value = KeyExternalID, req.MemberExternalID
	}
	p, m, err := pf.PurchaseAndMember(req.ID, key, value, next)
	switch {
	case err != nil || p != nil:
		return p, nil, err
	case m == nil && key == "":
		return nil, nil, Errorf(ENOTFOUND, "member %q not found", value)
	case m == nil:
		return nil, nil, Errorf(ENOTFOUND, "no member with external_id %q", value)
	}
	m, err = survivor(tx, m)
	return nil, m, err
}

// applyPurchase writes a purchase by m and what it earns: ev, the rules'
// answer when it was evaluated before, or nil to evaluate it here.
func (e *Engine) applyPurchase(w writer, m *Member, req *PurchaseRequest, d purchaseData, hash string, ids []string, ev *earning) (*PurchaseResult, error) {
	prog := w.live.prog
	tx := w.tx
	earnedAt := m.Tier
	if ev == nil {
		var err error
		if ev, err = e.earn(tx, prog, m, req, d); err != nil {
			return nil, err
		}
	}
	bd := ev.bd
	uses := ruleUsesReader(tx, prog, m.ID, d.occurredAt)
	// Every refusal comes before the first write (Store.Update).
	if err := checkEarned(bd); err != nil {
		return nil, err
	}
	referral, err := planReferral(tx, prog, m, d.amount)
	if err != nil {
		return nil, err
	}
	if !withinTotal(m.LifetimeSpend+m.RefundedSpend, d.amount) {
		return nil, errTotal(m, "the lifetime spend")
	}
	if err := creditFits(m, true, bd.Total, referral.refereePoints); err != nil {
		return nil, err
	}
	for _, r := range bd.Rules {
		if err := uses.add(r.Rule); err != nil {
			return nil, err
		}
	}
	if err := w.credit(m, creditSpec{
		entryID: ids[0], lotID: ids[1], typ: LedgerEarn, points: bd.Total,
		at: d.occurredAt, ref: req.ID,
	}); err != nil {
		return nil, err
	}
	m.LifetimeSpend += d.amount
	m.PurchaseCount++
	if d.occurredAt.After(m.LastPurchaseAt) {
		m.LastPurchaseAt = d.occurredAt
	}
	if err := tx.AddMetric(m.ID, MetricEntry{At: d.occurredAt, Spend: d.amount, Points: bd.Total, Visits: 1}); err != nil {
		return nil, err
	}
	grant, err := referral.pay(w, m, ids[2:])
	if err != nil {
		return nil, err
	}
	changed, err := promote(tx, prog, m, w.now)
	if err != nil {
		return nil, err
	}
	if err := tx.PutMember(m); err != nil {
		return nil, err
	}
	var coupons []CouponView
	if changed {
		if coupons, err = w.promotionCoupons(m, prog.Tiers.Index(earnedAt), e.log.Warn); err != nil {
			return nil, err
		}
	}
	bal, err := balanceSummary(tx, m, w.now)
	if err != nil {
		return nil, err
	}
	res := &PurchaseResult{
		ID: req.ID, MemberID: m.ID, Points: bd.Total, Breakdown: []RuleLine{},
		RulesVersion: w.live.version.Version, Balance: bal,
		Tier: TierChange{Name: m.Tier, Changed: changed}, Coupons: coupons,
	}
	if grant != nil && grant.RefereePoints > 0 {
		res.Bonuses = []RuleLine{{Rule: "referral", Points: grant.RefereePoints}}
	}
	for _, r := range bd.Rules {
		res.Breakdown = append(res.Breakdown, RuleLine{Rule: r.Rule, Points: r.Points})
	}
	p := &Purchase{
		ID: req.ID, MemberID: m.ID, StoreID: req.StoreID, TerminalID: req.TerminalID,
		OccurredAt: d.occurredAt, RecordedAt: w.now, Currency: req.Currency, Amount: d.amount,
		Items: d.items, Points: bd.Total, Breakdown: bd.Rules, RulesVersion: w.live.version.Version,
		EarnedAtTier: earnedAt, RequestHash: hash, Result: *res, Referral: grant,
	}
	if err := tx.PutPurchase(p); err != nil {
		return nil, err
	}
	if err := w.emit(EventPurchaseCreated, m.ID, purchaseEventData{
		PurchaseID: req.ID, MemberID: m.ID, Amount: prog.FormatMoney(d.amount), Currency: req.Currency,
		Points: bd.Total, Breakdown: res.Breakdown, Balance: bal, Tier: m.Tier, StoreID: req.StoreID,
	}); err != nil {
		return nil, err
	}
	// A rule capped per member is a promotion (a welcome or win-back
	// bonus): its points are a bonus.granted too, named after it.
	for _, r := range bd.Rules {
		if rule := prog.Rule(r.Rule); rule != nil && rule.Capped() {
			if err := w.bonus(m, r.Rule, r.Points); err != nil {
				return nil, err
			}
		}
	}
	if grant != nil {
		if err := w.bonus(m, BonusReferral, grant.RefereePoints); err != nil {
			return nil, err
		}
		if err := w.bonus(referral.referrer, BonusReferral, grant.ReferrerPoints); err != nil {
			return nil, err
		}
	}
	if err := w.tierChanged(m, earnedAt, true); err != nil {
		return nil, err
	}
	return res, nil
}

// GetPurchase returns a recorded purchase with its refunds so far.
func (e *Engine) GetPurchase(ctx context.Context, id string) (*PurchaseView, error) {
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	var p *Purchase
	err = e.store.View(ctx, func(tx Tx) error {
		p, err = tx.Purchase(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, Errorf(ENOTFOUND, "purchase %q not found", id)
	}
	return purchaseView(live.prog, p), nil
}

func purchaseView(prog *rules.Program, p *Purchase) *PurchaseView {
	refunds := p.Refunds
	if refunds == nil {
		refunds = []string{}
	}
	return &PurchaseView{
		PurchaseResult: p.Result,
		Amount:         prog.FormatMoney(p.Amount),
		Currency:       p.Currency,
		OccurredAt:     p.OccurredAt,
		RefundedAmount: prog.FormatMoney(p.RefundedAmount),
		RefundedPoints: p.RefundedPoints,
		Refunds:        refunds,
	}
}

// checkEarned refuses a purchase whose rules earn more than MaxPoints, by
// one rule or in total, naming the rule that passes it.
func checkEarned(bd rules.Breakdown) error {
	var total int64
	for _, r := range bd.Rules {
		total += min(r.Points, MaxPoints+1)
		if r.Points > MaxPoints || total > MaxPoints {
			return Errorf(EUNPROCESSABLE, "rule %q: the purchase would earn more than %d points", r.Rule, MaxPoints)
		}
	}
	return nil
}

func ruleItems(items []PurchaseItem) []rules.Item {
	out := make([]rules.Item, len(items))
	for i, it := range items {
		out[i] = rules.Item{SKU: it.SKU, Category: it.Category, Quantity: it.Quantity, Amount: it.Amount}
	}
	return out
}

// ruleMember is what the rules see of m.
func ruleMember(m *Member) rules.Member {
	rm := rules.Member{
		ID: m.ID, Tier: m.Tier, EnrolledAt: m.EnrolledAt, PurchaseCount: m.PurchaseCount,
		LifetimeSpend: m.LifetimeSpend, Attributes: m.Attributes,
	}
	if b, err := time.Parse(dateLayout, m.Birthday); err == nil {
		rm.BirthdayMonth = int(b.Month())
	}
	if a := m.Analytics; a != nil {
		rm.Segment, rm.Lifecycle, rm.ChurnRisk, rm.CLV, rm.RFM = a.Segment, a.Lifecycle, a.ChurnRisk, a.CLV, a.RFM
	}
	return rm
}

// ruleUses reads and bumps the per-member counters of capped rules for the
// periods a purchase falls in.
type ruleUses struct {
	tx      Tx
	prog    *rules.Program
	member  string
	at      time.Time
	periods [4]string // made on first use: most purchases use no capped rule
	err     error
}

// purchaseReads is what a purchase at occurredAt, made at now, reads of
// its member after finding it: the tier window promote sums, and the uses
// of the capped rules in the purchase's periods.
func purchaseReads(prog *rules.Program, now, occurredAt time.Time) PurchaseReads {
	next := PurchaseReads{MetricFrom: prog.WindowStart(now), MetricTo: now}
	for _, r := range prog.Rules {
		if r.Capped() {
			next.Rules = append(next.Rules, r.Name)
		}
	}
	if len(next.Rules) > 0 {
		keys := (&ruleUses{prog: prog, at: occurredAt}).keys()
		next.Periods = keys[:]
	}
	return next
}

func ruleUsesReader(tx Tx, prog *rules.Program, memberID string, at time.Time) *ruleUses {
	return &ruleUses{tx: tx, prog: prog, member: memberID, at: at}
}

func (u *ruleUses) keys() [4]string {
	if u.periods[0] == "" {
		y, mo, d := u.prog.ZoneDate(u.at)
		u.periods = [4]string{
			"all",
			fmt.Sprintf("d%04d-%02d-%02d", y, mo, d),
			fmt.Sprintf("m%04d-%02d", y, mo),
			fmt.Sprintf("y%04d", y),
		}
	}
	return u.periods
}

func (u *ruleUses) get(rule string) rules.RuleUses {
	var c [4]int64
	keys := u.keys()
	if pu, ok := u.tx.(PeriodUses); ok {
		ns, err := pu.RuleUsesByPeriod(u.member, rule, keys[:])
		if err == nil && len(ns) != len(keys) {
			err = fmt.Errorf("rule uses of %s: %d periods answered, want %d", rule, len(ns), len(keys))
		}
		if err != nil {
			if u.err == nil {
				u.err = err
			}
			return rules.RuleUses{}
		}
		copy(c[:], ns)
		return rules.RuleUses{Total: c[0], Day: c[1], Month: c[2], Year: c[3]}
	}
	for i, p := range keys {
		n, err := u.tx.RuleUses(u.member, rule, p)
		if err != nil && u.err == nil {
			u.err = err
		}
		c[i] = n
	}
	return rules.RuleUses{Total: c[0], Day: c[1], Month: c[2], Year: c[3]}
}

// add counts a use of rule when the rule has a per-member cap; uncapped
// rules are not counted, which keeps the common purchase free of writes.
func (u *ruleUses) add(rule string) error {
	if r := u.prog.Rule(rule); r == nil || !r.Capped() {
		return nil
	}
	for _, p := range u.keys() {
		if err := u.tx.AddRuleUse(u.member, rule, p, 1); err != nil {
			return err
		}
	}
	return nil
}

// sameRuleMember reports whether the rules see a and b alike.
func sameRuleMember(a, b rules.Member) bool {
	if a.ID != b.ID || a.Tier != b.Tier || !a.EnrolledAt.Equal(b.EnrolledAt) || a.PurchaseCount != b.PurchaseCount ||
		a.LifetimeSpend != b.LifetimeSpend || a.BirthdayMonth != b.BirthdayMonth || a.Segment != b.Segment ||
		a.Lifecycle != b.Lifecycle || a.ChurnRisk != b.ChurnRisk || a.CLV != b.CLV || a.RFM != b.RFM ||
		len(a.Attributes) != len(b.Attributes) {
		return false
	}
	for k, v := range a.Attributes {
		if w, ok := b.Attributes[k]; !ok || w != v {
			return false
		}
	}
	return true
}
