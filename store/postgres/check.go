package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loyaltyhq/loyalty/engine"
)

// Check verifies what the schema's constraints cannot: the money and
// points of every purchase, refund, redemption and adjustment are within
// the engine's limits (as bbolt's check does), each member's
// ledger is numbered 1..N with a consistent BalanceAfter chain, and the
// event counter is past every numbered event (or the sequencer's next
// seqs would collide); events still waiting for the sequencer are not a
// problem. Unique keys, foreign keys and the lot indexes are the
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
			if err := report("events: seq %d is stored but the counter is at %d", newest, last); err != nil {
				return err
			}
		}
		return checkAmounts(ctx, tx, report)
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
	"coupons", "reward_counts", "transfers",
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

// checkAmounts reports records whose money or points are out of the
// engine's limits, or a purchase refunded more than it had, with bbolt's
// messages: the engine refuses anything else, so such a record was
// written around it.
func checkAmounts(ctx context.Context, tx pgx.Tx, report func(string, ...any) error) error {
	items := "CASE jsonb_typeof(coalesce(detail->'" + purchaseDetail.key("Items") + "', detail->'items')) WHEN 'array' THEN " +
		"coalesce(detail->'" + purchaseDetail.key("Items") + "', detail->'items') ELSE '[]' END"
	itemAmount, itemQuantity := itemKey("Amount"), itemKey("Quantity")
	checks := []struct {
		sql    string
		format func(vals []int64, id string) (string, []any)
	}{
		{`SELECT id, amount, points, refunded_amount, refunded_points FROM purchases
			WHERE amount NOT BETWEEN 0 AND @max_amount::bigint OR points NOT BETWEEN 0 AND @max_points
			OR refunded_amount NOT BETWEEN 0 AND amount OR refunded_points NOT BETWEEN 0 AND points ORDER BY id`,
			nil},
		{`SELECT p.id, e.ord - 1, (e.item->>'` + itemAmount + `')::numeric, (e.item->>'` + itemQuantity + `')::numeric
			FROM purchases p, jsonb_array_elements(` + items + `) WITH ORDINALITY AS e(item, ord)
			WHERE coalesce((e.item->>'` + itemAmount + `')::numeric, 0) NOT BETWEEN 0 AND @max_amount::bigint
			OR coalesce((e.item->>'` + itemQuantity + `')::numeric, 0) NOT BETWEEN 1 AND @max_quantity ORDER BY p.id, e.ord`,
			func(v []int64, id string) (string, []any) {
				return "purchase %s: line %d has amount %d and quantity %d, out of range", []any{id, v[0], v[1], v[2]}
			}},
		{`SELECT id, lines, amount FROM (
				SELECT p.id, p.amount, coalesce(sum((e.item->>'` + itemAmount + `')::numeric) FILTER (WHERE
					coalesce((e.item->>'` + itemAmount + `')::numeric, 0) BETWEEN 0 AND @max_amount::bigint
					AND coalesce((e.item->>'` + itemQuantity + `')::numeric, 0) BETWEEN 1 AND @max_quantity), 0) AS lines
				FROM purchases p LEFT JOIN LATERAL jsonb_array_elements(` + items + `) AS e(item) ON true
				GROUP BY p.id, p.amount) AS s
			WHERE lines > amount ORDER BY id`,
			func(v []int64, id string) (string, []any) {
				return "purchase %s: lines add up to %d, more than the amount %d", []any{id, v[0], v[1]}
			}},
		{`SELECT id, amount, points FROM refunds WHERE amount NOT BETWEEN 0 AND @max_amount::bigint OR points NOT BETWEEN -@max_points::bigint AND 0 ORDER BY id`,
			func(v []int64, id string) (string, []any) {
				return "refund %s: amount %d and points %d out of range", []any{id, v[0], v[1]}
			}},
		{`SELECT id, points FROM redemptions WHERE points NOT BETWEEN 1 AND @max_points ORDER BY id`,
			func(v []int64, id string) (string, []any) {
				return "redemption %s: %d points out of range (1 to %d)", []any{id, v[0], engine.MaxPoints}
			}},
		{`SELECT id, points FROM adjustments WHERE points NOT BETWEEN -@max_points::bigint AND @max_points ORDER BY id`,
			func(v []int64, id string) (string, []any) {
				return "adjustment %s: %d points out of range", []any{id, v[0]}
			}},
	}
	for i, c := range checks {
		limits := pgx.NamedArgs{"max_amount": engine.MaxAmount, "max_points": engine.MaxPoints, "max_quantity": engine.MaxQuantity}
		rows, err := tx.Query(ctx, c.sql, limits)
		if err != nil {
			return fmt.Errorf("amounts check %d: %w", i+1, err)
		}
		for rows.Next() {
			raw, err := rows.Values()
			if err != nil {
				rows.Close()
				return err
			}
			id, _ := raw[0].(string)
			vals := make([]int64, len(raw)-1)
			for j, x := range raw[1:] {
				vals[j] = toInt64Value(x)
			}
			if c.format == nil {
				err = reportPurchase(report, id, vals)
			} else {
				format, args := c.format(vals, id)
				err = report(format, args...)
			}
			if err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("amounts check %d: %w", i+1, err)
		}
	}
	return nil
}

// reportPurchase says which of a purchase's amounts are out of range.
func reportPurchase(report func(string, ...any) error, id string, v []int64) error {
	amount, points, refAmount, refPoints := v[0], v[1], v[2], v[3]
	in := func(x, lo, hi int64) bool { return x >= lo && x <= hi }
	var errs []error
	if !in(amount, 0, engine.MaxAmount) {
		errs = append(errs, report("purchase %s: amount %d out of range (0 to %d)", id, amount, engine.MaxAmount))
	}
	if !in(points, 0, engine.MaxPoints) {
		errs = append(errs, report("purchase %s: %d points out of range (0 to %d)", id, points, engine.MaxPoints))
	}
	if !in(refAmount, 0, amount) {
		errs = append(errs, report("purchase %s: refunded %d of an amount of %d", id, refAmount, amount))
	}
	if !in(refPoints, 0, points) {
		errs = append(errs, report("purchase %s: took back %d of the %d points it earned", id, refPoints, points))
	}
	return errors.Join(errs...)
}

// itemKey is the detail key of a purchase line's field.
func itemKey(name string) string {
	fs, err := fieldsOf(reflect.TypeFor[engine.PurchaseItem]())
	if err != nil {
		panic(err)
	}
	for _, f := range fs {
		if f.name == name {
			return f.key
		}
	}
	panic("engine.PurchaseItem has no field " + name)
}

// toInt64Value reads a bigint or numeric the checks return; a numeric too
// large for int64 (a line amount written around the engine) is clamped,
// which still reports it out of range.
func toInt64Value(x any) int64 {
	switch v := x.(type) {
	case int64:
		return v
	case pgtype.Numeric:
		if i, err := v.Int64Value(); err == nil && i.Valid {
			return i.Int64
		}
		if v.Int != nil && v.Int.Sign() < 0 {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return 0
}
