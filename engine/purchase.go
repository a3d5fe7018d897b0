package engine

import (
	"context"
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
	if err := checkClientID("id", req.ID); err != nil {
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
	amount, err := parseMoney(prog, "amount", req.Amount)
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
		amount, err := parseMoney(prog, field+".amount", it.Amount)
		if err != nil {
			return nil, err
		}
		items[i] = PurchaseItem{SKU: it.SKU, Category: it.Category, Quantity: it.Quantity, Amount: amount}
	}
	return items, nil
}

func parseMoney(prog *rules.Program, field, s string) (int64, error) {
	if s == "" {
		return 0, FieldErrorf(EINVALID, field, "is required, as a decimal string like \"12.50\"")
	}
	v, err := prog.ParseMoney(s)
	if err != nil {
		return 0, FieldErrorf(EINVALID, field, "%v", err)
	}
	return v, nil
}

// Purchase records a purchase and credits the points the rules give for it,
// exactly once per purchase id. A retry with the same body returns the first
// answer with replayed set; the same id with another body is a conflict.
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
	ids := newIDs(6)
	err = e.store.Update(func(tx Tx) error {
		res, replayed = nil, false
		if p, err := tx.Purchase(req.ID); err != nil || p != nil {
			if err == nil {
				res, err = replay("purchase", req.ID, hash, p.RequestHash, p.Result)
				replayed = err == nil
			}
			return err
		}
		m, err := e.purchaseMember(tx, &req)
		if err != nil {
			return err
		}
		if m.Status == StatusBlocked {
			return Errorf(EUNPROCESSABLE, "member %q is blocked", m.ID)
		}
		res, err = e.applyPurchase(writer{tx: tx, now: now, live: live}, m, &req, d, hash, ids)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
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

func (e *Engine) applyPurchase(w writer, m *Member, req *PurchaseRequest, d purchaseData, hash string, ids []string) (*PurchaseResult, error) {
	prog := w.live.prog
	tx := w.tx
	earnedAt := m.Tier
	uses := ruleUsesReader(tx, prog, m.ID, d.occurredAt)
	bd, err := prog.Earn(rules.EarnInput{
		Purchase: rules.Purchase{
			Amount: d.amount, Currency: req.Currency, StoreID: req.StoreID, TerminalID: req.TerminalID,
			OccurredAt: d.occurredAt, Items: ruleItems(d.items),
		},
		Member: ruleMember(m, prog, w.now),
		Uses:   uses.get,
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate rules for purchase %q: %w", req.ID, err)
	}
	if uses.err != nil {
		return nil, uses.err
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
	referral, err := referralBonus(w, m, ids[2:])
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
	bal, err := balanceSummary(tx, m, w.now)
	if err != nil {
		return nil, err
	}
	res := &PurchaseResult{
		ID: req.ID, MemberID: m.ID, Points: bd.Total, Breakdown: []RuleLine{},
		RulesVersion: w.live.version.Version, Balance: bal,
		Tier: TierChange{Name: m.Tier, Changed: changed},
	}
	if referral > 0 {
		res.Bonuses = []RuleLine{{Rule: "referral", Points: referral}}
	}
	for _, r := range bd.Rules {
		res.Breakdown = append(res.Breakdown, RuleLine{Rule: r.Rule, Points: r.Points})
	}
	p := &Purchase{
		ID: req.ID, MemberID: m.ID, StoreID: req.StoreID, TerminalID: req.TerminalID,
		OccurredAt: d.occurredAt, RecordedAt: w.now, Currency: req.Currency, Amount: d.amount,
		Items: d.items, Points: bd.Total, Breakdown: bd.Rules, RulesVersion: w.live.version.Version,
		EarnedAtTier: earnedAt, RequestHash: hash, Result: *res,
	}
	if err := tx.PutPurchase(p); err != nil {
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
	err = e.store.View(func(tx Tx) error {
		p, err = tx.Purchase(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, Errorf(ENOTFOUND, "purchase %q not found", id)
	}
	refunds := p.Refunds
	if refunds == nil {
		refunds = []string{}
	}
	return &PurchaseView{
		PurchaseResult: p.Result,
		Amount:         live.prog.FormatMoney(p.Amount),
		Currency:       p.Currency,
		OccurredAt:     p.OccurredAt,
		RefundedAmount: live.prog.FormatMoney(p.RefundedAmount),
		RefundedPoints: p.RefundedPoints,
		Refunds:        refunds,
	}, nil
}

func ruleItems(items []PurchaseItem) []rules.Item {
	out := make([]rules.Item, len(items))
	for i, it := range items {
		out[i] = rules.Item{SKU: it.SKU, Category: it.Category, Quantity: it.Quantity, Amount: it.Amount}
	}
	return out
}

func ruleMember(m *Member, prog *rules.Program, now time.Time) rules.Member {
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
	periods [4]string
	err     error
}

func ruleUsesReader(tx Tx, prog *rules.Program, memberID string, at time.Time) *ruleUses {
	y, mo, d := prog.ZoneDate(at)
	return &ruleUses{tx: tx, prog: prog, member: memberID, periods: [4]string{
		"all",
		fmt.Sprintf("d%04d-%02d-%02d", y, mo, d),
		fmt.Sprintf("m%04d-%02d", y, mo),
		fmt.Sprintf("y%04d", y),
	}}
}

func (u *ruleUses) get(rule string) rules.RuleUses {
	var c [4]int64
	for i, p := range u.periods {
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
	for _, r := range u.prog.Rules {
		if r.Name != rule || !r.Capped() {
			continue
		}
		for _, p := range u.periods {
			if err := u.tx.AddRuleUse(u.member, rule, p, 1); err != nil {
				return err
			}
		}
	}
	return nil
}
