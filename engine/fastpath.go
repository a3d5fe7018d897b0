package engine

import (
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// A Tx may offer the shortcuts below on top of the Tx interface. The engine
// uses them when the transaction has them and reads the records otherwise,
// so a wrapper that changes what a Tx sees (such as a simulation's overlay)
// keeps the plain, always correct path by not offering them.

// MetricSummer keeps a running sum of each member's tier-metric entries,
// so a purchase does not read every entry of the window to promote.
type MetricSummer interface {
	// MetricSum adds up the member's metric entries with from <= At <= to,
	// exactly as summing the entries Metrics returns would.
	MetricSum(memberID string, from, to time.Time) (MetricEntry, error)
}

// LotBalance is the part of an open lot a balance reads.
type LotBalance struct {
	Remaining   int64
	AvailableAt time.Time
	ExpiresAt   time.Time // zero: never
}

// LotBalancer lists open lots from an index that carries what a balance
// needs, without reading each lot.
type LotBalancer interface {
	// OpenLotBalances lists the member's lots with Remaining > 0, in the
	// order of OpenLots.
	OpenLotBalances(memberID string) ([]LotBalance, error)
}

// PeriodUses reads a member's uses of a rule in several periods at once,
// where each read would cost a round trip.
type PeriodUses interface {
	// RuleUsesByPeriod returns RuleUses(memberID, rule, p) for each of
	// periods, in their order.
	RuleUsesByPeriod(memberID, rule string, periods []string) ([]int64, error)
}

// PurchaseFinder looks a purchase up and reads, locking it in a write, the
// member a request names, in one go, where each read would cost a round
// trip. It answers exactly what Purchase and then Member (key "") or
// MemberByKey(key, member) would, the member even when the purchase
// exists. A store may read ahead in the same go what the purchase reads
// next (next), and answer OpenLotBalances, MetricSum and RuleUses from it,
// kept up to date with the transaction's own writes.
type PurchaseFinder interface {
	PurchaseAndMember(purchaseID, key, member string, next PurchaseReads) (*Purchase, *Member, error)
}

// PurchaseReads is what a purchase reads of its member once found.
type PurchaseReads struct {
	// MetricFrom and MetricTo bound the tier window MetricSum reads.
	MetricFrom, MetricTo time.Time
	// Rules are the capped rules whose uses in Periods the rules may read.
	Rules, Periods []string
}

// openLotBalances reads a member's open lots the cheapest way tx offers.
func openLotBalances(tx Tx, memberID string) ([]LotBalance, error) {
	if lb, ok := tx.(LotBalancer); ok {
		return lb.OpenLotBalances(memberID)
	}
	lots, err := tx.OpenLots(memberID)
	if err != nil {
		return nil, err
	}
	out := make([]LotBalance, len(lots))
	for i, l := range lots {
		out[i] = LotBalance{Remaining: l.Remaining, AvailableAt: l.AvailableAt, ExpiresAt: l.ExpiresAt}
	}
	return out, nil
}

// summarize computes available and pending points; expired lots not yet
// written off count for neither.
func summarize(lots []LotBalance, debt int64, now time.Time) BalanceSummary {
	var b BalanceSummary
	for _, l := range lots {
		switch {
		case !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt):
		case l.AvailableAt.After(now):
			b.Pending += l.Remaining
		default:
			b.Available += l.Remaining
		}
	}
	b.Available -= debt
	return b
}

// windowMetric returns the member's tier metric over the window that ends
// at now from the running sum, and false when tx keeps none.
func windowMetric(tx Tx, prog *rules.Program, memberID string, now time.Time) (int64, bool, error) {
	ms, ok := tx.(MetricSummer)
	if !ok {
		return 0, false, nil
	}
	sum, err := ms.MetricSum(memberID, prog.WindowStart(now), now)
	if err != nil {
		return 0, false, err
	}
	return metricValue(sum, prog.Tiers.Metric), true, nil
}
