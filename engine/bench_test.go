package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// benchMembers is how many members the purchase benchmarks spread over:
// enough that two concurrent purchases rarely touch the same member.
const benchMembers = 1000

// benchEngine is an engine with the example rules on a real bbolt file
// opened with opts, holding benchMembers enrolled members, each with a few
// purchases of history so the tier window and the open lots are not empty.
// The history is written without fsync.
func benchEngine(b *testing.B, opts store.Options) (*engine.Engine, []string) {
	b.Helper()
	path := b.TempDir() + "/bench.db"
	seed := store.DefaultOptions()
	seed.NoSync = true
	e, db := openBenchEngine(b, path, seed)
	ctx := context.Background()
	ids := make([]string, benchMembers)
	for i := range ids {
		m, err := e.CreateMember(ctx, engine.MemberInput{ExternalID: fmt.Sprintf("card-%06d", i)})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = m.ID
		for j := range 5 {
			if _, _, err := e.Purchase(ctx, benchRequest(fmt.Sprintf("seed-%d-%d", i, j), m.ID, "")); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	e, db = openBenchEngine(b, path, opts)
	b.Cleanup(func() { db.Close() })
	return e, ids
}

func openBenchEngine(b *testing.B, path string, opts store.Options) (*engine.Engine, *store.DB) {
	b.Helper()
	db, err := store.Open(path, opts)
	if err != nil {
		b.Fatal(err)
	}
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		b.Fatal(err)
	}
	e := engine.New(db, engine.Options{Clock: engine.NewTestClock(&fixedClock{t: start}), Logger: slog.New(slog.DiscardHandler)})
	if _, err := e.LoadRules(b.Context(), prog, "bench"); err != nil {
		b.Fatal(err)
	}
	return e, db
}

// benchRequest is a till's purchase of three items, one of them coffee.
func benchRequest(id, memberID, externalID string) engine.PurchaseRequest {
	return engine.PurchaseRequest{
		ID: id, MemberID: memberID, MemberExternalID: externalID,
		StoreID: "store-12", TerminalID: "till-3", Currency: "USD", Amount: "28.40",
		Items: []engine.ItemRequest{
			{SKU: "LATTE-L", Category: "coffee", Quantity: 2, Amount: "8.00"},
			{SKU: "BEANS-1KG", Category: "beans", Quantity: 1, Amount: "15.40"},
			{SKU: "CROISSANT", Category: "food", Quantity: 1, Amount: "5.00"},
		},
	}
}

// BenchmarkPurchase runs the whole purchase command against a real bbolt
// file: serially without fsync or batch delay for the CPU cost of one
// purchase, and from
// many goroutines with and without fsync for what group commit achieves.
func BenchmarkPurchase(b *testing.B) {
	nosync := store.DefaultOptions()
	nosync.NoSync = true
	b.Run("serial-nosync", func(b *testing.B) {
		e, ids := benchEngine(b, nosync)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, _, err := e.Purchase(ctx, benchRequest("p"+strconv.Itoa(i), ids[i%len(ids)], "")); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, sync := range []bool{false, true} {
		opts := store.DefaultOptions()
		name := "parallel-fsync"
		if !sync {
			opts, name = nosync, "parallel-nosync"
		}
		b.Run(name, func(b *testing.B) {
			e, ids := benchEngine(b, opts)
			benchParallelPurchases(b, e, ids)
		})
	}
}

func benchParallelPurchases(b *testing.B, e *engine.Engine, ids []string) {
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	began, cpu := time.Now(), processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			req := benchRequest("p"+strconv.FormatInt(n, 10), ids[n%int64(len(ids))], "")
			if n%2 == 0 {
				req.MemberID, req.MemberExternalID = "", fmt.Sprintf("card-%06d", n%int64(len(ids)))
			}
			if _, _, err := e.Purchase(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "purchases/s")
	// CPU time per purchase holds still on a busy machine, where wall
	// time does not.
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBalance reads balances from many goroutines, as a member app
// polling would: each a read transaction on its own.
func BenchmarkBalance(b *testing.B) {
	opts := store.DefaultOptions()
	opts.NoSync = true
	e, ids := benchEngine(b, opts)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Balance(ctx, ids[next.Add(1)%int64(len(ids))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkExpirePoints runs the expire-points job over lots that are all
// due, ten per member, on a file with fsync, and reports lots per second.
func BenchmarkExpirePoints(b *testing.B) {
	const perMember = 10
	e, ids := benchEngine(b, store.DefaultOptions())
	ctx := context.Background()
	clock := e.Clock().(*engine.TestClock)
	b.ReportAllocs()
	var lots int64
	var took time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		// Purchases now give each member perMember lots due in a year.
		for j := range perMember {
			n := 0
			for _, id := range ids {
				n++
				if _, _, err := e.Purchase(ctx, benchRequest(fmt.Sprintf("e%d-%d-%d", i, j, n), id, "")); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := clock.Advance(400 * 24 * time.Hour); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t := time.Now()
		run, err := e.RunJob(ctx, engine.JobExpirePoints)
		took += time.Since(t)
		if err != nil || run.Error != "" {
			b.Fatal(err, run.Error)
		}
		lots += run.Processed
	}
	b.ReportMetric(float64(lots)/took.Seconds(), "lots/s")
}

// BenchmarkPurchaseManyRules: a purchase under a file of many trivial
// rules, each of which earns, costs in proportion to the rules, not their
// square (20,000 rules used to take 1.6 s a purchase).
func BenchmarkPurchaseManyRules(b *testing.B) {
	for _, n := range []int{20, 2000, 20000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			src := []byte("currency: USD\nearn:\n")
			for i := range n {
				src = fmt.Appendf(src, "  - {name: r%d, points: 1}\n", i)
			}
			prog, err := rules.Parse("rules.yaml", src)
			if err != nil {
				b.Fatal(err)
			}
			opts := store.DefaultOptions()
			opts.NoSync = true
			db, err := store.Open(b.TempDir()+"/bench.db", opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			e := engine.New(db, engine.Options{Clock: engine.NewTestClock(&fixedClock{t: start}), Logger: slog.New(slog.DiscardHandler)})
			if _, err := e.LoadRules(b.Context(), prog, "bench"); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			m, err := e.CreateMember(ctx, engine.MemberInput{})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				res, _, err := e.Purchase(ctx, engine.PurchaseRequest{ID: "p" + strconv.Itoa(i), MemberID: m.ID, Currency: "USD", Amount: "1.00"})
				if err != nil || res.Points != int64(n) {
					b.Fatal(res, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rule")
		})
	}
}
