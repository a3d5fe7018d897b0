package postgres

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestReadAheadAnswersAsTheQueries: after PurchaseAndMember read a
// member's lots and metric ahead, OpenLotBalances and MetricSum answer
// from them, kept up to date with the transaction's writes, exactly what
// the queries answer in the same transaction; a write it does not know
// drops them.
func TestReadAheadAnswersAsTheQueries(t *testing.T) {
	db := mustOpen(t)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	m := &engine.Member{ID: "m", ExternalID: "card", Status: engine.StatusActive}
	if err := db.Update(t.Context(), func(tx engine.Tx) error {
		return errors.Join(tx.PutMember(m),
			tx.PutLot(&engine.Lot{ID: "a", MemberID: "m", Points: 5, Remaining: 5, AvailableAt: at, ExpiresAt: at.AddDate(1, 0, 0)}),
			tx.PutLot(&engine.Lot{ID: "b", MemberID: "m", Points: 5, Remaining: 3, AvailableAt: at}),
			tx.PutLot(&engine.Lot{ID: "c", MemberID: "m", Points: 5, Remaining: 0, AvailableAt: at, ExpiresAt: at}),
			tx.AddMetric("m", engine.MetricEntry{At: at.AddDate(0, -2, 0), Spend: 100, Points: 1, Visits: 1}),
			tx.AddMetric("m", engine.MetricEntry{At: at.AddDate(-2, 0, 0), Spend: 7, Points: 7, Visits: 7}),
			tx.AddRuleUse("m", "capped", "all", 3), tx.AddRuleUse("m", "capped", "d2026-04-30", 1))
	}); err != nil {
		t.Fatal(err)
	}
	from, to := at.AddDate(-1, 0, 0).Add(500*time.Nanosecond), at.Add(time.Hour)
	for _, key := range []string{"", engine.KeyExternalID} {
		member := map[string]string{"": "m", engine.KeyExternalID: "card"}[key]
		err := db.Update(t.Context(), func(etx engine.Tx) error {
			tx := etx.(*tx)
			p, got, err := tx.PurchaseAndMember("p", key, member, engine.PurchaseReads{MetricFrom: from, MetricTo: to,
				Rules: []string{"capped", "other"}, Periods: []string{"all", "d2026-05-01"}})
			if err != nil || p != nil || got == nil || got.ID != "m" {
				t.Fatalf("PurchaseAndMember(%q) = %v, %v, %v", key, p, got, err)
			}
			check := func(when string) {
				t.Helper()
				lots, ok := tx.openLotsAhead("m")
				sum, sumOK := tx.metricAhead("m", from, to)
				if !ok || !sumOK {
					t.Fatalf("%s: nothing read ahead (lots %v, metric %v)", when, ok, sumOK)
				}
				saved := tx.ahead
				tx.ahead = nil
				wantLots, err := tx.OpenLotBalances("m")
				if err != nil {
					t.Fatal(err)
				}
				wantSum, err := tx.MetricSum("m", from, to)
				if err != nil {
					t.Fatal(err)
				}
				tx.ahead = saved
				if !reflect.DeepEqual(lots, wantLots) || sum != wantSum {
					t.Errorf("%s: read ahead %+v and %+v, the queries %+v and %+v", when, lots, sum, wantLots, wantSum)
				}
				for _, r := range []string{"capped", "other"} {
					for _, p := range []string{"all", "d2026-05-01"} {
						n, ok := tx.usesAhead("m", r, p)
						tx.ahead = nil
						want, err := tx.RuleUses("m", r, p)
						tx.ahead = saved
						if err != nil || !ok || n != want {
							t.Errorf("%s: uses of %s in %s read ahead %d (%v), the query %d (%v)", when, r, p, n, ok, want, err)
						}
					}
				}
			}
			check("as read")
			if err := errors.Join(
				tx.PutLot(&engine.Lot{ID: "d", MemberID: "m", Points: 9, Remaining: 9, AvailableAt: at.Add(1500 * time.Nanosecond), ExpiresAt: at.AddDate(0, 6, 0)}),
				tx.PutLot(&engine.Lot{ID: "a", MemberID: "m", Points: 5, Remaining: 0, AvailableAt: at, ExpiresAt: at.AddDate(1, 0, 0)}),
				tx.PutLot(&engine.Lot{ID: "c", MemberID: "m", Points: 5, Remaining: 2, AvailableAt: at, ExpiresAt: at}),
				tx.PutLot(&engine.Lot{ID: "e", MemberID: "m", Points: 1, Remaining: 1, AvailableAt: at}),
				tx.AddMetric("m", engine.MetricEntry{At: at, Spend: 10, Points: 2, Visits: 1}),
				tx.AddMetric("m", engine.MetricEntry{At: to.Add(time.Second), Spend: 1000, Points: 1000, Visits: 1000}),
				tx.AddMetric("m", engine.MetricEntry{At: from.Add(-time.Microsecond), Spend: 3, Points: 3, Visits: 3}),
				tx.AddRuleUse("m", "capped", "all", 1), tx.AddRuleUse("m", "other", "d2026-05-01", 1), tx.AddRuleUse("m", "capped", "m2026-05", 1),
			); err != nil {
				return err
			}
			check("after writes")
			if err := tx.exec("something else", `UPDATE lots SET remaining = remaining WHERE member_id = $1`, "m"); err != nil {
				return err
			}
			if _, ok := tx.openLotsAhead("m"); ok {
				t.Error("a write the read-ahead does not know left it in use")
			}
			return errors.New("roll back")
		})
		if err == nil || err.Error() != "roll back" {
			t.Fatal(err)
		}
	}
}
