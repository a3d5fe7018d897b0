package store

import (
	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// amounts checks that the money and points every purchase, refund,
// redemption and adjustment holds are within the engine's limits, and that
// a purchase was never refunded more than it had: the engine refuses
// anything else, so such a record was written around it.
func (c *checker) amounts(btx *bolt.Tx) error {
	inRange := func(v, lo, hi int64) bool { return v >= lo && v <= hi }
	err := btx.Bucket(bucketPurchases).ForEach(func(k, v []byte) error {
		var p engine.Purchase
		if !c.decodeAt(bucketPurchases, k, v, &p) {
			return c.err
		}
		if !inRange(p.Amount, 0, engine.MaxAmount) {
			c.problemf("purchase %s: amount %d out of range (0 to %d)", p.ID, p.Amount, engine.MaxAmount)
		}
		if !inRange(p.Points, 0, engine.MaxPoints) {
			c.problemf("purchase %s: %d points out of range (0 to %d)", p.ID, p.Points, engine.MaxPoints)
		}
		if !inRange(p.RefundedAmount, 0, p.Amount) {
			c.problemf("purchase %s: refunded %d of an amount of %d", p.ID, p.RefundedAmount, p.Amount)
		}
		if !inRange(p.RefundedPoints, 0, p.Points) {
			c.problemf("purchase %s: took back %d of the %d points it earned", p.ID, p.RefundedPoints, p.Points)
		}
		var lines int64
		for i, it := range p.Items {
			if !inRange(it.Amount, 0, engine.MaxAmount) || !inRange(it.Quantity, 1, engine.MaxQuantity) {
				c.problemf("purchase %s: line %d has amount %d and quantity %d, out of range", p.ID, i, it.Amount, it.Quantity)
				continue
			}
			lines += it.Amount
		}
		if lines > p.Amount {
			c.problemf("purchase %s: lines add up to %d, more than the amount %d", p.ID, lines, p.Amount)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	err = btx.Bucket(bucketRefunds).ForEach(func(k, v []byte) error {
		var r engine.Refund
		if c.decodeAt(bucketRefunds, k, v, &r) && (!inRange(r.Amount, 0, engine.MaxAmount) || !inRange(r.Points, -engine.MaxPoints, 0)) {
			c.problemf("refund %s: amount %d and points %d out of range", r.ID, r.Amount, r.Points)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	err = btx.Bucket(bucketRedemptions).ForEach(func(k, v []byte) error {
		var r engine.Redemption
		if c.decodeAt(bucketRedemptions, k, v, &r) && !inRange(r.Points, 1, engine.MaxPoints) {
			c.problemf("redemption %s: %d points out of range (1 to %d)", r.ID, r.Points, engine.MaxPoints)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	return btx.Bucket(bucketAdjustments).ForEach(func(k, v []byte) error {
		var a engine.Adjustment
		if c.decodeAt(bucketAdjustments, k, v, &a) && !inRange(a.Points, -engine.MaxPoints, engine.MaxPoints) {
			c.problemf("adjustment %s: %d points out of range", a.ID, a.Points)
		}
		return c.err
	})
}
