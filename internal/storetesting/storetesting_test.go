package storetesting

import (
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
)

// TestEveryKindOpens writes through each kind's store, reads it back and
// lets the cleanup check run; the kinds include PostgreSQL exactly when a
// test server is configured.
func TestEveryKindOpens(t *testing.T) {
	kinds := Kinds()
	if got, want := len(kinds), map[bool]int{false: 1, true: 2}[pgtest.Available()]; got != want {
		t.Fatalf("Kinds() = %v with %s=%q", kinds, pgtest.EnvServer, map[bool]string{true: "set"}[pgtest.Available()])
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s := Open(t, kind)
			if err := s.Update(t.Context(), func(tx engine.Tx) error {
				if err := tx.PutMember(&engine.Member{ID: "m", Points: 5, LedgerSeq: 1}); err != nil {
					return err
				}
				if err := tx.PutLot(&engine.Lot{ID: "l", MemberID: "m", Points: 5, Remaining: 5}); err != nil {
					return err
				}
				return tx.AppendLedger(&engine.LedgerEntry{MemberID: "m", Seq: 1, Points: 5, BalanceAfter: 5})
			}); err != nil {
				t.Fatal(err)
			}
			Verify(t, s)
		})
	}
}
