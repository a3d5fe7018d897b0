package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestCheck breaks a consistent store with raw bbolt writes, one way per
// case, and expects Check to name the problem.
func TestCheck(t *testing.T) {
	a, b := newID(), newID()
	exp := t0.AddDate(1, 0, 0)
	spent := &engine.Lot{ID: "spent", MemberID: a, Points: 5, Remaining: 0, ExpiresAt: exp}
	open := &engine.Lot{ID: "open", MemberID: a, Points: 5, Remaining: 5, ExpiresAt: exp}
	purchase := &engine.Purchase{ID: "p1", MemberID: a, OccurredAt: t0}
	seed := func(tx engine.Tx) error {
		for _, m := range []*engine.Member{{ID: a, Email: "a@x", Phone: "1"}, {ID: b, Email: "b@x"}} {
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		for i, p := range []int64{10, -4, 7} {
			if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: a, Seq: uint64(i + 1), Points: p, BalanceAfter: []int64{10, 6, 13}[i]}); err != nil {
				return err
			}
		}
		if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: b, Seq: 1, Points: 3, BalanceAfter: 3}); err != nil {
			return err
		}
		for _, l := range []*engine.Lot{spent, open} {
			if err := tx.PutLot(l); err != nil {
				return err
			}
		}
		if err := tx.PutWebhook(&engine.Webhook{ID: "wh1", Status: engine.WebhookEnabled}); err != nil {
			return err
		}
		for _, d := range []*engine.Delivery{{WebhookID: "wh1", Seq: 1, Status: engine.DeliveryPending}, {WebhookID: "wh1", Seq: 2, Status: engine.DeliverySucceeded}} {
			if err := tx.PutDelivery(d); err != nil {
				return err
			}
		}
		return tx.PutPurchase(purchase)
	}
	putRecord := func(bucket, key []byte, rec any) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			v, err := encode(rec)
			if err != nil {
				return err
			}
			return tx.Bucket(bucket).Put(key, v)
		}
	}
	put := func(bucket, key, value []byte) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) }
	}
	del := func(bucket, key []byte) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete(key) }
	}
	tests := []struct {
		name    string
		corrupt func(*bolt.Tx) error
		want    string
	}{
		{"pending delivery not indexed", del(bucketDeliveriesPending, deliveryKey("wh1", 1)), "is pending, and deliveries_pending lists it: false"},
		{"done delivery indexed", put(bucketDeliveriesPending, deliveryKey("wh1", 2), nil), "is succeeded, and deliveries_pending lists it: true"},
		{"dangling pending entry", put(bucketDeliveriesPending, deliveryKey("wh1", 3), nil), "deliveries_pending: "},
		{"delivery of no webhook", del(bucketWebhooks, []byte("wh1")), "webhook wh1 does not exist"},
		{"dangling unique entry", put(bucketByEmail, []byte("ghost@x"), memberKey(newID())), `members_by_email: "ghost@x" points at no member`},
		{"unique entry at the wrong member", put(bucketByEmail, []byte("a@x"), memberKey(b)), `member ` + a + `: email "a@x" does not point back`},
		{"stale unique entry", put(bucketByPhone, []byte("2"), memberKey(a)), `members_by_phone: "2" points at member ` + a + `, whose phone is "1"`},
		{"missing unique entry", del(bucketByPhone, []byte("1")), `member ` + a + `: phone "1" does not point back`},
		{"dangling purchase time", put(bucketPurchaseTime, append(appendTime(nil, t0), "p2"...), nil), `points at no purchase "p2"`},
		{"purchase time at the wrong time", func(tx *bolt.Tx) error {
			if err := del(bucketPurchaseTime, purchaseTimeKey(purchase))(tx); err != nil {
				return err
			}
			return put(bucketPurchaseTime, append(appendTime(nil, t0.Add(time.Hour)), "p1"...), nil)(tx)
		}, "purchase p1: missing from purchases_by_time"},
		{"dangling lots_open entry", put(bucketMemberData, openLotKey(&engine.Lot{ID: "ghost", MemberID: b, Remaining: 1}), nil), "lots_open: "},
		{"spent lot in lots_open", put(bucketMemberData, openLotKey(&engine.Lot{ID: "spent", MemberID: a, Remaining: 1, ExpiresAt: exp}), nil), "points at no open lot with that expiry"},
		{"open lot missing from lots_open", del(bucketMemberData, openLotKey(open)), "lot " + a + "/open: has 5 remaining but is missing from lots_open"},
		{"spent lot in expiry", put(bucketExpiry, expiryKey(&engine.Lot{ID: "spent", MemberID: a, Remaining: 1, ExpiresAt: exp}), nil), "expiry: "},
		{"open lot missing from expiry", del(bucketExpiry, expiryKey(open)), "lot " + a + "/open: expires at"},
		{"ledger gap", atLedgerEntry(a, 2, func(k []byte) func(*bolt.Tx) error { return del(bucketMemberData, k) }), "ledger of " + a + ": entry 3 follows entry 1"},
		{"ledger balance chain", atLedgerEntry(a, 2, func(k []byte) func(*bolt.Tx) error {
			return putRecord(bucketMemberData, k, &engine.LedgerEntry{MemberID: a, Seq: 2, Points: -4, BalanceAfter: 5})
		}),
			"ledger of " + a + ": entry 2 has balance after 5, want 10 + -4 = 6"},
		{"ledger entry under another key", putRecord(bucketMemberData, ledgerKey(memberSection(b, sectionHistory, 0), 0, 2), &engine.LedgerEntry{MemberID: a, Seq: 4, Points: 0, BalanceAfter: 13}), "holds entry 4 of member " + a},
		{"ledger entry keyed before its time", atLedgerEntry(a, 2, func(k []byte) func(*bolt.Tx) error {
			return putRecord(bucketMemberData, k, &engine.LedgerEntry{MemberID: a, Seq: 2, Points: -4, BalanceAfter: 6, At: lastNano})
		}), "holds entry 2 of member " + a},
		{"history record of no kind", put(bucketMemberData, historyKey(memberSection(a, sectionHistory, 0), 5, 'x', 0), nil), "is of no known kind"},
		{"undecodable member", put(bucketMembers, memberKey(newID()), []byte{9, '{'}), "unknown encoding 9"},
		{"account also in members", putRecord(bucketMembers, memberKey(a), &engine.Member{ID: a, Email: "a@x", Phone: "1", Points: 13}),
			"member " + a + ": has an account record and still an account in members"},
		{"account of no member", putRecord(bucketMemberData, accountKey(newID()), &account{Points: 1}), "belongs to no member"},
		{"undecodable account", put(bucketMemberData, accountKey(a), []byte{9}), "unknown encoding 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFinds(t, seed, tt.corrupt, tt.want) })
	}
}

// checkFinds writes seed to a new store, which Check must find clean, breaks
// it with corrupt's raw bbolt writes, and expects Check to report the
// problem, one line per problem, one of them mentioning want.
func checkFinds(t *testing.T, seed func(engine.Tx) error, corrupt func(*bolt.Tx) error, want string) {
	t.Helper()
	db := mustOpenPath(t, filepath.Join(t.TempDir(), "loyalty.db"), testOptions())
	mustUpdate(t, db, seed)
	mustCheck(t, db)
	if err := db.bolt.Update(corrupt); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	n, err := db.Check(&out)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || !strings.Contains(out.String(), want) {
		t.Errorf("Check found %d problems:\n%s\nwant one mentioning %q", n, out.String(), want)
	}
	if lines := strings.Count(out.String(), "\n"); lines != n {
		t.Errorf("Check printed %d lines for %d problems", lines, n)
	}
}

// atLedgerEntry makes a change to the key of a member's ledger entry seq.
func atLedgerEntry(memberID string, seq uint64, change func(k []byte) func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		p := memberSection(memberID, sectionHistory, 0)
		c := tx.Bucket(bucketMemberData).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			if s, ok := ledgerSeqOf(k, p); ok && s == seq {
				return change(append([]byte(nil), k...))(tx)
			}
		}
		return fmt.Errorf("member %s has no ledger entry %d", memberID, seq)
	}
}
