package engine

import (
	"context"
	"time"
)

// Balance is a member's points, what expires when, and where they stand in
// the tiers.
type Balance struct {
	Available      int64      `json:"available"`
	Pending        int64      `json:"pending"`
	LifetimeEarned int64      `json:"lifetime_earned"`
	Expiring       []Expiring `json:"expiring"`
	Tier           TierStatus `json:"tier"`
}

// Expiring is points that expire at the end of a day (program zone).
type Expiring struct {
	Points int64  `json:"points"`
	On     string `json:"on"`
}

// maxExpiring bounds the expiry dates a balance lists.
const maxExpiring = 5

// Balance returns a member's balance.
func (e *Engine) Balance(ctx context.Context, memberID string) (*Balance, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	var b *Balance
	err = e.store.View(ctx, func(tx Tx) error {
		m, err := getMember(tx, memberID)
		if err != nil {
			return err
		}
		lots, err := openLotBalances(tx, m.ID)
		if err != nil {
			return err
		}
		sum, expiring := summarize(lots, m.Debt, now), expiringLots(lots, live, now)
		ts, err := tierStatus(tx, live.prog, m, now)
		if err != nil {
			return err
		}
		b = &Balance{
			Available: sum.Available, Pending: sum.Pending, LifetimeEarned: m.LifetimeEarned,
			Expiring: expiring, Tier: ts,
		}
		return nil
	})
	return b, err
}

// expiringLots groups the member's live open lots by the last day they can
// be spent, soonest first.
func expiringLots(lots []LotBalance, live *liveRules, now time.Time) []Expiring {
	out := []Expiring{}
	for _, l := range lots {
		if l.ExpiresAt.IsZero() || !now.Before(l.ExpiresAt) {
			continue
		}
		on := l.ExpiresAt.Add(-time.Nanosecond).In(live.prog.Location).Format(dateLayout)
		if n := len(out); n > 0 && out[n-1].On == on {
			out[n-1].Points += l.Remaining
			continue
		}
		if len(out) == maxExpiring {
			break
		}
		out = append(out, Expiring{Points: l.Remaining, On: on})
	}
	return out
}
