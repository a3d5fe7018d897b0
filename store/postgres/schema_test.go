package postgres

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.golden from the migrations")

const goldenPath = "testdata/schema.golden"

// dumpSchema describes the tables, columns, indexes and constraints of the
// database at url, one sorted line each, so that two schemas compare as
// text.
func dumpSchema(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var b strings.Builder
	for _, q := range []string{
		`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type ||
			CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END ||
			coalesce(' collate ' || collation_name, '') ||
			CASE WHEN is_identity = 'YES' THEN ' identity ' || identity_generation ELSE coalesce(' default ' || column_default, '') END
		FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
		`SELECT 'index ' || tablename || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname`,
		`SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY conrelid::regclass::text, conname`,
		`SELECT 'storage ' || relname || ' ' || array_to_string(reloptions, ',') FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND reloptions IS NOT NULL ORDER BY relname`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestSchemaGolden applies every migration to an empty database and
// compares the schema they build with the committed one: the migrations are
// the manifest of the stored format, and a released migration that is
// edited (rather than followed by a new one) fails here.
func TestSchemaGolden(t *testing.T) {
	url := pgtest.URL(t)
	if _, err := Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	got := dumpSchema(t, url)
	if *update {
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf(`the schema the migrations build differs from %s:
%s
A database already migrated never runs an edited migration again: change the
schema with a new file, migrations/%04d_what.sql, and leave the released ones
as they are. Then update the golden file:
	go test ./store/postgres -run TestSchemaGolden -update   (with LOYALTY_TEST_POSTGRES set)`,
			goldenPath, lineDiff(string(want), got), SchemaVersion()+1)
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

func TestMigrationFiles(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion() != len(ms) {
		t.Fatalf("%d migrations, SchemaVersion %d", len(ms), SchemaVersion())
	}
}

// TestMigrateConcurrently: servers starting at once on an empty database
// take turns under the lease; each ends with the schema, applied once.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Migrate(context.Background(), url) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, leases int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM loyalty_schema_migrations), (SELECT count(*) FROM loyalty_leases)`).Scan(&n, &leases); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() || leases != 0 {
		t.Errorf("%d migrations recorded (want %d), %d leases left behind", n, SchemaVersion(), leases)
	}
}

// TestMigrationLease: a lease left by a holder that died is taken once it
// expires; a live one makes Migrate wait, and say who holds it.
func TestMigrationLease(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO loyalty_leases VALUES ('migrate', 'dead-server', now() - interval '1 second')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate with an expired lease: %v", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO loyalty_leases VALUES ('migrate', 'live-server', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := Migrate(wait, url); err == nil || !strings.Contains(err.Error(), "live-server") {
		t.Errorf("Migrate under a live lease: %v, want a wait that names the holder", err)
	}
}

// TestOpenRefusesOtherSchemas: a database from a newer program, and one
// never migrated opened without migrating, are refused with what to do.
func TestOpenRefusesOtherSchemas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	opts := DefaultOptions()
	opts.NoMigrate = true
	if _, err := Open(ctx, url, opts); err == nil || !strings.Contains(err.Error(), "loyalty migrate") {
		t.Errorf("Open of an empty database without migrating: %v", err)
	}
	if _, err := Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO loyalty_schema_migrations VALUES (99, '0099_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	for _, noMigrate := range []bool{false, true} {
		opts.NoMigrate = noMigrate
		want := fmt.Sprintf("schema version 99, newer than this program's %d (loyalty ", SchemaVersion())
		if _, err := Open(ctx, url, opts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open (NoMigrate %v) of a newer schema: %v", noMigrate, err)
		}
	}
}

// TestConflictingUpdateRunsAgain: an Update whose member another Update
// changed and committed after its snapshot was taken fails to lock it and
// runs again, seeing the change; the first run's writes are gone.
func TestConflictingUpdateRunsAgain(t *testing.T) {
	db := mustOpen(t)
	if err := db.Update(t.Context(), func(tx engine.Tx) error { return tx.PutMember(&engine.Member{ID: "m"}) }); err != nil {
		t.Fatal(err)
	}
	runs := 0
	err := db.Update(t.Context(), func(tx engine.Tx) error {
		runs++
		// The transaction's snapshot is taken by its first read.
		if _, err := tx.Marked("anything"); err != nil {
			return err
		}
		if runs == 1 {
			if err := db.Update(t.Context(), func(tx engine.Tx) error {
				return tx.PutMember(&engine.Member{ID: "m", Points: 10})
			}); err != nil {
				return err
			}
		}
		m, err := tx.Member("m")
		if err != nil {
			return err
		}
		m.Points++
		if err := tx.Mark(fmt.Sprint("run ", runs)); err != nil {
			return err
		}
		return tx.PutMember(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("the function ran %d times, want 2", runs)
	}
	if err := db.View(t.Context(), func(tx engine.Tx) error {
		m, err := tx.Member("m")
		if err != nil {
			return err
		}
		first, err := tx.Marked("run 1")
		if err != nil {
			return err
		}
		if m.Points != 11 || first {
			t.Errorf("points %d (want 11), first run's marker kept: %v", m.Points, first)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
