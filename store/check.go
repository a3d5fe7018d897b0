package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// Check verifies the file's structure and that every index entry points at
// a live record and back, and that each member's ledger is numbered 1..N
// with a consistent BalanceAfter chain. It prints one line per problem to w
// and returns how many it found; err is for failures to run the check.
// Balances against lots are the engine's to verify. On a writable DB the
// page check holds the write lock, so run it on a read-only open or a backup
// rather than inside a busy server.
func (db *DB) Check(w io.Writer) (problems int, err error) {
	c := &checker{w: w}
	if err := db.checkFile(c); err != nil {
		return c.n, fmt.Errorf("store: check: %w", err)
	}
	if err := db.bolt.View(c.indexes); err != nil {
		return c.n, fmt.Errorf("store: check: %w", err)
	}
	return c.n, c.err
}

// checkFile runs bbolt's page check. That check reads the freelist, which
// writers change, so on a writable file it needs the writer's lock; it holds
// it only for this part and writes nothing.
func (db *DB) checkFile(c *checker) error {
	btx, err := db.bolt.Begin(!db.bolt.IsReadOnly())
	if err != nil {
		return err
	}
	defer func() { _ = btx.Rollback() }()
	for err := range btx.Check() {
		c.problemf("file: %v", err)
	}
	return c.err
}

// checker counts problems and remembers the first error writing them.
type checker struct {
	w   io.Writer
	n   int
	err error
}

func (c *checker) problemf(format string, args ...any) {
	c.n++
	if c.err == nil {
		_, c.err = fmt.Fprintf(c.w, format+"\n", args...)
	}
}

func (c *checker) indexes(btx *bolt.Tx) error {
	for _, check := range []func(*bolt.Tx) error{c.members, c.purchases, c.lots, c.ledger} {
		if err := check(btx); err != nil {
			return err
		}
	}
	return nil
}

// decodeAt decodes the record at bucket/k, reporting a failure as a problem.
func (c *checker) decodeAt(bucket []byte, k, v []byte, rec any) bool {
	if err := decode(v, rec); err != nil {
		c.problemf("%s: %x: %v", bucket, k, err)
		return false
	}
	return true
}

func (c *checker) members(btx *bolt.Tx) error {
	members := btx.Bucket(bucketMembers)
	err := members.ForEach(func(k, v []byte) error {
		var m engine.Member
		if !c.decodeAt(bucketMembers, k, v, &m) {
			return c.err
		}
		if !bytes.Equal(k, memberKey(m.ID)) {
			c.problemf("members: key %x holds member %s", k, m.ID)
		}
		for _, u := range uniques {
			val := u.value(&m)
			if val != "" && !bytes.Equal(btx.Bucket(u.bucket).Get([]byte(val)), k) {
				c.problemf("member %s: %s %q does not point back at it in %s", m.ID, u.field, val, u.bucket)
			}
		}
		return c.err
	})
	if err != nil {
		return err
	}
	for _, u := range uniques {
		err := btx.Bucket(u.bucket).ForEach(func(val, mk []byte) error {
			v := members.Get(mk)
			if v == nil {
				c.problemf("%s: %q points at no member (key %x)", u.bucket, val, mk)
				return c.err
			}
			var m engine.Member
			if c.decodeAt(bucketMembers, mk, v, &m) && u.value(&m) != string(val) {
				c.problemf("%s: %q points at member %s, whose %s is %q", u.bucket, val, m.ID, u.field, u.value(&m))
			}
			return c.err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) purchases(btx *bolt.Tx) error {
	purchases, byTime := btx.Bucket(bucketPurchases), btx.Bucket(bucketPurchaseTime)
	err := purchases.ForEach(func(k, v []byte) error {
		var p engine.Purchase
		if !c.decodeAt(bucketPurchases, k, v, &p) {
			return c.err
		}
		if string(k) != p.ID {
			c.problemf("purchases: key %q holds purchase %s", k, p.ID)
		}
		if !has(byTime, purchaseTimeKey(&p)) {
			c.problemf("purchase %s: missing from %s", p.ID, bucketPurchaseTime)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	return byTime.ForEach(func(k, _ []byte) error {
		if len(k) <= 8 {
			c.problemf("%s: malformed key %x", bucketPurchaseTime, k)
			return c.err
		}
		v := purchases.Get(k[8:])
		if v == nil {
			c.problemf("%s: %x points at no purchase %q", bucketPurchaseTime, k, k[8:])
			return c.err
		}
		var p engine.Purchase
		if c.decodeAt(bucketPurchases, k[8:], v, &p) && !bytes.Equal(purchaseTimeKey(&p), k) {
			c.problemf("%s: %x: purchase %s occurred at %s", bucketPurchaseTime, k, p.ID, p.OccurredAt)
		}
		return c.err
	})
}

func (c *checker) lots(btx *bolt.Tx) error {
	lots, open, expiry := btx.Bucket(bucketLots), btx.Bucket(bucketLotsOpen), btx.Bucket(bucketExpiry)
	err := lots.ForEach(func(k, v []byte) error {
		var l engine.Lot
		if !c.decodeAt(bucketLots, k, v, &l) {
			return c.err
		}
		if !bytes.Equal(k, lotKey(l.MemberID, l.ID)) {
			c.problemf("lots: key %x holds lot %s/%s", k, l.MemberID, l.ID)
		}
		if ok := openLotKey(&l); ok != nil && !has(open, ok) {
			c.problemf("lot %s/%s: has %d remaining but is missing from %s", l.MemberID, l.ID, l.Remaining, bucketLotsOpen)
		}
		if ek := expiryKey(&l); ek != nil && !has(expiry, ek) {
			c.problemf("lot %s/%s: expires at %s but is missing from %s", l.MemberID, l.ID, l.ExpiresAt, bucketExpiry)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	err = open.ForEach(func(k, _ []byte) error {
		if !indexedLotMatches(lots, k, openLotKey, openLotCandidates(k)...) {
			c.problemf("%s: %x points at no open lot with that expiry", bucketLotsOpen, k)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	return expiry.ForEach(func(k, _ []byte) error {
		if len(k) <= 8 || !indexedLotMatches(lots, k, expiryKey, k[8:]) {
			c.problemf("%s: %x points at no open lot expiring then", bucketExpiry, k)
		}
		return c.err
	})
}

// openLotCandidates returns the lot keys a lots_open entry may stand for.
// The entry does not say which member-key form it starts with, so both are
// tried; indexedLotMatches then accepts only a lot that re-encodes to it.
func openLotCandidates(k []byte) [][]byte {
	var keys [][]byte
	lens := []int{uuidLen}
	if len(k) >= 2 {
		lens = append(lens, 2+int(binary.BigEndian.Uint16(k)))
	}
	for _, n := range lens {
		if len(k) > n+8 {
			keys = append(keys, append(k[:n:n], k[n+8:]...))
		}
	}
	return keys
}

// indexedLotMatches tells whether one of the lots at keys has entry as its
// index key, as computed by indexKey.
func indexedLotMatches(lots *bolt.Bucket, entry []byte, indexKey func(*engine.Lot) []byte, keys ...[]byte) bool {
	for _, key := range keys {
		v := lots.Get(key)
		if v == nil {
			continue
		}
		var l engine.Lot
		if decode(v, &l) == nil && bytes.Equal(indexKey(&l), entry) {
			return true
		}
	}
	return false
}

func (c *checker) ledger(btx *bolt.Tx) error {
	var (
		member  string
		prevSeq uint64
		prevBal int64
	)
	return btx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
		var e engine.LedgerEntry
		if !c.decodeAt(bucketLedger, k, v, &e) {
			return c.err
		}
		if !bytes.Equal(k, ledgerKey(e.MemberID, e.Seq)) {
			c.problemf("ledger: key %x holds entry %d of member %s", k, e.Seq, e.MemberID)
		}
		if e.MemberID != member {
			member, prevSeq, prevBal = e.MemberID, 0, 0
		}
		if e.Seq != prevSeq+1 {
			c.problemf("ledger of %s: entry %d follows entry %d", e.MemberID, e.Seq, prevSeq)
		}
		if want := prevBal + e.Points; e.BalanceAfter != want {
			c.problemf("ledger of %s: entry %d has balance after %d, want %d + %d = %d", e.MemberID, e.Seq, e.BalanceAfter, prevBal, e.Points, want)
		}
		prevSeq, prevBal = e.Seq, e.BalanceAfter
		return c.err
	})
}
