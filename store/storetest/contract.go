package storetest

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// Checker is a store that can check its own consistency (indexes and
// derived values); the suite runs it where a test changes them, and a
// store's Open runs it on cleanup.
type Checker interface {
	Check(w io.Writer) (problems int, err error)
}

// check runs s's own consistency check, if it has one.
func check(tb testing.TB, s engine.Store) {
	tb.Helper()
	c, ok := s.(Checker)
	if !ok {
		return
	}
	var out strings.Builder
	n, err := c.Check(&out)
	if err != nil {
		tb.Fatalf("check: %v", err)
	}
	if n > 0 {
		tb.Fatalf("check found %d problems:\n%s", n, out.String())
	}
}

func testAnalyticsSummaries(t *testing.T, db engine.Store) {
	mustView(t, db, func(tx engine.Tx) error {
		if s, err := tx.LatestAnalyticsSummary(); s != nil || err != nil {
			t.Errorf("LatestAnalyticsSummary on an empty store = %v, %v", s, err)
		}
		return nil
	})
	summary := func(h int, members int64) *engine.AnalyticsSummary {
		return &engine.AnalyticsSummary{
			ComputedAt: t0.Add(time.Duration(h) * time.Hour), Window: "365d", Members: members, Active: 3,
			Segments: map[string]int64{engine.SegmentMVC: 1, engine.SegmentRegular: 2}, Lifecycles: map[string]int64{engine.LifecycleNew: 3},
			ChurnRisk: 1, Revenue: 1000, TopMembers: 1, TopRevenue: 600, PointsOutstanding: 50, Liability: 5, Expiring30: 7, Expiring90: 9,
		}
	}
	for _, h := range []int{2, 0, 1} {
		s := summary(h, int64(h))
		mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutAnalyticsSummary(s) })
	}
	want := summary(2, 2)
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.LatestAnalyticsSummary()
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LatestAnalyticsSummary = %+v, want %+v", got, want)
		}
		return nil
	})
	// A summary stored again under the same time replaces the first.
	want.Members, want.Segments = 99, nil
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutAnalyticsSummary(want) })
	mustView(t, db, func(tx engine.Tx) error {
		if got, err := tx.LatestAnalyticsSummary(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("replaced LatestAnalyticsSummary = %+v, %v; want %+v", got, err, want)
		}
		return nil
	})
}

// testMissingRecords: every lookup of a record that does not exist answers
// (nil, nil) and every list is empty, on an empty store and beside data.
func testMissingRecords(t *testing.T, db engine.Store) {
	lookups := func(tx engine.Tx) {
		t.Helper()
		nilRecord := func(name string, rec any, err error) {
			t.Helper()
			if err != nil || !reflect.ValueOf(rec).IsNil() {
				t.Errorf("%s = %v, %v; want nil, nil", name, rec, err)
			}
		}
		m, err := tx.Member("nobody")
		nilRecord("Member", m, err)
		for _, key := range []string{engine.KeyExternalID, engine.KeyEmail, engine.KeyPhone} {
			m, err := tx.MemberByKey(key, "nothing")
			nilRecord("MemberByKey "+key, m, err)
			m, err = tx.MemberByKey(key, "")
			nilRecord("MemberByKey "+key+" empty", m, err)
		}
		p, err := tx.Purchase("none")
		nilRecord("Purchase", p, err)
		rf, err := tx.Refund("none")
		nilRecord("Refund", rf, err)
		rd, err := tx.Redemption("none")
		nilRecord("Redemption", rd, err)
		a, err := tx.Adjustment("none")
		nilRecord("Adjustment", a, err)
		l, err := tx.Lot("nobody", "none")
		nilRecord("Lot", l, err)
		v, err := tx.RulesVersion(42)
		nilRecord("RulesVersion", v, err)
		lists := map[string]func() (int, error){
			"Ledger":   func() (int, error) { es, err := tx.Ledger("nobody", 0, 0); return len(es), err },
			"OpenLots": func() (int, error) { ls, err := tx.OpenLots("nobody"); return len(ls), err },
			"Lots":     func() (int, error) { ls, err := tx.Lots("nobody"); return len(ls), err },
			"Metrics":  func() (int, error) { ms, err := tx.Metrics("nobody", time.Time{}); return len(ms), err },
			"JobRuns":  func() (int, error) { rs, err := tx.JobRuns("none", 0); return len(rs), err },
		}
		for name, list := range lists {
			if n, err := list(); n != 0 || err != nil {
				t.Errorf("%s = %d records, %v; want none", name, n, err)
			}
		}
		if n, err := tx.RuleUses("nobody", "r", "all"); n != 0 || err != nil {
			t.Errorf("RuleUses = %d, %v; want 0, nil", n, err)
		}
		if ok, err := tx.Marked("none"); ok || err != nil {
			t.Errorf("Marked = %v, %v; want false, nil", ok, err)
		}
	}
	mustView(t, db, func(tx engine.Tx) error {
		lookups(tx)
		for name, list := range map[string]func() (int, error){
			"Members": func() (int, error) { ms, err := tx.Members("", 0); return len(ms), err },
			"PurchasesBetween": func() (int, error) {
				ps, err := tx.PurchasesBetween(time.Time{}, t0.AddDate(100, 0, 0), 0)
				return len(ps), err
			},
			"DueLots":       func() (int, error) { ls, err := tx.DueLots(t0.AddDate(100, 0, 0), nil, 0); return len(ls), err },
			"RulesVersions": func() (int, error) { vs, err := tx.RulesVersions(); return len(vs), err },
			"Events":        func() (int, error) { es, err := tx.Events(0, 0); return len(es), err },
		} {
			if n, err := list(); n != 0 || err != nil {
				t.Errorf("%s on an empty store = %d records, %v; want none", name, n, err)
			}
		}
		if v, err := tx.LatestRules(); v != nil || err != nil {
			t.Errorf("LatestRules on an empty store = %v, %v", v, err)
		}
		return nil
	})
	m := NewID()
	putMembers(t, db, m, "nobodyelse")
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutLot(&engine.Lot{ID: "l", MemberID: m, Points: 1, Remaining: 1}); err != nil {
			return err
		}
		return tx.PutRules(&engine.RulesVersion{Version: 1, LoadedAt: t0})
	})
	mustView(t, db, func(tx engine.Tx) error { lookups(tx); return nil })
	mustUpdate(t, db, func(tx engine.Tx) error { lookups(tx); return nil })
}

// Stamps the contract promises to keep exactly: UTC, whole microseconds,
// from before 1970 to far ahead, and the zero time (meaning "never" or
// "unset").
var (
	micro    = time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)
	pre1970  = time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC)
	farAhead = time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// testTimePrecision writes every stamp of every record with microsecond
// parts and reads each back equal, then checks that bounds with parts below
// a microsecond compare against stored stamps as the exact values would.
func testTimePrecision(t *testing.T, db engine.Store) {
	m := NewID()
	member := &engine.Member{
		ID: m, Status: engine.StatusActive, EnrolledAt: pre1970, TierSince: micro, LastPurchaseAt: farAhead,
		Analytics: &engine.Analytics{ComputedAt: micro},
	}
	purchase := &engine.Purchase{ID: "p", MemberID: m, OccurredAt: micro, RecordedAt: farAhead, Amount: 1}
	refund := &engine.Refund{ID: "r", PurchaseID: "p", MemberID: m, At: pre1970}
	redemption := &engine.Redemption{ID: "d", MemberID: m, Points: 10, At: micro, CancelledAt: farAhead, Cancelled: true}
	adjustment := &engine.Adjustment{ID: "a", MemberID: m, At: farAhead}
	entry := &engine.LedgerEntry{ID: "e", MemberID: m, Seq: 1, At: micro}
	lot := &engine.Lot{ID: "l", MemberID: m, Points: 1, Remaining: 1, EarnedAt: pre1970, AvailableAt: micro, ExpiresAt: micro}
	never := &engine.Lot{ID: "n", MemberID: m, Points: 1, Remaining: 1, EarnedAt: farAhead}
	metrics := []engine.MetricEntry{{At: pre1970, Spend: 1}, {At: micro, Spend: 2}}
	run := &engine.JobRun{Name: "expire", StartedAt: micro, FinishedAt: farAhead}
	rules := &engine.RulesVersion{Version: 1, LoadedAt: micro}
	event := &engine.Event{Type: "t", MemberID: m, At: pre1970}
	summary := &engine.AnalyticsSummary{ComputedAt: micro}
	mustUpdate(t, db, func(tx engine.Tx) error {
		steps := []error{
			tx.PutMember(member), tx.PutPurchase(purchase), tx.PutRefund(refund), tx.PutRedemption(redemption),
			tx.PutAdjustment(adjustment), tx.AppendLedger(entry), tx.PutLot(lot), tx.PutLot(never),
			tx.AddMetric(m, metrics[1]), tx.AddMetric(m, metrics[0]), tx.PutJobRun(run), tx.PutRules(rules),
			tx.AppendEvent(event), tx.PutAnalyticsSummary(summary),
		}
		return errors.Join(steps...)
	})
	// The feed numbers the event; a store may do so after its commit, for
	// the first reader of the feed.
	wantEvent := *event
	wantEvent.Seq = 1
	mustView(t, db, func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		if err != nil || !reflect.DeepEqual(evs, []*engine.Event{&wantEvent}) {
			t.Errorf("Events = %+v, %v; want %+v", evs, err, &wantEvent)
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		same := func(name string, got, want any, err error) {
			t.Helper()
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %+v, want %+v", name, got, want)
			}
		}
		got, err := tx.Member(m)
		same("Member", got, member, err)
		p, err := tx.Purchase("p")
		same("Purchase", p, purchase, err)
		rf, err := tx.Refund("r")
		same("Refund", rf, refund, err)
		rd, err := tx.Redemption("d")
		same("Redemption", rd, redemption, err)
		a, err := tx.Adjustment("a")
		same("Adjustment", a, adjustment, err)
		es, err := tx.Ledger(m, 0, 0)
		same("Ledger", es, []*engine.LedgerEntry{entry}, err)
		l, err := tx.Lot(m, "l")
		same("Lot", l, lot, err)
		n, err := tx.Lot(m, "n")
		same("Lot that never expires", n, never, err)
		ms, err := tx.Metrics(m, time.Time{})
		same("Metrics", ms, metrics, err)
		rs, err := tx.JobRuns("expire", 0)
		same("JobRuns", rs, []*engine.JobRun{run}, err)
		v, err := tx.RulesVersion(1)
		same("RulesVersion", v, rules, err)
		s, err := tx.LatestAnalyticsSummary()
		same("LatestAnalyticsSummary", s, summary, err)

		ns := time.Nanosecond
		bounds := []struct {
			name string
			got  func() (int, error)
			want int
		}{
			{"purchase before a bound 1ns after it", func() (int, error) { ps, err := tx.PurchasesBetween(micro.Add(ns), farAhead, 0); return len(ps), err }, 0},
			{"purchase between bounds 1ns around it", func() (int, error) {
				ps, err := tx.PurchasesBetween(micro.Add(-ns), micro.Add(ns), 0)
				return len(ps), err
			}, 1},
			{"purchase at an exclusive end 1ns before the next microsecond", func() (int, error) {
				ps, err := tx.PurchasesBetween(micro, micro.Add(999*ns), 0)
				return len(ps), err
			}, 1},
			{"lot not due 1ns before its expiry", func() (int, error) { ls, err := tx.DueLots(micro.Add(-ns), nil, 0); return len(ls), err }, 0},
			{"lot due at its expiry", func() (int, error) { ls, err := tx.DueLots(micro, nil, 0); return len(ls), err }, 1},
			{"metric after a bound 1ns after it", func() (int, error) { ms, err := tx.Metrics(m, micro.Add(ns)); return len(ms), err }, 0},
			{"metric at a bound 1ns before it", func() (int, error) { ms, err := tx.Metrics(m, micro.Add(-ns)); return len(ms), err }, 1},
		}
		for _, b := range bounds {
			if got, err := b.got(); err != nil || got != b.want {
				t.Errorf("%s: %d records, %v; want %d", b.name, got, err, b.want)
			}
		}
		return nil
	})
}

// testReadYourWrites: what a transaction wrote, it reads back before it
// commits, through every lookup and list.
func testReadYourWrites(t *testing.T, db engine.Store) {
	m := NewID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		fail := func(what string, got any) error { return fmt.Errorf("%s: read %+v after writing it", what, got) }
		if err := tx.PutMember(&engine.Member{ID: m, Email: "a@x", Points: 3}); err != nil {
			return err
		}
		if got, err := tx.Member(m); err != nil || got == nil || got.Points != 3 {
			return errors.Join(err, fail("Member", got))
		}
		if got, err := tx.MemberByKey(engine.KeyEmail, "a@x"); err != nil || got == nil || got.ID != m {
			return errors.Join(err, fail("MemberByKey", got))
		}
		if err := tx.PutMember(&engine.Member{ID: m, Email: "b@x", Points: 4}); err != nil {
			return err
		}
		if got, err := tx.MemberByKey(engine.KeyEmail, "a@x"); err != nil || got != nil {
			return errors.Join(err, fail("MemberByKey of the email it gave up", got))
		}
		if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: 1, Points: 4, BalanceAfter: 4}); err != nil {
			return err
		}
		if got, err := tx.Ledger(m, 0, 0); err != nil || len(got) != 1 {
			return errors.Join(err, fail("Ledger", got))
		}
		if err := tx.PutLot(&engine.Lot{ID: "l", MemberID: m, Points: 4, Remaining: 4, ExpiresAt: t0}); err != nil {
			return err
		}
		if got, err := tx.OpenLots(m); err != nil || len(got) != 1 {
			return errors.Join(err, fail("OpenLots", got))
		}
		if got, err := tx.DueLots(t0, nil, 0); err != nil || len(got) != 1 {
			return errors.Join(err, fail("DueLots", got))
		}
		if err := tx.AddMetric(m, engine.MetricEntry{At: t0, Spend: 5}); err != nil {
			return err
		}
		if got, err := tx.Metrics(m, time.Time{}); err != nil || len(got) != 1 {
			return errors.Join(err, fail("Metrics", got))
		}
		if err := tx.AddRuleUse(m, "r", "all", 2); err != nil {
			return err
		}
		if err := tx.AddRuleUse(m, "r", "all", 1); err != nil {
			return err
		}
		if got, err := tx.RuleUses(m, "r", "all"); err != nil || got != 3 {
			return errors.Join(err, fail("RuleUses", got))
		}
		if err := tx.PutPurchase(&engine.Purchase{ID: "p", MemberID: m, OccurredAt: t0}); err != nil {
			return err
		}
		if got, err := tx.PurchasesBetween(t0, t0.Add(time.Second), 0); err != nil || len(got) != 1 {
			return errors.Join(err, fail("PurchasesBetween", got))
		}
		if err := tx.PutRules(&engine.RulesVersion{Version: 1, LoadedAt: t0}); err != nil {
			return err
		}
		if got, err := tx.LatestRules(); err != nil || got == nil {
			return errors.Join(err, fail("LatestRules", got))
		}
		if err := tx.PutJobRun(&engine.JobRun{Name: "j", StartedAt: t0}); err != nil {
			return err
		}
		if got, err := tx.JobRuns("j", 0); err != nil || len(got) != 1 {
			return errors.Join(err, fail("JobRuns", got))
		}
		if err := tx.PutAnalyticsSummary(&engine.AnalyticsSummary{ComputedAt: t0}); err != nil {
			return err
		}
		if got, err := tx.LatestAnalyticsSummary(); err != nil || got == nil {
			return errors.Join(err, fail("LatestAnalyticsSummary", got))
		}
		if err := tx.Mark("k"); err != nil {
			return err
		}
		if got, err := tx.Marked("k"); err != nil || !got {
			return errors.Join(err, fail("Marked", got))
		}
		return nil
	})
}

// testShortcutsAgree: a store's optional shortcuts (engine.LotBalancer,
// engine.MetricSummer) answer what the plain methods would.
func testShortcutsAgree(t *testing.T, db engine.Store) {
	m := NewID()
	putMembers(t, db, m)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	mustUpdate(t, db, func(tx engine.Tx) error {
		for i := range 12 {
			l := &engine.Lot{ID: fmt.Sprint("l", i), MemberID: m, Points: 10, Remaining: int64(i % 4), AvailableAt: h(i), ExpiresAt: h(20 - i)}
			if i%5 == 0 {
				l.ExpiresAt = time.Time{}
			}
			if err := tx.PutLot(l); err != nil {
				return err
			}
			if err := tx.AddMetric(m, engine.MetricEntry{At: h(i % 7), Spend: int64(i), Points: 2, Visits: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	compare := func(tx engine.Tx) error {
		if lb, ok := tx.(engine.LotBalancer); ok {
			got, err := lb.OpenLotBalances(m)
			if err != nil {
				return err
			}
			lots, err := tx.OpenLots(m)
			if err != nil {
				return err
			}
			var want []engine.LotBalance
			for _, l := range lots {
				want = append(want, engine.LotBalance{Remaining: l.Remaining, AvailableAt: l.AvailableAt, ExpiresAt: l.ExpiresAt})
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("OpenLotBalances = %+v, want %+v", got, want)
			}
		}
		ms, ok := tx.(engine.MetricSummer)
		if !ok {
			return nil
		}
		for _, w := range [][2]time.Time{{h(0), h(6)}, {h(2), h(4)}, {h(2).Add(time.Nanosecond), h(4).Add(-time.Nanosecond)}, {h(3), h(3)}, {h(7), h(9)}, {time.Time{}, h(100)}} {
			got, err := ms.MetricSum(m, w[0], w[1])
			if err != nil {
				return err
			}
			entries, err := tx.Metrics(m, w[0])
			if err != nil {
				return err
			}
			var want engine.MetricEntry
			for _, e := range entries {
				if !e.At.After(w[1]) {
					want.Spend, want.Points, want.Visits = want.Spend+e.Spend, want.Points+e.Points, want.Visits+e.Visits
				}
			}
			if got != want {
				t.Errorf("MetricSum(%s, %s) = %+v, want %+v", w[0], w[1], got, want)
			}
		}
		return nil
	}
	mustUpdate(t, db, compare)
	mustView(t, db, compare)
}

// testViewIsReadOnly: a write in View fails and leaves nothing behind.
func testViewIsReadOnly(t *testing.T, db engine.Store) {
	m := NewID()
	err := db.View(t.Context(), func(tx engine.Tx) error { return tx.PutMember(&engine.Member{ID: m}) })
	if err == nil {
		t.Error("PutMember in View: no error")
	}
	mustView(t, db, func(tx engine.Tx) error {
		if got, err := tx.Member(m); got != nil || err != nil {
			t.Errorf("member written in View = %+v, %v", got, err)
		}
		return nil
	})
}

// testFailedUpdateRollsBack: an Update whose function fails returns that
// error and keeps none of its writes, while the Updates beside it commit.
func testFailedUpdateRollsBack(t *testing.T, db engine.Store) {
	base := NewID()
	putMembers(t, db, base)
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.PutPurchase(&engine.Purchase{ID: "base", MemberID: base, OccurredAt: t0})
	})
	errBoom := errors.New("boom")
	writeAll := func(tx engine.Tx, i int) error {
		m := fmt.Sprint("member-", i)
		id := func(what string) string { return fmt.Sprint(what, "-", i) }
		at := t0.Add(time.Duration(i) * time.Minute)
		return errors.Join(
			tx.PutMember(&engine.Member{ID: m, Email: id("email"), Points: 5}),
			tx.PutPurchase(&engine.Purchase{ID: id("p"), MemberID: m, OccurredAt: at}),
			tx.PutRefund(&engine.Refund{ID: id("r"), PurchaseID: "base", MemberID: base, At: at}),
			tx.PutRedemption(&engine.Redemption{ID: id("d"), MemberID: m, Points: 10, At: at}),
			tx.PutAdjustment(&engine.Adjustment{ID: id("a"), MemberID: m, At: at}),
			tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: 1, Points: 5, BalanceAfter: 5, At: at}),
			tx.PutLot(&engine.Lot{ID: "l", MemberID: m, Points: 5, Remaining: 5, ExpiresAt: at}),
			tx.AddMetric(m, engine.MetricEntry{At: at, Spend: 1}),
			tx.AddRuleUse(base, id("rule"), "all", 1),
			tx.Mark(id("mark")),
			tx.PutRules(&engine.RulesVersion{Version: 100 + i, LoadedAt: at}),
			tx.PutJobRun(&engine.JobRun{Name: id("job"), StartedAt: at}),
			tx.AppendEvent(&engine.Event{Type: id("event"), At: at}),
			tx.PutAnalyticsSummary(&engine.AnalyticsSummary{ComputedAt: at, Members: int64(i)}),
		)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(t.Context(), func(tx engine.Tx) error {
				if err := writeAll(tx, i); err != nil {
					return err
				}
				if i%2 == 1 {
					return fmt.Errorf("update %d: %w", i, errBoom)
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if failed := i%2 == 1; failed != errors.Is(err, errBoom) || (!failed && err != nil) {
			t.Errorf("update %d: err = %v", i, err)
		}
	}
	mustView(t, db, func(tx engine.Tx) error {
		var events []string
		evs, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		for _, e := range evs {
			events = append(events, e.Type)
		}
		for i := range n {
			kept := i%2 == 0
			m := fmt.Sprint("member-", i)
			id := func(what string) string { return fmt.Sprint(what, "-", i) }
			mem, _ := tx.Member(m)
			byEmail, _ := tx.MemberByKey(engine.KeyEmail, id("email"))
			p, _ := tx.Purchase(id("p"))
			r, _ := tx.Refund(id("r"))
			d, _ := tx.Redemption(id("d"))
			a, _ := tx.Adjustment(id("a"))
			ledger, _ := tx.Ledger(m, 0, 0)
			lots, _ := tx.Lots(m)
			metrics, _ := tx.Metrics(m, time.Time{})
			uses, _ := tx.RuleUses(base, id("rule"), "all")
			marked, _ := tx.Marked(id("mark"))
			rules, _ := tx.RulesVersion(100 + i)
			runs, _ := tx.JobRuns(id("job"), 0)
			found := map[string]bool{
				"member": mem != nil, "member by email": byEmail != nil, "purchase": p != nil, "refund": r != nil,
				"redemption": d != nil, "adjustment": a != nil, "ledger": len(ledger) > 0, "lots": len(lots) > 0,
				"metrics": len(metrics) > 0, "rule use": uses > 0, "marker": marked, "rules": rules != nil,
				"job run": len(runs) > 0, "event": slices.Contains(events, id("event")),
			}
			for what, ok := range found {
				if ok != kept {
					t.Errorf("update %d (failed: %v): %s kept = %v", i, !kept, what, ok)
				}
			}
		}
		return nil
	})
}

// testConcurrentUpdatesOfOneMember: writers that read, change and write
// the same member at once all land; a lost update shows as a short count.
func testConcurrentUpdatesOfOneMember(t *testing.T, db engine.Store) {
	m := NewID()
	putMembers(t, db, m)
	const writers, each = 8, 15
	var runs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				errs <- db.Update(t.Context(), func(tx engine.Tx) error {
					runs.Add(1)
					mem, err := tx.Member(m)
					if err != nil {
						return err
					}
					mem.Points++
					mem.LedgerSeq++
					if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: mem.LedgerSeq, Points: 1, BalanceAfter: mem.Points, At: t0}); err != nil {
						return err
					}
					if err := tx.AddRuleUse(m, "r", "all", 1); err != nil {
						return err
					}
					return tx.PutMember(mem)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	const total = writers * each
	mustView(t, db, func(tx engine.Tx) error {
		mem, err := tx.Member(m)
		if err != nil {
			return err
		}
		ledger, err := tx.Ledger(m, 0, 0)
		if err != nil {
			return err
		}
		uses, err := tx.RuleUses(m, "r", "all")
		if err != nil {
			return err
		}
		if mem.Points != total || mem.LedgerSeq != total || len(ledger) != total || uses != total {
			t.Errorf("after %d updates: points %d, ledger seq %d, %d entries, %d rule uses", total, mem.Points, mem.LedgerSeq, len(ledger), uses)
		}
		return nil
	})
	t.Logf("%d updates ran their function %d times", total, runs.Load())
}

// testInterleavedUpdateIsNotLost: an Update reads a member, another
// changes that member and commits (where the store lets it), then the first
// writes. The store must either have made the second wait or run the first
// again: the member ends with both changes.
func testInterleavedUpdateIsNotLost(t *testing.T, db engine.Store) {
	m := NewID()
	putMembers(t, db, m)
	read := make(chan struct{})
	otherDone := make(chan error, 1)
	var once sync.Once
	var runs atomic.Int64
	first := make(chan error, 1)
	go func() {
		first <- db.Update(t.Context(), func(tx engine.Tx) error {
			runs.Add(1)
			mem, err := tx.Member(m)
			if err != nil {
				return err
			}
			once.Do(func() {
				close(read)
				// A store that commits Updates one at a time makes the other
				// wait for this one: give it a moment, not forever.
				select {
				case err := <-otherDone:
					otherDone <- err
				case <-time.After(300 * time.Millisecond):
				}
			})
			mem.Points++
			return tx.PutMember(mem)
		})
	}()
	<-read
	go func() {
		otherDone <- db.Update(t.Context(), func(tx engine.Tx) error {
			mem, err := tx.Member(m)
			if err != nil {
				return err
			}
			mem.Points += 10
			return tx.PutMember(mem)
		})
	}()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-otherDone; err != nil {
		t.Fatal(err)
	}
	mustView(t, db, func(tx engine.Tx) error {
		mem, err := tx.Member(m)
		if err != nil {
			return err
		}
		if mem.Points != 11 {
			t.Errorf("points = %d, want 11 (1 from the first update, 10 from the second)", mem.Points)
		}
		return nil
	})
	t.Logf("the first update ran its function %d times", runs.Load())
}

// testEventFeedWaitsForLateCommit: an Update appends an event and stays
// open while another appends one and commits. A consumer polling the feed
// in between, and again after both committed, must see both events: the
// feed may not hand out a cursor past an event that is not yet visible.
func testEventFeedWaitsForLateCommit(t *testing.T, db engine.Store) {
	appended, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := make(chan error, 1)
	go func() {
		slow <- db.Update(t.Context(), func(tx engine.Tx) error {
			if err := tx.AppendEvent(&engine.Event{Type: "slow", At: t0}); err != nil {
				return err
			}
			once.Do(func() { close(appended) })
			<-release
			return nil
		})
	}()
	<-appended
	fast := make(chan error, 1)
	go func() {
		fast <- db.Update(t.Context(), func(tx engine.Tx) error { return tx.AppendEvent(&engine.Event{Type: "fast", At: t0}) })
	}()
	fastDone := false
	// A store that commits Updates one at a time makes the fast one wait:
	// give it a moment to commit first where it can.
	select {
	case err := <-fast:
		if err != nil {
			t.Fatal(err)
		}
		fastDone = true
	case <-time.After(300 * time.Millisecond):
	}
	var cursor uint64
	var seen []string
	poll := func() {
		t.Helper()
		mustView(t, db, func(tx engine.Tx) error {
			evs, err := tx.Events(cursor, 0)
			for _, e := range evs {
				if e.Seq <= cursor {
					t.Errorf("Events(%d) returned seq %d", cursor, e.Seq)
				}
				seen = append(seen, e.Type)
				cursor = e.Seq
			}
			return err
		})
	}
	poll()
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if !fastDone {
		if err := <-fast; err != nil {
			t.Fatal(err)
		}
	}
	poll()
	slices.Sort(seen)
	if want := []string{"fast", "slow"}; !slices.Equal(seen, want) {
		t.Errorf("a consumer polling the feed saw %v, want %v (fast committed first: %v)", seen, want, fastDone)
	}
}

// testEventWritersRunSideBySide: transactions that each append an event
// and touch nothing else in common never conflict, so none runs its
// function twice. A store that numbers events from one row as they commit
// makes its writers queue for that row and, at snapshot isolation, run
// again when they lose the race.
func testEventWritersRunSideBySide(t *testing.T, db engine.Store) {
	const writers = 32
	var runs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.Update(t.Context(), func(tx engine.Tx) error {
				runs.Add(1)
				return tx.AppendEvent(&engine.Event{Type: "t", At: t0, Payload: fmt.Appendf(nil, `{"i":%d}`, i)})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := runs.Load(); n != writers {
		t.Errorf("%d event writers ran their functions %d times: they conflicted", writers, n)
	}
	mustView(t, db, func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		if len(evs) != writers {
			t.Errorf("the feed has %d events, want %d", len(evs), writers)
		}
		return err
	})
}

// testEventFeedUnderLoad: consumers polling the feed while writers append
// events each see every event exactly once, in increasing seq order, with
// nothing skipped however the commits and the numbering interleave.
func testEventFeedUnderLoad(t *testing.T, db engine.Store) {
	const writers, perWriter, consumers = 6, 40, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				err := db.Update(t.Context(), func(tx engine.Tx) error {
					return tx.AppendEvent(&engine.Event{ID: fmt.Sprintf("evt_%d_%d", w, i), Type: "t", At: t0})
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	type seen struct {
		ids  map[string]int
		err  error
		dups []string
	}
	results := make(chan seen, consumers)
	for range consumers {
		go func() {
			s := seen{ids: map[string]int{}}
			var cursor uint64
			finished := false
			for {
				select {
				case <-done:
					finished = true
				default:
				}
				var got int
				s.err = db.View(t.Context(), func(tx engine.Tx) error {
					evs, err := tx.Events(cursor, 7)
					for _, e := range evs {
						if e.Seq <= cursor {
							return fmt.Errorf("Events(%d) returned seq %d", cursor, e.Seq)
						}
						cursor = e.Seq
						if s.ids[e.ID]++; s.ids[e.ID] > 1 {
							s.dups = append(s.dups, e.ID)
						}
					}
					got = len(evs)
					return err
				})
				// After the writers are done, one more poll that comes
				// back short has seen everything.
				if s.err != nil || (finished && got < 7) {
					results <- s
					return
				}
			}
		}()
	}
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range consumers {
		s := <-results
		if s.err != nil {
			t.Fatal(s.err)
		}
		if len(s.ids) != writers*perWriter || len(s.dups) > 0 {
			t.Errorf("a consumer saw %d of %d events, again %v", len(s.ids), writers*perWriter, s.dups)
		}
	}
}

// testMembersBefore: a member written earlier in the same transaction,
// with reads between, may have records written after it; every store
// takes them in that order (engine/store.go, "Members before").
func testMembersBefore(t *testing.T, db engine.Store) {
	m := NewID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: m, Status: engine.StatusActive, Points: 5}); err != nil {
			return err
		}
		if _, err := tx.Member(m); err != nil {
			return err
		}
		steps := []error{
			tx.PutLot(&engine.Lot{ID: "l", MemberID: m, Points: 5, Remaining: 5, ExpiresAt: t0}),
			tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: 1, Points: 5, BalanceAfter: 5}),
			tx.AddMetric(m, engine.MetricEntry{At: t0, Spend: 1}),
			tx.AddRuleUse(m, "r", "all", 1),
			tx.PutPurchase(&engine.Purchase{ID: "p-" + m, MemberID: m, OccurredAt: t0}),
		}
		if err := errors.Join(steps...); err != nil {
			return err
		}
		if _, err := tx.OpenLots(m); err != nil {
			return err
		}
		return errors.Join(
			tx.PutRefund(&engine.Refund{ID: "r-" + m, PurchaseID: "p-" + m, MemberID: m, At: t0}),
			tx.PutRedemption(&engine.Redemption{ID: "d-" + m, MemberID: m, Points: 1, At: t0}),
			tx.PutAdjustment(&engine.Adjustment{ID: "a-" + m, MemberID: m, At: t0}),
		)
	})
	mustView(t, db, func(tx engine.Tx) error {
		if r, err := tx.Refund("r-" + m); err != nil || r == nil {
			t.Errorf("Refund = %v, %v", r, err)
		}
		return nil
	})
}

// testCheckFindsAmountsOutOfRange: a store's own check reports money and
// points beyond the engine's limits that a record written around the
// engine holds, with the same message on every store; the records put
// right, it reports nothing.
func testCheckFindsAmountsOutOfRange(t *testing.T, db engine.Store) {
	c, ok := db.(Checker)
	if !ok {
		t.Skip("the store has no check of its own")
	}
	m := NewID()
	putMembers(t, db, m)
	over := engine.MaxAmount + 1
	p := &engine.Purchase{ID: "p", MemberID: m, Amount: 100, Points: 10, RefundedAmount: 101, RefundedPoints: -1,
		Items: []engine.PurchaseItem{{SKU: "a", Quantity: 0, Amount: 5}, {SKU: "b", Quantity: 1, Amount: 90}, {SKU: "c", Quantity: 1, Amount: 20}}}
	big := &engine.Purchase{ID: "q", MemberID: m, Amount: over, Points: engine.MaxPoints + 1}
	rf := &engine.Refund{ID: "r", PurchaseID: "p", MemberID: m, Amount: 1, Points: 3}
	rd := &engine.Redemption{ID: "d", MemberID: m, Points: 0}
	adj := &engine.Adjustment{ID: "a", MemberID: m, Points: -engine.MaxPoints - 1}
	mustUpdate(t, db, func(tx engine.Tx) error {
		return errors.Join(tx.PutPurchase(p), tx.PutPurchase(big), tx.PutRefund(rf), tx.PutRedemption(rd), tx.PutAdjustment(adj))
	})
	var out strings.Builder
	n, err := c.Check(&out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"purchase p: refunded 101 of an amount of 100",
		"purchase p: took back -1 of the 10 points it earned",
		"purchase p: line 0 has amount 5 and quantity 0, out of range",
		"purchase p: lines add up to 110, more than the amount 100",
		fmt.Sprintf("purchase q: amount %d out of range (0 to %d)", over, engine.MaxAmount),
		fmt.Sprintf("purchase q: %d points out of range (0 to %d)", engine.MaxPoints+1, engine.MaxPoints),
		"refund r: amount 1 and points 3 out of range",
		fmt.Sprintf("redemption d: 0 points out of range (1 to %d)", engine.MaxPoints),
		fmt.Sprintf("adjustment a: %d points out of range", -engine.MaxPoints-1),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check lacks %q", want)
		}
	}
	if n != 9 {
		t.Errorf("check found %d problems, want 9:\n%s", n, out.String())
	}
	p.RefundedAmount, p.RefundedPoints, p.Items[0].Quantity, p.Items[1].Amount = 10, 1, 1, 70
	big.Amount, big.Points = 1, 1
	rf.Points, rd.Points, adj.Points = -3, 1, -5
	mustUpdate(t, db, func(tx engine.Tx) error {
		return errors.Join(tx.PutPurchase(p), tx.PutPurchase(big), tx.PutRefund(rf), tx.PutRedemption(rd), tx.PutAdjustment(adj))
	})
	check(t, db)
}
