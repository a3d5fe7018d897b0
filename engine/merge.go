package engine

import (
	"context"
	"time"
)

// MergeRequest names the member to merge into the one of the path.
type MergeRequest struct {
	From string `json:"from"`
}

// mergedData is the data of a member.merged event.
type mergedData struct {
	MemberID    string `json:"member_id"`
	MergedID    string `json:"merged_id"`
	PointsMoved int64  `json:"points_moved"`
}

// maxMergeHops bounds how far survivor follows merged members: a chain
// longer than this was not made by Merge, which merges only into a member
// that is not merged.
const maxMergeHops = 64

// survivor returns the member m was merged into, following a chain of
// merges, or m itself when it is not merged.
func survivor(tx Tx, m *Member) (*Member, error) {
	for range maxMergeHops {
		if m == nil || m.Status != StatusMerged {
			return m, nil
		}
		next, err := getMember(tx, m.MergedInto)
		if err != nil {
			return nil, err
		}
		m = next
	}
	return nil, Errorf(EINTERNAL, "member %s: merged more than %d times over", m.ID, maxMergeHops)
}

// Merge merges the member from into the member id, the survivor: from's
// lots move with their expiry dates (a merge_out and a merge_in entry show
// the move), and so do its debt, coupons and tier-metric history; its
// lifetime totals add to the survivor's, who keeps the higher of the two
// tiers and is promoted further if the combined history qualifies. from
// becomes merged, and its card, email and phone find the survivor.
// Merging again what is already merged answers the survivor as it is.
func (e *Engine) Merge(ctx context.Context, id string, req MergeRequest) (*MemberView, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	if err := checkClientID("from", req.From); err != nil {
		return nil, err
	}
	if req.From == id {
		return nil, FieldErrorf(EINVALID, "from", "is the member itself: a member is not merged into itself")
	}
	ids := newIDs(now, 2)
	var view *MemberView
	err = e.store.Update(ctx, func(tx Tx) error {
		surv, err := getMember(tx, id)
		if err != nil {
			return err
		}
		other, err := getMember(tx, req.From)
		if err != nil {
			return err
		}
		if other.Status == StatusMerged && other.MergedInto == surv.ID && surv.Status != StatusMerged {
			view, err = memberView(tx, live, surv, now)
			return err
		}
		for _, m := range []*Member{surv, other} {
			if m.Status == StatusMerged || m.Status == StatusErased {
				return Errorf(EUNPROCESSABLE, "member %s is %s: only members that are not merged or erased merge", m.ID, m.Status)
			}
		}
		if err := mergeFits(surv, other); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		moved, err := w.moveLots(other, surv)
		if err != nil {
			return err
		}
		if err := w.appendEntry(other, ids[0], LedgerMergeOut, -moved, surv.ID, "merged into "+surv.ID); err != nil {
			return err
		}
		if err := w.appendEntry(surv, ids[1], LedgerMergeIn, moved, other.ID, "merged from "+other.ID); err != nil {
			return err
		}
		if err := mergeHistory(tx, live, surv, other, now); err != nil {
			return err
		}
		coupons, err := tx.MemberCoupons(other.ID)
		if err != nil {
			return err
		}
		for _, c := range coupons {
			c.MemberID = surv.ID
			if err := tx.PutCoupon(c); err != nil {
				return err
			}
		}
		other.Status, other.MergedInto, other.Analytics = StatusMerged, surv.ID, nil
		if err := tx.PutMember(other); err != nil {
			return err
		}
		if err := tx.PutMember(surv); err != nil {
			return err
		}
		if err := w.emit(EventMemberMerged, surv.ID, mergedData{MemberID: surv.ID, MergedID: other.ID, PointsMoved: moved}); err != nil {
			return err
		}
		view, err = memberView(tx, live, surv, now)
		return err
	})
	return view, err
}

// mergeFits refuses a merge whose sums would not fit the limits, before
// anything is written.
func mergeFits(surv, other *Member) error {
	for _, f := range []struct {
		what string
		a, b int64
	}{
		{"the balance", surv.Points, other.Points}, {"the debt", surv.Debt, other.Debt},
		{"the points earned", surv.LifetimeEarned, other.LifetimeEarned},
		{"the lifetime spend", surv.LifetimeSpend, other.LifetimeSpend},
		{"the refunded spend", surv.RefundedSpend, other.RefundedSpend},
		{"the points redeemed", surv.PointsRedeemed, other.PointsRedeemed},
		{"the purchase count", surv.PurchaseCount, other.PurchaseCount},
	} {
		if !withinTotal(f.a, f.b) {
			return errTotal(surv, f.what)
		}
	}
	if !withinTotal(surv.LifetimeSpend+other.LifetimeSpend, surv.RefundedSpend+other.RefundedSpend) {
		return errTotal(surv, "the lifetime and refunded spend")
	}
	return nil
}

// moveLots gives to every lot of from, spent ones too, under the same id
// and with the same expiry, and empties from's: a coupon or redemption
// that drew from a lot gives its points back to the lot of that id, which
// is now to's. from's debt moves with its points, then to's open lots
// repay what to owes. It returns the balance moved.
func (w writer) moveLots(from, to *Member) (int64, error) {
	lots, err := w.tx.Lots(from.ID)
	if err != nil {
		return 0, err
	}
	for _, l := range lots {
		c := *l
		c.MemberID = to.ID
		if err := w.tx.PutLot(&c); err != nil {
			return 0, err
		}
		if l.Remaining != 0 {
			l.Remaining = 0
			if err := w.tx.PutLot(l); err != nil {
				return 0, err
			}
		}
	}
	moved := from.Points
	to.Points += moved
	to.Debt += from.Debt
	from.Points, from.Debt = 0, 0
	return moved, w.settleDebt(to)
}

// settleDebt takes what m owes from m's open lots, in the order refunds
// take points back, so that a member never holds both debt and points.
// The balance (remaining points less debt) stays as it is.
func (w writer) settleDebt(m *Member) error {
	if m.Debt == 0 {
		return nil
	}
	lots, err := w.tx.OpenLots(m.ID)
	if err != nil {
		return err
	}
	for _, l := range takeBackOrder(lots, "", w.now) {
		if m.Debt == 0 {
			break
		}
		take := min(l.Remaining, m.Debt)
		l.Remaining -= take
		m.Debt -= take
		if err := w.tx.PutLot(l); err != nil {
			return err
		}
	}
	return nil
}

// mergeHistory adds other's purchases to surv's record: the tier-metric
// entries, at their own dates, so that they leave the window on time; the
// lifetime totals; and the tier, surv keeping the higher one (with its
// date) and then promoted if the combined metric qualifies for more.
func mergeHistory(tx Tx, live *liveRules, surv, other *Member, now time.Time) error {
	entries, err := tx.Metrics(other.ID, time.Time{})
	if err != nil {
		return err
	}
	for _, en := range entries {
		if err := tx.AddMetric(surv.ID, en); err != nil {
			return err
		}
	}
	surv.LifetimeEarned += other.LifetimeEarned
	surv.LifetimeSpend += other.LifetimeSpend
	surv.RefundedSpend += other.RefundedSpend
	surv.PointsRedeemed += other.PointsRedeemed
	surv.PurchaseCount += other.PurchaseCount
	if other.LastPurchaseAt.After(surv.LastPurchaseAt) {
		surv.LastPurchaseAt = other.LastPurchaseAt
	}
	tiers := live.prog.Tiers
	if tiers.Index(other.Tier) > tiers.Index(surv.Tier) {
		surv.Tier, surv.TierSince, surv.TierByPromotion = other.Tier, other.TierSince, other.TierByPromotion
	}
	_, err = promote(tx, live.prog, surv, now)
	return err
}
