package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// birthdayIn returns the day a member celebrates in year: 29 February falls
// on 28 February in common years.
func birthdayIn(birthday string, year int, loc *time.Location) (time.Time, bool) {
	b, err := time.Parse(dateLayout, birthday)
	if err != nil {
		return time.Time{}, false
	}
	day := b.Day()
	if b.Month() == time.February && day == 29 && !isLeap(year) {
		day = 28
	}
	return time.Date(year, b.Month(), day, 0, 0, 0, 0, loc), true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// latestBirthday returns the last day on or before today that a member
// celebrated.
func latestBirthday(birthday string, today time.Time, loc *time.Location) (time.Time, bool) {
	day, ok := birthdayIn(birthday, today.Year(), loc)
	if ok && day.After(today) {
		day, ok = birthdayIn(birthday, today.Year()-1, loc)
	}
	return day, ok
}

// birthdayBonus grants the birthday bonus (points, a reward's coupon or
// both) to members whose latest birthday fell since the job's last
// successful run (today only on the first run), at most once per member
// and year, and never for a birthday before enrolment. After a long downtime that is the latest birthday alone: the
// years missed are not paid, each with a fresh expiry, at once.
func (e *Engine) birthdayBonus(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	prog := live.prog
	points, reward := prog.Bonuses.Birthday, prog.Bonuses.BirthdayReward
	if points <= 0 && reward == "" {
		return 0, nil
	}
	loc := prog.Location
	today := startOfDay(now, loc)
	from := today
	last, err := e.lastGoodRun(ctx, JobBirthdayBonus)
	if err != nil {
		return 0, err
	}
	if last != nil {
		if d := startOfDay(last.StartedAt, loc).AddDate(0, 0, 1); d.Before(from) {
			from = d
		}
	}
	type grant struct {
		member string
		year   int
	}
	var grants []grant
	var granted int64
	_, err = e.sweepMembers(ctx, func(tx Tx, members []*Member) error {
		grants = grants[:0]
		for _, m := range members {
			if m.Birthday == "" || m.Status != StatusActive {
				continue
			}
			day, ok := latestBirthday(m.Birthday, today, loc)
			if ok && !day.Before(from) && !day.Before(startOfDay(m.EnrolledAt, loc)) {
				grants = append(grants, grant{m.ID, day.Year()})
			}
		}
		return nil
	}, func() error {
		if len(grants) == 0 {
			return nil
		}
		ids := newIDs(now, 2*len(grants))
		codes := make([][]string, len(grants))
		if reward != "" {
			for i := range codes {
				codes[i] = newCouponCodes(couponCodeTries)
			}
		}
		var n int64
		err := e.store.Update(ctx, func(tx Tx) error {
			n = 0
			w := writer{tx: tx, now: now, live: live}
			for i, g := range grants {
				key := fmt.Sprintf("birthday:%s:%d", g.member, g.year)
				done, err := tx.Marked(key)
				if err != nil {
					return err
				}
				if done {
					continue
				}
				m, err := getMember(tx, g.member)
				if err != nil {
					return err
				}
				if err := w.credit(m, creditSpec{
					entryID: ids[2*i], lotID: ids[2*i+1], typ: LedgerBonus, points: points,
					at: now, ref: fmt.Sprintf("birthday:%d", g.year), note: "birthday bonus",
				}); err != nil {
					return err
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
				var c *Coupon
				if reward != "" {
					id := fmt.Sprintf("birthday:%s:%d", m.ID, g.year)
					var skipped string
					c, skipped, err = w.bonusCoupon(m, reward, id, CouponBirthday, codes[i], points <= 0)
					if err != nil {
						return err
					}
					if skipped != "" {
						e.log.Warn("a birthday reward was not issued", "member", m.ID, "reward", reward, "reason", skipped)
					}
				}
				if points > 0 {
					// With points, one bonus.granted tells both: the
					// coupon's was not announced on its own.
					data := bonusData{MemberID: m.ID, Kind: BonusBirthday, Points: points}
					if c != nil {
						data.Reward, data.Code = c.Reward, FormatCode(c.Code)
					}
					if err := w.emit(EventBonusGranted, m.ID, data); err != nil {
						return err
					}
				}
				if err := tx.Mark(key); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		granted += n
		return err
	})
	if err != nil {
		return granted, fmt.Errorf("birthday bonuses: %w", err)
	}
	return granted, nil
}

func startOfDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// lastGoodRun returns the newest run of a job that finished without error.
func (e *Engine) lastGoodRun(ctx context.Context, name string) (*JobRun, error) {
	var last *JobRun
	err := e.store.View(ctx, func(tx Tx) error {
		runs, err := tx.JobRuns(name, 20)
		for _, r := range runs {
			if r.Error == "" {
				last = r
				break
			}
		}
		return err
	})
	return last, err
}

// referralPlan is the referral bonus a purchase is to pay, worked out
// before the purchase writes anything.
type referralPlan struct {
	referrer       *Member // nil: no bonus
	refereePoints  int64
	referrerPoints int64
}

// planReferral decides whether a purchase of amount pays the referral
// bonus: it is the referee's first purchase with a positive amount that
// stands (their net spend so far is zero, so any before it were refunded
// in full), the referee is not their own referrer nor in a referral
// cycle, and the rules pay a bonus. A blocked referrer gets nothing; the
// referee still does. Members marked by the engine before referral bonuses
// were tied to their purchase were paid (or passed over) already.
func planReferral(tx Tx, prog *rules.Program, m *Member, amount int64) (referralPlan, error) {
	ref := prog.Bonuses.Referral
	if m.ReferrerID == "" || m.ReferrerID == m.ID || amount <= 0 || m.LifetimeSpend != 0 || ref.Referrer+ref.Referee == 0 {
		return referralPlan{}, nil
	}
	if done, err := tx.Marked("referral:" + m.ID); err != nil || done {
		return referralPlan{}, err
	}
	referrer, err := tx.Member(m.ReferrerID)
	if err != nil || referrer == nil {
		return referralPlan{}, err
	}
	if cyclic, err := referralCycle(tx, referrer, m.ID); err != nil || cyclic {
		return referralPlan{}, err
	}
	plan := referralPlan{referrer: referrer, refereePoints: ref.Referee}
	if referrer.Status == StatusActive {
		plan.referrerPoints = ref.Referrer
	}
	if err := creditFits(referrer, true, plan.referrerPoints); err != nil {
		return referralPlan{}, err
	}
	return plan, nil
}

// pay credits both sides of a planned referral and returns what the
// purchase records of it, nil when there was nothing to pay.
func (p referralPlan) pay(w writer, m *Member, ids []string) (*ReferralGrant, error) {
	if p.referrer == nil {
		return nil, nil
	}
	if err := w.credit(m, creditSpec{
		entryID: ids[0], lotID: ids[1], typ: LedgerBonus, points: p.refereePoints,
		at: w.now, ref: "referral:" + p.referrer.ID, note: "referral bonus: referred by " + p.referrer.ID,
	}); err != nil {
		return nil, err
	}
	if p.referrerPoints > 0 {
		if err := w.credit(p.referrer, creditSpec{
			entryID: ids[2], lotID: ids[3], typ: LedgerBonus, points: p.referrerPoints,
			at: w.now, ref: "referral:" + m.ID, note: "referral bonus: referred " + m.ID,
		}); err != nil {
			return nil, err
		}
		if err := w.tx.PutMember(p.referrer); err != nil {
			return nil, err
		}
	}
	return &ReferralGrant{ReferrerID: p.referrer.ID, RefereePoints: p.refereePoints, ReferrerPoints: p.referrerPoints}, nil
}

// referralToTakeBack returns the referral bonus a refund takes back: the
// one its purchase paid, when the refund completes a full refund of it,
// with the referrer to take their part from (nil when they got none). It
// reads only and refuses what the take-back could not do.
func referralToTakeBack(tx Tx, p *Purchase, full bool) (*ReferralGrant, *Member, error) {
	g := p.Referral
	if !full || g == nil || g.TakenBack {
		return nil, nil, nil
	}
	if g.ReferrerPoints == 0 {
		return g, nil, nil
	}
	referrer, err := getMember(tx, g.ReferrerID)
	if err != nil {
		return nil, nil, err
	}
	if err := debitFits(referrer, g.ReferrerPoints); err != nil {
		return nil, nil, err
	}
	return g, referrer, nil
}

// takeBackReferral takes a referral bonus back from both sides: from the
// bonus's own lot first, like any refund, and as debt where it was spent.
// m is the referee, whom the caller writes; the referrer is written here.
func takeBackReferral(w writer, m, referrer *Member, g *ReferralGrant, refundID, purchaseID string, ids []string) error {
	note := "referral bonus taken back: purchase " + purchaseID + " refunded in full"
	if err := takeBackBonus(w, m, g.RefereePoints, "referral:"+g.ReferrerID, refundID, note, ids[0]); err != nil {
		return err
	}
	if referrer != nil {
		if err := takeBackBonus(w, referrer, g.ReferrerPoints, "referral:"+m.ID, refundID, note, ids[1]); err != nil {
			return err
		}
		if err := w.tx.PutMember(referrer); err != nil {
			return err
		}
	}
	g.TakenBack = true
	return nil
}

func takeBackBonus(w writer, m *Member, points int64, lotRef, refundID, note, entryID string) error {
	if points <= 0 {
		return nil
	}
	lots, err := w.tx.OpenLots(m.ID)
	if err != nil {
		return err
	}
	if _, err := w.debit(m, points, takeBackOrder(lots, lotRef, w.now)); err != nil {
		return err
	}
	m.LifetimeEarned -= points
	return w.appendEntry(m, entryID, LedgerRefund, -points, refundID, note)
}

// referralCycle tells whether following referrers up from m reaches id.
func referralCycle(tx Tx, m *Member, id string) (bool, error) {
	seen := map[string]bool{}
	for m != nil && m.ReferrerID != "" && !seen[m.ID] {
		if m.ReferrerID == id {
			return true, nil
		}
		seen[m.ID] = true
		next, err := tx.Member(m.ReferrerID)
		if err != nil {
			return false, err
		}
		m = next
	}
	return false, nil
}
