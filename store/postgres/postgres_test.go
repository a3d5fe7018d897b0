package postgres

import (
	"context"
	"strings"
	"testing"

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
