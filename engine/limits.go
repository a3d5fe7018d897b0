package engine

import (
	"math/bits"

	"github.com/loyaltyhq/loyalty/rules"
)

// The largest amounts, quantities and points the engine accepts and keeps.
// A request that carries more is refused with EINVALID naming the field; a
// write that would take a member's totals past MaxMemberTotal is refused
// with EUNPROCESSABLE. They are far beyond any real shop and far enough
// below the int64 range that the sums and products the engine computes
// from them (a purchase's lines, refunds in proportion, a member's totals,
// a window of tier metric) fit with room to spare. docs/API.md states them.
const (
	// MaxAmount is the largest amount of money, in the currency's minor
	// units, that a purchase, one of its lines or a refund may carry:
	// 100,000,000,000.00 in a currency with two decimals.
	MaxAmount int64 = 10_000_000_000_000

	// MaxQuantity is the largest quantity of one purchase line.
	MaxQuantity int64 = 1_000_000

	// MaxPoints is the most points one request or event may move: a
	// redemption, an adjustment (either way), what a purchase earns in
	// total and by each rule, a bonus of the rules file.
	MaxPoints int64 = 10_000_000_000_000

	// MaxMemberTotal bounds what a member accumulates, in points or minor
	// units: the balance (either way), the debt, lifetime points earned
	// and redeemed, lifetime spend and refunded spend. It is 10,000 of the
	// largest purchases, and 92 such totals still fit an int64.
	MaxMemberTotal int64 = 100_000_000_000_000_000
)

// addInt64 returns a+b and whether it fitted an int64.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}

// withinTotal tells whether v+d stays within ±MaxMemberTotal, without
// overflowing on a stored value that is already out of range.
func withinTotal(v, d int64) bool {
	s, ok := addInt64(v, d)
	return ok && s <= MaxMemberTotal && s >= -MaxMemberTotal
}

// errTotal refuses a write that would take one of a member's totals past
// MaxMemberTotal.
func errTotal(m *Member, what string) error {
	return Errorf(EUNPROCESSABLE, "member %s: %s would pass the largest total the engine keeps (%d)", m.ID, what, MaxMemberTotal)
}

// sumPoints adds the points of credits or debits of one write, each of
// which may be at most MaxPoints; ok is false when one is not.
func sumPoints(parts []int64) (sum int64, ok bool) {
	for _, p := range parts {
		if p < 0 || p > MaxPoints {
			return 0, false
		}
		sum += p // a few parts of at most MaxPoints: fits
	}
	return sum, true
}

// creditFits refuses credits (of one write) that would take m's balance,
// or its lifetime earnings when earned is set, past MaxMemberTotal.
func creditFits(m *Member, earned bool, points ...int64) error {
	sum, ok := sumPoints(points)
	switch {
	case !ok:
		return Errorf(EUNPROCESSABLE, "member %s: more than the %d points one credit may carry", m.ID, MaxPoints)
	case !withinTotal(m.Points, sum):
		return errTotal(m, "the balance")
	case earned && !withinTotal(m.LifetimeEarned, sum):
		return errTotal(m, "the points earned")
	}
	return nil
}

// debitFits refuses debits (of one write) that would take m's balance or
// its debt past MaxMemberTotal.
func debitFits(m *Member, points ...int64) error {
	sum, ok := sumPoints(points)
	switch {
	case !ok:
		return Errorf(EUNPROCESSABLE, "member %s: more than the %d points one debit may carry", m.ID, MaxPoints)
	case !withinTotal(m.Points, -sum):
		return errTotal(m, "the balance")
	case !withinTotal(m.Debt, sum):
		return errTotal(m, "the debt")
	}
	return nil
}

// mulDiv returns a*b/c rounded down: the share b/c of a. The product is
// taken in 128 bits, since an amount times a quantity, or points times an
// amount, need not fit 64. b is clamped to [0, c] and a to a >= 0, which
// is all the callers (shares of what a purchase had) ever pass, so the
// quotient never exceeds a.
func mulDiv(a, b, c int64) int64 {
	if a <= 0 || b <= 0 || c <= 0 {
		return 0
	}
	b = min(b, c)
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// checkBonuses refuses rules whose bonuses pay, or whose rewards cost, more
// than MaxPoints at once: each would then be refused where it is paid.
func checkBonuses(prog *rules.Program) error {
	b := prog.Bonuses
	for _, f := range []struct {
		field  string
		points int64
	}{
		{"bonuses.enrol", b.Enrol}, {"bonuses.birthday", b.Birthday},
		{"bonuses.referral.referrer", b.Referral.Referrer}, {"bonuses.referral.referee", b.Referral.Referee},
	} {
		if f.points > MaxPoints {
			return FieldErrorf(EUNPROCESSABLE, f.field, "pays %d points, more than the %d one bonus may", f.points, MaxPoints)
		}
	}
	for _, r := range prog.Rewards {
		if r.Cost > MaxPoints {
			return FieldErrorf(EUNPROCESSABLE, "rewards", "reward %q costs %d points, more than the %d one request may spend", r.Name, r.Cost, MaxPoints)
		}
	}
	return nil
}
