package storetesting

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// RunEach runs a package's tests once per kind of store (Kinds), setting
// *kind before each run, so that a package whose helpers open
// Open(t, *kind) runs every test against every store without each test
// looping. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetesting.RunEach(m, &storeKind)) }
//
// A failing test's cleanup names the store it failed on (Open logs it).
func RunEach(m *testing.M, kind *string) int {
	code := 0
	kinds := Kinds()
	for _, k := range kinds {
		*kind = k
		if len(kinds) > 1 {
			fmt.Fprintf(os.Stdout, "=== store %s\n", k)
		}
		if c := m.Run(); c != 0 {
			code = c
		}
	}
	return code
}

// BoltOnly skips tb when it runs in a pass of RunEach on another store:
// for tests of what only bbolt has (backups, the file itself), which ran
// in the bbolt pass already.
func BoltOnly(tb testing.TB, kind string) {
	tb.Helper()
	if kind != Bolt {
		tb.Skipf("tests the bbolt file; it ran in the %s pass", Bolt)
	}
}

// Twice wraps a store so that every Update runs its function twice: first
// in a transaction that is rolled back once the function succeeds, then
// for real. A write function that depends on anything but its transaction
// and what it captured before (a counter it bumps, a slice it appends to,
// an id it makes inside) then gives a different answer, or writes
// differently, and the tests that check its effects fail: it proves the
// engine's write functions safe to run again, as engine.Store allows.
// View is not wrapped.
func Twice(s engine.Store) engine.Store { return twice{s} }

type twice struct{ engine.Store }

var errFirstRun = errors.New("storetesting: the first run of a write function, rolled back")

func (s twice) Update(ctx context.Context, fn func(engine.Tx) error) error {
	err := s.Store.Update(ctx, func(tx engine.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errFirstRun
	})
	if !errors.Is(err, errFirstRun) {
		return err
	}
	return s.Store.Update(ctx, fn)
}
