package postgres

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// Check verifies what the schema's constraints cannot: each member's
// ledger is numbered 1..N with a consistent BalanceAfter chain, and the
// event counter is past every stored event (or the next events would
// collide). Unique keys, foreign keys and the lot indexes are the
// database's to keep. It prints one line per problem to w and returns how
// many it found; err is for failures to run the check. Balances against
// lots are the engine's to verify.
func (db *DB) Check(w io.Writer) (problems int, err error) {
	ctx := db.ctx
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: check: %w", err)
	}
	defer conn.Release()
	report := func(format string, args ...any) error {
		problems++
		_, err := fmt.Fprintf(w, format+"\n", args...)
		return err
	}
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT member_id, seq, prev_seq, points, balance_after, prev_balance FROM (
				SELECT member_id, seq, points, balance_after,
					coalesce(lag(seq) OVER w, 0) AS prev_seq, coalesce(lag(balance_after) OVER w, 0) AS prev_balance
				FROM ledger WINDOW w AS (PARTITION BY member_id ORDER BY seq)) AS chain
			WHERE seq <> prev_seq + 1 OR balance_after <> prev_balance + points
			ORDER BY member_id, seq`)
		if err != nil {
			return err
		}
		var member string
		var seq, prevSeq, points, bal, prevBal int64
		_, err = pgx.ForEachRow(rows, []any{&member, &seq, &prevSeq, &points, &bal, &prevBal}, func() error {
			if seq != prevSeq+1 {
				if err := report("ledger of %s: entry %d follows entry %d", member, seq, prevSeq); err != nil {
					return err
				}
			}
			if want := prevBal + points; bal != want {
				return report("ledger of %s: entry %d has balance after %d, want %d + %d = %d", member, seq, bal, prevBal, points, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
		var last, newest int64
		if err := tx.QueryRow(ctx, `SELECT (SELECT last_seq FROM event_seq WHERE id = 1), coalesce((SELECT max(seq) FROM events), 0)`).Scan(&last, &newest); err != nil {
			return err
		}
		if newest > last {
			return report("events: seq %d is stored but the counter is at %d", newest, last)
		}
		return nil
	})
	if err != nil {
		return problems, fmt.Errorf("postgres: check: %w", err)
	}
	return problems, nil
}

// Size returns the size of the database in bytes, or 0 if it cannot be
// read, for the metrics.
func (db *DB) Size() int64 {
	ctx, cancel := context.WithTimeout(db.ctx, 2*time.Second)
	defer cancel()
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
		return 0
	}
	return n
}

// dataTables are the tables that hold records, for IsEmpty.
var dataTables = []string{
	"members", "purchases", "refunds", "redemptions", "adjustments", "ledger", "lots", "metrics",
	"rule_uses", "markers", "rules_versions", "job_runs", "events", "analytics_summaries",
	"coupons", "reward_counts",
}

// IsEmpty tells whether the database holds no records, so that a copy
// into it cannot mix two programs' data.
func (db *DB) IsEmpty(ctx context.Context) (bool, error) {
	for _, table := range dataTables {
		var found bool
		if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+`)`).Scan(&found); err != nil {
			return false, fmt.Errorf("postgres: %s: %w", table, err)
		}
		if found {
			return false, nil
		}
	}
	return true, nil
}
