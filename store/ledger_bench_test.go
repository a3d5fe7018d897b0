package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// BenchmarkLedgerPage reads a page of 50 entries of a member with 1,000
// purchases (an entry, a lot and a metric entry each), among other members:
// the newest page, and one from a cursor halfway back, which the history
// layout finds by bisecting its time keys.
func BenchmarkLedgerPage(b *testing.B) {
	db := MustOpenDB(b)
	var target string
	mustUpdate(b, db, func(tx engine.Tx) error {
		for range 20 {
			id := newID()
			if target == "" {
				target = id
			}
			var bal int64
			for i := range 1000 {
				at := t0.Add(time.Duration(i) * time.Hour)
				bal += 10
				if err := tx.PutLot(&engine.Lot{ID: engine.NewTimeID(at), MemberID: id, Points: 10, Remaining: 10, EarnedAt: at, ExpiresAt: at.AddDate(1, 0, 0)}); err != nil {
					return err
				}
				if err := tx.AppendLedger(&engine.LedgerEntry{ID: engine.NewTimeID(at), MemberID: id, Seq: uint64(i + 1), Type: engine.LedgerEarn, Points: 10, BalanceAfter: bal, At: at}); err != nil {
					return err
				}
				if err := tx.AddMetric(id, engine.MetricEntry{At: at, Spend: 1000, Points: 10, Visits: 1}); err != nil {
					return err
				}
			}
			if err := tx.PutMember(&engine.Member{ID: id, Status: engine.StatusActive, Points: bal, LifetimeEarned: bal, LedgerSeq: 1000}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, before := range []uint64{0, 500} {
		b.Run(fmt.Sprint("before=", before), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				err := db.View(b.Context(), func(tx engine.Tx) error {
					es, err := tx.Ledger(target, before, 50)
					if err == nil && (len(es) != 50 || before > 0 && es[0].Seq != before-1) {
						err = fmt.Errorf("page of %d entries from %d", len(es), es[0].Seq)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
