package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// MetricRecord is a member's metric entry, as Export hands it out.
type MetricRecord struct {
	MemberID string
	Entry    engine.MetricEntry
}

// RuleUseRecord is a member's count of uses of a rule in a period.
type RuleUseRecord struct {
	MemberID, Rule, Period string
	Uses                   int64
}

// MarkerRecord is a one-time marker.
type MarkerRecord struct{ Key string }

// SettingRecord is one of the engine's settings.
type SettingRecord struct {
	Name  string
	Value []byte
}

// Export hands every record of the file to fn, from one snapshot, for
// copying to another store: rules versions, then members, then what names
// a member or a purchase (so a store with foreign keys can take them in
// this order), then the rest. Records are *engine.RulesVersion,
// *engine.Member, *engine.Purchase, *engine.Refund, *engine.Redemption,
// *engine.Adjustment, *engine.Transfer, *engine.Coupon, *engine.RewardCount,
// *engine.LedgerEntry, *engine.Lot, MetricRecord,
// RuleUseRecord, MarkerRecord, SettingRecord, *engine.JobRun, *engine.Event,
// *engine.AnalyticsSummary, *engine.Webhook and *engine.Delivery (after
// its webhook). A rule use whose member is gone is an error
// rather than a record quietly left behind.
func (db *DB) Export(fn func(rec any) error) error {
	err := db.bolt.View(func(btx *bolt.Tx) error {
		t := &tx{tx: btx}
		if err := exportBucket[engine.RulesVersion](btx, bucketRules, fn); err != nil {
			return err
		}
		members, err := t.Members("", 0)
		if err != nil {
			return err
		}
		for _, m := range members {
			if err := fn(m); err != nil {
				return err
			}
		}
		for _, export := range []func(*bolt.Tx, func(any) error) error{
			bucketExporter[engine.Purchase](bucketPurchases),
			bucketExporter[engine.Refund](bucketRefunds),
			bucketExporter[engine.Redemption](bucketRedemptions),
			bucketExporter[engine.Adjustment](bucketAdjustments),
			bucketExporter[engine.Transfer](bucketTransfers),
			bucketExporter[engine.Coupon](bucketCoupons),
			bucketExporter[engine.RewardCount](bucketRewardCounts),
		} {
			if err := export(btx, fn); err != nil {
				return err
			}
		}
		uses := 0
		for _, m := range members {
			n, err := exportMemberData(t, m.ID, fn)
			if err != nil {
				return err
			}
			uses += n
		}
		if all := btx.Bucket(bucketRuleUses).Stats().KeyN; uses != all {
			return fmt.Errorf("%d of %d rule uses name no member", all-uses, all)
		}
		err = btx.Bucket(bucketMarkers).ForEach(func(k, _ []byte) error { return fn(MarkerRecord{Key: string(k)}) })
		if err != nil {
			return err
		}
		// A file older than the settings bucket has none.
		if settings := btx.Bucket(bucketSettings); settings != nil {
			err = settings.ForEach(func(k, v []byte) error {
				return fn(SettingRecord{Name: string(k), Value: bytes.Clone(v)})
			})
			if err != nil {
				return err
			}
		}
		for _, export := range []func(*bolt.Tx, func(any) error) error{
			bucketExporter[engine.JobRun](bucketJobRuns),
			bucketExporter[engine.Event](bucketEvents),
			bucketExporter[engine.AnalyticsSummary](bucketAnalytics),
			bucketExporter[engine.Webhook](bucketWebhooks),
			bucketExporter[engine.Delivery](bucketDeliveries),
		} {
			if err := export(btx, fn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: export: %w", err)
	}
	return nil
}

// exportBucket hands fn every record of bucket, decoded as a *T; a
// bucket a file predates holds none.
func exportBucket[T any](btx *bolt.Tx, bucket []byte, fn func(any) error) error {
	b := btx.Bucket(bucket)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		r := new(T)
		if err := decode(v, r); err != nil {
			return fmt.Errorf("%s: %x: %w", bucket, k, err)
		}
		return fn(r)
	})
}

// bucketExporter is exportBucket for T's bucket, as a value a list can hold.
func bucketExporter[T any](bucket []byte) func(*bolt.Tx, func(any) error) error {
	return func(btx *bolt.Tx, fn func(any) error) error { return exportBucket[T](btx, bucket, fn) }
}

// exportMemberData hands out a member's ledger (oldest first), lots,
// metric entries and rule uses, and returns how many rule uses it found.
func exportMemberData(t *tx, id string, fn func(any) error) (int, error) {
	ledger, err := t.Ledger(id, 0, 0)
	if err != nil {
		return 0, err
	}
	for i := len(ledger) - 1; i >= 0; i-- {
		if err := fn(ledger[i]); err != nil {
			return 0, err
		}
	}
	lots, err := t.Lots(id)
	if err != nil {
		return 0, err
	}
	for _, l := range lots {
		if err := fn(l); err != nil {
			return 0, err
		}
	}
	metrics, err := t.Metrics(id, time.Time{})
	if err != nil {
		return 0, err
	}
	for _, e := range metrics {
		if err := fn(MetricRecord{MemberID: id, Entry: e}); err != nil {
			return 0, err
		}
	}
	p := memberKey(id)
	n := 0
	c := t.bucket(bucketRuleUses).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		rule, period, ok := parseRuleUse(k[len(p):])
		if !ok {
			continue // another member's key that starts with these bytes
		}
		uses, err := decodeCount(v)
		if err != nil {
			return 0, fmt.Errorf("rule use %x: %w", k, err)
		}
		if err := fn(RuleUseRecord{MemberID: id, Rule: rule, Period: period, Uses: uses}); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// parseRuleUse reads the rule and period that follow the member key of a
// rule_uses key, and fails unless they are exactly the rest of it.
func parseRuleUse(rest []byte) (rule, period string, ok bool) {
	read := func() (string, bool) {
		if len(rest) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+n {
			return "", false
		}
		s := string(rest[2 : 2+n])
		rest = rest[2+n:]
		return s, true
	}
	rule, ok1 := read()
	period, ok2 := read()
	return rule, period, ok1 && ok2 && len(rest) == 0
}
