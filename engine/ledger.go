package engine

import (
	"context"
	"strconv"
	"time"
)

// writer applies point movements inside one transaction, keeping the
// member's balance, lots, debt and ledger in step.
type writer struct {
	tx   Tx
	now  time.Time
	live *liveRules
}

// creditSpec describes points coming in.
type creditSpec struct {
	entryID, lotID string
	typ            string
	points         int64
	at             time.Time // when the points were earned; expiry counts from here
	ref, note      string
}

// credit adds points: they repay any debt first and the rest becomes a lot
// that expires and matures as the rules say. Callers check creditFits
// before their first write; the check here keeps a missed one from
// wrapping a total.
func (w writer) credit(m *Member, c creditSpec) error {
	if c.points <= 0 {
		return nil
	}
	if err := creditFits(m, earns(c.typ), c.points); err != nil {
		return err
	}
	repaid := min(m.Debt, c.points)
	m.Debt -= repaid
	if rest := c.points - repaid; rest > 0 {
		prog := w.live.prog
		lot := &Lot{
			ID: c.lotID, MemberID: m.ID, Points: rest, Remaining: rest,
			EarnedAt: c.at, AvailableAt: prog.AvailableAt(c.at), ExpiresAt: prog.ExpiresAt(c.at),
			Ref: c.ref,
		}
		if err := w.tx.PutLot(lot); err != nil {
			return err
		}
	}
	m.Points += c.points
	if earns(c.typ) {
		m.LifetimeEarned += c.points
	}
	return w.appendEntry(m, c.entryID, c.typ, c.points, c.ref, c.note)
}

// earns tells whether credits of a ledger type count as points earned.
func earns(typ string) bool { return typ == LedgerEarn || typ == LedgerBonus }

// appendEntry records a change of m.Points that the caller already made.
func (w writer) appendEntry(m *Member, id, typ string, points int64, ref, note string) error {
	m.LedgerSeq++
	return w.tx.AppendLedger(&LedgerEntry{
		ID: id, MemberID: m.ID, Seq: m.LedgerSeq, Type: typ, Points: points,
		BalanceAfter: m.Points, At: w.now, Ref: ref, RulesVersion: w.live.version.Version, Note: note,
	})
}

// spendable tells whether a lot's points can be spent or shown as available
// at now: matured and not yet expired. Expired lots stay in the store until
// the expire-points job writes them off, but they are never spent.
func spendable(l *Lot, now time.Time) bool {
	return !l.AvailableAt.After(now) && !expired(l, now)
}

func expired(l *Lot, now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

// balanceSummary computes available and pending points from the open lots.
func balanceSummary(tx Tx, m *Member, now time.Time) (BalanceSummary, error) {
	lots, err := openLotBalances(tx, m.ID)
	if err != nil {
		return BalanceSummary{}, err
	}
	return summarize(lots, m.Debt, now), nil
}

// LedgerView is one ledger entry as the API shows it.
type LedgerView struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Points       int64     `json:"points"`
	BalanceAfter int64     `json:"balance_after"`
	At           time.Time `json:"at"`
	Ref          string    `json:"ref"`
	RulesVersion int       `json:"rules_version"`
	Note         string    `json:"note"`
}

// LedgerPage is a page of a member's ledger, newest first.
type LedgerPage struct {
	Entries    []LedgerView `json:"entries"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// Page bounds for lists.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// PageSize validates a client's limit; 0 means the default.
func PageSize(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, FieldErrorf(EINVALID, "limit", "must be between 1 and %d", MaxPageSize)
	}
	return limit, nil
}

// Ledger returns a page of a member's ledger, newest first. The cursor is
// the one a previous page returned.
func (e *Engine) Ledger(ctx context.Context, memberID, cursor string, limit int) (*LedgerPage, error) {
	limit, err := PageSize(limit)
	if err != nil {
		return nil, err
	}
	var before uint64
	if cursor != "" {
		before, err = strconv.ParseUint(cursor, 10, 64)
		if err != nil || before == 0 {
			return nil, FieldErrorf(EINVALID, "cursor", "is not a cursor this API returned")
		}
	}
	page := &LedgerPage{Entries: []LedgerView{}}
	err = e.store.View(ctx, func(tx Tx) error {
		if _, err := getMember(tx, memberID); err != nil {
			return err
		}
		entries, err := tx.Ledger(memberID, before, limit+1)
		if err != nil {
			return err
		}
		if len(entries) > limit {
			entries = entries[:limit]
			page.NextCursor = strconv.FormatUint(entries[limit-1].Seq, 10)
		}
		for _, en := range entries {
			page.Entries = append(page.Entries, LedgerView{
				ID: en.ID, Type: en.Type, Points: en.Points, BalanceAfter: en.BalanceAfter,
				At: en.At, Ref: en.Ref, RulesVersion: en.RulesVersion, Note: en.Note,
			})
		}
		return nil
	})
	return page, err
}

// debit takes points out of the given lots in order; what they cannot cover
// becomes debt, which later credits repay. Callers that may not overdraw
// check the available balance first, and every caller checks debitFits
// before its first write.
func (w writer) debit(m *Member, points int64, lots []*Lot) ([]LotDraw, error) {
	if err := debitFits(m, points); err != nil {
		return nil, err
	}
	left := points
	var draws []LotDraw
	for _, l := range lots {
		if left == 0 {
			break
		}
		take := min(l.Remaining, left)
		if take <= 0 {
			continue
		}
		l.Remaining -= take
		left -= take
		if err := w.tx.PutLot(l); err != nil {
			return nil, err
		}
		draws = append(draws, LotDraw{LotID: l.ID, Points: take})
	}
	m.Debt += left
	m.Points -= points
	return draws, nil
}

// spendOrder returns the lots a redemption may spend, soonest expiry first:
// matured and not expired.
func spendOrder(lots []*Lot, now time.Time) []*Lot {
	var out []*Lot
	for _, l := range lots {
		if spendable(l, now) {
			out = append(out, l)
		}
	}
	return out
}

// takeBackOrder orders lots for points taken back without the member's say
// (refunds, negative adjustments): first the lots of the reference itself,
// then pending points, then spendable ones soonest expiry first, and last
// expired ones not yet written off, so the member never loses more than the
// points at stake.
func takeBackOrder(lots []*Lot, ref string, now time.Time) []*Lot {
	rank := func(l *Lot) int {
		switch {
		case ref != "" && l.Ref == ref:
			return 0
		case expired(l, now):
			return 3
		case l.AvailableAt.After(now):
			return 1
		}
		return 2
	}
	out := make([]*Lot, 0, len(lots))
	for r := 0; r <= 3; r++ {
		for _, l := range lots {
			if rank(l) == r {
				out = append(out, l)
			}
		}
	}
	return out
}
