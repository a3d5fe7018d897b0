// Package storetesting opens the stores for tests: a fresh, empty
// engine.Store of each kind, checked and closed on cleanup, so that engine,
// HTTP and command tests can run against every store with one loop:
//
//	for _, kind := range storetesting.Kinds() {
//		t.Run(kind, func(t *testing.T) {
//			s := storetesting.Open(t, kind)
//			…
//		})
//	}
//
// PostgreSQL is among the kinds when LOYALTY_TEST_POSTGRES names a server
// (see internal/pgtest), or when LOYALTY_REQUIRE_POSTGRES=1 demands it.
package storetesting

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
	"github.com/loyaltyhq/loyalty/store"
	"github.com/loyaltyhq/loyalty/store/postgres"
)

// Store kinds.
const (
	Bolt     = "bbolt"
	Postgres = "postgres"
)

// Kinds lists the kinds of store available to this test run.
func Kinds() []string {
	kinds := []string{Bolt}
	if pgtest.Available() || os.Getenv(pgtest.EnvRequire) == "1" {
		kinds = append(kinds, Postgres)
	}
	return kinds
}

// Open returns a fresh, empty store of kind for tb. On cleanup it runs the
// store's own check and fails tb on any problem, then closes it (and drops
// a PostgreSQL database).
func Open(tb testing.TB, kind string) engine.Store {
	tb.Helper()
	var s interface {
		engine.Store
		checker
	}
	switch kind {
	case Bolt:
		opts := store.DefaultOptions()
		opts.NoSync = true // tests check logic, not durability
		db, err := store.Open(filepath.Join(tb.TempDir(), "loyalty.db"), opts)
		if err != nil {
			tb.Fatal(err)
		}
		s = db
	case Postgres:
		db, err := postgres.Open(context.Background(), pgtest.URL(tb), postgres.DefaultOptions())
		if err != nil {
			tb.Fatal(err)
		}
		s = db
	default:
		tb.Fatalf("storetesting: no store kind %q", kind)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("(this test ran on the %s store)", kind)
		}
		var out strings.Builder
		if n, err := s.Check(&out); err != nil || n > 0 {
			tb.Errorf("%s check: %d problems, %v\n%s", kind, n, err, out.String())
		}
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Verify fails tb unless the engine's ledger invariants hold on s: for
// tests that write through the engine.
func Verify(tb testing.TB, s engine.Store) {
	tb.Helper()
	var out strings.Builder
	n, err := engine.New(s, engine.Options{}).Verify(context.Background(), &out)
	if err != nil || n > 0 {
		tb.Fatalf("verify: %d problems, %v\n%s", n, err, out.String())
	}
}

// checker is what each store offers to check its own structure.
type checker interface {
	Check(w io.Writer) (problems int, err error)
}
