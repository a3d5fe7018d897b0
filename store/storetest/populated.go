package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// filler sets every field of a value, recursively, to something that is
// not its zero value: each string, number and stamp different, each
// pointer, slice and map holding values filled the same way. A field a
// store does not keep then reads back zero, and the round trip fails on
// it; a field of a kind it cannot fill fails the test, so a new kind of
// field is never skipped.
type filler struct {
	tb testing.TB
	n  int
}

var fillBase = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *filler) fill(v reflect.Value, path string) {
	f.n++
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(fillBase.Add(time.Duration(f.n) * (time.Hour + time.Microsecond))))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if sf := v.Type().Field(i); sf.IsExported() && sf.Tag.Get("json") != "-" {
				f.fill(v.Field(i), path+"."+sf.Name)
			}
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), path)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(fmt.Appendf(nil, `{"n":%d}`, f.n))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			f.fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			f.fill(k, path+" key")
			e := reflect.New(v.Type().Elem()).Elem()
			f.fill(e, fmt.Sprintf("%s[%d]", path, i))
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", f.n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(f.n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.n) + 0.5)
	default:
		f.tb.Fatalf("storetest: cannot fill %s (%s): teach filler this kind", path, v.Type())
	}
}

// populated returns a *T with every field filled.
func populated[T any](f *filler) *T {
	v := new(T)
	f.fill(reflect.ValueOf(v).Elem(), reflect.TypeFor[T]().String())
	return v
}

// RoundTripTypes are the record types testPopulatedRecordsRoundTrip
// writes and reads back whole; the bbolt store's tests hold its list of
// stored types to this one, so a new record type gets its round trip.
var RoundTripTypes = []reflect.Type{
	reflect.TypeFor[engine.Member](), reflect.TypeFor[engine.Purchase](), reflect.TypeFor[engine.Refund](),
	reflect.TypeFor[engine.Redemption](), reflect.TypeFor[engine.Adjustment](), reflect.TypeFor[engine.LedgerEntry](),
	reflect.TypeFor[engine.Lot](), reflect.TypeFor[engine.MetricEntry](), reflect.TypeFor[engine.RulesVersion](),
	reflect.TypeFor[engine.JobRun](), reflect.TypeFor[engine.Event](), reflect.TypeFor[engine.AnalyticsSummary](),
	reflect.TypeFor[engine.Coupon](), reflect.TypeFor[engine.RewardCount](),
	reflect.TypeFor[engine.Webhook](), reflect.TypeFor[engine.Delivery](), reflect.TypeFor[engine.Transfer](),
}

// testPopulatedRecordsRoundTrip writes one value of every stored record
// type with every field set, recursively, and reads each back equal: a
// field a store leaves out of its columns or its encoding fails here.
// Fields the store's indexes and checks give a meaning (ids, a ledger's
// seq and balance, points within the limits) are set to fit them.
func testPopulatedRecordsRoundTrip(t *testing.T, db engine.Store) {
	f := &filler{tb: t}
	m := populated[engine.Member](f)
	m.ID = NewID()
	m.LedgerSeq = 1

	p := populated[engine.Purchase](f)
	p.MemberID = m.ID
	p.Amount, p.RefundedAmount, p.Points, p.RefundedPoints = 10_000, 100, 500, 5
	for i := range p.Items {
		p.Items[i].Quantity, p.Items[i].Amount = 2, 1_000
	}
	rf := populated[engine.Refund](f)
	rf.PurchaseID, rf.MemberID, rf.Points = p.ID, m.ID, -5
	rd := populated[engine.Redemption](f)
	rd.MemberID = m.ID
	adj := populated[engine.Adjustment](f)
	adj.MemberID = m.ID
	entry := populated[engine.LedgerEntry](f)
	entry.MemberID, entry.Seq, entry.BalanceAfter = m.ID, 1, entry.Points
	lot := populated[engine.Lot](f)
	lot.MemberID, lot.Remaining = m.ID, lot.Points
	metric := populated[engine.MetricEntry](f)
	rules := populated[engine.RulesVersion](f)
	run := populated[engine.JobRun](f)
	event := populated[engine.Event](f)
	summary := populated[engine.AnalyticsSummary](f)
	coupon := populated[engine.Coupon](f)
	coupon.MemberID, coupon.Status = m.ID, engine.CouponIssued
	count := populated[engine.RewardCount](f)
	hook := populated[engine.Webhook](f)
	delivery := populated[engine.Delivery](f)
	delivery.WebhookID = hook.ID
	transfer := populated[engine.Transfer](f)
	transfer.FromMemberID, transfer.ToMemberID = m.ID, m.ID

	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, err := range []error{
			tx.PutMember(m), tx.PutPurchase(p), tx.PutRefund(rf), tx.PutRedemption(rd), tx.PutAdjustment(adj),
			tx.AppendLedger(entry), tx.PutLot(lot), tx.AddMetric(m.ID, *metric), tx.PutRules(rules), tx.PutJobRun(run),
			tx.AppendEvent(event), tx.PutAnalyticsSummary(summary), tx.PutCoupon(coupon), tx.PutRewardCount(count),
			tx.PutWebhook(hook), tx.PutDelivery(delivery), tx.PutTransfer(transfer),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		if len(evs) != 1 {
			t.Fatalf("Events = %d events, want 1", len(evs))
		}
		// The feed numbers the event.
		event.Seq = evs[0].Seq
		same := func(name string, got, want any, err error) {
			t.Helper()
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%s reads back differently:\n got %+v\nwant %+v", name, got, want)
			}
		}
		same("Event", evs[0], event, nil)
		got, err := tx.Member(m.ID)
		same("Member", got, m, err)
		gp, err := tx.Purchase(p.ID)
		same("Purchase", gp, p, err)
		grf, err := tx.Refund(rf.ID)
		same("Refund", grf, rf, err)
		grd, err := tx.Redemption(rd.ID)
		same("Redemption", grd, rd, err)
		ga, err := tx.Adjustment(adj.ID)
		same("Adjustment", ga, adj, err)
		ge, err := tx.Ledger(m.ID, 0, 0)
		same("Ledger", ge, []*engine.LedgerEntry{entry}, err)
		gl, err := tx.Lot(m.ID, lot.ID)
		same("Lot", gl, lot, err)
		gm, err := tx.Metrics(m.ID, time.Time{})
		same("Metrics", gm, []engine.MetricEntry{*metric}, err)
		gv, err := tx.RulesVersion(rules.Version)
		same("RulesVersion", gv, rules, err)
		gr, err := tx.JobRuns(run.Name, 0)
		same("JobRuns", gr, []*engine.JobRun{run}, err)
		gs, err := tx.LatestAnalyticsSummary()
		same("AnalyticsSummary", gs, summary, err)
		gc, err := tx.Coupon(coupon.Code)
		same("Coupon", gc, coupon, err)
		gn, err := tx.RewardCount(count.Reward)
		same("RewardCount", gn, count, err)
		gw, err := tx.Webhook(hook.ID)
		same("Webhook", gw, hook, err)
		gd, err := tx.Delivery(hook.ID, delivery.Seq)
		same("Delivery", gd, delivery, err)
		gt, err := tx.Transfer(transfer.ID)
		same("Transfer", gt, transfer, err)
		return nil
	})
}
