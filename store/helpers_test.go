package store

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// MustOpenDB opens a fresh database in a temporary directory. On cleanup it
// runs Check and fails the test on any problem, so every test also proves
// that it left the indexes consistent.
func MustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	db := mustOpenPath(tb, filepath.Join(tb.TempDir(), "loyalty.db"), testOptions())
	tb.Cleanup(func() { mustCheck(tb, db) })
	return db
}

// mustOpenPath opens path and closes it on cleanup, without a check.
func mustOpenPath(tb testing.TB, path string, opts Options) *DB {
	tb.Helper()
	db, err := Open(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// testOptions skips fsync: tests check logic, not durability.
func testOptions() Options {
	opts := DefaultOptions()
	opts.NoSync = true
	return opts
}

func mustCheck(tb testing.TB, db *DB) {
	tb.Helper()
	var out strings.Builder
	n, err := db.Check(&out)
	if err != nil {
		tb.Fatalf("check: %v", err)
	}
	if n > 0 {
		tb.Fatalf("check found %d problems:\n%s", n, out.String())
	}
}

func mustUpdate(tb testing.TB, db *DB, fn func(engine.Tx) error) {
	tb.Helper()
	if err := db.Update(tb.Context(), fn); err != nil {
		tb.Fatal(err)
	}
}

func mustView(tb testing.TB, db *DB, fn func(engine.Tx) error) {
	tb.Helper()
	if err := db.View(tb.Context(), fn); err != nil {
		tb.Fatal(err)
	}
}

// newID returns a random UUID in the engine's canonical form.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ids returns the ids of records, in their order.
func ids[T any](recs []*T, id func(*T) string) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = id(r)
	}
	return out
}

func lotIDs(ls []*engine.Lot) []string { return ids(ls, func(l *engine.Lot) string { return l.ID }) }
