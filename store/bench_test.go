package store

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// BenchmarkPutPurchaseBatch writes what a purchase writes, from many
// goroutines at once as many tills would. With fsync it measures group
// commit on this disk; without, the CPU cost of the transactions.
func BenchmarkPutPurchaseBatch(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		name := "fsync"
		if noSync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			opts := DefaultOptions()
			opts.NoSync = noSync
			benchPurchases(b, opts)
		})
	}
}

func benchPurchases(b *testing.B, opts Options) {
	db := mustOpenPath(b, b.TempDir()+"/bench.db", opts)
	members := make([]string, 1000)
	mustUpdate(b, db, func(tx engine.Tx) error {
		for i := range members {
			members[i] = newID()
			if err := tx.PutMember(&engine.Member{ID: members[i], Email: members[i] + "@example.com", Status: engine.StatusActive, EnrolledAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	var next atomic.Int64
	firstTx := lastTxID(b, db)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			memberID, purchaseID, lotID := members[n%int64(len(members))], newID(), newID()
			at := t0.Add(time.Duration(n) * time.Second)
			err := db.Update(b.Context(), func(tx engine.Tx) error {
				m, err := tx.Member(memberID)
				if err != nil {
					return err
				}
				m.Points += 25
				m.LedgerSeq++
				m.PurchaseCount++
				m.LastPurchaseAt = at
				p := benchPurchase(purchaseID, memberID, at)
				if err := tx.PutPurchase(p); err != nil {
					return err
				}
				if err := tx.AppendLedger(&engine.LedgerEntry{ID: newID(), MemberID: memberID, Seq: m.LedgerSeq, Type: engine.LedgerEarn, Points: 25, BalanceAfter: m.Points, At: at, Ref: purchaseID, RulesVersion: 1}); err != nil {
					return err
				}
				if err := tx.PutLot(&engine.Lot{ID: lotID, MemberID: memberID, Points: 25, Remaining: 25, EarnedAt: at, AvailableAt: at, ExpiresAt: at.AddDate(1, 0, 0), Ref: purchaseID}); err != nil {
					return err
				}
				if err := tx.AddMetric(memberID, engine.MetricEntry{At: at, Spend: p.Amount, Points: 25, Visits: 1}); err != nil {
					return err
				}
				return tx.PutMember(m)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(lastTxID(b, db)-firstTx), "puts/commit")
}

// lastTxID is the id of the last committed write transaction.
func lastTxID(b *testing.B, db *DB) int {
	var id int
	if err := db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		b.Fatal(err)
	}
	return id
}

func benchPurchase(id, memberID string, at time.Time) *engine.Purchase {
	items := []engine.PurchaseItem{
		{SKU: "SKU-1001", Category: "grocery", Quantity: 2, Amount: 899},
		{SKU: "SKU-2040", Category: "dairy", Quantity: 1, Amount: 349},
		{SKU: "SKU-7781", Category: "bakery", Quantity: 3, Amount: 1252},
	}
	return &engine.Purchase{
		ID: id, MemberID: memberID, StoreID: "store-12", TerminalID: "till-3",
		OccurredAt: at, RecordedAt: at, Currency: "EUR", Amount: 2500, Items: items, Points: 25,
		Breakdown:    []rules.RuleResult{{Rule: "base", Points: 25, ItemPoints: []int64{9, 3, 13}}},
		RulesVersion: 1, RequestHash: "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea",
		Result: engine.PurchaseResult{
			ID: id, MemberID: memberID, Points: 25, Breakdown: []engine.RuleLine{{Rule: "base", Points: 25}},
			RulesVersion: 1, Balance: engine.BalanceSummary{Available: 125}, Tier: engine.TierChange{Name: "silver"},
		},
	}
}

// BenchmarkOpenLots reads the open lots of a member with a year of history:
// 200 lots of which 50 are still open, among other members' lots.
func BenchmarkOpenLots(b *testing.B) {
	db := MustOpenDB(b)
	target := seedLotHistory(b, db)
	b.ReportAllocs()
	for b.Loop() {
		err := db.View(b.Context(), func(tx engine.Tx) error {
			lots, err := tx.OpenLots(target)
			if err == nil && len(lots) != 50 {
				err = fmt.Errorf("%d open lots, want 50", len(lots))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// seedLotHistory gives 100 members a year of lots, 200 each of which 50
// are still open, and returns one of them.
func seedLotHistory(b *testing.B, db *DB) string {
	var target string
	mustUpdate(b, db, func(tx engine.Tx) error {
		for range 100 {
			id := newID()
			if target == "" {
				target = id
			}
			for i := range 200 {
				remaining := int64(0)
				if i >= 150 {
					remaining = 10
				}
				at := t0.AddDate(0, 0, i)
				if err := tx.PutLot(&engine.Lot{ID: fmt.Sprintf("lot-%03d", i), MemberID: id, Points: 10, Remaining: remaining, EarnedAt: at, ExpiresAt: at.AddDate(1, 0, 0)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return target
}

// BenchmarkGroupCommit compares bbolt's db.Batch (2 ms timer, the store's
// former group commit) with the store's commit loop, on the raw ceiling's
// work: durable 200-byte appends from 64 goroutines. The work in a write is
// tiny here; with a purchase's, which keeps the writer busy longer, db.Batch
// splits the writes waiting behind a commit into more, smaller commits.
func BenchmarkGroupCommit(b *testing.B) {
	bucket := []byte("appends")
	for _, loop := range []string{"bbolt-batch", "committer"} {
		b.Run(loop, func(b *testing.B) {
			db, err := bolt.Open(b.TempDir()+"/appends.db", 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.MaxBatchDelay = 2 * time.Millisecond
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
				b.Fatal(err)
			}
			update := db.Batch
			if loop == "committer" {
				c := newCommitter(db, DefaultOptions().MaxBatchSize)
				defer c.close()
				update = c.update
			}
			var next atomic.Uint64
			var firstTx int
			_ = db.View(func(tx *bolt.Tx) error { firstTx = tx.ID(); return nil })
			value := make([]byte, 200)
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := binary.BigEndian.AppendUint64(nil, next.Add(1))
					if err := update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			var lastTx int
			_ = db.View(func(tx *bolt.Tx) error { lastTx = tx.ID(); return nil })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(b.N)/float64(lastTx-firstTx), "appends/commit")
		})
	}
}
