package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

func couponCodes(cs []*engine.Coupon) []string {
	return ids(cs, func(c *engine.Coupon) string { return c.Code })
}

// fullCoupon is a coupon with every field set, microsecond stamps and all.
func fullCoupon(code, member string) *engine.Coupon {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)
	return &engine.Coupon{
		Code: code, ID: "take-" + code, MemberID: member, Reward: "free-coffee", Title: "Any coffee",
		Source: engine.CouponTaken, Status: engine.CouponUsed, IssuedAt: at, ExpiresAt: at.AddDate(0, 0, 30),
		Points: 150, Draws: []engine.LotDraw{{LotID: "l1", Points: 100}, {LotID: "l2", Points: 50}},
		RefundOnExpiry: true, RulesVersion: 3, RequestHash: "h1",
		Result: engine.RewardResult{
			Coupon: engine.CouponView{Code: "K7QM-4XRT-PW", Reward: "free-coffee", Status: engine.CouponIssued, IssuedAt: at, ExpiresAt: at.AddDate(0, 0, 30)},
			Points: -150, Balance: engine.BalanceSummary{Available: 420, Pending: 5},
		},
		UsedAt: at.Add(time.Hour), UseID: "use-1", UseHash: "h2", StoreID: "s1", PurchaseID: "p1",
		UseResult: engine.CouponView{Code: "K7QM-4XRT-PW", Status: engine.CouponUsed, UsedAt: at.Add(time.Hour), StoreID: "s1"},
		EndedAt:   at.Add(2 * time.Hour), Refunded: true,
	}
}

// testCoupons: a coupon reads back whole by code and by id; a member's
// coupons list in issue order and follow a coupon given to another
// member; lookups of nothing answer nil.
func testCoupons(t *testing.T, db engine.Store) {
	a, b := NewID(), NewID()
	putMembers(t, db, a, b)
	want := fullCoupon("AAAAAAAAAA", a)
	mustView(t, db, func(tx engine.Tx) error {
		for name, get := range map[string]func() (*engine.Coupon, error){
			"Coupon":     func() (*engine.Coupon, error) { return tx.Coupon("AAAAAAAAAA") },
			"CouponByID": func() (*engine.Coupon, error) { return tx.CouponByID("take-AAAAAAAAAA") },
		} {
			if c, err := get(); c != nil || err != nil {
				t.Errorf("%s on an empty store = %v, %v; want nil, nil", name, c, err)
			}
		}
		if cs, err := tx.MemberCoupons(a); len(cs) != 0 || err != nil {
			t.Errorf("MemberCoupons on an empty store = %v, %v", cs, err)
		}
		if cs, err := tx.DueCoupons(t0.AddDate(100, 0, 0), nil, 0); len(cs) != 0 || err != nil {
			t.Errorf("DueCoupons on an empty store = %v, %v", cs, err)
		}
		return nil
	})
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutCoupon(want) })
	mustView(t, db, func(tx engine.Tx) error {
		byCode, err := tx.Coupon(want.Code)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(byCode, want) {
			t.Errorf("Coupon = %+v\nwant %+v", byCode, want)
		}
		byID, err := tx.CouponByID(want.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(byID, want) {
			t.Errorf("CouponByID = %+v\nwant %+v", byID, want)
		}
		return nil
	})
	// Issued later, issued earlier, another member's.
	later, earlier, other := fullCoupon("BBBBBBBBBB", a), fullCoupon("CCCCCCCCCC", a), fullCoupon("DDDDDDDDDD", b)
	later.IssuedAt = want.IssuedAt.Add(time.Minute)
	earlier.IssuedAt = want.IssuedAt.Add(-time.Minute)
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, c := range []*engine.Coupon{later, earlier, other} {
			if err := tx.PutCoupon(c); err != nil {
				return err
			}
		}
		return nil
	})
	listOf := func(member string) []string {
		t.Helper()
		var got []string
		mustView(t, db, func(tx engine.Tx) error {
			cs, err := tx.MemberCoupons(member)
			got = couponCodes(cs)
			return err
		})
		return got
	}
	if got, want := listOf(a), []string{"CCCCCCCCCC", "AAAAAAAAAA", "BBBBBBBBBB"}; !slices.Equal(got, want) {
		t.Errorf("MemberCoupons(a) = %v, want %v", got, want)
	}
	// A merge gives a coupon to another member.
	moved := *later
	moved.MemberID = b
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutCoupon(&moved) })
	if got, want := listOf(a), []string{"CCCCCCCCCC", "AAAAAAAAAA"}; !slices.Equal(got, want) {
		t.Errorf("MemberCoupons(a) after a move = %v, want %v", got, want)
	}
	if got, want := listOf(b), []string{"DDDDDDDDDD", "BBBBBBBBBB"}; !slices.Equal(got, want) {
		t.Errorf("MemberCoupons(b) after a move = %v, want %v", got, want)
	}
	// An id is one coupon's.
	clash := fullCoupon("EEEEEEEEEE", a)
	clash.ID = want.ID
	if err := db.Update(t.Context(), func(tx engine.Tx) error { return tx.PutCoupon(clash) }); err == nil {
		t.Error("a second coupon with the id of another was stored")
	}
	if err := db.Update(t.Context(), func(tx engine.Tx) error {
		return tx.PutCoupon(&engine.Coupon{Code: "FFFFFFFFFF", MemberID: a})
	}); err == nil {
		t.Error("a coupon without an id was stored")
	}
	mustView(t, db, func(tx engine.Tx) error {
		if c, err := tx.Coupon("EEEEEEEEEE"); c != nil || err != nil {
			t.Errorf("the refused coupon reads back: %v, %v", c, err)
		}
		return nil
	})
	check(t, db)
}

// testDueCoupons: the expiry index holds issued coupons only, in
// (ExpiresAt, Code) order, pages from a coupon's place, and follows a
// coupon's status and expiry as they change.
func testDueCoupons(t *testing.T, db engine.Store) {
	m := NewID()
	putMembers(t, db, m)
	day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	coupon := func(code, status string, exp time.Time) *engine.Coupon {
		return &engine.Coupon{Code: code, ID: "id-" + code, MemberID: m, Reward: "r", Status: status, IssuedAt: t0, ExpiresAt: exp}
	}
	cs := []*engine.Coupon{
		coupon("C3", engine.CouponIssued, day(3)),
		coupon("B1", engine.CouponIssued, day(1)),
		coupon("A1", engine.CouponIssued, day(1)),
		coupon("U0", engine.CouponUsed, day(0)),
		coupon("X0", engine.CouponExpired, day(0)),
		coupon("K0", engine.CouponCancelled, day(0)),
		coupon("D9", engine.CouponIssued, day(9)),
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, c := range cs {
			if err := tx.PutCoupon(c); err != nil {
				return err
			}
		}
		return nil
	})
	byCode := map[string]*engine.Coupon{}
	for _, c := range cs {
		byCode[c.Code] = c
	}
	tests := []struct {
		until time.Time
		after string
		limit int
		want  []string
	}{
		{day(0), "", 0, nil},
		{day(1), "", 0, []string{"A1", "B1"}},
		{day(1).Add(-time.Nanosecond), "", 0, nil},
		{day(3), "", 0, []string{"A1", "B1", "C3"}},
		{day(3), "", 2, []string{"A1", "B1"}},
		{day(3), "A1", 0, []string{"B1", "C3"}},
		{day(100), "B1", 1, []string{"C3"}},
		// A coupon no longer in the index still marks its place.
		{day(100), "U0", 0, []string{"A1", "B1", "C3", "D9"}},
		{day(100), "D9", 0, nil},
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, tt := range tests {
			due, err := tx.DueCoupons(tt.until, byCode[tt.after], tt.limit)
			if err != nil {
				return err
			}
			if got := couponCodes(due); !slices.Equal(got, tt.want) {
				t.Errorf("DueCoupons(%s, after %q, %d) = %v, want %v", tt.until, tt.after, tt.limit, got, tt.want)
			}
		}
		return nil
	})
	// Used, the first leaves the index; a later expiry moves the next.
	mustUpdate(t, db, func(tx engine.Tx) error {
		a1, b1 := *byCode["A1"], *byCode["B1"]
		a1.Status = engine.CouponUsed
		b1.ExpiresAt = day(5)
		if err := tx.PutCoupon(&a1); err != nil {
			return err
		}
		return tx.PutCoupon(&b1)
	})
	mustView(t, db, func(tx engine.Tx) error {
		due, err := tx.DueCoupons(day(100), nil, 0)
		if got, want := couponCodes(due), []string{"C3", "B1", "D9"}; !slices.Equal(got, want) {
			t.Errorf("DueCoupons after a use and a new expiry = %v, want %v", got, want)
		}
		return err
	})
	check(t, db)
}

// testRewardCounts: counts read back, replace, and list by reward name.
func testRewardCounts(t *testing.T, db engine.Store) {
	mustView(t, db, func(tx engine.Tx) error {
		if c, err := tx.RewardCount("none"); c != nil || err != nil {
			t.Errorf("RewardCount on an empty store = %v, %v", c, err)
		}
		if cs, err := tx.RewardCounts(); len(cs) != 0 || err != nil {
			t.Errorf("RewardCounts on an empty store = %v, %v", cs, err)
		}
		return nil
	})
	b := &engine.RewardCount{Reward: "b", Issued: 9, Used: 4, Expired: 2, Cancelled: 1, Points: 1200}
	a := &engine.RewardCount{Reward: "a", Issued: 1}
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutRewardCount(b); err != nil {
			return err
		}
		return tx.PutRewardCount(a)
	})
	a.Issued, a.Points = 2, 300
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutRewardCount(a) })
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.RewardCount("b")
		if err != nil || !reflect.DeepEqual(got, b) {
			t.Errorf("RewardCount(b) = %+v, %v; want %+v", got, err, b)
		}
		all, err := tx.RewardCounts()
		if err != nil {
			return err
		}
		if len(all) != 2 || !reflect.DeepEqual(all[0], a) || !reflect.DeepEqual(all[1], b) {
			t.Errorf("RewardCounts = %+v, want [%+v %+v]", all, a, b)
		}
		return nil
	})
}

// testStockRace: updates of different members that each read a reward's
// counts, issue a coupon while fewer than the stock are issued and write
// the counts back never issue more than the stock between them: the
// counts' record serialises them (engine/store.go, "a command that
// decides on a record writes that record").
func testStockRace(t *testing.T, db engine.Store) {
	const racers, stock = 20, 5
	members := make([]string, racers)
	for i := range members {
		members[i] = NewID()
	}
	putMembers(t, db, members...)
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.PutRewardCount(&engine.RewardCount{Reward: "last", Issued: 10 - stock, Cancelled: 0})
	})
	errOut := fmt.Errorf("out of stock")
	var wg sync.WaitGroup
	results := make(chan error, racers)
	for i, m := range members {
		wg.Go(func() {
			results <- db.Update(t.Context(), func(tx engine.Tx) error {
				count, err := tx.RewardCount("last")
				if err != nil {
					return err
				}
				if count.Issued-count.Cancelled >= 10 {
					return errOut
				}
				count.Issued++
				if err := tx.PutRewardCount(count); err != nil {
					return err
				}
				code := fmt.Sprintf("RACE%06d", i)
				return tx.PutCoupon(&engine.Coupon{Code: code, ID: "take-" + code, MemberID: m, Reward: "last", Status: engine.CouponIssued, IssuedAt: t0, ExpiresAt: t0.AddDate(0, 1, 0)})
			})
		})
	}
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		switch err {
		case nil:
			won++
		case errOut:
		default:
			t.Fatal(err)
		}
	}
	if won != stock {
		t.Errorf("%d of %d racers issued a coupon; the stock had %d", won, racers, stock)
	}
	mustView(t, db, func(tx engine.Tx) error {
		count, err := tx.RewardCount("last")
		if err != nil {
			return err
		}
		due, err := tx.DueCoupons(t0.AddDate(1, 0, 0), nil, 0)
		if count.Issued != 10 || len(due) != stock {
			t.Errorf("after the race: counts say %d issued, %d coupons stored; want 10 and %d", count.Issued, len(due), stock)
		}
		return err
	})
}
