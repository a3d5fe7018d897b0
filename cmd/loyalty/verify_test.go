package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
)

// A database whose records agree with each other but hold amounts past
// the engine's limits (as an older engine wrote them, or something around
// it) passed verify.
func TestVerifyReportsValuesOutOfRange(t *testing.T) {
	for _, kind := range storetesting.Kinds() {
		t.Run(kind, func(t *testing.T) { testVerifyReportsValuesOutOfRange(t, kind) })
	}
}

func testVerifyReportsValuesOutOfRange(t *testing.T, kind string) {
	path := filepath.Join(t.TempDir(), "loyalty.db")
	if kind == storetesting.Postgres {
		path = pgtest.URL(t)
	}
	db, err := openDatabase(t.Context(), path, dbOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	const big = 2 * engine.MaxMemberTotal
	err = db.Update(t.Context(), func(tx engine.Tx) error {
		m := &engine.Member{ID: "5d1b4c1e-7c47-4d35-9a4f-2d1b5b8e8a01", Status: engine.StatusActive, EnrolledAt: at, Tier: "green",
			Points: big, LifetimeEarned: big, LedgerSeq: 1, LifetimeSpend: big, PurchaseCount: 1}
		if err := tx.PutLot(&engine.Lot{ID: "l1", MemberID: m.ID, Points: big, Remaining: big, EarnedAt: at, Ref: "p1"}); err != nil {
			return err
		}
		if err := tx.AppendLedger(&engine.LedgerEntry{ID: "e1", MemberID: m.ID, Seq: 1, Type: engine.LedgerEarn, Points: big, BalanceAfter: big, At: at, Ref: "p1"}); err != nil {
			return err
		}
		if err := tx.PutPurchase(&engine.Purchase{ID: "p1", MemberID: m.ID, OccurredAt: at, Currency: "USD", Amount: big, Points: big,
			Items: []engine.PurchaseItem{{SKU: "X", Quantity: 1, Amount: big}}}); err != nil {
			return err
		}
		if err := tx.PutSetting("clock.latest_write", []byte("9999-12-31T00:00:00Z")); err != nil {
			return err
		}
		return tx.PutMember(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	code, out := runCLI(t, "verify", "--db", path)
	if code != 1 {
		t.Fatalf("verify: exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"balance 200000000000000000 is out of range", "ledger entry 1 moves", "lot l1 holds", "purchase p1: amount", "lifetime spend", "clock.latest_write: 9999-12-31"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify does not report %q:\n%s", want, out)
		}
	}
}
