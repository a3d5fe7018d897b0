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

// copyChunk is how many records one PostgreSQL transaction of a copy takes.
const copyChunk = 500

// runCopy copies a whole bbolt database, which no server has open, into an
// empty PostgreSQL database, then verifies both.
func runCopy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("copy", stderr)
	from := fs.String("from", "", "bbolt database file no server has open")
	to := fs.String("to", "", "empty PostgreSQL database, postgres://user:pass@host:5432/loyalty")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *from == "" || !postgres.IsURL(*to) || postgres.IsURL(*from) {
		fmt.Fprintln(stderr, "usage: loyalty copy --from FILE --to postgres://…")
		return errUsage
	}
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	src, err := store.Open(*from, opts)
	if err != nil {
		return explainLocked(err, true)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to, postgres.DefaultOptions())
	if err != nil {
		return err
	}
	defer dst.Close()
	empty, err := dst.IsEmpty(ctx)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("copy: %s already holds records: copy into an empty database", postgres.Redact(*to))
	}
	counts, err := copyRecords(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("copy: %w (the copy is incomplete: drop and recreate the database before trying again)", err)
	}
	for _, kind := range copyKinds {
		fmt.Fprintf(stdout, "%-20s %d\n", kind, counts[kind])
	}
	problems := 0
	for _, side := range []struct {
		name string
		db   database
	}{{*from, src}, {postgres.Redact(*to), dst}} {
		fmt.Fprintf(stdout, "verify %s:\n", side.name)
		n, err := verifyDB(ctx, side.db, stdout)
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintln(stdout, "ok")
		}
		problems += n
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problems\n", problems)
		return exitError(1)
	}
	return nil
}

// copyKinds are the kinds of records a copy counts, in the order it reports them.
var copyKinds = []string{
	"rules versions", "members", "purchases", "refunds", "redemptions", "adjustments", "transfers", "coupons", "reward counts", "ledger entries",
	"lots", "metric entries", "rule uses", "markers", "job runs", "events", "analytics summaries",
	"webhooks", "deliveries",
}

// eventPutter is the PostgreSQL transaction's way to store an event under
// the seq it has, so the feed's consumers keep their cursors.
type eventPutter interface {
	PutEvent(e *engine.Event) error
}

// copyRecords writes every record of src into dst, copyChunk records per
// transaction, and counts them by kind.
func copyRecords(ctx context.Context, src *store.DB, dst *postgres.DB) (map[string]int, error) {
	counts := map[string]int{}
	var chunk []func(engine.Tx) error
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		writes := chunk
		chunk = nil
		return dst.Update(ctx, func(tx engine.Tx) error {
			for _, w := range writes {
				if err := w(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := src.Export(func(rec any) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		kind, write, err := copyWrite(rec)
		if err != nil {
			return err
		}
		counts[kind]++
		chunk = append(chunk, write)
		if len(chunk) >= copyChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return counts, err
}

// copyWrite turns one exported record into its write.
func copyWrite(rec any) (kind string, write func(engine.Tx) error, err error) {
	switch r := rec.(type) {
	case *engine.RulesVersion:
		return "rules versions", func(tx engine.Tx) error { return tx.PutRules(r) }, nil
	case *engine.Member:
		return "members", func(tx engine.Tx) error { return tx.PutMember(r) }, nil
	case *engine.Purchase:
		return "purchases", func(tx engine.Tx) error { return tx.PutPurchase(r) }, nil
	case *engine.Refund:
		return "refunds", func(tx engine.Tx) error { return tx.PutRefund(r) }, nil
	case *engine.Redemption:
		return "redemptions", func(tx engine.Tx) error { return tx.PutRedemption(r) }, nil
	case *engine.Adjustment:
		return "adjustments", func(tx engine.Tx) error { return tx.PutAdjustment(r) }, nil
	case *engine.Transfer:
		return "transfers", func(tx engine.Tx) error { return tx.PutTransfer(r) }, nil
	case *engine.Coupon:
		return "coupons", func(tx engine.Tx) error { return tx.PutCoupon(r) }, nil
	case *engine.RewardCount:
		return "reward counts", func(tx engine.Tx) error { return tx.PutRewardCount(r) }, nil
	case *engine.LedgerEntry:
		return "ledger entries", func(tx engine.Tx) error { return tx.AppendLedger(r) }, nil
	case *engine.Lot:
		return "lots", func(tx engine.Tx) error { return tx.PutLot(r) }, nil
	case store.MetricRecord:
		return "metric entries", func(tx engine.Tx) error { return tx.AddMetric(r.MemberID, r.Entry) }, nil
	case store.RuleUseRecord:
		return "rule uses", func(tx engine.Tx) error { return tx.AddRuleUse(r.MemberID, r.Rule, r.Period, r.Uses) }, nil
	case store.MarkerRecord:
		return "markers", func(tx engine.Tx) error { return tx.Mark(r.Key) }, nil
	case store.SettingRecord:
		return "settings", func(tx engine.Tx) error { return tx.PutSetting(r.Name, r.Value) }, nil
	case *engine.JobRun:
		return "job runs", func(tx engine.Tx) error { return tx.PutJobRun(r) }, nil
	case *engine.Event:
		return "events", func(tx engine.Tx) error {
			ep, ok := tx.(eventPutter)
			if !ok {
				return errors.New("the destination cannot store events under their seqs")
			}
			return ep.PutEvent(r)
		}, nil
	case *engine.AnalyticsSummary:
		return "analytics summaries", func(tx engine.Tx) error { return tx.PutAnalyticsSummary(r) }, nil
	case *engine.Webhook:
		return "webhooks", func(tx engine.Tx) error { return tx.PutWebhook(r) }, nil
	case *engine.Delivery:
		return "deliveries", func(tx engine.Tx) error { return tx.PutDelivery(r) }, nil
	}
	return "", nil, fmt.Errorf("copy: no way to copy a %T", rec)
}
