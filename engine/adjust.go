package engine

import (
	"context"
)

// AdjustmentRequest is an operator's manual change of a member's points.
type AdjustmentRequest struct {
	ID     string `json:"id"`
	Points int64  `json:"points"`
	Reason string `json:"reason"`
}

// Adjust credits or debits points by hand, with a reason that the ledger
// shows. Positive adjustments become lots that expire like earned points;
// negative ones take points back like a refund and may leave a debt.
func (e *Engine) Adjust(ctx context.Context, memberID, by string, req AdjustmentRequest) (res *AdjustmentResult, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	if err := checkRecordID(req.ID); err != nil {
		return nil, false, err
	}
	if req.Points == 0 || req.Points > MaxPoints || req.Points < -MaxPoints {
		return nil, false, FieldErrorf(EINVALID, "points", "must be a whole number from %d to %d, not zero", -MaxPoints, MaxPoints)
	}
	if req.Reason == "" {
		return nil, false, FieldErrorf(EINVALID, "reason", "is required")
	}
	if err := checkText("reason", req.Reason, MaxTextLen); err != nil {
		return nil, false, err
	}
	hash := hashRequest(struct {
		Member string
		Req    AdjustmentRequest
	}{memberID, req})
	ids := newIDs(now, 2)
	err = e.store.Update(ctx, func(tx Tx) error {
		res, replayed = nil, false
		if a, err := tx.Adjustment(req.ID); err != nil || a != nil {
			if err == nil {
				res, err = replay("adjustment", req.ID, hash, a.RequestHash, a.Result)
				replayed = err == nil
			}
			return err
		}
		m, err := getMember(tx, memberID)
		if err != nil {
			return err
		}
		if req.Points > 0 {
			err = creditFits(m, false, req.Points)
		} else {
			err = debitFits(m, -req.Points)
		}
		if err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		if req.Points > 0 {
			err = w.credit(m, creditSpec{
				entryID: ids[0], lotID: ids[1], typ: LedgerAdjust, points: req.Points,
				at: now, ref: req.ID, note: req.Reason,
			})
		} else {
			err = e.debitAdjustment(w, m, req, ids[0])
		}
		if err != nil {
			return err
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		bal, err := balanceSummary(tx, m, now)
		if err != nil {
			return err
		}
		res = &AdjustmentResult{ID: req.ID, Points: req.Points, Reason: req.Reason, Balance: bal}
		if err := tx.PutAdjustment(&Adjustment{
			ID: req.ID, MemberID: m.ID, At: now, Points: req.Points, Reason: req.Reason, By: by,
			RequestHash: hash, Result: *res,
		}); err != nil {
			return err
		}
		return w.emit(EventPointsAdjusted, m.ID, adjustedEventData{
			AdjustmentID: req.ID, MemberID: m.ID, Points: req.Points, Reason: req.Reason, By: by, Balance: bal,
		})
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

func (e *Engine) debitAdjustment(w writer, m *Member, req AdjustmentRequest, entryID string) error {
	lots, err := w.tx.OpenLots(m.ID)
	if err != nil {
		return err
	}
	if _, err := w.debit(m, -req.Points, takeBackOrder(lots, "", w.now)); err != nil {
		return err
	}
	return w.appendEntry(m, entryID, LedgerAdjust, req.Points, req.ID, req.Reason)
}
