package engine_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

var scaleMembers = flag.Int("analytics.members", 0, "measure an analytics run over this many members (TestAnalyticsScale)")

// TestAnalyticsScale measures one analytics run over a large population,
// built straight through the store without fsync, while a till keeps
// posting purchases: how fast the run goes, how much memory it holds and
// how long the purchases wait. Run it with
//
//	go test ./engine -run TestAnalyticsScale -analytics.members=1000000 -v -timeout 60m
func TestAnalyticsScale(t *testing.T) {
	n := *scaleMembers
	if n == 0 {
		t.Skip("set -analytics.members=N to measure a run over N members")
	}
	now := time.Date(2027, 3, 2, 15, 0, 0, 0, time.UTC)
	path := t.TempDir() + "/scale.db"
	began := time.Now()
	ids, entries := buildPopulation(t, path, n, now)
	t.Logf("built %d members, %d purchases in %s", n, entries, time.Since(began).Round(time.Second))
	// Written without fsync, the file is still dirty in the page cache: the
	// run's first fsync would flush all of it and pass for a stall.
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	} else if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}

	db, err := store.Open(path, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := engine.New(db, engine.Options{Clock: engine.NewTestClock(&fixedClock{t: now}), Logger: slog.New(slog.DiscardHandler)})
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "scale"); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // heap in use, sampled
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	// A till posts a purchase every 10ms, each with fsync: for five seconds
	// alone, for a baseline, then during the run.
	var idle, waits []time.Duration
	var slowest, slowestAt time.Duration
	var runStart time.Time
	var running atomic.Bool
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			req := engine.PurchaseRequest{ID: fmt.Sprintf("till-%d", i), MemberID: ids[rand.IntN(len(ids))], Currency: "USD", Amount: "12.50"}
			t0 := time.Now()
			if _, _, err := e.Purchase(context.Background(), req); err != nil {
				t.Error(err)
				return
			}
			if running.Load() {
				waits = append(waits, time.Since(t0))
				if w := time.Since(t0); w > slowest {
					slowest, slowestAt = w, time.Since(runStart)
				}
			} else {
				idle = append(idle, time.Since(t0))
			}
		}
	}()
	time.Sleep(5 * time.Second)

	runStart = time.Now()
	running.Store(true)
	t0 := runStart
	run, err := e.RunJob(context.Background(), engine.JobAnalytics)
	took := time.Since(t0)
	close(done)
	wg.Wait()
	if err != nil || run.Error != "" {
		t.Fatalf("run: %v %+v", err, run)
	}
	if run.Processed != int64(n) {
		t.Errorf("processed %d members, want %d", run.Processed, n)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	sum, err := e.AnalyticsSummary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pct := func(ws []time.Duration, p float64) time.Duration {
		if len(ws) == 0 {
			return 0
		}
		slices.Sort(ws)
		return ws[min(int(p*float64(len(ws))), len(ws)-1)].Round(100 * time.Microsecond)
	}
	fi, _ := os.Stat(path)
	t.Logf("analytics run over %d members: %s, %.0f members/s", n, took.Round(time.Second), float64(n)/took.Seconds())
	t.Logf("heap in use: %d MiB before, peak %d MiB during; %d MiB allocated in all",
		base.HeapInuse>>20, peak.Load()>>20, (after.TotalAlloc-base.TotalAlloc)>>20)
	t.Logf("purchase latency idle: p50 %s, p99 %s; during the run (%d purchases): p50 %s, p99 %s, max %s at %s",
		pct(idle, 0.5), pct(idle, 0.99), len(waits), pct(waits, 0.5), pct(waits, 0.99), pct(waits, 1), slowestAt.Round(time.Second))
	t.Logf("summary: active %d, segments %v, lifecycle %v, top %d bring %.1f%%; file %d MiB",
		sum.Active, sum.Segments, sum.Lifecycle, sum.Revenue.TopMembers, sum.Revenue.TopShare*100, fi.Size()>>20)
}

// buildPopulation writes n members with a year of purchase history straight
// through the store, in id order so bbolt appends, without fsync. A tenth
// buy weekly, three tenths monthly, four tenths a few times and a fifth not
// at all; some stopped months ago, and one in ten was referred. Each member
// gets the lot and ledger entry their points imply, so the file stays
// consistent. It returns the ids and how many purchases it wrote.
func buildPopulation(t *testing.T, path string, n int, now time.Time) ([]string, int) {
	t.Helper()
	opts := store.DefaultOptions()
	opts.NoSync = true
	db, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	slices.Sort(ids)
	rng := rand.New(rand.NewPCG(1, 2))
	day := 24 * time.Hour
	purchases := 0
	const chunk = 5000
	for lo := 0; lo < n; lo += chunk {
		err := db.Update(t.Context(), func(tx engine.Tx) error {
			for i := lo; i < min(lo+chunk, n); i++ {
				m := &engine.Member{
					ID: ids[i], ExternalID: fmt.Sprintf("card-%08d", i), Status: engine.StatusActive,
					EnrolledAt: now.Add(-time.Duration(30+rng.IntN(3*365)) * day), Tier: "green",
				}
				m.TierSince = m.EnrolledAt
				if i > 0 && rng.IntN(10) == 0 {
					m.ReferrerID = ids[rng.IntN(i)]
				}
				var every, count int
				switch r := rng.IntN(10); {
				case r == 0:
					every, count = 7, 52
				case r < 4:
					every, count = 30, 12
				case r < 8:
					every, count = 90, 1+rng.IntN(3)
				}
				stop := now.Add(-time.Duration(rng.IntN(2)*rng.IntN(200)) * day) // half still come
				for k := 0; k < count; k++ {
					at := stop.Add(-time.Duration(k*every)*day - time.Duration(rng.IntN(12))*time.Hour)
					amount := int64(500 + rng.IntN(4500))
					if err := tx.AddMetric(m.ID, engine.MetricEntry{At: at, Spend: amount, Points: amount / 100, Visits: 1}); err != nil {
						return err
					}
					m.PurchaseCount++
					m.LifetimeSpend += amount
					m.Points += amount / 100
					m.LastPurchaseAt = maxTime(m.LastPurchaseAt, at)
					purchases++
				}
				m.LifetimeEarned = m.Points
				if m.Points > 0 {
					m.LedgerSeq = 1
					lot := &engine.Lot{
						ID: uuid.NewString(), MemberID: m.ID, Points: m.Points, Remaining: m.Points,
						EarnedAt: m.LastPurchaseAt, AvailableAt: m.LastPurchaseAt, ExpiresAt: m.LastPurchaseAt.AddDate(1, 0, 0), Ref: "history",
					}
					if err := tx.PutLot(lot); err != nil {
						return err
					}
					if err := tx.AppendLedger(&engine.LedgerEntry{
						ID: uuid.NewString(), MemberID: m.ID, Seq: 1, Type: engine.LedgerEarn, Points: m.Points,
						BalanceAfter: m.Points, At: m.LastPurchaseAt, Ref: "history", RulesVersion: 1,
					}); err != nil {
						return err
					}
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids, purchases
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
