package store

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// bruteMetricSum is MetricSum by definition: the entries Metrics returns from
// from on, up to to.
func bruteMetricSum(t *testing.T, tx engine.Tx, member string, from, to time.Time) engine.MetricEntry {
	t.Helper()
	entries, err := tx.Metrics(member, from)
	if err != nil {
		t.Fatal(err)
	}
	var s engine.MetricEntry
	for _, e := range entries {
		if !e.At.After(to) {
			addMetric(&s, e, 1)
		}
	}
	return s
}

// TestMetricSumIsExact drives a window forward through random entries
// (late ones, early ones, refunds, entries in the future) and compares the
// running sum with reading every entry, in write and read transactions.
// MustOpenDB's Check then compares each stored sum with its entries.
func TestMetricSumIsExact(t *testing.T) {
	db := MustOpenDB(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	members := []string{newID(), "not-a-uuid"}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, id := range members {
			if err := tx.PutMember(&engine.Member{ID: id}); err != nil {
				return err
			}
		}
		return nil
	})
	now := t0
	for step := range 400 {
		now = now.Add(time.Duration(rnd.IntN(72)) * time.Hour)
		member := members[rnd.IntN(len(members))]
		window := 30 * 24 * time.Hour
		if step%97 == 0 {
			window *= 3 // a longer window starts before the stored sum
		}
		from := now.Add(-window)
		mustUpdate(t, db, func(tx engine.Tx) error {
			for range rnd.IntN(3) {
				at := now.Add(time.Duration(rnd.IntN(24*60)-20*60) * time.Hour)
				e := engine.MetricEntry{At: at, Spend: int64(rnd.IntN(5000)), Points: int64(rnd.IntN(50)), Visits: 1}
				if rnd.IntN(5) == 0 {
					e = engine.MetricEntry{At: at, Spend: -e.Spend, Points: -e.Points}
				}
				if err := tx.AddMetric(member, e); err != nil {
					return err
				}
			}
			got, err := tx.(engine.MetricSummer).MetricSum(member, from, now)
			if err != nil {
				return err
			}
			if want := bruteMetricSum(t, tx, member, from, now); got != want {
				t.Fatalf("step %d: write: MetricSum = %+v, want %+v", step, got, want)
			}
			return nil
		})
		later := now.Add(time.Duration(rnd.IntN(48)) * time.Hour)
		mustView(t, db, func(tx engine.Tx) error {
			got, err := tx.(engine.MetricSummer).MetricSum(member, later.Add(-window), later)
			if err != nil {
				return err
			}
			if want := bruteMetricSum(t, tx, member, later.Add(-window), later); got != want {
				t.Fatalf("step %d: read: MetricSum = %+v, want %+v", step, got, want)
			}
			return nil
		})
	}
}

func lotBalances(lots []*engine.Lot) []engine.LotBalance {
	out := []engine.LotBalance{}
	for _, l := range lots {
		out = append(out, engine.LotBalance{Remaining: l.Remaining, AvailableAt: l.AvailableAt.UTC(), ExpiresAt: l.ExpiresAt.UTC()})
	}
	return out
}

// TestOpenLotBalances follows lots through spending, restoring and expiry
// and compares the index's answer with the lots.
func TestOpenLotBalances(t *testing.T) {
	db := MustOpenDB(t)
	a := newID()
	var lots []*engine.Lot
	for i := range 6 {
		at := t0.AddDate(0, 0, i)
		l := &engine.Lot{ID: fmt.Sprintf("lot-%d", i), MemberID: a, Points: 10, Remaining: 10, EarnedAt: at, AvailableAt: at.Add(time.Duration(i) * time.Hour), ExpiresAt: at.AddDate(1, 0, 0), Ref: "p"}
		if i == 5 {
			l.ExpiresAt = time.Time{}
		}
		lots = append(lots, l)
	}
	compare := func(when string) {
		t.Helper()
		mustView(t, db, func(tx engine.Tx) error {
			open, err := tx.OpenLots(a)
			if err != nil {
				return err
			}
			got, err := tx.(engine.LotBalancer).OpenLotBalances(a)
			if err != nil {
				return err
			}
			if want := lotBalances(open); !reflect.DeepEqual(append([]engine.LotBalance{}, got...), want) {
				t.Fatalf("%s: OpenLotBalances = %+v, want %+v", when, got, want)
			}
			return nil
		})
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, l := range lots {
			if err := tx.PutLot(l); err != nil {
				return err
			}
		}
		return nil
	})
	compare("new")
	for _, change := range []func(){
		func() { lots[0].Remaining = 4 },
		func() { lots[1].Remaining = 0 },
		func() { lots[1].Remaining = 3 },
		func() { lots[2].ExpiresAt = lots[2].ExpiresAt.Add(-time.Hour) },
		func() { lots[3].AvailableAt = lots[3].AvailableAt.Add(time.Hour) },
		func() { lots[5].Remaining = 1 },
	} {
		change()
		mustUpdate(t, db, func(tx engine.Tx) error {
			for _, l := range lots {
				if err := tx.PutLot(l); err != nil {
					return err
				}
			}
			return nil
		})
		compare("after a change")
	}
}

func TestCheckFastPaths(t *testing.T) {
	a := newID()
	exp := t0.AddDate(1, 0, 0)
	open := &engine.Lot{ID: "open", MemberID: a, Points: 5, Remaining: 5, AvailableAt: t0, ExpiresAt: exp}
	seed := func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: a}); err != nil {
			return err
		}
		if err := tx.PutLot(open); err != nil {
			return err
		}
		for i := range 3 {
			if err := tx.AddMetric(a, engine.MetricEntry{At: t0.AddDate(0, 0, i), Spend: 100, Visits: 1}); err != nil {
				return err
			}
		}
		_, err := tx.(engine.MetricSummer).MetricSum(a, t0, t0.AddDate(0, 1, 0))
		return err
	}
	tests := []struct {
		name    string
		corrupt func(*bolt.Tx) error
		want    string
	}{
		{"stale lots_open value", func(btx *bolt.Tx) error {
			stale := *open
			stale.Remaining = 3
			return btx.Bucket(bucketMemberData).Put(openLotKey(open), openLotValue(&stale))
		}, "lots_open: "},
		{"metric sum off", func(btx *bolt.Tx) error {
			v, err := encode(&metricSum{From: timeKey(t0), Latest: timeKey(t0.AddDate(0, 0, 2)), Sum: engine.MetricEntry{Spend: 250, Visits: 3}})
			if err != nil {
				return err
			}
			return btx.Bucket(bucketMemberData).Put(memberSection(a, sectionSum, 0), v)
		}, "but the entries add up to"},
		{"metric sum misses an entry", func(btx *bolt.Tx) error {
			k := metricKey(memberSection(a, sectionHistory, 0), t0.AddDate(0, 0, 9), 99)
			v, err := encode(engine.MetricEntry{At: t0.AddDate(0, 0, 9), Spend: 1})
			if err != nil {
				return err
			}
			return btx.Bucket(bucketMemberData).Put(k, v)
		}, "but the entries add up to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFinds(t, seed, tt.corrupt, tt.want) })
	}
}

// BenchmarkOpenLotBalances reads what a balance needs of the open lots of
// the member of BenchmarkOpenLots, from the index alone.
func BenchmarkOpenLotBalances(b *testing.B) {
	db := MustOpenDB(b)
	target := seedLotHistory(b, db)
	b.ReportAllocs()
	for b.Loop() {
		err := db.View(b.Context(), func(tx engine.Tx) error {
			lots, err := tx.(engine.LotBalancer).OpenLotBalances(target)
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

// BenchmarkMetricSum is promote's read on a purchase: the metric over a
// year's window of a member with a purchase a day for two years, in write
// transactions that move the window an hour each time; "entries" reads and
// adds up every entry of the window instead, as promote did before.
func BenchmarkMetricSum(b *testing.B) {
	db := mustOpenPath(b, filepath.Join(b.TempDir(), "loyalty.db"), testOptions())
	m := newID()
	mustUpdate(b, db, func(tx engine.Tx) error {
		for i := range 730 {
			if err := tx.AddMetric(m, engine.MetricEntry{At: t0.AddDate(0, 0, i), Spend: 1000, Points: 10, Visits: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, mode := range []string{"sum", "entries"} {
		b.Run(mode, func(b *testing.B) {
			now := t0.AddDate(1, 0, 0)
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Hour)
				err := db.Update(b.Context(), func(tx engine.Tx) error {
					if mode == "sum" {
						_, err := tx.(engine.MetricSummer).MetricSum(m, now.AddDate(-1, 0, 0), now)
						return err
					}
					_, err := tx.Metrics(m, now.AddDate(-1, 0, 0))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
