package main

import (
	"context"
	"fmt"
	"io"

	"github.com/loyaltyhq/loyalty/engine"
)

// runVerify checks a database read-only: the store's own structure and
// indexes (bbolt's pages and indexes, or PostgreSQL's ledger chains), then
// the engine's ledger invariants.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	dsn := fs.String("db", "loyalty.db", "database file or postgres:// URL")
	if err := envFlags(fs, "db"); err != nil {
		return err
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	db, err := openDatabase(ctx, *dsn, dbOptions{readOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := verifyDB(ctx, db, stdout)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(stdout, "%d problems\n", n)
		return exitError(1)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// verifyDB runs every check on db and returns how many problems it printed.
func verifyDB(ctx context.Context, db database, w io.Writer) (int, error) {
	n, err := db.Check(w)
	if err != nil {
		return n, err
	}
	m, err := engine.New(db, engine.Options{}).Verify(ctx, w)
	return n + m, err
}
