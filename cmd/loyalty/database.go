package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store"
	"github.com/loyaltyhq/loyalty/store/postgres"
)

// database is what the commands need of a store, whichever it is.
type database interface {
	engine.Store
	// Check verifies the store's own structure and indexes.
	Check(w io.Writer) (problems int, err error)
	// Size is the database's size in bytes, for the metrics.
	Size() int64
}

var (
	_ database = (*store.DB)(nil)
	_ database = (*postgres.DB)(nil)
)

// pgBackupAdvice is GET /v1/admin/backup's answer on PostgreSQL.
const pgBackupAdvice = "this server keeps its data in PostgreSQL: back it up with pg_dump or the database's own replication and backups, not through the API"

// dbOptions are how a command opens --db.
type dbOptions struct {
	readOnly  bool
	batchSize int // bbolt's MaxBatchSize; zero takes the default
	// migrating is told before a bbolt file moves to a newer schema.
	migrating func(from, to uint64)
}

// openDatabase opens --db: a postgres:// or postgresql:// URL is a
// PostgreSQL database (its schema created or upgraded, unless read-only),
// anything else a bbolt file.
func openDatabase(ctx context.Context, dsn string, o dbOptions) (database, error) {
	// Each branch returns a nil interface on failure, never a nil pointer
	// in one, which would look like an open database.
	if postgres.IsURL(dsn) {
		opts := postgres.DefaultOptions()
		opts.NoMigrate = o.readOnly
		if o.readOnly {
			// A command that only reads leaves numbering the feed to the
			// servers (store/postgres/doc.go, "Events").
			opts.SequenceEvery = -1
		}
		db, err := postgres.Open(ctx, dsn, opts)
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	opts := store.DefaultOptions()
	opts.ReadOnly = o.readOnly
	opts.Migrating = o.migrating
	if o.batchSize > 0 {
		opts.MaxBatchSize = o.batchSize
	}
	db, err := store.Open(dsn, opts)
	if err != nil {
		return nil, explainLocked(err, o.readOnly)
	}
	return db, nil
}

// explainLocked says what to do about a bbolt file another process holds:
// a tool that reads works on a copy that loyalty backup takes from the
// running server.
func explainLocked(err error, readOnly bool) error {
	switch {
	case !errors.Is(err, store.ErrLocked):
		return err
	case readOnly:
		return fmt.Errorf("%w: a running server has it open; take a copy without stopping it, with loyalty backup --url http://ADDRESS --to copy.db, and give the copy", err)
	}
	return fmt.Errorf("%w: is another loyalty serve using it?", err)
}

// describeDB names --db for logs without its password.
func describeDB(dsn string) string {
	if postgres.IsURL(dsn) {
		return postgres.Redact(dsn)
	}
	return dsn
}

// runMigrate creates or upgrades the schema of a PostgreSQL database.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dsn := fs.String("db", "", "PostgreSQL URL, postgres://user:pass@host:5432/loyalty")
	if err := envFlags(fs, "db"); err != nil {
		return err
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || !postgres.IsURL(*dsn) {
		fmt.Fprintln(stderr, "usage: loyalty migrate --db postgres://…  (a bbolt file migrates itself when serve opens it)")
		return errUsage
	}
	v, err := postgres.Migrate(ctx, *dsn)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d\n", v)
	return nil
}
