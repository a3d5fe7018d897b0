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
