package engine

import (
	"context"
	"fmt"
	"time"
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

// birthdayBonus grants the birthday bonus to members whose birthday fell
// since the job's last successful run (today only on the first run), at
// most once per member and year, and never for a birthday before enrolment.
func (e *Engine) birthdayBonus(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	prog := live.prog
	points := prog.Bonuses.Birthday
	if points <= 0 {
		return 0, nil
	}
	loc := prog.Location
	today := startOfDay(now, loc)
	from := today
	last, err := e.lastGoodRun(JobBirthdayBonus)
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
			for y := from.Year(); y <= today.Year(); y++ {
				day, ok := birthdayIn(m.Birthday, y, loc)
				if ok && !day.Before(from) && !day.After(today) && !day.Before(startOfDay(m.EnrolledAt, loc)) {
					grants = append(grants, grant{m.ID, y})
				}
			}
		}
		return nil
	}, func() error {
		if len(grants) == 0 {
			return nil
		}
		ids := newIDs(2 * len(grants))
		var n int64
		err := e.store.Update(func(tx Tx) error {
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
func (e *Engine) lastGoodRun(name string) (*JobRun, error) {
	var last *JobRun
	err := e.store.View(func(tx Tx) error {
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

// referralBonus pays both sides of a referral on the referee's first
// purchase, once: never to a member referring themselves or through a
// referral cycle, and not to a blocked referrer. It returns the referee's
// bonus.
func referralBonus(w writer, m *Member, ids []string) (int64, error) {
	ref := w.live.prog.Bonuses.Referral
	if m.ReferrerID == "" || m.ReferrerID == m.ID || m.PurchaseCount != 1 || ref.Referrer+ref.Referee == 0 {
		return 0, nil
	}
	key := "referral:" + m.ID
	if done, err := w.tx.Marked(key); err != nil || done {
		return 0, err
	}
	referrer, err := w.tx.Member(m.ReferrerID)
	if err != nil || referrer == nil {
		return 0, err
	}
	if cyclic, err := referralCycle(w.tx, referrer, m.ID); err != nil || cyclic {
		return 0, err
	}
	if err := w.tx.Mark(key); err != nil {
		return 0, err
	}
	if err := w.credit(m, creditSpec{
		entryID: ids[0], lotID: ids[1], typ: LedgerBonus, points: ref.Referee,
		at: w.now, ref: "referral:" + referrer.ID, note: "referral bonus: referred by " + referrer.ID,
	}); err != nil {
		return 0, err
	}
	if referrer.Status != StatusActive || ref.Referrer == 0 {
		return ref.Referee, nil
	}
	if err := w.credit(referrer, creditSpec{
		entryID: ids[2], lotID: ids[3], typ: LedgerBonus, points: ref.Referrer,
		at: w.now, ref: "referral:" + m.ID, note: "referral bonus: referred " + m.ID,
	}); err != nil {
		return 0, err
	}
	return ref.Referee, w.tx.PutMember(referrer)
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
