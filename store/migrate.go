package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// Schema 1 kept each kind of member record in a bucket of its own, keyed
// like the schema-3 sections of member_data without the section byte;
// lots_open had no values and an expiry entry ended with member|lotID.
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
	{v1Ledger, sectionBefore(v3Ledger, 8), nil},
	{v1Lots, lotKeyOf, indexLot},
	{v1Metrics, sectionBefore(v3Metrics, 16), nil},
}

// finishMigration drops the emptied buckets and records schema 2, which
// migrateV3 takes on from.
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
		return meta.Put(schemaKey, binary.BigEndian.AppendUint64(nil, 2))
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
	return v3LotKey(appendID(nil, l.MemberID), l.ID), nil
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
	if ek := v3ExpiryKey(&l); ek != nil {
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

// Schemas 2 and 3 kept a member's records in member_data by kind, each
// kind in a section of its own, and an expiry entry ended with the lot's
// key of that layout.
const (
	v3Account = 'a' // member|'a' → account
	v3Ledger  = 'e' // member|'e'|seq → LedgerEntry
	v3Lots    = 'l' // member|'l'|lotID → Lot
	v3Metrics = 'm' // member|'m' → metricSum; member|'m'|at|n → MetricEntry
)

func v3LotKey(mk []byte, lotID string) []byte {
	return append(sectionOf(mk, v3Lots, len(lotID)), lotID...)
}

func v3ExpiryKey(l *engine.Lot) []byte {
	if l.Remaining <= 0 || l.ExpiresAt.IsZero() {
		return nil
	}
	return append(appendTime(nil, l.ExpiresAt), v3LotKey(appendID(nil, l.MemberID), l.ID)...)
}

// isMigratingSection tells the section bytes a member_data key may have
// while a file moves to schema 4: those of either layout.
func isMigratingSection(b byte) bool {
	return b == v3Account || b == v3Ledger || b == v3Lots || b == v3Metrics || isSection(b)
}

// rekeyingKey in meta marks a move to schema 4 under way. Its value is 0
// before the first chunk, then 1 and the last key of member_data a chunk
// looked at.
var rekeyingKey = []byte("rekeying")

// migrateV3 moves a schema-2 or schema-3 file to schema 4: each member's
// ledger entries, lots and metric entries into one history, its metric sum
// and account after it, then the expiry entries to the lots' new keys. Its
// first transaction records schema 4 and the marker, so that a program of
// an older schema refuses the half-moved file rather than misread the
// members already moved and write where this one no longer looks. Each
// chunk moves its records, deletes their old keys and notes where it
// stopped in one transaction; a crash leaves the marker, and the next
// writable Open goes on from it.
func migrateV3(db *bolt.DB) error {
	if err := startRekeying(db); err != nil {
		return fmt.Errorf("store: migrate to schema 4: %w", err)
	}
	for {
		n, err := rekeyChunk(db)
		if err != nil {
			return fmt.Errorf("store: migrate to schema 4: %w", err)
		}
		if n < migrateChunk {
			break
		}
	}
	var after []byte
	for {
		var n int
		var err error
		if n, after, err = rekeyExpiryChunk(db, after); err != nil {
			return fmt.Errorf("store: migrate expiry to schema 4: %w", err)
		}
		if n < migrateChunk {
			break
		}
	}
	err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete(rekeyingKey)
	})
	if err != nil {
		return fmt.Errorf("store: migrate to schema 4: %w", err)
	}
	return nil
}

func startRekeying(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(rekeyingKey) == nil {
			if err := meta.Put(rekeyingKey, []byte{0}); err != nil {
				return err
			}
		}
		return meta.Put(schemaKey, binary.BigEndian.AppendUint64(nil, schemaVersion))
	})
}

// rekeyChunk looks at up to migrateChunk records of the old layout, from
// the key after the last one looked at, moves those it can place and
// returns how many it looked at. A record it cannot place (a key of no
// member or of a malformed length, a value that does not decode) stays
// where it is, for Check to report: refusing it would keep every later
// Open from finishing the move.
func rekeyChunk(db *bolt.DB) (int, error) {
	var n int
	err := db.Update(func(tx *bolt.Tx) error {
		n = 0
		meta, members := tx.Bucket(bucketMeta), tx.Bucket(bucketMembers)
		data := tx.Bucket(bucketMemberData)
		type record struct{ mk, k, v []byte }
		var old []record
		c := data.Cursor()
		k, v := c.First()
		if m := meta.Get(rekeyingKey); len(m) > 1 {
			if k, v = c.Seek(m[1:]); bytes.Equal(k, m[1:]) {
				k, v = c.Next()
			}
		}
		// Records are read first and moved after: bbolt's cursor does not
		// follow writes to its bucket.
		for ; k != nil && len(old) < migrateChunk; k, v = c.Next() {
			mk := memberOf(members, k, isMigratingSection)
			if mk == nil {
				old = append(old, record{nil, append([]byte(nil), k...), nil})
				continue
			}
			if s := k[len(mk)]; s == v3Account || s == v3Ledger || s == v3Lots || s == v3Metrics {
				old = append(old, record{append([]byte(nil), mk...), append([]byte(nil), k...), append([]byte(nil), v...)})
			}
		}
		for _, r := range old {
			if r.mk == nil {
				continue
			}
			nk, ok, err := rekeyed(data, r.mk, r.k, r.v)
			if err != nil {
				return fmt.Errorf("member_data: %x: %w", r.k, err)
			}
			if !ok {
				continue
			}
			if err := data.Put(nk, r.v); err != nil {
				return err
			}
			if err := data.Delete(r.k); err != nil {
				return err
			}
		}
		n = len(old)
		if n == 0 {
			return nil
		}
		return meta.Put(rekeyingKey, append([]byte{1}, old[n-1].k...))
	})
	return n, err
}

// rekeyed is the schema-4 key of the record v at k in the old layout of
// the member mk; ok is false for a record it cannot place.
func rekeyed(data *bolt.Bucket, mk, k, v []byte) (nk []byte, ok bool, err error) {
	p, rest := sectionOf(mk, sectionHistory, 0), k[len(mk)+1:]
	switch s := k[len(mk)]; {
	case s == v3Account && len(rest) == 0:
		nk = sectionOf(mk, sectionAccount, 0)
	case s == v3Metrics && len(rest) == 0:
		nk = sectionOf(mk, sectionSum, 0)
	case s == v3Metrics && len(rest) == 16:
		nk = append(historyKey(p, binary.BigEndian.Uint64(rest), historyMetric, 8), rest[8:]...)
	case s == v3Ledger && len(rest) == 8:
		var e engine.LedgerEntry
		if decode(v, &e) != nil {
			return nil, false, nil
		}
		at := timeKey(e.At)
		if lastAt, _, ok := lastLedger(data.Cursor(), p); ok {
			at = max(at, lastAt)
		}
		nk = ledgerKey(p, at, binary.BigEndian.Uint64(rest))
	case s == v3Lots && len(rest) > 0:
		nk = lotKeyIn(p, string(rest))
	default:
		return nil, false, nil
	}
	if data.Get(nk) != nil {
		return nil, false, fmt.Errorf("%x: %w", nk, errKeyTaken)
	}
	return nk, true, nil
}

// rekeyExpiryChunk rewrites up to migrateChunk expiry entries of the old
// form (expiresAt|member|'l'|lotID), from the key after after, to end in
// the lot's new key, and returns how many it looked at and the last. It
// reads the form from the entry's key, not from the lot, so an entry that
// no longer matches its lot moves too. An entry already moved is of the new
// form and left alone, so the pass needs no mark of its own.
func rekeyExpiryChunk(db *bolt.DB, after []byte) (int, []byte, error) {
	var n int
	var last []byte
	err := db.Update(func(tx *bolt.Tx) error {
		n, last = 0, after
		members, expiry := tx.Bucket(bucketMembers), tx.Bucket(bucketExpiry)
		var moves [][2][]byte
		c := expiry.Cursor()
		k, _ := c.First()
		if after != nil {
			if k, _ = c.Seek(after); bytes.Equal(k, after) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && n < migrateChunk; k, _ = c.Next() {
			n++
			last = append([]byte(nil), k...)
			if len(k) <= 8 {
				continue
			}
			mk := memberOf(members, k[8:], isMigratingSection)
			if mk == nil || k[8+len(mk)] != v3Lots || len(k) == 8+len(mk)+1 {
				continue
			}
			nk := append(append(make([]byte, 0, 8+len(mk)+1+9+uuidLen), k[:8]...), lotKeyIn(sectionOf(mk, sectionHistory, 0), string(k[8+len(mk)+1:]))...)
			moves = append(moves, [2][]byte{last, nk})
		}
		for _, m := range moves {
			if err := expiry.Delete(m[0]); err != nil {
				return err
			}
			if err := expiry.Put(m[1], nil); err != nil {
				return err
			}
		}
		return nil
	})
	return n, last, err
}
