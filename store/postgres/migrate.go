package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loyaltyhq/loyalty/internal/version"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one file of migrations/, named NNNN_what.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order, checking
// that they are numbered 1, 2, 3… without gaps or duplicates.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("postgres: migration file %s is not named NNNN_what.sql", e.Name())
		}
		src, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(src)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migration %s: want version %d", m.name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the schema this program writes: the number of its
// newest migration.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err) // the embedded files are fixed at build time; a test checks them
	}
	return len(ms)
}

// bootstrap holds the two tables the migrations themselves need. They are
// created outside any migration because taking the lock comes first.
const bootstrap = `
CREATE TABLE IF NOT EXISTS loyalty_leases (
	name text COLLATE "C" PRIMARY KEY,
	holder text NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS loyalty_schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL
)`

// migrateLease names the lease row that migrations run under. A lease row
// with an expiry rather than an advisory lock, which CockroachDB and
// YugabyteDB lack: a holder that dies leaves it to expire.
const (
	migrateLease    = "migrate"
	migrateLeaseTTL = 2 * time.Minute
)

// Migrate creates or upgrades the schema of the database at url and
// returns the schema version it left; it refuses a database whose schema
// is newer than this program's. Concurrent calls (several servers
// starting at once) take turns under a lease row.
func Migrate(ctx context.Context, url string) (int, error) {
	pool, err := newPool(ctx, url, 2)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

func migrate(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	if err := createBootstrap(ctx, pool); err != nil {
		return 0, err
	}
	holder := holderName()
	if err := takeLease(ctx, pool, migrateLease, holder, migrateLeaseTTL); err != nil {
		return 0, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, `DELETE FROM loyalty_leases WHERE name = $1 AND holder = $2`, migrateLease, holder)
	}()
	applied, err := appliedVersion(ctx, pool)
	if err != nil {
		return 0, err
	}
	if applied > len(ms) {
		return applied, errNewerSchema(applied, len(ms))
	}
	for _, m := range ms[applied:] {
		if err := apply(ctx, pool, m, holder); err != nil {
			return m.version - 1, err
		}
	}
	return len(ms), nil
}

// createBootstrap creates the lease and migration tables. Two servers
// creating them at once can collide in the catalog, which a second try
// resolves.
func createBootstrap(ctx context.Context, pool *pgxpool.Pool) error {
	var err error
	for range 3 {
		if _, err = pool.Exec(ctx, bootstrap); err == nil {
			return nil
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "23505" && pe.Code != "42P07") {
			break
		}
	}
	return fmt.Errorf("postgres: create the migration tables: %w", err)
}

func appliedVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var v int
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM loyalty_schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: read the schema version: %w", err)
	}
	return v, nil
}

// apply runs one migration and records it in one transaction, after
// checking that this process still holds the lease.
func apply(ctx context.Context, pool *pgxpool.Pool, m migration, holder string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE loyalty_leases SET expires_at = now() + $3 * interval '1 millisecond'
			WHERE name = $1 AND holder = $2`, migrateLease, holder, migrateLeaseTTL.Milliseconds())
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("lost the migration lease")
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO loyalty_schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`, m.version, m.name)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migration %s: %w", m.name, err)
	}
	return nil
}

// takeLease waits until it holds the named lease: it takes a free or
// expired one, and polls while another holder's is live.
func takeLease(ctx context.Context, pool *pgxpool.Pool, name, holder string, ttl time.Duration) error {
	for {
		var got string
		err := pool.QueryRow(ctx, `INSERT INTO loyalty_leases (name, holder, expires_at)
			VALUES ($1, $2, now() + $3 * interval '1 millisecond')
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE loyalty_leases.expires_at < now() OR loyalty_leases.holder = excluded.holder
			RETURNING holder`, name, holder, ttl.Milliseconds()).Scan(&got)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			// The wait ended, whether between attempts or during one.
			return leaseHeld(pool, name, ctx.Err())
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("postgres: take the %s lease: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return leaseHeld(pool, name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// leaseHeld says who holds the lease a wait gave up on, so the operator
// knows which server to look at.
func leaseHeld(pool *pgxpool.Pool, name string, cause error) error {
	var other string
	var until time.Time
	_ = pool.QueryRow(context.Background(), `SELECT holder, expires_at FROM loyalty_leases WHERE name = $1`, name).Scan(&other, &until)
	return fmt.Errorf("postgres: the %s lease is held by %s until %s: %w", name, other, until.UTC().Format(time.RFC3339), cause)
}

// holderName tells who holds a lease, for the operator reading the table.
func holderName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
}

// errNewerSchema refuses a database a newer program migrated, naming both
// schema versions and this program's build.
func errNewerSchema(have, want int) error {
	return fmt.Errorf("postgres: the database has schema version %d, newer than this program's %d (%s): a newer loyalty migrated it; run that one, or restore the dump taken before the upgrade (docs/OPERATIONS.md, rolling back)", have, want, version.Get())
}
