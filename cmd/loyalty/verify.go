package main

import (
	"context"
	"fmt"
	"io"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store"
)

// runVerify checks a database read-only: bbolt's own structure and the
// store's indexes, then the engine's ledger invariants.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	path := fs.String("db", envDefault("LOYALTY_DB", "loyalty.db"), "database file (env LOYALTY_DB)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	db, err := store.Open(*path, opts)
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
func verifyDB(ctx context.Context, db *store.DB, w io.Writer) (int, error) {
	n, err := db.Check(w)
	if err != nil {
		return n, err
	}
	m, err := engine.New(db, engine.Options{}).Verify(ctx, w)
	return n + m, err
}
