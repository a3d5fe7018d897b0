package engine

import (
	"context"
	"fmt"
	"time"
)

// sweepMembers walks every member in id order, a chunk at a time: read sees
// each chunk in its own read transaction, then write (if not nil) runs after
// that transaction has closed, so a job never holds a transaction across
// the whole database and its writes never wait on its own reads.
func (e *Engine) sweepMembers(ctx context.Context, read func(tx Tx, members []*Member) error, write func() error) (int64, error) {
	var seen int64
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return seen, err
		}
		var n int
		err := e.store.View(ctx, func(tx Tx) error {
			members, err := tx.Members(after, e.jobChunk)
			if err != nil {
				return err
			}
			if n = len(members); n > 0 {
				after = members[n-1].ID
			}
			return read(tx, members)
		})
		if err != nil {
			return seen, err
		}
		if write != nil {
			if err := write(); err != nil {
				return seen, err
			}
		}
		seen += int64(n)
		if n < e.jobChunk {
			return seen, nil
		}
	}
}

// moveTiers applies the tier policy to every member; with promoteOnly it
// only moves members up (and off tiers the rules no longer have). A
// promotion issues the coupons of the levels' rewards. Members
// are chosen in read transactions and only those that move are written, the
// decision taken again inside the write so a purchase in between cannot be
// overruled.
func (e *Engine) moveTiers(ctx context.Context, live *liveRules, now time.Time, promoteOnly bool) (seen, moved int64, err error) {
	prog := live.prog
	moves := func(tx Tx, m *Member) (tierDecision, bool, error) {
		d, err := decideTier(tx, prog, m, now)
		if err != nil {
			return d, false, err
		}
		cur := prog.Tiers.Index(m.Tier)
		return d, d.target > cur || !promoteOnly && d.target != cur, nil
	}
	var ids []string
	seen, err = e.sweepMembers(ctx, func(tx Tx, members []*Member) error {
		ids = ids[:0]
		for _, m := range members {
			_, ok, err := moves(tx, m)
			if err != nil {
				return err
			}
			if ok {
				ids = append(ids, m.ID)
			}
		}
		return nil
	}, func() error {
		if len(ids) == 0 {
			return nil
		}
		var n int64
		err := e.store.Update(ctx, func(tx Tx) error {
			n = 0
			for _, id := range ids {
				m, err := getMember(tx, id)
				if err != nil {
					return err
				}
				d, ok, err := moves(tx, m)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				from, fromName := prog.Tiers.Index(m.Tier), m.Tier
				up := d.target > from
				m.Tier, m.TierSince, m.TierByPromotion = prog.Tiers.Levels[d.target].Name, now, up
				if err := tx.PutMember(m); err != nil {
					return err
				}
				w := writer{tx: tx, now: now, live: live}
				if up {
					if _, err := w.promotionCoupons(m, from, e.log.Warn); err != nil {
						return err
					}
				}
				if err := w.tierChanged(m, fromName, up); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		moved += n
		return err
	})
	return seen, moved, err
}

// drainDue runs chunk in one transaction after another until a chunk
// handles fewer than jobChunk records: the shape of the jobs that read
// what is due from an expiry index, which shrinks as they write. chunk
// gets jobChunk fresh ids, minted at the job's now, and returns how many
// records it handled.
func (e *Engine) drainDue(ctx context.Context, now time.Time, what string, chunk func(tx Tx, ids []string) (int, error)) (int64, error) {
	var processed int64
	for {
		if err := ctx.Err(); err != nil {
			return processed, err
		}
		ids := newIDs(now, e.jobChunk)
		var n int
		err := e.store.Update(ctx, func(tx Tx) error {
			var err error
			n, err = chunk(tx, ids)
			return err
		})
		if err != nil {
			return processed, fmt.Errorf("%s: %w", what, err)
		}
		processed += int64(n)
		if n < e.jobChunk {
			return processed, nil
		}
	}
}
