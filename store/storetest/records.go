package storetest

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func testMemberRoundTrip(t *testing.T, db engine.Store) {
	referrer := NewID()
	putMembers(t, db, referrer)
	want := &engine.Member{
		ID: NewID(), ExternalID: "ext-1", Email: "a@example.com", Phone: "+15550001",
		Name: "Ada", Birthday: "1990-02-03", ReferrerID: referrer, Status: engine.StatusActive, EnrolledAt: t0,
		Attributes: map[string]string{"store": "north", "": "empty key"}, Tier: "gold", TierSince: t0.Add(time.Hour),
		TierByPromotion: true, Points: 120, Debt: 5, LifetimeEarned: 300, LifetimeSpend: 45678,
		PurchaseCount: 9, LastPurchaseAt: t0.Add(2 * time.Hour), LedgerSeq: 7, PointsRedeemed: 80, RefundedSpend: 1200,
		Analytics: &engine.Analytics{
			ComputedAt: t0, Segment: engine.SegmentMVC, Lifecycle: engine.LifecycleGrowing, ChurnRisk: true,
			CLV: 12345, RFM: "545", RecencyDays: -1, Frequency: 4, Monetary: 9000, RScore: 5, FScore: 4, MScore: 5,
			UsualInterval: 36 * time.Hour, RealisedValue: 100, PotentialValue: -20, Referrals: 2, ReferredSpend: 777,
		},
	}
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(want) })
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.Member(want.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Member = %+v, want %+v", got, want)
		}
		if got == want {
			t.Error("Member returned the caller's pointer, not a copy")
		}
		missing, err := tx.Member(NewID())
		if missing != nil || err != nil {
			t.Errorf("missing Member = %v, %v; want nil, nil", missing, err)
		}
		return nil
	})
	// A rewrite replaces every field, including maps and the analytics.
	want.Attributes, want.Analytics, want.Name, want.Email = nil, nil, "", ""
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(want) })
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.Member(want.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rewritten Member = %+v, want %+v", got, want)
		}
		return nil
	})
}

func testMemberUniqueIndexes(t *testing.T, db engine.Store) {
	a, b, c, d := NewID(), NewID(), NewID(), NewID()
	steps := []struct {
		name      string
		m         engine.Member
		wantField string // "" for success
	}{
		{"create a", engine.Member{ID: a, ExternalID: "x1", Email: "a@x", Phone: "111"}, ""},
		{"b takes a's external id", engine.Member{ID: b, ExternalID: "x1"}, engine.KeyExternalID},
		{"b takes a's email", engine.Member{ID: b, Email: "a@x"}, engine.KeyEmail},
		{"b takes a's phone", engine.Member{ID: b, Phone: "111"}, engine.KeyPhone},
		{"create b", engine.Member{ID: b, ExternalID: "x2", Email: "b@x"}, ""},
		{"b then takes a's email", engine.Member{ID: b, ExternalID: "x2", Email: "a@x"}, engine.KeyEmail},
		{"a rewrites itself", engine.Member{ID: a, ExternalID: "x1", Email: "a@x", Phone: "111", Name: "A"}, ""},
		{"a changes email", engine.Member{ID: a, ExternalID: "x1", Email: "a2@x", Phone: "111"}, ""},
		{"b takes a's old email", engine.Member{ID: b, ExternalID: "x2", Email: "a@x"}, ""},
		{"a drops its phone", engine.Member{ID: a, ExternalID: "x1", Email: "a2@x"}, ""},
		{"c takes the freed phone", engine.Member{ID: c, Phone: "111"}, ""},
		{"d has no keys", engine.Member{ID: d}, ""},
		{"d has no keys again", engine.Member{ID: d, Name: "D"}, ""},
	}
	for _, st := range steps {
		before := snapshotMembers(t, db)
		m := st.m
		err := db.Update(t.Context(), func(tx engine.Tx) error {
			// Written first, so a conflict must roll it back too.
			if err := tx.Mark("step " + st.name); err != nil {
				return err
			}
			return tx.PutMember(&m)
		})
		if st.wantField == "" {
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			continue
		}
		var e *engine.Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: err = %v, want *engine.Error", st.name, err)
		}
		want := &engine.Error{Code: engine.ECONFLICT, Field: st.wantField, Message: st.wantField + " is already used by another member"}
		if !reflect.DeepEqual(e, want) {
			t.Errorf("%s: err = %+v, want %+v", st.name, e, want)
		}
		if after := snapshotMembers(t, db); !reflect.DeepEqual(after, before) {
			t.Errorf("%s: members changed on conflict:\nbefore %v\nafter  %v", st.name, before, after)
		}
		mustView(t, db, func(tx engine.Tx) error {
			if ok, _ := tx.Marked("step " + st.name); ok {
				t.Errorf("%s: write before the conflict was committed", st.name)
			}
			return nil
		})
	}

	lookups := []struct {
		key, value, want string // want "" for no member
	}{
		{engine.KeyExternalID, "x1", a},
		{engine.KeyExternalID, "x2", b},
		{engine.KeyEmail, "a2@x", a},
		{engine.KeyEmail, "a@x", b},
		{engine.KeyEmail, "b@x", ""},
		{engine.KeyPhone, "111", c},
		{engine.KeyPhone, "", ""},
		{engine.KeyEmail, "nobody@x", ""},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, l := range lookups {
			m, err := tx.MemberByKey(l.key, l.value)
			if err != nil {
				t.Errorf("MemberByKey(%s, %q): %v", l.key, l.value, err)
				continue
			}
			var got string
			if m != nil {
				got = m.ID
			}
			if got != l.want {
				t.Errorf("MemberByKey(%s, %q) = %q, want %q", l.key, l.value, got, l.want)
			}
		}
		if _, err := tx.MemberByKey("name", "A"); err == nil {
			t.Error("MemberByKey with an unknown key: no error")
		}
		return nil
	})
}

// snapshotMembers returns every member and index entry, to compare states.
func snapshotMembers(t *testing.T, db engine.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	mustView(t, db, func(tx engine.Tx) error {
		ms, err := tx.Members("", 0)
		for _, m := range ms {
			out[m.ID] = fmt.Sprintf("%+v", *m)
			for key, v := range map[string]string{engine.KeyExternalID: m.ExternalID, engine.KeyEmail: m.Email, engine.KeyPhone: m.Phone} {
				if v != "" {
					got, _ := tx.MemberByKey(key, v)
					out[key+"="+v] = got.ID
				}
			}
		}
		return err
	})
	return out
}

func testPutMemberEmptyID(t *testing.T, db engine.Store) {
	if err := db.Update(t.Context(), func(tx engine.Tx) error { return tx.PutMember(&engine.Member{Email: "a@x"}) }); err == nil {
		t.Error("PutMember without an id: no error")
	}
}

func testMembersPaging(t *testing.T, db engine.Store) {
	var all []string
	mustUpdate(t, db, func(tx engine.Tx) error {
		for range 25 {
			id := NewID()
			all = append(all, id)
			if err := tx.PutMember(&engine.Member{ID: id}); err != nil {
				return err
			}
		}
		return nil
	})
	sort.Strings(all) // key order is id order for canonical UUIDs
	tests := []struct {
		after string
		limit int
		want  []string
	}{
		{"", 0, all},
		{"", 10, all[:10]},
		{all[9], 10, all[10:20]},
		{all[19], 10, all[20:]},
		{all[24], 10, nil},
		{all[3], -1, all[4:]},
		{"00000000-0000-4000-8000-000000000000", 2, all[:2]},
		{"ffffffff-ffff-4fff-bfff-ffffffffffff", 2, nil},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			ms, err := tx.Members(tt.after, tt.limit)
			if err != nil {
				return err
			}
			if got := ids(ms, func(m *engine.Member) string { return m.ID }); !slices.Equal(got, tt.want) {
				t.Errorf("Members(%q, %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
			}
		}
		return nil
	})
}

func testPurchases(t *testing.T, db engine.Store) {
	// Inserted out of time order; purchase i occurs at t0 + i hours.
	order := []int{5, 2, 8, 0, 9, 1, 7, 3, 6, 4}
	putMembers(t, db, "m")
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, i := range order {
			p := &engine.Purchase{
				ID: fmt.Sprintf("p%d", i), MemberID: "m", OccurredAt: t0.Add(time.Duration(i) * time.Hour),
				Amount: int64(100 * i), Items: []engine.PurchaseItem{{SKU: "sku", Quantity: 1, Amount: int64(100 * i)}},
				Breakdown: []rules.RuleResult{{Rule: "base", Points: int64(i)}},
				Result:    engine.PurchaseResult{ID: fmt.Sprintf("p%d", i), Points: int64(i)},
			}
			if err := tx.PutPurchase(p); err != nil {
				return err
			}
		}
		return nil
	})
	// A purchase rewritten with a later time moves in the index.
	mustUpdate(t, db, func(tx engine.Tx) error {
		p, err := tx.Purchase("p0")
		if err != nil || p == nil {
			return fmt.Errorf("p0: %v, %v", p, err)
		}
		p.OccurredAt = t0.Add(100 * time.Hour)
		p.Refunds = []string{"r0"}
		return tx.PutPurchase(p)
	})
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name     string
		from, to time.Time
		limit    int
		want     []string
	}{
		{"all", time.Time{}, h(1000), 0, []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p0"}},
		{"from inclusive, to exclusive", h(2), h(5), 0, []string{"p2", "p3", "p4"}},
		{"limit", h(2), h(9), 2, []string{"p2", "p3"}},
		{"between two", h(2).Add(time.Nanosecond), h(3).Add(time.Nanosecond), 0, []string{"p3"}},
		{"moved purchase left its old time", h(0), h(1), 0, nil},
		{"empty range", h(5), h(5), 0, nil},
		{"reversed range", h(6), h(2), 0, nil},
		{"before 1970", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), h(2), 0, []string{"p1"}},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			ps, err := tx.PurchasesBetween(tt.from, tt.to, tt.limit)
			if err != nil {
				return err
			}
			if got := ids(ps, func(p *engine.Purchase) string { return p.ID }); !slices.Equal(got, tt.want) {
				t.Errorf("%s: PurchasesBetween = %v, want %v", tt.name, got, tt.want)
			}
		}
		p, err := tx.Purchase("p7")
		if err != nil {
			return err
		}
		if p.Amount != 700 || len(p.Items) != 1 || p.Breakdown[0].Points != 7 || p.Result.Points != 7 {
			t.Errorf("Purchase p7 = %+v", p)
		}
		if p, err := tx.Purchase("nope"); p != nil || err != nil {
			t.Errorf("missing Purchase = %v, %v; want nil, nil", p, err)
		}
		return nil
	})
}

func testIdempotentRecords(t *testing.T, db engine.Store) {
	putMembers(t, db, "m")
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.PutPurchase(&engine.Purchase{ID: "p", MemberID: "m", OccurredAt: t0, Amount: 100})
	})
	tests := []struct {
		name string
		put  func(engine.Tx, string) error
		get  func(engine.Tx, string) (any, error)
	}{
		{"refund",
			func(tx engine.Tx, id string) error {
				return tx.PutRefund(&engine.Refund{ID: id, PurchaseID: "p", MemberID: "m", At: t0, Points: -5, Result: engine.RefundResult{ID: id}})
			},
			func(tx engine.Tx, id string) (any, error) { return tx.Refund(id) }},
		{"redemption",
			func(tx engine.Tx, id string) error {
				return tx.PutRedemption(&engine.Redemption{ID: id, MemberID: "m", At: t0, Points: 50, Draws: []engine.LotDraw{{LotID: "l", Points: 50}}})
			},
			func(tx engine.Tx, id string) (any, error) { return tx.Redemption(id) }},
		{"adjustment",
			func(tx engine.Tx, id string) error {
				return tx.PutAdjustment(&engine.Adjustment{ID: id, MemberID: "m", At: t0, Points: 10, Reason: "goodwill"})
			},
			func(tx engine.Tx, id string) (any, error) { return tx.Adjustment(id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustUpdate(t, db, func(tx engine.Tx) error { return tt.put(tx, tt.name+"-1") })
			if err := db.Update(t.Context(), func(tx engine.Tx) error { return tt.put(tx, "") }); err == nil {
				t.Error("put with an empty id: no error")
			}
			mustView(t, db, func(tx engine.Tx) error {
				got, err := tt.get(tx, tt.name+"-1")
				if err != nil {
					return err
				}
				if reflect.ValueOf(got).IsNil() || reflect.ValueOf(got).Elem().FieldByName("ID").String() != tt.name+"-1" {
					t.Errorf("get = %+v", got)
				}
				missing, err := tt.get(tx, "nope")
				if err != nil || !reflect.ValueOf(missing).IsNil() {
					t.Errorf("missing = %v, %v; want nil, nil", missing, err)
				}
				return nil
			})
		})
	}
}

func testLedger(t *testing.T, db engine.Store) {
	a, b := NewID(), NewID()
	putMembers(t, db, a, b)
	appendN := func(tx engine.Tx, member string, n int) error {
		var bal int64
		for i := 1; i <= n; i++ {
			bal += int64(i)
			if err := tx.AppendLedger(&engine.LedgerEntry{ID: NewID(), MemberID: member, Seq: uint64(i), Type: engine.LedgerEarn, Points: int64(i), BalanceAfter: bal, At: t0}); err != nil {
				return err
			}
		}
		return nil
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := appendN(tx, a, 25); err != nil {
			return err
		}
		return appendN(tx, b, 3)
	})
	seqs := func(from, to int) []uint64 { // from down to to
		var out []uint64
		for s := from; s >= to; s-- {
			out = append(out, uint64(s))
		}
		return out
	}
	tests := []struct {
		member string
		before uint64
		limit  int
		want   []uint64
	}{
		{a, 0, 0, seqs(25, 1)},
		{a, 0, 10, seqs(25, 16)},
		{a, 16, 10, seqs(15, 6)},
		{a, 6, 10, seqs(5, 1)},
		{a, 1, 10, nil},
		{a, 100, 3, seqs(25, 23)},
		{b, 0, 0, seqs(3, 1)},
		{NewID(), 0, 0, nil},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			es, err := tx.Ledger(tt.member, tt.before, tt.limit)
			if err != nil {
				return err
			}
			var got []uint64
			for _, e := range es {
				if e.MemberID != tt.member {
					t.Errorf("Ledger(%s) returned an entry of %s", tt.member, e.MemberID)
				}
				got = append(got, e.Seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Ledger(%.8s, %d, %d) = %v, want %v", tt.member, tt.before, tt.limit, got, tt.want)
			}
		}
		return nil
	})
	err := db.Update(t.Context(), func(tx engine.Tx) error {
		return tx.AppendLedger(&engine.LedgerEntry{MemberID: a, Seq: 25, Points: 1, BalanceAfter: 326})
	})
	if err == nil {
		t.Error("AppendLedger with a used seq: no error")
	}
}

func testLotIndexMaintenance(t *testing.T, db engine.Store) {
	m := NewID()
	putMembers(t, db, m)
	t1, t2 := t0.AddDate(1, 0, 0), t0.AddDate(2, 0, 0)
	lot := engine.Lot{ID: "l1", MemberID: m, Points: 100, Remaining: 100, EarnedAt: t0, ExpiresAt: t1}
	steps := []struct {
		name     string
		change   func(*engine.Lot)
		open     bool
		dueAt    time.Time // zero: not in the expiry index
		dueLimit time.Time // a time just before dueAt, when it must not be due
	}{
		{"earned", func(*engine.Lot) {}, true, t1, t1.Add(-time.Nanosecond)},
		{"partly spent", func(l *engine.Lot) { l.Remaining = 40 }, true, t1, t1.Add(-time.Nanosecond)},
		{"expiry moved", func(l *engine.Lot) { l.ExpiresAt = t2 }, true, t2, t1},
		{"spent", func(l *engine.Lot) { l.Remaining = 0 }, false, time.Time{}, time.Time{}},
		{"given back", func(l *engine.Lot) { l.Remaining = 10 }, true, t2, t1},
		{"never expires", func(l *engine.Lot) { l.ExpiresAt = time.Time{} }, true, time.Time{}, time.Time{}},
		{"expires again", func(l *engine.Lot) { l.ExpiresAt = t1 }, true, t1, t0},
		{"overdrawn", func(l *engine.Lot) { l.Remaining = -3 }, false, time.Time{}, time.Time{}},
	}
	far := t0.AddDate(100, 0, 0)
	for _, st := range steps {
		st.change(&lot)
		l := lot
		mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutLot(&l) })
		check(t, db)
		mustView(t, db, func(tx engine.Tx) error {
			open, err := tx.OpenLots(m)
			if err != nil {
				return err
			}
			if got := len(open) == 1; got != st.open {
				t.Errorf("%s: in OpenLots = %v, want %v", st.name, got, st.open)
			}
			due, err := tx.DueLots(far, nil, 0)
			if err != nil {
				return err
			}
			if got, want := len(due) == 1, !st.dueAt.IsZero(); got != want {
				t.Errorf("%s: in DueLots = %v, want %v", st.name, got, want)
			}
			if st.dueAt.IsZero() {
				return nil
			}
			if due, _ := tx.DueLots(st.dueAt, nil, 0); len(due) != 1 {
				t.Errorf("%s: not due at its expiry", st.name)
			}
			if due, _ := tx.DueLots(st.dueLimit, nil, 0); len(due) != 0 {
				t.Errorf("%s: due at %s, before its expiry", st.name, st.dueLimit)
			}
			got, err := tx.Lot(m, "l1")
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(*got, lot) {
				t.Errorf("%s: Lot = %+v, want %+v", st.name, got, lot)
			}
			return nil
		})
	}
}

func testOpenLotsOrder(t *testing.T, db engine.Store) {
	a, b := NewID(), NewID()
	putMembers(t, db, a, b)
	day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	lots := []engine.Lot{
		{ID: "l3", MemberID: a, Remaining: 1, ExpiresAt: day(3)},
		{ID: "n2", MemberID: a, Remaining: 1},
		{ID: "l1", MemberID: a, Remaining: 1, ExpiresAt: day(1)},
		{ID: "spent", MemberID: a, Remaining: 0, ExpiresAt: day(0)},
		{ID: "l2", MemberID: a, Remaining: 1, ExpiresAt: day(2)},
		{ID: "n1", MemberID: a, Remaining: 1},
		{ID: "old", MemberID: a, Remaining: 1, ExpiresAt: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "b1", MemberID: b, Remaining: 1, ExpiresAt: day(1)},
		{ID: "b2", MemberID: b, Remaining: 1},
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for i := range lots {
			if err := tx.PutLot(&lots[i]); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		open, err := tx.OpenLots(a)
		if err != nil {
			return err
		}
		if got, want := lotIDs(open), []string{"old", "l1", "l2", "l3", "n1", "n2"}; !slices.Equal(got, want) {
			t.Errorf("OpenLots(a) = %v, want %v", got, want)
		}
		if open, _ = tx.OpenLots(b); !slices.Equal(lotIDs(open), []string{"b1", "b2"}) {
			t.Errorf("OpenLots(b) = %v", lotIDs(open))
		}
		all, err := tx.Lots(a)
		if err != nil {
			return err
		}
		got := lotIDs(all)
		sort.Strings(got)
		if want := []string{"l1", "l2", "l3", "n1", "n2", "old", "spent"}; !slices.Equal(got, want) {
			t.Errorf("Lots(a) = %v, want %v", got, want)
		}
		if none, err := tx.OpenLots(NewID()); none != nil || err != nil {
			t.Errorf("OpenLots of a member without lots = %v, %v", none, err)
		}
		if l, err := tx.Lot(a, "nope"); l != nil || err != nil {
			t.Errorf("missing Lot = %v, %v; want nil, nil", l, err)
		}
		return nil
	})
}

func testDueLots(t *testing.T, db engine.Store) {
	a, b, c := NewID(), NewID(), NewID()
	putMembers(t, db, a, b, c)
	day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	lots := []engine.Lot{
		{ID: "a3", MemberID: a, Remaining: 5, ExpiresAt: day(3)},
		{ID: "b1", MemberID: b, Remaining: 5, ExpiresAt: day(1)},
		{ID: "c2", MemberID: c, Remaining: 5, ExpiresAt: day(2)},
		{ID: "a1", MemberID: a, Remaining: 5, ExpiresAt: day(1).Add(time.Second)},
		{ID: "never", MemberID: a, Remaining: 5},
		{ID: "spent", MemberID: b, Remaining: 0, ExpiresAt: day(0)},
		{ID: "c5", MemberID: c, Remaining: 5, ExpiresAt: day(5)},
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for i := range lots {
			if err := tx.PutLot(&lots[i]); err != nil {
				return err
			}
		}
		return nil
	})
	byID := map[string]*engine.Lot{}
	for i := range lots {
		byID[lots[i].ID] = &lots[i]
	}
	tests := []struct {
		until time.Time
		after string // "" for nil
		limit int
		want  []string
	}{
		{day(0), "", 0, nil},
		{day(1), "", 0, []string{"b1"}},
		{day(1).Add(time.Second), "", 0, []string{"b1", "a1"}},
		{day(3), "", 0, []string{"b1", "a1", "c2", "a3"}},
		{day(3), "", 2, []string{"b1", "a1"}},
		{day(3), "a1", 2, []string{"c2", "a3"}},
		{day(3), "a3", 2, nil},
		{day(100), "", 0, []string{"b1", "a1", "c2", "a3", "c5"}},
		{day(100), "", 1, []string{"b1"}},
		{day(100), "b1", 1, []string{"a1"}},
		// A lot no longer in the index still marks its place.
		{day(100), "spent", 0, []string{"b1", "a1", "c2", "a3", "c5"}},
		{day(100), "c5", 0, nil},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			due, err := tx.DueLots(tt.until, byID[tt.after], tt.limit)
			if err != nil {
				return err
			}
			if got := lotIDs(due); !slices.Equal(got, tt.want) {
				t.Errorf("DueLots(%s, after %q, %d) = %v, want %v", tt.until, tt.after, tt.limit, got, tt.want)
			}
		}
		return nil
	})

	// Paging the way the expiry job does: spend each chunk, then continue
	// after the last lot of it.
	var seen []string
	var after *engine.Lot
	for {
		var chunk []*engine.Lot
		mustUpdate(t, db, func(tx engine.Tx) error {
			var err error
			if chunk, err = tx.DueLots(day(100), after, 2); err != nil {
				return err
			}
			for _, l := range chunk {
				l.Remaining = 0
				if err := tx.PutLot(l); err != nil {
					return err
				}
			}
			return nil
		})
		if len(chunk) == 0 {
			break
		}
		seen = append(seen, lotIDs(chunk)...)
		after = chunk[len(chunk)-1]
	}
	if want := []string{"b1", "a1", "c2", "a3", "c5"}; !slices.Equal(seen, want) {
		t.Errorf("paged DueLots = %v, want %v", seen, want)
	}
}

func testMetrics(t *testing.T, db engine.Store) {
	a, b := NewID(), NewID()
	putMembers(t, db, a, b)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, e := range []struct {
			member string
			at     int
			spend  int64
		}{{a, 5, 500}, {a, 1, 100}, {b, 2, 999}, {a, 3, 300}, {a, 3, -30}, {a, 0, 1}} {
			if err := tx.AddMetric(e.member, engine.MetricEntry{At: h(e.at), Spend: e.spend, Visits: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		member string
		since  time.Time
		want   []int64 // spends
	}{
		{a, time.Time{}, []int64{1, 100, 300, -30, 500}},
		{a, h(1), []int64{100, 300, -30, 500}},
		{a, h(3), []int64{300, -30, 500}},
		{a, h(3).Add(time.Nanosecond), []int64{500}},
		{a, h(6), nil},
		{b, time.Time{}, []int64{999}},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			es, err := tx.Metrics(tt.member, tt.since)
			if err != nil {
				return err
			}
			var got []int64
			for _, e := range es {
				got = append(got, e.Spend)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Metrics(%.8s, %s) = %v, want %v", tt.member, tt.since, got, tt.want)
			}
		}
		return nil
	})
}

func testRuleUses(t *testing.T, db engine.Store) {
	m := NewID()
	putMembers(t, db, m)
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, u := range []struct {
			member, rule, period string
			delta                int64
		}{
			{m, "welcome", "all", 1},
			{m, "double", "d2026-11-23", 1},
			{m, "double", "d2026-11-23", 1},
			{m, "double", "d2026-11-24", 1},
			{m, "ab", "c", 7},
			{m, "double", "d2026-11-23", -1},
		} {
			if err := tx.AddRuleUse(u.member, u.rule, u.period, u.delta); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		member, rule, period string
		want                 int64
	}{
		{m, "welcome", "all", 1},
		{m, "double", "d2026-11-23", 1},
		{m, "double", "d2026-11-24", 1},
		{m, "double", "m2026-11", 0},
		{m, "a", "bc", 0}, // must not collide with ("ab", "c")
		{m, "ab", "c", 7},
		{NewID(), "welcome", "all", 0},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			got, err := tx.RuleUses(tt.member, tt.rule, tt.period)
			if err != nil {
				return err
			}
			if got != tt.want {
				t.Errorf("RuleUses(%s, %s) = %d, want %d", tt.rule, tt.period, got, tt.want)
			}
		}
		return nil
	})
}

func testMarkers(t *testing.T, db engine.Store) {
	mustUpdate(t, db, func(tx engine.Tx) error {
		if ok, err := tx.Marked("birthday/m/2026"); ok || err != nil {
			t.Errorf("Marked before Mark = %v, %v", ok, err)
		}
		if err := tx.Mark("birthday/m/2026"); err != nil {
			return err
		}
		// Read back in the same transaction, where the value is not yet on a page.
		if ok, err := tx.Marked("birthday/m/2026"); !ok || err != nil {
			t.Errorf("Marked in the same tx = %v, %v", ok, err)
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		for key, want := range map[string]bool{"birthday/m/2026": true, "birthday/m/2025": false, "birthday/m": false, "": false} {
			if ok, err := tx.Marked(key); ok != want || err != nil {
				t.Errorf("Marked(%q) = %v, %v; want %v", key, ok, err, want)
			}
		}
		return nil
	})
}

func testSettings(t *testing.T, db engine.Store) {
	mustUpdate(t, db, func(tx engine.Tx) error {
		if v, err := tx.Setting("clock.offset"); v != nil || err != nil {
			t.Errorf("Setting before PutSetting = %q, %v; want nil, nil", v, err)
		}
		if err := tx.PutSetting("clock.offset", []byte("1h")); err != nil {
			return err
		}
		if err := tx.PutSetting("clock.offset", []byte("2h")); err != nil {
			return err
		}
		// Read back in the same transaction: the later value wins.
		if v, err := tx.Setting("clock.offset"); string(v) != "2h" || err != nil {
			t.Errorf("Setting in the same tx = %q, %v; want 2h", v, err)
		}
		return tx.PutSetting("secret", []byte{0, 1, 0xff})
	})
	mustView(t, db, func(tx engine.Tx) error {
		for name, want := range map[string]string{"clock.offset": "2h", "secret": "\x00\x01\xff"} {
			if v, err := tx.Setting(name); string(v) != want || err != nil {
				t.Errorf("Setting(%q) = %q, %v; want %q", name, v, err, want)
			}
		}
		if v, err := tx.Setting("clock"); v != nil || err != nil {
			t.Errorf("Setting of a prefix = %q, %v; want nil", v, err)
		}
		return nil
	})
}

func testRulesVersions(t *testing.T, db engine.Store) {
	mustView(t, db, func(tx engine.Tx) error {
		if v, err := tx.LatestRules(); v != nil || err != nil {
			t.Errorf("LatestRules on an empty store = %v, %v", v, err)
		}
		return nil
	})
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, n := range []int{3, 1, 2, 10} {
			if err := tx.PutRules(&engine.RulesVersion{Version: n, Hash: fmt.Sprint("h", n), LoadedAt: t0, By: "file"}); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		vs, err := tx.RulesVersions()
		if err != nil {
			return err
		}
		var got []int
		for _, v := range vs {
			got = append(got, v.Version)
		}
		if want := []int{1, 2, 3, 10}; !slices.Equal(got, want) {
			t.Errorf("RulesVersions = %v, want %v", got, want)
		}
		if v, err := tx.LatestRules(); err != nil || v.Version != 10 {
			t.Errorf("LatestRules = %+v, %v", v, err)
		}
		if v, err := tx.RulesVersion(2); err != nil || v.Hash != "h2" {
			t.Errorf("RulesVersion(2) = %+v, %v", v, err)
		}
		if v, err := tx.RulesVersion(4); v != nil || err != nil {
			t.Errorf("RulesVersion(4) = %v, %v; want nil, nil", v, err)
		}
		return nil
	})
}

func testJobRuns(t *testing.T, db engine.Store) {
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, r := range []struct {
			name string
			at   int
		}{{"expire", 2}, {"expire", 1}, {"exp", 9}, {"expire", 3}, {"tiers", 4}, {"expirex", 8}} {
			if err := tx.PutJobRun(&engine.JobRun{Name: r.name, StartedAt: t0.Add(time.Duration(r.at) * time.Hour), Processed: int64(r.at)}); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name  string
		limit int
		want  []int64 // Processed, which is the start hour
	}{
		{"expire", 0, []int64{3, 2, 1}},
		{"expire", 2, []int64{3, 2}},
		{"exp", 0, []int64{9}},
		{"tiers", 5, []int64{4}},
		{"analytics", 0, nil},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			rs, err := tx.JobRuns(tt.name, tt.limit)
			if err != nil {
				return err
			}
			var got []int64
			for _, r := range rs {
				got = append(got, r.Processed)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("JobRuns(%s, %d) = %v, want %v", tt.name, tt.limit, got, tt.want)
			}
		}
		return nil
	})
}

func testLeases(t *testing.T, db engine.Store) {
	take := func(name, holder string, ttl time.Duration) bool {
		t.Helper()
		var got bool
		mustUpdate(t, db, func(tx engine.Tx) error {
			var err error
			got, err = tx.TakeLease(name, holder, ttl)
			return err
		})
		return got
	}
	release := func(name, holder string) {
		t.Helper()
		mustUpdate(t, db, func(tx engine.Tx) error { return tx.ReleaseLease(name, holder) })
	}
	if !take("jobs", "a", time.Minute) {
		t.Fatal("a could not take a free lease")
	}
	if take("jobs", "b", time.Minute) {
		t.Fatal("b took a lease a holds")
	}
	if !take("jobs", "a", time.Minute) {
		t.Fatal("a could not renew its lease")
	}
	if !take("webhooks", "b", time.Minute) {
		t.Fatal("b could not take another lease")
	}
	release("jobs", "b") // not b's: stays a's
	if take("jobs", "b", time.Minute) {
		t.Fatal("a release by another holder freed the lease")
	}
	release("jobs", "a")
	if !take("jobs", "b", 50*time.Millisecond) {
		t.Fatal("b could not take a released lease")
	}
	time.Sleep(100 * time.Millisecond)
	if !take("jobs", "a", time.Minute) {
		t.Fatal("a could not take an expired lease")
	}
}

func testEvents(t *testing.T, db engine.Store) {
	// Seqs are the feed's: a store may number events after their commit,
	// so they are read back from Events, which lists every committed one.
	feed := func() []*engine.Event {
		t.Helper()
		var evs []*engine.Event
		mustView(t, db, func(tx engine.Tx) error {
			var err error
			evs, err = tx.Events(0, 0)
			return err
		})
		return evs
	}
	for i := range 5 {
		e := &engine.Event{ID: fmt.Sprint("evt_", i), Type: "points.expiring", MemberID: "m", At: t0, Payload: fmt.Appendf(nil, `{"i":%d}`, i)}
		mustUpdate(t, db, func(tx engine.Tx) error { return tx.AppendEvent(e) })
		if evs := feed(); len(evs) != i+1 || evs[i].ID != e.ID {
			t.Fatalf("after %d events the feed has %d, the last %+v", i+1, len(evs), evs[len(evs)-1])
		}
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for i := range 3 {
			if err := tx.AppendEvent(&engine.Event{Type: "tier_changed", At: t0, Payload: fmt.Appendf(nil, `{"n":%d}`, i)}); err != nil {
				return err
			}
		}
		return nil
	})
	var seqs []uint64
	var last3 []string
	for _, e := range feed() {
		seqs = append(seqs, e.Seq)
		if e.Type == "tier_changed" {
			last3 = append(last3, string(e.Payload))
		}
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(seqs, want) {
		t.Errorf("seqs = %v, want %v", seqs, want)
	}
	// The events of one transaction keep the order they were appended in.
	if want := []string{`{"n":0}`, `{"n":1}`, `{"n":2}`}; !slices.Equal(last3, want) {
		t.Errorf("one transaction's events came out as %v, want %v", last3, want)
	}
	tests := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{3, 2, []uint64{4, 5}},
		{5, 0, []uint64{6, 7, 8}},
		{8, 0, nil},
		{math.MaxUint64, 0, nil},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			es, err := tx.Events(tt.after, tt.limit)
			if err != nil {
				return err
			}
			var got []uint64
			for _, e := range es {
				got = append(got, e.Seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Events(%d, %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
			}
		}
		es, _ := tx.Events(1, 1)
		if es[0].ID != "evt_1" || string(es[0].Payload) != `{"i":1}` || es[0].Type != "points.expiring" || es[0].MemberID != "m" || !es[0].At.Equal(t0) {
			t.Errorf("event 2 = %+v", es[0])
		}
		return nil
	})
}

func testNonUUIDMemberIDs(t *testing.T, db engine.Store) {
	u := NewID()
	upper := "A" + u[1:] // not canonical, so a different member
	if u[0] == 'a' {
		upper = "B" + u[1:]
	}
	members := []string{"member-1", "m", u, upper, "member-10"}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for i, id := range members {
			if err := tx.PutMember(&engine.Member{ID: id, Email: id + "@x", Points: int64(i)}); err != nil {
				return err
			}
			if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: id, Seq: 1, Points: int64(i), BalanceAfter: int64(i)}); err != nil {
				return err
			}
			if err := tx.PutLot(&engine.Lot{ID: "lot", MemberID: id, Remaining: int64(i + 1), ExpiresAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		for i, id := range members {
			m, err := tx.Member(id)
			if err != nil || m == nil || m.Points != int64(i) {
				t.Errorf("Member(%q) = %+v, %v", id, m, err)
			}
			es, err := tx.Ledger(id, 0, 0)
			if err != nil || len(es) != 1 || es[0].MemberID != id {
				t.Errorf("Ledger(%q) = %v, %v", id, es, err)
			}
			ls, err := tx.OpenLots(id)
			if err != nil || len(ls) != 1 || ls[0].MemberID != id {
				t.Errorf("OpenLots(%q) = %v, %v", id, ls, err)
			}
		}
		ms, err := tx.Members("", 0)
		if err != nil || len(ms) != len(members) {
			t.Errorf("Members = %d, %v; want %d", len(ms), err, len(members))
		}
		return nil
	})
}
