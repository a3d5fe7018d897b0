package postgres

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

// A purchase reads its member's open lots (for the balance it answers),
// tier metric (to promote) and uses of capped rules after it has found
// the member, some after writing the new lot and metric entry: more round
// trips. The first round trip of a purchase
// (PurchaseAndMember) reads both ahead, in the same snapshot, and the
// transaction keeps them up to date with its own writes, PutLot,
// AddMetric and AddRuleUse; OpenLotBalances, MetricSum and RuleUses then
// answer from them without asking the server, exactly as the queries
// would. Any other write to those tables (one added to the store later,
// say) drops them (tx.exec), and the queries run as before.

// readAhead is what was read ahead of one member.
type readAhead struct {
	member string
	// member is the member's id, set once its read found it.
	// lots are the member's lots as of the snapshot and this
	// transaction's writes, by id; those with Remaining 0 are not open.
	lots map[string]aheadLot
	// metric is the sum of the member's metric entries with from <= At
	// <= to (bounds as the query rounds them), and the entries this
	// transaction added since.
	from, to time.Time
	metric   engine.MetricEntry
	added    []engine.MetricEntry
	// uses are the member's uses of the rules read ahead in the periods
	// read ahead (a missing row counts 0), with this transaction's.
	uses map[ruleUseKey]int64
}

type ruleUseKey struct{ rule, period string }

type aheadLot struct {
	id string
	engine.LotBalance
}

// prefetchReads are the reads of lots and metric entries that go with the
// member's in PurchaseAndMember; memberWhere selects the member as its
// read does (by id, or by a unique key).
func (t *tx) prefetchReads(memberWhere string, arg any, next engine.PurchaseReads) ([]read, *readAhead) {
	ra := &readAhead{lots: map[string]aheadLot{}, from: ceilMicro(next.MetricFrom), to: floorMicro(next.MetricTo),
		uses: map[ruleUseKey]int64{}}
	for _, r := range next.Rules {
		for _, p := range next.Periods {
			ra.uses[ruleUseKey{r, p}] = 0
		}
	}
	sub := `(SELECT id FROM members WHERE ` + memberWhere + `)`
	if memberWhere == "id = $1" {
		sub = "$1"
	}
	return []read{
		{"open lots", `SELECT id, remaining, available_at, expires_at FROM lots
			WHERE member_id = ` + sub + ` AND remaining > 0`, []any{arg}, func(rows pgx.Rows) error {
			var l aheadLot
			var exp *time.Time
			if err := rows.Scan(&l.id, &l.Remaining, &l.AvailableAt, &exp); err != nil {
				return err
			}
			l.AvailableAt = l.AvailableAt.UTC()
			if exp != nil {
				l.ExpiresAt = exp.UTC()
			}
			ra.lots[l.id] = l
			return nil
		}},
		{"metric sum", `SELECT coalesce(sum(spend), 0)::bigint, coalesce(sum(points), 0)::bigint,
			coalesce(sum(visits), 0)::bigint FROM metrics WHERE member_id = ` + sub + ` AND at >= $2 AND at <= $3`,
			[]any{arg, ra.from, ra.to}, func(rows pgx.Rows) error {
				return rows.Scan(&ra.metric.Spend, &ra.metric.Points, &ra.metric.Visits)
			}},
		{"rule uses", `SELECT rule, period, uses FROM rule_uses WHERE member_id = ` + sub + ` AND rule = ANY($2) AND period = ANY($3)`,
			[]any{arg, next.Rules, next.Periods}, func(rows pgx.Rows) error {
				var k ruleUseKey
				var n int64
				if err := rows.Scan(&k.rule, &k.period, &n); err != nil {
					return err
				}
				ra.uses[k] = n
				return nil
			}},
	}, ra
}

// usesAhead answers RuleUses from what was read ahead, when it covers the
// rule and period.
func (t *tx) usesAhead(member, rule, period string) (int64, bool) {
	ra := t.aheadOf(member)
	if ra == nil {
		return 0, false
	}
	n, ok := ra.uses[ruleUseKey{rule, period}]
	return n, ok
}

// addUseAhead keeps the uses read ahead in step with a use added.
func (t *tx) addUseAhead(member, rule, period string, delta int64) {
	ra := t.aheadOf(member)
	if ra == nil {
		return
	}
	k := ruleUseKey{rule, period}
	if n, ok := ra.uses[k]; ok {
		sum, fits := addFits(n, delta)
		if !fits {
			// The statement fails as the query would: nothing to keep.
			delete(ra.uses, k)
			return
		}
		ra.uses[k] = sum
	}
}

// aheadOf returns what was read ahead of member, or nil.
func (t *tx) aheadOf(member string) *readAhead {
	if t.ahead == nil || t.ahead.member != member {
		return nil
	}
	return t.ahead
}

// putLotAhead keeps the lots read ahead in step with a lot written.
func (t *tx) putLotAhead(l *engine.Lot) {
	if ra := t.aheadOf(l.MemberID); ra != nil {
		ra.lots[l.ID] = aheadLot{id: l.ID, LotBalance: engine.LotBalance{
			Remaining: l.Remaining, AvailableAt: floorMicro(l.AvailableAt.UTC()), ExpiresAt: floorMicro(l.ExpiresAt.UTC())}}
	}
}

// openLotsAhead answers OpenLotBalances from what was read ahead: the
// open lots, soonest expiry first, never last, then by id.
func (t *tx) openLotsAhead(member string) ([]engine.LotBalance, bool) {
	ra := t.aheadOf(member)
	if ra == nil {
		return nil, false
	}
	open := make([]aheadLot, 0, len(ra.lots))
	for _, l := range ra.lots {
		if l.Remaining > 0 {
			open = append(open, l)
		}
	}
	slices.SortFunc(open, func(a, b aheadLot) int {
		switch az, bz := a.ExpiresAt.IsZero(), b.ExpiresAt.IsZero(); {
		case az != bz && az:
			return 1
		case az != bz:
			return -1
		}
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]engine.LotBalance, len(open))
	for i, l := range open {
		out[i] = l.LotBalance
	}
	return out, true
}

// metricAhead answers MetricSum from what was read ahead, when the bounds
// are the ones read and the sum fits (the query fails otherwise).
func (t *tx) metricAhead(member string, from, to time.Time) (engine.MetricEntry, bool) {
	ra := t.aheadOf(member)
	if ra == nil || !ceilMicro(from).Equal(ra.from) || !floorMicro(to).Equal(ra.to) {
		return engine.MetricEntry{}, false
	}
	sum := ra.metric
	for _, e := range ra.added {
		if at := floorMicro(e.At.UTC()); at.Before(ra.from) || at.After(ra.to) {
			continue
		}
		var ok [3]bool
		sum.Spend, ok[0] = addFits(sum.Spend, e.Spend)
		sum.Points, ok[1] = addFits(sum.Points, e.Points)
		sum.Visits, ok[2] = addFits(sum.Visits, e.Visits)
		if !ok[0] || !ok[1] || !ok[2] {
			return engine.MetricEntry{}, false
		}
	}
	return sum, true
}

func addFits(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}
