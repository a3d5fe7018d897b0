package engine

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Verify checks the ledger invariants for every member in one consistent
// snapshot: the balance equals the sum of the ledger and the sum of the
// lots' remaining points less the debt, no lot is negative or overspent, the
// ledger's running balance agrees with its entries, and no total, entry or
// lot is out of the ranges of limits.go. Coupons agree with the ledger
// (the points each spent, and gave back, are entries that name it) and
// with their rewards' counts (issued, and used, expired and cancelled, so
// the stock left is the stock less issued plus cancelled). It prints one
// line per problem and returns how many it found.
func (e *Engine) Verify(ctx context.Context, w io.Writer) (int, error) {
	problems := 0
	report := func(format string, args ...any) {
		problems++
		fmt.Fprintf(w, format+"\n", args...)
	}
	err := e.store.View(ctx, func(tx Tx) error {
		verifyClock(tx, report)
		tally := map[string]*RewardCount{}
		merged, err := mergedMembers(ctx, tx)
		if err != nil {
			return err
		}
		after := ""
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			members, err := tx.Members(after, 1000)
			if err != nil {
				return err
			}
			for _, m := range members {
				after = m.ID
				if err := verifyMember(tx, m, merged, tally, report); err != nil {
					return err
				}
			}
			if len(members) < 1000 {
				return verifyRewardCounts(tx, tally, report)
			}
		}
	})
	return problems, err
}

func verifyMember(tx Tx, m *Member, merged map[string][]string, tally map[string]*RewardCount, report func(string, ...any)) error {
	verifyTotals(m, report)
	entries, err := tx.Ledger(m.ID, 0, 0)
	if err != nil {
		return err
	}
	if m.Status != StatusMerged {
		// The coupons of members merged into m are m's, and so are the
		// ledger entries that spent points on them.
		withMerged := entries
		for _, id := range merged[m.ID] {
			more, err := tx.Ledger(id, 0, 0)
			if err != nil {
				return err
			}
			withMerged = append(withMerged[:len(withMerged):len(withMerged)], more...)
		}
		if err := verifyCoupons(tx, m, withMerged, tally, report); err != nil {
			return err
		}
	}
	var sum int64
	fits := true
	for _, en := range entries {
		if en.Points < -MaxPoints || en.Points > MaxPoints {
			report("member %s: ledger entry %d moves %d points, more than the %d allowed", m.ID, en.Seq, en.Points, MaxPoints)
		}
		if !withinTotal(en.BalanceAfter, 0) {
			report("member %s: ledger entry %d leaves a balance of %d, out of range", m.ID, en.Seq, en.BalanceAfter)
		}
		if sum, fits = addInt64(sum, en.Points); !fits {
			report("member %s: the ledger's sum does not fit in 64 bits", m.ID)
			break
		}
	}
	if fits && sum != m.Points {
		report("member %s: balance %d but the ledger sums to %d", m.ID, m.Points, sum)
	}
	if uint64(len(entries)) != m.LedgerSeq {
		report("member %s: ledger has %d entries but the member counts %d", m.ID, len(entries), m.LedgerSeq)
	}
	if len(entries) > 0 && entries[0].BalanceAfter != m.Points {
		report("member %s: newest ledger entry says balance %d, member says %d", m.ID, entries[0].BalanceAfter, m.Points)
	}
	lots, err := tx.Lots(m.ID)
	if err != nil {
		return err
	}
	var remaining int64
	for _, l := range lots {
		if l.Remaining < 0 || l.Remaining > l.Points {
			report("member %s: lot %s has %d of %d points left", m.ID, l.ID, l.Remaining, l.Points)
		}
		if l.Points < 0 || l.Points > MaxPoints {
			report("member %s: lot %s holds %d points, more than the %d allowed", m.ID, l.ID, l.Points, MaxPoints)
			continue
		}
		var ok bool
		if remaining, ok = addInt64(remaining, max(l.Remaining, 0)); !ok {
			report("member %s: the lots' points do not fit in 64 bits", m.ID)
			return nil
		}
	}
	if m.Debt < 0 {
		report("member %s: negative debt %d", m.ID, m.Debt)
	}
	if remaining-m.Debt != m.Points {
		report("member %s: balance %d but lots hold %d less debt %d", m.ID, m.Points, remaining, m.Debt)
	}
	if m.Debt > 0 && remaining > 0 {
		report("member %s: owes %d points while lots still hold %d", m.ID, m.Debt, remaining)
	}
	return nil
}

// mergedMembers maps each member that others were merged into, at the
// end of the chain of merges, to those others.
func mergedMembers(ctx context.Context, tx Tx) (map[string][]string, error) {
	into := map[string]string{}
	for after := ""; ; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		members, err := tx.Members(after, 1000)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			after = m.ID
			if m.Status == StatusMerged {
				into[m.ID] = m.MergedInto
			}
		}
		if len(members) < 1000 {
			break
		}
	}
	out := map[string][]string{}
	for id, root := range into {
		for range maxMergeHops {
			next, ok := into[root]
			if !ok {
				break
			}
			root = next
		}
		out[root] = append(out[root], id)
	}
	return out, nil
}

// verifyTotals reports a member's totals that are out of range: no write
// takes them past MaxMemberTotal, so one that is was written by something
// else (or by an engine that did not check).
func verifyTotals(m *Member, report func(string, ...any)) {
	for _, f := range []struct {
		what     string
		v        int64
		negative bool // may be below zero
	}{
		{"balance", m.Points, true}, {"debt", m.Debt, false},
		{"lifetime points earned", m.LifetimeEarned, true}, {"points redeemed", m.PointsRedeemed, true},
		{"lifetime spend", m.LifetimeSpend, false}, {"refunded spend", m.RefundedSpend, false},
		{"purchase count", m.PurchaseCount, false},
	} {
		if f.v > MaxMemberTotal || f.v < -MaxMemberTotal || !f.negative && f.v < 0 {
			report("member %s: %s %d is out of range (at most %d)", m.ID, f.what, f.v, MaxMemberTotal)
		}
	}
	if !withinTotal(m.LifetimeSpend, m.RefundedSpend) {
		report("member %s: lifetime spend %d and refunded spend %d add up past %d", m.ID, m.LifetimeSpend, m.RefundedSpend, MaxMemberTotal)
	}
}

// verifyClock reports engine settings of the clock that are unreadable or
// out of range.
func verifyClock(tx Tx, report func(string, ...any)) {
	if latest, err := readLatestWrite(tx); err != nil {
		report("%v", err)
	} else if latest.After(LatestTime) {
		report("setting %s: %s is past %s, the latest time the engine runs at", settingLatestWrite, latest.Format(time.RFC3339Nano), LatestTime.Format(time.RFC3339))
	}
	v, err := tx.Setting(settingClockOffset)
	if err != nil || v == nil {
		return
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n < 0 {
		report("setting %s: %q is not a number of nanoseconds ahead", settingClockOffset, v)
	}
}

// verifyCoupons checks a member's coupons against their ledger, and adds
// them to tally, the counts per reward that the coupons make.
func verifyCoupons(tx Tx, m *Member, entries []*LedgerEntry, tally map[string]*RewardCount, report func(string, ...any)) error {
	coupons, err := tx.MemberCoupons(m.ID)
	if err != nil {
		return err
	}
	// The points each coupon's ledger entries moved, by code: spent and
	// given back.
	spent, back := map[string]int64{}, map[string]int64{}
	for _, en := range entries {
		switch en.Type {
		case LedgerReward:
			spent[en.Ref] -= en.Points
		case LedgerRewardRefund:
			back[en.Ref] += en.Points
		}
	}
	for _, c := range coupons {
		code := FormatCode(c.Code)
		t := tally[c.Reward]
		if t == nil {
			t = &RewardCount{Reward: c.Reward}
			tally[c.Reward] = t
		}
		t.Issued++
		switch c.Status {
		case CouponIssued:
		case CouponUsed:
			t.Used++
		case CouponExpired:
			t.Expired++
		case CouponCancelled:
			t.Cancelled++
		default:
			report("coupon %s of member %s: unknown status %q", code, m.ID, c.Status)
		}
		var drawn int64
		for _, d := range c.Draws {
			drawn += d.Points
		}
		switch {
		case c.Points < 0 || c.Points > MaxPoints:
			report("coupon %s of member %s: cost %d points, out of range", code, m.ID, c.Points)
		case drawn != c.Points:
			report("coupon %s of member %s: cost %d points but draws %d from lots", code, m.ID, c.Points, drawn)
		case spent[code] != c.Points:
			report("coupon %s of member %s: cost %d points but the ledger spent %d on it", code, m.ID, c.Points, spent[code])
		}
		if c.Refunded && c.Status != CouponCancelled && c.Status != CouponExpired {
			report("coupon %s of member %s: its points came back, but it is %s", code, m.ID, c.Status)
		}
		var want int64
		if c.Refunded {
			want = c.Points
		} else {
			t.Points += c.Points
		}
		if back[code] != want {
			report("coupon %s of member %s: %d points came back in the ledger, want %d", code, m.ID, back[code], want)
		}
		delete(spent, code)
		delete(back, code)
	}
	for code := range spent {
		report("member %s: the ledger spends points on coupon %s, which is not theirs", m.ID, code)
	}
	for code := range back {
		report("member %s: the ledger gives back points of coupon %s, which is not theirs", m.ID, code)
	}
	return nil
}

// verifyRewardCounts compares the stored counts of every reward with
// those its coupons make.
func verifyRewardCounts(tx Tx, tally map[string]*RewardCount, report func(string, ...any)) error {
	counts, err := tx.RewardCounts()
	if err != nil {
		return err
	}
	for _, c := range counts {
		want := tally[c.Reward]
		if want == nil {
			want = &RewardCount{Reward: c.Reward}
		}
		if *c != *want {
			report("reward %s: counts say %d issued, %d used, %d expired, %d cancelled, %d points; its coupons make %d, %d, %d, %d, %d",
				c.Reward, c.Issued, c.Used, c.Expired, c.Cancelled, c.Points, want.Issued, want.Used, want.Expired, want.Cancelled, want.Points)
		}
		delete(tally, c.Reward)
	}
	for name, t := range tally {
		report("reward %s: %d coupons but no counts", name, t.Issued)
	}
	return nil
}
