package engine

import (
	"context"
	"time"
)

// TransferRequest moves points from one member to another.
type TransferRequest struct {
	ID           string `json:"id"`
	FromMemberID string `json:"from_member_id"`
	ToMemberID   string `json:"to_member_id"`
	Points       int64  `json:"points"`
	Reason       string `json:"reason,omitempty"`
}

// TransferResult is the answer to a transfer.
type TransferResult struct {
	ID          string    `json:"id"`
	Points      int64     `json:"points"`
	FromBalance int64     `json:"from_balance"`
	ToBalance   int64     `json:"to_balance"`
	CreatedAt   time.Time `json:"created_at"`
}

// transferData is the data of a points.transferred event.
type transferData struct {
	ID           string `json:"transfer_id"`
	FromMemberID string `json:"from_member_id"`
	ToMemberID   string `json:"to_member_id"`
	Points       int64  `json:"points"`
}

// Transfer moves matured points from one member to another: the
// sender's spendable lots, soonest expiry first, each moved part becoming
// a lot of the receiver with the same expiry, so a gift neither extends
// nor shortens the points' life. The client id makes a retry safe.
func (e *Engine) Transfer(ctx context.Context, req TransferRequest) (res *TransferResult, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	if err := checkRecordID(req.ID); err != nil {
		return nil, false, err
	}
	if err := checkClientID("from_member_id", req.FromMemberID); err != nil {
		return nil, false, err
	}
	if err := checkClientID("to_member_id", req.ToMemberID); err != nil {
		return nil, false, err
	}
	if req.FromMemberID == req.ToMemberID {
		return nil, false, FieldErrorf(EINVALID, "to_member_id", "must differ from from_member_id")
	}
	if req.Points <= 0 || req.Points > MaxPoints {
		return nil, false, FieldErrorf(EINVALID, "points", "must be a whole number from 1 to %d", MaxPoints)
	}
	if err := checkText("reason", req.Reason, MaxTextLen); err != nil {
		return nil, false, err
	}
	hash := hashRequest(req)
	ids := newIDs(now, 2)
	err = e.store.Update(ctx, func(tx Tx) error {
		res, replayed = nil, false
		if t, err := tx.Transfer(req.ID); err != nil || t != nil {
			if err == nil {
				res, err = replay("transfer", req.ID, hash, t.RequestHash, t.Result)
				replayed = err == nil
			}
			return err
		}
		from, err := activeMember(tx, req.FromMemberID, "from_member_id")
		if err != nil {
			return err
		}
		to, err := activeMember(tx, req.ToMemberID, "to_member_id")
		if err != nil {
			return err
		}
		lots, err := tx.OpenLots(from.ID)
		if err != nil {
			return err
		}
		spend := spendOrder(lots, now)
		var available int64
		for _, l := range spend {
			available += l.Remaining
		}
		if available-from.Debt < req.Points {
			return Errorf(EINSUFFICIENT, "member %s has %d points available, fewer than the %d to transfer", from.ID, max(available-from.Debt, 0), req.Points)
		}
		if err := creditFits(to, false, req.Points); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		moved, draws, err := w.takeParts(from, spend, req.Points)
		if err != nil {
			return err
		}
		if err := w.appendEntry(from, ids[0], LedgerTransferOut, -req.Points, req.ID, req.Reason); err != nil {
			return err
		}
		if err := w.receiveLots(to, moved); err != nil {
			return err
		}
		if err := w.appendEntry(to, ids[1], LedgerTransferIn, req.Points, req.ID, req.Reason); err != nil {
			return err
		}
		if err := tx.PutMember(from); err != nil {
			return err
		}
		if err := tx.PutMember(to); err != nil {
			return err
		}
		res = &TransferResult{ID: req.ID, Points: req.Points, FromBalance: from.Points, ToBalance: to.Points, CreatedAt: now}
		if err := tx.PutTransfer(&Transfer{
			ID: req.ID, FromMemberID: from.ID, ToMemberID: to.ID, At: now, Points: req.Points, Reason: req.Reason,
			Draws: draws, RequestHash: hash, Result: *res,
		}); err != nil {
			return err
		}
		return w.emit(EventPointsTransferred, from.ID, transferData{ID: req.ID, FromMemberID: from.ID, ToMemberID: to.ID, Points: req.Points})
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

// activeMember reads a member that points may move from or to: one that
// exists and is neither blocked, merged nor erased.
func activeMember(tx Tx, id, field string) (*Member, error) {
	m, err := getMember(tx, id)
	if err != nil {
		return nil, err
	}
	if m.Status != StatusActive {
		return nil, FieldErrorf(EUNPROCESSABLE, field, "member %s is %s", m.ID, m.Status)
	}
	return m, nil
}

// takeParts debits points from lots in order (the caller checked they
// hold enough) and returns the parts taken as new lots, not yet stored
// nor owned, each with the expiry and maturity of the lot it came from.
func (w writer) takeParts(m *Member, lots []*Lot, points int64) ([]*Lot, []LotDraw, error) {
	draws, err := w.debit(m, points, lots)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]*Lot, len(lots))
	for _, l := range lots {
		byID[l.ID] = l
	}
	parts := make([]*Lot, len(draws))
	for i, d := range draws {
		l := byID[d.LotID]
		parts[i] = &Lot{
			Points: d.Points, Remaining: d.Points, EarnedAt: l.EarnedAt, AvailableAt: l.AvailableAt,
			ExpiresAt: l.ExpiresAt, Ref: l.Ref,
		}
	}
	return parts, draws, nil
}

// receiveLots gives m the lots parts, under new ids: they repay m's debt
// first, as any credit does, and the rest keep their own expiry.
func (w writer) receiveLots(m *Member, parts []*Lot) error {
	ids := newIDs(w.now, len(parts))
	for i, p := range parts {
		m.Points += p.Remaining
		repaid := min(m.Debt, p.Remaining)
		m.Debt -= repaid
		if p.Remaining -= repaid; p.Remaining == 0 {
			continue
		}
		p.Points = p.Remaining
		p.ID, p.MemberID = ids[i], m.ID
		if err := w.tx.PutLot(p); err != nil {
			return err
		}
	}
	return nil
}
