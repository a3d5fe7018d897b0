package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// Schema 1 kept each kind of member record in a bucket of its own, keyed
// like the member_data sections without the section byte; lots_open had no
// values and an expiry entry ended with member|lotID.
var (
	v1Ledger   = []byte("ledger")    // member|seq → LedgerEntry
	v1Lots     = []byte("lots")      // member|lotID → Lot
	v1LotsOpen = []byte("lots_open") // member|expiresAt|lotID → nil
	v1Metrics  = []byte("metrics")   // member|at|n → MetricEntry
)

// migrateChunk bounds the records one migration transaction moves, so a
// large file needs no transaction the size of the file. Tests lower it.
var migrateChunk = 20_000

// migratingKey in meta marks a migration from schema 1 under way: the
// indexes it rebuilds are already emptied.
var migratingKey = []byte("migrating")

// migrateV1 moves a schema-1 file to schema 2 in chunks. A crash leaves
// the file at version 1 with the marker set, and the next Open goes on
// where this one stopped; no record is ever in both places.
func migrateV1(db *bolt.DB) error {
	if err := startMigration(db); err != nil {
		return fmt.Errorf("store: migrate to schema 2: %w", err)
	}
	for _, m := range v1Moves {
		for {
			n, err := moveChunk(db, m.from, m.rekey, m.also)
			if err != nil {
				return fmt.Errorf("store: migrate %s to schema 2: %w", m.from, err)
			}
			if n < migrateChunk {
				break
			}
		}
	}
	if err := finishMigration(db); err != nil {
		return fmt.Errorf("store: migrate to schema 2: %w", err)
	}
	return nil
}

// startMigration empties the indexes the lots rebuild as they move
// (lots_open, and expiry, whose entries change form) and sets the marker,
// unless an earlier run did.
func startMigration(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(migratingKey) != nil {
			return nil
		}
		for _, name := range [][]byte{v1LotsOpen, bucketExpiry} {
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		if _, err := tx.CreateBucket(bucketExpiry); err != nil {
			return err
		}
		return meta.Put(migratingKey, []byte{1})
	})
}

// v1Moves are the schema-1 buckets whose records move into member_data.
var v1Moves = []struct {
	from  []byte
	rekey func(k, v []byte) ([]byte, error)
	also  func(data, expiry *bolt.Bucket, v []byte) error
}{
	{v1Ledger, sectionBefore(sectionLedger, 8), nil},
	{v1Lots, lotKeyOf, indexLot},
	{v1Metrics, sectionBefore(sectionMetrics, 16), nil},
}

// finishMigration drops the emptied buckets and records schema 2.
func finishMigration(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, m := range v1Moves {
			if tx.Bucket(m.from) != nil {
				if err := tx.DeleteBucket(m.from); err != nil {
					return err
				}
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(migratingKey); err != nil {
			return err
		}
		return meta.Put(schemaKey, binary.BigEndian.AppendUint64(nil, schemaVersion))
	})
}

// sectionBefore rekeys member|rest, where rest has n bytes, to
// member|section|rest.
func sectionBefore(section byte, n int) func(k, v []byte) ([]byte, error) {
	return func(k, _ []byte) ([]byte, error) {
		if len(k) <= n {
			return nil, fmt.Errorf("malformed key %x", k)
		}
		m := len(k) - n
		return append(append(append(make([]byte, 0, len(k)+1), k[:m]...), section), k[m:]...), nil
	}
}

// lotKeyOf rekeys a lot by what it holds: its old key does not say where
// the member key ends.
func lotKeyOf(k, v []byte) ([]byte, error) {
	var l engine.Lot
	if err := decode(v, &l); err != nil {
		return nil, fmt.Errorf("lot at %x: %w", k, err)
	}
	return lotKey(l.MemberID, l.ID), nil
}

// indexLot writes a moved lot's lots_open and expiry entries.
func indexLot(data, expiry *bolt.Bucket, v []byte) error {
	var l engine.Lot
	if err := decode(v, &l); err != nil {
		return err
	}
	if ok := openLotKey(&l); ok != nil {
		if err := data.Put(ok, openLotValue(&l)); err != nil {
			return err
		}
	}
	if ek := expiryKey(&l); ek != nil {
		return expiry.Put(ek, nil)
	}
	return nil
}

var errKeyTaken = errors.New("new key already holds a record")

// moveChunk moves up to migrateChunk records from the bucket from into
// member_data in one transaction and returns how many it moved.
func moveChunk(db *bolt.DB, from []byte, rekey func(k, v []byte) ([]byte, error), also func(data, expiry *bolt.Bucket, v []byte) error) (int, error) {
	var n int
	err := db.Update(func(tx *bolt.Tx) error {
		n = 0
		src := tx.Bucket(from)
		if src == nil {
			return nil
		}
		data, expiry := tx.Bucket(bucketMemberData), tx.Bucket(bucketExpiry)
		// Metric keys end with a number from their bucket's sequence: the
		// new bucket must not hand out one already used.
		if seq := src.Sequence(); seq > data.Sequence() {
			if err := data.SetSequence(seq); err != nil {
				return err
			}
		}
		var keys [][]byte
		c := src.Cursor()
		for k, v := c.First(); k != nil && len(keys) < migrateChunk; k, v = c.Next() {
			nk, err := rekey(k, v)
			if err != nil {
				return err
			}
			if data.Get(nk) != nil {
				return fmt.Errorf("%x: %w", nk, errKeyTaken)
			}
			// bbolt keeps the slices it is given until commit; v lives in
			// the mmap, which the writes below may move.
			val := append([]byte(nil), v...)
			if err := data.Put(nk, val); err != nil {
				return err
			}
			if also != nil {
				if err := also(data, expiry, val); err != nil {
					return err
				}
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := src.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	return n, err
}
