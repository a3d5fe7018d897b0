package engine

import (
	"context"
	"time"
)

// PointsDay is the points that moved on one day of the program's time zone,
// each a positive number: earned (purchases, bonuses, positive
// adjustments), redeemed (redemptions and rewards, less those cancelled or
// given back), expired, and taken back by refunds and negative adjustments.
type PointsDay struct {
	Date     string `json:"date"`
	Earned   int64  `json:"earned"`
	Redeemed int64  `json:"redeemed"`
	Expired  int64  `json:"expired"`
	Deducted int64  `json:"deducted"`
}

// MaxPointsDays bounds the period PointsByDay reads.
const MaxPointsDays = 90

// PointsByDay sums the ledger per day over the last days days (today
// included), oldest first, every day listed. It reads each member's newest
// entries back to the period's start, one chunk of members per read
// transaction, so it costs the ledger of the period plus one read per
// member; it is a long read (ctx stops it).
func (e *Engine) PointsByDay(ctx context.Context, days int) ([]PointsDay, error) {
	if days < 1 || days > MaxPointsDays {
		return nil, FieldErrorf(EINVALID, "days", "must be a whole number from 1 to %d", MaxPointsDays)
	}
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	loc := live.prog.Location
	now := e.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	from := today.AddDate(0, 0, -(days - 1))
	out := make([]PointsDay, days)
	index := map[string]int{}
	for i := range out {
		out[i].Date = from.AddDate(0, 0, i).Format(dateLayout)
		index[out[i].Date] = i
	}
	const page = 200
	_, err = e.sweepMembers(ctx, func(tx Tx, members []*Member) error {
		for _, m := range members {
			if err := ctx.Err(); err != nil {
				return err
			}
			var before uint64
			for {
				entries, err := tx.Ledger(m.ID, before, page)
				if err != nil {
					return err
				}
				for _, en := range entries {
					if en.At.Before(from) {
						break
					}
					if i, ok := index[en.At.In(loc).Format(dateLayout)]; ok {
						countPoints(&out[i], en)
					}
				}
				if len(entries) < page || entries[len(entries)-1].At.Before(from) {
					break
				}
				before = entries[len(entries)-1].Seq
			}
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func countPoints(d *PointsDay, en *LedgerEntry) {
	switch en.Type {
	case LedgerEarn, LedgerBonus:
		d.Earned += en.Points
	case LedgerAdjust:
		if en.Points > 0 {
			d.Earned += en.Points
		} else {
			d.Deducted -= en.Points
		}
	case LedgerRedeem, LedgerReward, LedgerRedeemCancel, LedgerRewardRefund:
		d.Redeemed -= en.Points
	case LedgerExpire:
		d.Expired -= en.Points
	case LedgerRefund:
		d.Deducted -= en.Points
	}
}
