package engine

import (
	"context"
	"fmt"
	"time"
)

// RedemptionRequest spends points on a reward.
type RedemptionRequest struct {
	ID     string `json:"id"`
	Points int64  `json:"points"`
	Reward string `json:"reward,omitempty"`
}

// Redeem spends a member's available points, soonest-expiring first. It is
// refused above the available balance (which a debt lowers, so a negative
// balance refuses every redemption) and for blocked members. Every
// refusal comes before the first write, so it costs the writes committed
// with it nothing (Store.Update).
//
// The checks are not made first in a read transaction, outside the write
// lock, though they could be: a refusal answered from one comes back ten
// times sooner, and clients sending refused redemptions in a loop then
// took the CPU from the tills (docs/PERFORMANCE.md). Checked in the write,
// a refusal is answered with its commit, at the pace of the writes.
func (e *Engine) Redeem(ctx context.Context, memberID string, req RedemptionRequest) (res *RedemptionResult, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	if err := checkRecordID(req.ID); err != nil {
		return nil, false, err
	}
	if req.Points <= 0 || req.Points > MaxPoints {
		return nil, false, FieldErrorf(EINVALID, "points", "must be a whole number from 1 to %d", MaxPoints)
	}
	if err := checkText("reward", req.Reward, MaxTextLen); err != nil {
		return nil, false, err
	}
	hash := hashRequest(struct {
		Member string
		Req    RedemptionRequest
	}{memberID, req})
	ids := newIDs(now, 1)
	err = e.store.Update(ctx, func(tx Tx) error {
		res, replayed = nil, false
		if r, err := tx.Redemption(req.ID); err != nil || r != nil {
			if err == nil {
				res, err = replay("redemption", req.ID, hash, r.RequestHash, r.Result)
				replayed = err == nil
			}
			return err
		}
		m, err := getMember(tx, memberID)
		if err != nil {
			return err
		}
		if m.Status != StatusActive {
			return Errorf(EUNPROCESSABLE, "member %q is %s", m.ID, m.Status)
		}
		if err := checkSpend(tx, m, req.Points, now); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		draws, err := w.spend(m, req.Points)
		if err != nil {
			return err
		}
		note := req.Reward
		if err := w.appendEntry(m, ids[0], LedgerRedeem, -req.Points, req.ID, note); err != nil {
			return err
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		bal, err := balanceSummary(tx, m, now)
		if err != nil {
			return err
		}
		res = &RedemptionResult{ID: req.ID, Points: -req.Points, Reward: req.Reward, Balance: bal}
		if err := tx.PutRedemption(&Redemption{
			ID: req.ID, MemberID: m.ID, At: now, Points: req.Points, Reward: req.Reward,
			Draws: draws, RequestHash: hash, Result: *res,
		}); err != nil {
			return err
		}
		return w.emit(EventRedemptionCreated, m.ID, redemptionEventData{
			RedemptionID: req.ID, MemberID: m.ID, Points: -req.Points, Reward: req.Reward, Balance: bal,
		})
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

// CancelRedemption gives a redemption's points back to the lots they came
// from, with their original expiry; points of lots that have expired since
// leave at the next expire-points run. A debt is repaid first. Cancelling
// twice returns the same answer.
func (e *Engine) CancelRedemption(ctx context.Context, id string) (*RedemptionResult, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	ids := newIDs(now, 1)
	var res *RedemptionResult
	err = e.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Redemption(id)
		if err != nil {
			return err
		}
		if r == nil {
			return Errorf(ENOTFOUND, "redemption %q not found", id)
		}
		m, err := getMember(tx, r.MemberID)
		if err != nil {
			return err
		}
		// A merged member's lots are the survivor's, under the same ids.
		if m, err = survivor(tx, m); err != nil {
			return err
		}
		if r.Cancelled {
			bal, err := balanceSummary(tx, m, now)
			res = &RedemptionResult{ID: r.ID, Points: r.Points, Reward: r.Reward, Cancelled: true, Balance: bal}
			return err
		}
		if err := checkGiveBack(m, r.Points); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		if err := w.giveBack(m, r.Points, r.Draws, "redemption "+r.ID); err != nil {
			return err
		}
		if err := w.appendEntry(m, ids[0], LedgerRedeemCancel, r.Points, r.ID, "cancelled: "+r.Reward); err != nil {
			return err
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		r.Cancelled, r.CancelledAt = true, now
		if err := tx.PutRedemption(r); err != nil {
			return err
		}
		bal, err := balanceSummary(tx, m, now)
		if err != nil {
			return err
		}
		res = &RedemptionResult{ID: r.ID, Points: r.Points, Reward: r.Reward, Cancelled: true, Balance: bal}
		return w.emit(EventRedemptionCancelled, m.ID, redemptionEventData{
			RedemptionID: r.ID, MemberID: m.ID, Points: r.Points, Reward: r.Reward, Balance: bal,
		})
	})
	return res, err
}

// checkSpend refuses to spend points of m's at now: more than the
// available balance, or past the totals of limits.go. It writes nothing,
// so spenders call it before their first write.
func checkSpend(tx Tx, m *Member, points int64, now time.Time) error {
	bal, err := balanceSummary(tx, m, now)
	if err != nil {
		return err
	}
	if points > bal.Available {
		return &Error{Code: EINSUFFICIENT, Field: "points", Message: fmt.Sprintf("points: %d available, %d asked", max(bal.Available, 0), points)}
	}
	if !withinTotal(m.PointsRedeemed, points) {
		return errTotal(m, "the points redeemed")
	}
	return debitFits(m, points)
}

// spend takes points m may spend (checkSpend) from the lots that expire
// soonest, and returns what it took from each, for giveBack.
func (w writer) spend(m *Member, points int64) ([]LotDraw, error) {
	lots, err := w.tx.OpenLots(m.ID)
	if err != nil {
		return nil, err
	}
	draws, err := w.debit(m, points, spendOrder(lots, w.now))
	if err != nil {
		return nil, err
	}
	m.PointsRedeemed += points
	return draws, nil
}

// checkGiveBack refuses to give points back to m past the largest
// balance; it writes nothing.
func checkGiveBack(m *Member, points int64) error {
	if !withinTotal(m.Points, points) {
		return errTotal(m, "the balance")
	}
	return nil
}

// giveBack undoes a spend: the points go back to the lots they came from,
// with their original expiry, a debt being repaid first. Points of lots
// that have expired since leave at the next expire-points run. what names
// the spending in an error about a missing lot.
func (w writer) giveBack(m *Member, points int64, draws []LotDraw, what string) error {
	repay := min(m.Debt, points)
	m.Debt -= repay
	for _, d := range draws {
		back := d.Points
		if repay > 0 {
			used := min(repay, back)
			repay -= used
			back -= used
		}
		if back == 0 {
			continue
		}
		l, err := w.tx.Lot(m.ID, d.LotID)
		if err != nil {
			return err
		}
		if l == nil {
			return fmt.Errorf("%s draws from missing lot %s", what, d.LotID)
		}
		l.Remaining += back
		if err := w.tx.PutLot(l); err != nil {
			return err
		}
	}
	m.Points += points
	m.PointsRedeemed -= points
	return nil
}
