package store

import (
	"bytes"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// Check verifies the file's structure and that every index entry points at
// a live record and back, that each member's ledger is numbered 1..N
// with a consistent BalanceAfter chain, and that no purchase, refund,
// redemption or adjustment holds an amount or points out of the engine's
// limits (check_limits.go). It prints one line per problem to w
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
	for _, check := range []func(*bolt.Tx) error{c.members, c.purchases, c.memberData, c.expiry, c.amounts, c.coupons, c.deliveries} {
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
