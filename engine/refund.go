package engine

import (
	"context"
	"fmt"

	"github.com/loyaltyhq/loyalty/rules"
)

// RefundRequest refunds (part of) a purchase, by amount or by lines. With
// neither, it refunds what is left.
type RefundRequest struct {
	ID       string        `json:"id"`
	Currency string        `json:"currency,omitempty"`
	Amount   string        `json:"amount,omitempty"`
	Items    []ItemRequest `json:"items,omitempty"`
}

// refundPlan is what a refund changes on its purchase.
type refundPlan struct {
	amount int64
	qty    []int64 // per purchase line, refunded now
	lineAm []int64
	byLine bool
}

// Refund takes back the points a purchase earned, in proportion to what is
// refunded: points of per-item rules exactly for the lines named, other
// points in proportion to the amount. Cumulative rounding means the refunds
// of one purchase never take back more than it earned and a full refund
// takes back exactly all of it.
func (e *Engine) Refund(ctx context.Context, purchaseID string, req RefundRequest) (res *RefundResult, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	prog := live.prog
	if err := checkRecordID(req.ID); err != nil {
		return nil, false, err
	}
	if req.Currency != "" && req.Currency != prog.Currency {
		return nil, false, FieldErrorf(EUNPROCESSABLE, "currency", "the program runs in %s, not %q", prog.Currency, req.Currency)
	}
	if req.Amount != "" && len(req.Items) > 0 {
		return nil, false, Errorf(EINVALID, "give amount or items, not both")
	}
	var amount int64
	if req.Amount != "" {
		if amount, err = parseMoney(prog, "amount", req.Amount, MaxAmount); err != nil {
			return nil, false, err
		}
		if amount == 0 {
			return nil, false, FieldErrorf(EINVALID, "amount", "must be more than zero")
		}
	}
	if len(req.Items) > MaxItems {
		return nil, false, FieldErrorf(EINVALID, "items", "at most %d items", MaxItems)
	}
	hash := hashRequest(struct {
		Purchase string
		Req      RefundRequest
	}{purchaseID, req})
	ids := newIDs(now, 3)
	err = e.store.Update(ctx, func(tx Tx) error {
		res, replayed = nil, false
		if r, err := tx.Refund(req.ID); err != nil || r != nil {
			if err == nil {
				res, err = replay("refund", req.ID, hash, r.RequestHash, r.Result)
				replayed = err == nil
			}
			return err
		}
		p, err := tx.Purchase(purchaseID)
		if err != nil {
			return err
		}
		if p == nil {
			return Errorf(ENOTFOUND, "purchase %q not found", purchaseID)
		}
		plan, err := planRefund(prog, p, amount, req.Items)
		if err != nil {
			return err
		}
		res, err = e.applyRefund(writer{tx: tx, now: now, live: live}, p, plan, req, hash, ids)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

func planRefund(prog *rules.Program, p *Purchase, amount int64, items []ItemRequest) (refundPlan, error) {
	left := p.Amount - p.RefundedAmount
	if left == 0 {
		return refundPlan{}, Errorf(EUNPROCESSABLE, "purchase %q is already fully refunded", p.ID)
	}
	plan := refundPlan{qty: make([]int64, len(p.Items)), lineAm: make([]int64, len(p.Items))}
	if len(items) == 0 {
		if amount == 0 {
			amount = left
		}
		if amount > left {
			return plan, FieldErrorf(EUNPROCESSABLE, "amount", "%s is more than the %s left to refund", prog.FormatMoney(amount), prog.FormatMoney(left))
		}
		plan.amount = amount
		return plan, nil
	}
	plan.byLine = true
	for i, it := range items {
		field := fmt.Sprintf("items[%d]", i)
		if it.Quantity <= 0 {
			return plan, FieldErrorf(EINVALID, field+".quantity", "must be a whole number of at least 1")
		}
		line := -1
		for j, pi := range p.Items {
			if pi.SKU == it.SKU && refundedQty(p, j)+plan.qty[j] < pi.Quantity {
				line = j
				break
			}
		}
		if line < 0 {
			return plan, FieldErrorf(EUNPROCESSABLE, field+".sku", "the purchase has no line %q left to refund", it.SKU)
		}
		pi := p.Items[line]
		qtyLeft := pi.Quantity - refundedQty(p, line) - plan.qty[line]
		if it.Quantity > qtyLeft {
			return plan, FieldErrorf(EUNPROCESSABLE, field+".quantity", "only %d of %q left to refund", qtyLeft, it.SKU)
		}
		amLeft := pi.Amount - refundedLineAmt(p, line) - plan.lineAm[line]
		var am int64
		switch {
		case it.Amount != "":
			v, err := parseMoney(prog, field+".amount", it.Amount, MaxAmount)
			if err != nil {
				return plan, err
			}
			am = v
		case it.Quantity == qtyLeft:
			am = amLeft
		default:
			am = mulDiv(pi.Amount, it.Quantity, pi.Quantity)
		}
		if am > amLeft {
			return plan, FieldErrorf(EUNPROCESSABLE, field+".amount", "%s is more than the %s left on the line", prog.FormatMoney(am), prog.FormatMoney(amLeft))
		}
		plan.qty[line] += it.Quantity
		plan.lineAm[line] += am
		plan.amount += am
	}
	if plan.amount > left {
		return plan, FieldErrorf(EUNPROCESSABLE, "items", "%s is more than the %s left to refund", prog.FormatMoney(plan.amount), prog.FormatMoney(left))
	}
	return plan, nil
}

func refundedQty(p *Purchase, line int) int64 {
	if line < len(p.RefundedQty) {
		return p.RefundedQty[line]
	}
	return 0
}

func refundedLineAmt(p *Purchase, line int) int64 {
	if line < len(p.RefundedLineAmt) {
		return p.RefundedLineAmt[line]
	}
	return 0
}

// pointsToTakeBack works out, per rule, what this refund takes back, and
// records it on the purchase.
func pointsToTakeBack(p *Purchase, plan refundPlan) int64 {
	if p.TakenByRule == nil {
		p.TakenByRule = map[string]int64{}
	}
	if p.TakenByLine == nil {
		p.TakenByLine = map[string][]int64{}
	}
	if len(p.RefundedQty) < len(p.Items) {
		p.RefundedQty = append(p.RefundedQty, make([]int64, len(p.Items)-len(p.RefundedQty))...)
		p.RefundedLineAmt = append(p.RefundedLineAmt, make([]int64, len(p.Items)-len(p.RefundedLineAmt))...)
	}
	cumAmount := p.RefundedAmount + plan.amount
	full := cumAmount == p.Amount
	var total int64
	for _, r := range p.Breakdown {
		taken := p.TakenByRule[r.Rule]
		var target int64
		switch {
		case full:
			target = r.Points
		case plan.byLine && r.ItemPoints != nil:
			lines := p.TakenByLine[r.Rule]
			if lines == nil {
				lines = make([]int64, len(p.Items))
			}
			target = taken
			for i, q := range plan.qty {
				if q == 0 || p.Items[i].Quantity == 0 {
					continue
				}
				lineTarget := mulDiv(r.ItemPoints[i], p.RefundedQty[i]+q, p.Items[i].Quantity)
				if d := lineTarget - lines[i]; d > 0 {
					target += d
					lines[i] = lineTarget
				}
			}
			p.TakenByLine[r.Rule] = lines
		case p.Amount > 0:
			target = mulDiv(r.Points, cumAmount, p.Amount)
		}
		delta := min(max(target-taken, 0), r.Points-taken)
		p.TakenByRule[r.Rule] = taken + delta
		total += delta
	}
	for i := range plan.qty {
		p.RefundedQty[i] += plan.qty[i]
		p.RefundedLineAmt[i] += plan.lineAm[i]
	}
	return total
}

func (e *Engine) applyRefund(w writer, p *Purchase, plan refundPlan, req RefundRequest, hash string, ids []string) (*RefundResult, error) {
	tx := w.tx
	m, err := getMember(tx, p.MemberID)
	if err != nil {
		return nil, err
	}
	// A merged member's purchase is the survivor's now, with its lots
	// (under the same ids and refs) and its tier-metric entries.
	if m, err = survivor(tx, m); err != nil {
		return nil, err
	}
	wasFull := p.RefundedAmount == p.Amount
	points := pointsToTakeBack(p, plan)
	p.RefundedAmount += plan.amount
	p.RefundedPoints += points
	p.Refunds = append(p.Refunds, req.ID)
	full := !wasFull && p.RefundedAmount == p.Amount

	// Every refusal comes before the first write (Store.Update).
	grant, referrer, err := referralToTakeBack(tx, p, full)
	if err != nil {
		return nil, err
	}
	taken := []int64{points}
	if grant != nil {
		taken = append(taken, grant.RefereePoints)
	}
	if err := debitFits(m, taken...); err != nil {
		return nil, err
	}

	if points > 0 {
		lots, err := tx.OpenLots(m.ID)
		if err != nil {
			return nil, err
		}
		if _, err := w.debit(m, points, takeBackOrder(lots, p.ID, w.now)); err != nil {
			return nil, err
		}
		m.LifetimeEarned -= points
		note := fmt.Sprintf("refund of %s on purchase %s", w.live.prog.FormatMoney(plan.amount), p.ID)
		if err := w.appendEntry(m, ids[0], LedgerRefund, -points, req.ID, note); err != nil {
			return nil, err
		}
	}
	if grant != nil {
		if err := takeBackReferral(w, m, referrer, grant, req.ID, p.ID, ids[1:]); err != nil {
			return nil, err
		}
	}
	m.LifetimeSpend -= plan.amount
	m.RefundedSpend += plan.amount
	visits := int64(0)
	if full {
		visits = -1
	}
	if err := tx.AddMetric(m.ID, MetricEntry{At: p.OccurredAt, Spend: -plan.amount, Points: -points, Visits: visits}); err != nil {
		return nil, err
	}
	if err := tx.PutMember(m); err != nil {
		return nil, err
	}
	if err := tx.PutPurchase(p); err != nil {
		return nil, err
	}
	bal, err := balanceSummary(tx, m, w.now)
	if err != nil {
		return nil, err
	}
	res := &RefundResult{
		ID: req.ID, PurchaseID: p.ID, Amount: w.live.prog.FormatMoney(plan.amount), Points: -points, Balance: bal,
	}
	if grant != nil && grant.RefereePoints > 0 {
		res.Bonuses = []RuleLine{{Rule: "referral", Points: -grant.RefereePoints}}
	}
	items := make([]PurchaseItem, 0)
	for i, q := range plan.qty {
		if q > 0 {
			items = append(items, PurchaseItem{SKU: p.Items[i].SKU, Category: p.Items[i].Category, Quantity: q, Amount: plan.lineAm[i]})
		}
	}
	err = tx.PutRefund(&Refund{
		ID: req.ID, PurchaseID: p.ID, MemberID: m.ID, At: w.now, Amount: plan.amount, Items: items,
		Points: -points, RequestHash: hash, Result: *res,
	})
	if err != nil {
		return nil, err
	}
	return res, w.emit(EventRefundCreated, m.ID, refundEventData{
		RefundID: req.ID, PurchaseID: p.ID, MemberID: m.ID, Amount: res.Amount, Points: -points, Balance: bal,
	})
}
