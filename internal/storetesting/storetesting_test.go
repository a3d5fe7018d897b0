package storetesting

import (
	"errors"
	"fmt"
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

// TestTwice: a write function runs twice, the first run's writes rolled
// back, so a function that keeps state outside its transaction shows it,
// and one that fails is answered with its error after one run.
func TestTwice(t *testing.T) {
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			s := Twice(Open(t, kind))
			runs := 0
			if err := s.Update(t.Context(), func(tx engine.Tx) error {
				runs++
				return tx.Mark(fmt.Sprint("run ", runs))
			}); err != nil {
				t.Fatal(err)
			}
			if err := s.View(t.Context(), func(tx engine.Tx) error {
				first, err := tx.Marked("run 1")
				if err != nil {
					return err
				}
				second, err := tx.Marked("run 2")
				if first || !second {
					t.Errorf("runs %d: first run kept %v, second %v; want only the second", runs, first, second)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			refused := errors.New("refused")
			runs = 0
			if err := s.Update(t.Context(), func(engine.Tx) error { runs++; return refused }); !errors.Is(err, refused) || runs != 1 {
				t.Errorf("a refusing function: %v after %d runs, want its error after 1", err, runs)
			}
		})
	}
}
