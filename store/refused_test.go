package store

import (
	"errors"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

var errRefused = errors.New("refused")

// queueTxWrites queues fns through db.Update behind a held commit, in
// order, so they share one batch in that order, lets them go and returns
// their answers.
func queueTxWrites(t *testing.T, db *DB, fns []func(engine.Tx) error) []error {
	t.Helper()
	release := holdCommitter(t, db.commits)
	errs := make([]chan error, len(fns))
	for i, fn := range fns {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- db.Update(t.Context(), fn) }()
		waitQueued(t, db.commits, i+1)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	out := make([]error, len(fns))
	for i, ch := range errs {
		out[i] = <-ch
	}
	return out
}

func waitQueued(t *testing.T, c *committer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// counted is a write that marks key and counts how often it ran.
func counted(key string, runs *atomic.Int64) func(engine.Tx) error {
	return func(tx engine.Tx) error {
		runs.Add(1)
		return tx.Mark(key)
	}
}

func marked(t *testing.T, db *DB, key string) bool {
	t.Helper()
	var ok bool
	mustView(t, db, func(tx engine.Tx) (err error) {
		ok, err = tx.Marked(key)
		return err
	})
	return ok
}

func TestRefusalBeforeWritingDoesNotRerunTheBatch(t *testing.T) {
	db := MustOpenDB(t)
	var before, after atomic.Int64
	m := &engine.Member{ID: newID(), Email: "taken@example.com"}
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(m) })
	errs := queueTxWrites(t, db, []func(engine.Tx) error{
		counted("before", &before),
		// Refusals as the engine makes them: after reads only.
		func(tx engine.Tx) error {
			if _, err := tx.Member(m.ID); err != nil {
				return err
			}
			return errRefused
		},
		// A unique-key conflict, which PutMember finds before it writes.
		func(tx engine.Tx) error {
			return tx.PutMember(&engine.Member{ID: newID(), Email: "taken@example.com"})
		},
		counted("after", &after),
	})
	if errs[0] != nil || errs[3] != nil {
		t.Fatalf("the good writes failed: %v, %v", errs[0], errs[3])
	}
	if !errors.Is(errs[1], errRefused) {
		t.Errorf("refused write: err = %v, want %v", errs[1], errRefused)
	}
	var conflict *engine.Error
	if !errors.As(errs[2], &conflict) || conflict.Code != engine.ECONFLICT {
		t.Errorf("conflicting member: err = %v, want a conflict", errs[2])
	}
	if n, m := before.Load(), after.Load(); n != 1 || m != 1 {
		t.Errorf("the other writes ran %d and %d times, want once each: a refusal that wrote nothing must not roll the batch back", n, m)
	}
	if !marked(t, db, "before") || !marked(t, db, "after") {
		t.Error("the good writes were not committed")
	}
}

func TestFailureAfterWritingRollsBackItsWrites(t *testing.T) {
	db := MustOpenDB(t)
	var before, after atomic.Int64
	errs := queueTxWrites(t, db, []func(engine.Tx) error{
		counted("before", &before),
		func(tx engine.Tx) error {
			if err := tx.Mark("half-done"); err != nil {
				return err
			}
			return errRefused
		},
		counted("after", &after),
	})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("the good writes failed: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], errRefused) {
		t.Errorf("failed write: err = %v, want %v", errs[1], errRefused)
	}
	if marked(t, db, "half-done") {
		t.Error("the write of a function that failed was committed")
	}
	if before.Load() != 2 {
		t.Errorf("the write before the failure ran %d times, want 2 (once more without the failed one)", before.Load())
	}
	if !marked(t, db, "before") || !marked(t, db, "after") {
		t.Error("the good writes were not committed")
	}
}

// txWrites calls each method of engine.Tx that may change the file, with
// arguments that make it write. A method missing here fails
// TestEveryTxMethodIsClassified.
var txWrites = map[string]func(tx engine.Tx, member string) error{
	"PutMember": func(tx engine.Tx, member string) error {
		return tx.PutMember(&engine.Member{ID: member, Email: member + "@example.com"})
	},
	"PutPurchase": func(tx engine.Tx, member string) error {
		return tx.PutPurchase(&engine.Purchase{ID: "p-" + member, MemberID: member, OccurredAt: t0})
	},
	"PutRefund": func(tx engine.Tx, member string) error { return tx.PutRefund(&engine.Refund{ID: "r-" + member}) },
	"PutRedemption": func(tx engine.Tx, member string) error {
		return tx.PutRedemption(&engine.Redemption{ID: "d-" + member})
	},
	"PutAdjustment": func(tx engine.Tx, member string) error {
		return tx.PutAdjustment(&engine.Adjustment{ID: "a-" + member})
	},
	"AppendLedger": func(tx engine.Tx, member string) error {
		return tx.AppendLedger(&engine.LedgerEntry{ID: "e", MemberID: member, Seq: 1, Points: 1, BalanceAfter: 1, At: t0})
	},
	"PutLot": func(tx engine.Tx, member string) error {
		return tx.PutLot(&engine.Lot{ID: "l", MemberID: member, Points: 1, Remaining: 1, EarnedAt: t0, ExpiresAt: t0.AddDate(1, 0, 0)})
	},
	"AddMetric": func(tx engine.Tx, member string) error {
		return tx.AddMetric(member, engine.MetricEntry{At: t0, Spend: 1})
	},
	"AddRuleUse": func(tx engine.Tx, member string) error { return tx.AddRuleUse(member, "r", "all", 1) },
	"Mark":       func(tx engine.Tx, member string) error { return tx.Mark("m-" + member) },
	"PutRules": func(tx engine.Tx, member string) error {
		return tx.PutRules(&engine.RulesVersion{Version: 99, Source: member})
	},
	"PutAnalyticsSummary": func(tx engine.Tx, member string) error {
		return tx.PutAnalyticsSummary(&engine.AnalyticsSummary{ComputedAt: t0})
	},
	"PutJobRun": func(tx engine.Tx, member string) error { return tx.PutJobRun(&engine.JobRun{Name: "j", StartedAt: t0}) },
	"AppendEvent": func(tx engine.Tx, member string) error {
		return tx.AppendEvent(&engine.Event{Type: "t", MemberID: member})
	},
	"PutSetting": func(tx engine.Tx, member string) error { return tx.PutSetting("s", []byte(member)) },
	"PutTransfer": func(tx engine.Tx, member string) error {
		return tx.PutTransfer(&engine.Transfer{ID: "t-" + member, FromMemberID: member, ToMemberID: member, Points: 1})
	},
	"RewriteEvent": func(tx engine.Tx, member string) error {
		e := &engine.Event{ID: "evt-" + member, Type: "t", MemberID: member}
		if err := tx.AppendEvent(e); err != nil {
			return err
		}
		e.Payload = []byte(`{}`)
		return tx.RewriteEvent(e)
	},
	"PutCoupon": func(tx engine.Tx, member string) error {
		return tx.PutCoupon(&engine.Coupon{Code: "C" + member, ID: "c-" + member, MemberID: member, Status: engine.CouponIssued, ExpiresAt: t0})
	},
	"PutRewardCount": func(tx engine.Tx, member string) error {
		return tx.PutRewardCount(&engine.RewardCount{Reward: "r-" + member, Issued: 1})
	},
	"PutWebhook": func(tx engine.Tx, member string) error {
		return tx.PutWebhook(&engine.Webhook{ID: "wh-" + member})
	},
	"DeleteWebhook": func(tx engine.Tx, member string) error {
		if err := tx.PutWebhook(&engine.Webhook{ID: "wh-" + member}); err != nil {
			return err
		}
		return tx.DeleteWebhook("wh-" + member)
	},
	"PutDelivery": func(tx engine.Tx, member string) error {
		return tx.PutDelivery(&engine.Delivery{WebhookID: "wh-" + member, Seq: 1, Status: engine.DeliveryPending})
	},
	"DeleteEvents": func(tx engine.Tx, member string) error {
		if err := tx.AppendEvent(&engine.Event{Type: "t", MemberID: member}); err != nil {
			return err
		}
		_, err := tx.DeleteEvents(1<<62, 0)
		return err
	},
	"TakeLease": func(tx engine.Tx, member string) error {
		_, err := tx.TakeLease("l", member, time.Minute)
		return err
	},
	"ReleaseLease": func(tx engine.Tx, member string) error {
		if _, err := tx.TakeLease("l", member, time.Minute); err != nil {
			return err
		}
		return tx.ReleaseLease("l", member)
	},
}

// txReads never change the file.
var txReads = []string{
	"Member", "MemberByKey", "Members", "Purchase", "PurchasesBetween", "Refund", "Redemption",
	"Adjustment", "Ledger", "Lot", "OpenLots", "Lots", "DueLots", "Metrics", "RuleUses", "Marked",
	"RulesVersion", "RulesVersions", "LatestRules", "LatestAnalyticsSummary", "JobRuns", "Events",
	"Setting", "Coupon", "CouponByID", "MemberCoupons", "DueCoupons", "RewardCount", "RewardCounts",
	"Webhook", "Webhooks", "Delivery", "Deliveries", "Transfer", "MemberEvents",
}

func TestEveryTxMethodIsClassified(t *testing.T) {
	typ := reflect.TypeFor[engine.Tx]()
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if _, ok := txWrites[name]; !ok && !slices.Contains(txReads, name) {
			t.Errorf("engine.Tx.%s is neither in txWrites nor in txReads: say whether it writes, so the group commit's refusal test covers it", name)
		}
	}
}

// Every method that writes must say so: a function failing after it is
// rolled back, never committed with the batch.
func TestEveryWriteMarksTheTransactionChanged(t *testing.T) {
	for name, write := range txWrites {
		t.Run(name, func(t *testing.T) {
			db := MustOpenDB(t)
			member := newID()
			if name != "PutMember" {
				mustUpdate(t, db, func(tx engine.Tx) error {
					return tx.PutMember(&engine.Member{ID: member})
				})
			}
			before := snapshot(t, db)
			var runs atomic.Int64
			errs := queueTxWrites(t, db, []func(engine.Tx) error{
				func(tx engine.Tx) error {
					runs.Add(1)
					return nil
				},
				func(tx engine.Tx) error {
					if err := write(tx, member); err != nil {
						return err
					}
					return errRefused
				},
			})
			if !errors.Is(errs[1], errRefused) {
				t.Fatalf("err = %v, want %v", errs[1], errRefused)
			}
			if runs.Load() != 2 {
				t.Errorf("the batch ran %d times, want 2: %s did not mark the transaction changed", runs.Load(), name)
			}
			if after := snapshot(t, db); !reflect.DeepEqual(before, after) {
				t.Errorf("the file changed though the function that called %s failed", name)
			}
		})
	}
}

// snapshot copies every key and value of the file.
func snapshot(t *testing.T, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := db.bolt.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
