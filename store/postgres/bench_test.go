package postgres

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store/storetest"
)

// purchaseLike is the shape of a purchase's transaction: four reads (the
// member, the purchase id, the open lots, the tier window), then a member,
// a purchase, a ledger entry, a lot and a metric entry written.
func purchaseLike(memberID, purchaseID string, at time.Time) func(engine.Tx) error {
	return func(tx engine.Tx) error {
		m, err := tx.Member(memberID)
		if err != nil {
			return err
		}
		if p, err := tx.Purchase(purchaseID); err != nil || p != nil {
			return fmt.Errorf("purchase %s: %v, %v", purchaseID, p, err)
		}
		if _, err := tx.(engine.LotBalancer).OpenLotBalances(memberID); err != nil {
			return err
		}
		if _, err := tx.(engine.MetricSummer).MetricSum(memberID, at.AddDate(-1, 0, 0), at); err != nil {
			return err
		}
		m.Points += 10
		m.LedgerSeq++
		m.PurchaseCount++
		return errorsJoin(
			tx.PutMember(m),
			tx.PutPurchase(&engine.Purchase{ID: purchaseID, MemberID: memberID, OccurredAt: at, RecordedAt: at, Currency: "USD", Amount: 1000, Points: 10}),
			tx.AppendLedger(&engine.LedgerEntry{ID: purchaseID, MemberID: memberID, Seq: m.LedgerSeq, Type: engine.LedgerEarn, Points: 10, BalanceAfter: m.Points, At: at, Ref: purchaseID}),
			tx.PutLot(&engine.Lot{ID: purchaseID, MemberID: memberID, Points: 10, Remaining: 10, EarnedAt: at, AvailableAt: at, ExpiresAt: at.AddDate(1, 0, 0), Ref: purchaseID}),
			tx.AddMetric(memberID, engine.MetricEntry{At: at, Spend: 1000, Points: 10, Visits: 1}),
		)
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkUpdate measures purchase-shaped Updates on members chosen at
// random among 10,000, from 1 and 64 writers, and, for comparison with a
// group commit, one writer putting 64 of them in each transaction. With
// fsync on, compare with pgbench's minimal transaction on the same server
// (docs/SCALING.md).
func BenchmarkUpdate(b *testing.B) {
	db := mustOpen(b)
	const members = 10000
	ids := make([]string, members)
	for i := range ids {
		ids[i] = storetest.NewID()
	}
	for i := 0; i < members; i += 1000 {
		if err := db.Update(b.Context(), func(tx engine.Tx) error {
			for _, id := range ids[i : i+1000] {
				if err := tx.PutMember(&engine.Member{ID: id, Status: engine.StatusActive}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	next := func() (string, string) {
		return ids[rand.IntN(members)], fmt.Sprint("p", n.Add(1))
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b.Run("writers=1", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			m, p := next()
			if err := db.Update(b.Context(), purchaseLike(m, p, at)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
	})
	b.Run("writers=64", func(b *testing.B) {
		b.SetParallelism(64 / runtime.GOMAXPROCS(0))
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m, p := next()
				if err := db.Update(b.Context(), purchaseLike(m, p, at)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
	})
	b.Run("batched=64", func(b *testing.B) {
		start := time.Now()
		for done := 0; done < b.N; {
			k := min(64, b.N-done)
			var fns []func(engine.Tx) error
			for range k {
				m, p := next()
				fns = append(fns, purchaseLike(m, p, at))
			}
			if err := db.Update(b.Context(), func(tx engine.Tx) error {
				for _, fn := range fns {
					if err := fn(tx); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			done += k
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
	})
}
