package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
	"github.com/loyaltyhq/loyalty/store/storetest"
)

// mustOpen opens a fresh database for tb, checked and closed on cleanup.
func mustOpen(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(context.Background(), pgtest.URL(tb), DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		var out strings.Builder
		if n, err := db.Check(&out); err != nil || n > 0 {
			tb.Errorf("check: %d problems, %v:\n%s", n, err, out.String())
		}
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	pgtest.Skip(t)
	storetest.Run(t, func(t *testing.T) engine.Store { return mustOpen(t) })
}

func TestIsURL(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://u:p@h:5432/db":  true,
		"postgresql://u@h/db":       true,
		"loyalty.db":                false,
		"/var/lib/postgres/x.db":    false,
		"./postgres://not-a-url.db": false,
	} {
		if got := IsURL(in); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", in, got, want)
		}
	}
	if got := Redact("postgres://loyalty:s3cret@db.example:6432/prod?sslmode=require"); strings.Contains(got, "s3cret") || !strings.Contains(got, "db.example:6432/prod") {
		t.Errorf("Redact = %q", got)
	}
}

// TestForeignKeysAreImmediate: a record written before its member, and
// sent to the server before the member is (a read comes between), is
// refused by the statement that writes it, not at COMMIT: the keys are
// not deferrable (migration 5), as CockroachDB needs.
func TestForeignKeysAreImmediate(t *testing.T) {
	db := mustOpen(t)
	err := db.Update(t.Context(), func(tx engine.Tx) error {
		if err := tx.PutLot(&engine.Lot{ID: "l", MemberID: "later", Points: 1, Remaining: 1}); err != nil {
			return err
		}
		// The read sends the queued lot; the member is not there yet.
		if _, err := tx.Marked("x"); err != nil {
			return err
		}
		return tx.PutMember(&engine.Member{ID: "later"})
	})
	if code := pgErrorCode(err); code != "23503" {
		t.Fatalf("a lot sent before its member: %v (SQLSTATE %q), want a foreign key violation (23503)", err, code)
	}
	if !strings.Contains(err.Error(), "put lot later/l") {
		t.Errorf("the error does not name the write: %v", err)
	}
}

// pgErrorCode returns the SQLSTATE of err, or "".
func pgErrorCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
