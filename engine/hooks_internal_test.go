package engine

import (
	"testing"
	"time"
)

type plainTx struct{ Tx }

type balancerTx struct{ Tx }

func (balancerTx) OpenLotBalances(string) ([]LotBalance, error) { return nil, nil }

type summerTx struct{ Tx }

func (summerTx) MetricSum(string, time.Time, time.Time) (MetricEntry, error) {
	return MetricEntry{}, nil
}

type bothTx struct{ balancerTx }

func (bothTx) MetricSum(string, time.Time, time.Time) (MetricEntry, error) {
	return MetricEntry{}, nil
}

// TestWatchLedgerKeepsTheShortcuts: the metrics' view of the ledger wraps
// every write's transaction; a wrapper that hid the store's shortcuts
// would send every purchase down the slow path.
func TestWatchLedgerKeepsTheShortcuts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tx     Tx
		lb, ms bool
	}{
		{"plain", plainTx{}, false, false},
		{"balancer", balancerTx{}, true, false},
		{"summer", summerTx{}, false, true},
		{"both", bothTx{}, true, true},
	} {
		var entries []LedgerEntry
		w := watchLedger(tc.tx, &entries)
		_, lb := w.(LotBalancer)
		_, ms := w.(MetricSummer)
		if lb != tc.lb || ms != tc.ms {
			t.Errorf("%s: LotBalancer %v, MetricSummer %v; want %v, %v", tc.name, lb, ms, tc.lb, tc.ms)
		}
	}
}
