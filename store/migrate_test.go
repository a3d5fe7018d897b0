package store

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// v1File writes a schema-1 file by hand: members with ledgers, open, spent
// and never-expiring lots, their index entries and metric entries, all as
// JSON in the buckets of that layout.
func v1File(t *testing.T, members ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	jsonValue := func(rec any) []byte {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{jsonV1}, b...)
	}
	exp := t0.AddDate(1, 0, 0)
	err = raw.Update(func(tx *bolt.Tx) error {
		buckets := map[string]*bolt.Bucket{}
		for _, name := range []string{"meta", "members", "ledger", "lots", "lots_open", "expiry", "metrics"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			buckets[name] = b
		}
		put := func(bucket string, k, v []byte) {
			if err == nil {
				err = buckets[bucket].Put(k, v)
			}
		}
		put("meta", schemaKey, binary.BigEndian.AppendUint64(nil, 1))
		for _, id := range members {
			mk := memberKey(id)
			put("members", mk, jsonValue(&engine.Member{ID: id, Points: 15, LedgerSeq: 2}))
			put("ledger", appendUint64(mk, 1), jsonValue(&engine.LedgerEntry{MemberID: id, Seq: 1, Points: 10, BalanceAfter: 10}))
			put("ledger", appendUint64(mk, 2), jsonValue(&engine.LedgerEntry{MemberID: id, Seq: 2, Points: 5, BalanceAfter: 15}))
			lots := []*engine.Lot{
				{ID: "open", MemberID: id, Points: 10, Remaining: 10, EarnedAt: t0, AvailableAt: t0, ExpiresAt: exp},
				{ID: "spent", MemberID: id, Points: 10, Remaining: 0, EarnedAt: t0, AvailableAt: t0, ExpiresAt: exp},
				{ID: "never", MemberID: id, Points: 5, Remaining: 5, EarnedAt: t0, AvailableAt: t0},
			}
			for _, l := range lots {
				put("lots", append(memberKey(id), l.ID...), jsonValue(l))
				if l.Remaining > 0 {
					e := uint64(neverExpires)
					if !l.ExpiresAt.IsZero() {
						e = timeKey(l.ExpiresAt)
						put("expiry", append(appendID(appendTime(nil, l.ExpiresAt), id), l.ID...), nil)
					}
					put("lots_open", append(appendUint64(memberKey(id), e), l.ID...), nil)
				}
			}
			for n := range uint64(3) {
				at := t0.Add(time.Duration(n) * time.Hour)
				put("metrics", appendUint64(appendTime(memberKey(id), at), n+1), jsonValue(engine.MetricEntry{At: at, Spend: 100, Visits: 1}))
			}
		}
		if err == nil {
			err = buckets["metrics"].SetSequence(3)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMigrateV1(t *testing.T) {
	members := []string{newID(), newID(), "card-7"}
	path := v1File(t, members...)

	ro := testOptions()
	ro.ReadOnly = true
	if _, err := Open(path, ro); err == nil || !strings.Contains(err.Error(), "schema version 1") {
		t.Fatalf("read-only open of a version-1 file: %v, want a schema version 1 error", err)
	}

	defer func(n int) { migrateChunk = n }(migrateChunk)
	migrateChunk = 2
	db := mustOpenPath(t, path, testOptions())
	t.Cleanup(func() { mustCheck(t, db) })
	checkMigrated(t, db, members)
}

// TestMigrateV1Resumes stops a migration after its first chunk, as a crash
// would, and lets the next Open finish it.
func TestMigrateV1Resumes(t *testing.T) {
	members := []string{newID(), newID()}
	path := v1File(t, members...)
	defer func(n int) { migrateChunk = n }(migrateChunk)
	migrateChunk = 3
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Open makes the new buckets before it migrates.
	if err := raw.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketMemberData)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := startMigration(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := moveChunk(raw, v1Lots, lotKeyOf, indexLot); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	db := mustOpenPath(t, path, testOptions())
	t.Cleanup(func() { mustCheck(t, db) })
	checkMigrated(t, db, members)
}

func checkMigrated(t *testing.T, db *DB, members []string) {
	t.Helper()
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(schemaKey)); v != schemaVersion {
			t.Errorf("schema version = %d, want %d", v, schemaVersion)
		}
		if tx.Bucket(bucketMeta).Get(migratingKey) != nil {
			t.Error("migration marker left behind")
		}
		for _, name := range [][]byte{v1Ledger, v1Lots, v1LotsOpen, v1Metrics} {
			if tx.Bucket(name) != nil {
				t.Errorf("bucket %s left behind", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, id := range members {
			entries, err := tx.Ledger(id, 0, 0)
			if err != nil {
				return err
			}
			if len(entries) != 2 || entries[0].Seq != 2 || entries[1].Seq != 1 {
				t.Errorf("%s: ledger = %+v", id, entries)
			}
			open, err := tx.OpenLots(id)
			if err != nil {
				return err
			}
			if got := strings.Join(lotIDs(open), ","); got != "open,never" {
				t.Errorf("%s: open lots = %s, want open,never", id, got)
			}
			lb, err := tx.(engine.LotBalancer).OpenLotBalances(id)
			if err != nil || len(lb) != 2 || lb[0].Remaining != 10 || lb[1].Remaining != 5 {
				t.Errorf("%s: open lot balances = %+v, %v", id, lb, err)
			}
			// A new entry at the instant of an old one keeps both.
			if err := tx.AddMetric(id, engine.MetricEntry{At: t0, Spend: -100}); err != nil {
				return err
			}
			ms, err := tx.Metrics(id, t0)
			if err != nil {
				return err
			}
			if len(ms) != 4 {
				t.Errorf("%s: %d metric entries after one more, want 4", id, len(ms))
			}
		}
		due, err := tx.DueLots(t0.AddDate(2, 0, 0), nil, 0)
		if err != nil {
			return err
		}
		if len(due) != len(members) {
			t.Errorf("due lots = %d, want %d", len(due), len(members))
		}
		return nil
	})
}
