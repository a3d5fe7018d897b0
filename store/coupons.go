package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// The coupon buckets (doc.go) may be missing from a file opened read-only
// that an older program wrote: such a file has no coupons.

// couponMemberKey is c's coupons_by_member key; the entry's value is the
// code.
func couponMemberKey(c *engine.Coupon) []byte {
	k := appendTime(appendID(make([]byte, 0, uuidLen+8+len(c.Code)), c.MemberID), c.IssuedAt)
	return append(k, c.Code...)
}

// couponDueKey is c's coupons_due key, or nil when c is not issued.
func couponDueKey(c *engine.Coupon) []byte {
	if c.Status != engine.CouponIssued {
		return nil
	}
	return couponDuePosition(c)
}

// couponDuePosition is where c sorts in coupons_due, whether it is there
// or not, so a coupon that has just left the index still marks its place.
func couponDuePosition(c *engine.Coupon) []byte {
	return append(appendTime(make([]byte, 0, 8+len(c.Code)), c.ExpiresAt), c.Code...)
}

// Coupon implements engine.Tx.
func (t *tx) Coupon(code string) (*engine.Coupon, error) {
	b := t.bucket(bucketCoupons)
	if b == nil || code == "" {
		return nil, nil
	}
	c, err := get[engine.Coupon](b, []byte(code))
	if err != nil {
		return nil, fmt.Errorf("store: coupon %s: %w", code, err)
	}
	return c, nil
}

// CouponByID implements engine.Tx.
func (t *tx) CouponByID(id string) (*engine.Coupon, error) {
	b := t.bucket(bucketCouponsByID)
	if b == nil || id == "" {
		return nil, nil
	}
	code := b.Get([]byte(id))
	if code == nil {
		return nil, nil
	}
	c, err := t.Coupon(string(code))
	if err == nil && c == nil {
		err = fmt.Errorf("store: coupon by id %s: the index names coupon %s, which does not exist", id, code)
	}
	return c, err
}

// PutCoupon implements engine.Tx. Every refusal comes before the first
// write; the index entries are derived from the old and the new record.
func (t *tx) PutCoupon(c *engine.Coupon) error {
	if c.Code == "" || c.ID == "" || c.MemberID == "" {
		return fmt.Errorf("store: put coupon: %w", errEmptyID)
	}
	coupons, byID := t.bucket(bucketCoupons), t.bucket(bucketCouponsByID)
	key := []byte(c.Code)
	old, err := get[engine.Coupon](coupons, key)
	if err != nil {
		return fmt.Errorf("store: put coupon %s: %w", c.Code, err)
	}
	if holder := byID.Get([]byte(c.ID)); holder != nil && !bytes.Equal(holder, key) {
		return fmt.Errorf("store: put coupon %s: id %q is coupon %s's", c.Code, c.ID, holder)
	}
	t.writing()
	if err := put(coupons, key, c); err != nil {
		return fmt.Errorf("store: put coupon %s: %w", c.Code, err)
	}
	var oldID, oldMember, oldDue []byte
	if old != nil {
		oldID, oldMember, oldDue = []byte(old.ID), couponMemberKey(old), couponDueKey(old)
	}
	if !bytes.Equal(oldID, []byte(c.ID)) {
		if oldID != nil {
			if err := byID.Delete(oldID); err != nil {
				return fmt.Errorf("store: put coupon %s: unindex id: %w", c.Code, err)
			}
		}
		if err := byID.Put([]byte(c.ID), key); err != nil {
			return fmt.Errorf("store: put coupon %s: index id: %w", c.Code, err)
		}
	}
	if mk := couponMemberKey(c); !bytes.Equal(oldMember, mk) {
		byMember := t.bucket(bucketCouponsByMember)
		if oldMember != nil {
			if err := byMember.Delete(oldMember); err != nil {
				return fmt.Errorf("store: put coupon %s: coupons_by_member: %w", c.Code, err)
			}
		}
		if err := byMember.Put(mk, key); err != nil {
			return fmt.Errorf("store: put coupon %s: coupons_by_member: %w", c.Code, err)
		}
	}
	if err := reindex(t.bucket(bucketCouponsDue), oldDue, couponDueKey(c)); err != nil {
		return fmt.Errorf("store: put coupon %s: coupons_due: %w", c.Code, err)
	}
	return nil
}

// MemberCoupons implements engine.Tx.
func (t *tx) MemberCoupons(memberID string) ([]*engine.Coupon, error) {
	idx := t.bucket(bucketCouponsByMember)
	if idx == nil {
		return nil, nil
	}
	p := memberKey(memberID)
	var out []*engine.Coupon
	c := idx.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		cp, err := t.indexedCoupon(v, k)
		if err != nil {
			return nil, fmt.Errorf("store: coupons of %s: %w", memberID, err)
		}
		if cp.MemberID != memberID {
			continue // another member's key that starts with these bytes
		}
		out = append(out, cp)
	}
	return out, nil
}

// indexedCoupon returns the coupon an index entry names; a missing one is
// a broken index, an error rather than something to skip.
func (t *tx) indexedCoupon(code, entry []byte) (*engine.Coupon, error) {
	c, err := get[engine.Coupon](t.bucket(bucketCoupons), code)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("index entry %x has no coupon", entry)
	}
	return c, nil
}

// DueCoupons implements engine.Tx.
func (t *tx) DueCoupons(until time.Time, after *engine.Coupon, limit int) ([]*engine.Coupon, error) {
	idx := t.bucket(bucketCouponsDue)
	if idx == nil {
		return nil, nil
	}
	hi := timeKey(until)
	var out []*engine.Coupon
	c := idx.Cursor()
	k, _ := c.First()
	if after != nil {
		start := couponDuePosition(after)
		if k, _ = c.Seek(start); bytes.Equal(k, start) {
			k, _ = c.Next()
		}
	}
	for ; k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		if len(k) < 8 {
			return nil, fmt.Errorf("store: due coupons: malformed entry %x", k)
		}
		if binary.BigEndian.Uint64(k) > hi {
			break
		}
		cp, err := t.indexedCoupon(k[8:], k)
		if err != nil {
			return nil, fmt.Errorf("store: due coupons: %w", err)
		}
		out = append(out, cp)
	}
	return out, nil
}

// RewardCount implements engine.Tx.
func (t *tx) RewardCount(reward string) (*engine.RewardCount, error) {
	b := t.bucket(bucketRewardCounts)
	if b == nil || reward == "" {
		return nil, nil
	}
	c, err := get[engine.RewardCount](b, []byte(reward))
	if err != nil {
		return nil, fmt.Errorf("store: counts of reward %s: %w", reward, err)
	}
	return c, nil
}

// PutRewardCount implements engine.Tx.
func (t *tx) PutRewardCount(c *engine.RewardCount) error {
	return t.putByID(bucketRewardCounts, "reward counts", c.Reward, c)
}

// RewardCounts implements engine.Tx.
func (t *tx) RewardCounts() ([]*engine.RewardCount, error) {
	b := t.bucket(bucketRewardCounts)
	if b == nil {
		return nil, nil
	}
	c := b.Cursor()
	k, v := c.First()
	out, err := list[engine.RewardCount](k, v, c.Next, all, 0)
	if err != nil {
		return nil, fmt.Errorf("store: reward counts: %w", err)
	}
	return out, nil
}

// coupons checks the coupon buckets against each other: each coupon is
// indexed by its id, its member and (while issued) its expiry, and each
// index entry leads to a coupon that has it.
func (c *checker) coupons(btx *bolt.Tx) error {
	coupons, byID, byMember, due := btx.Bucket(bucketCoupons), btx.Bucket(bucketCouponsByID), btx.Bucket(bucketCouponsByMember), btx.Bucket(bucketCouponsDue)
	if coupons == nil || byID == nil || byMember == nil || due == nil {
		return nil
	}
	err := coupons.ForEach(func(k, v []byte) error {
		var cp engine.Coupon
		if !c.decodeAt(bucketCoupons, k, v, &cp) {
			return c.err
		}
		switch {
		case string(k) != cp.Code:
			c.problemf("%s: key %q holds coupon %s", bucketCoupons, k, cp.Code)
		case !bytes.Equal(byID.Get([]byte(cp.ID)), k):
			c.problemf("coupon %s: id %q is not indexed to it", cp.Code, cp.ID)
		case !has(byMember, couponMemberKey(&cp)):
			c.problemf("coupon %s: missing from %s", cp.Code, bucketCouponsByMember)
		}
		if dk := couponDueKey(&cp); dk != nil && !has(due, dk) {
			c.problemf("coupon %s: issued, expiring %s, but missing from %s", cp.Code, cp.ExpiresAt, bucketCouponsDue)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	indexed := func(bucket []byte, b *bolt.Bucket, code func(k, v []byte) []byte, key func(*engine.Coupon) []byte) error {
		return b.ForEach(func(k, v []byte) error {
			ck := code(k, v)
			ok := false
			if cv := coupons.Get(ck); ck != nil && cv != nil {
				var cp engine.Coupon
				ok = decode(cv, &cp) == nil && bytes.Equal(key(&cp), k)
			}
			if !ok {
				c.problemf("%s: %x points at no coupon that has it", bucket, k)
			}
			return c.err
		})
	}
	if err := indexed(bucketCouponsByID, byID, func(_, v []byte) []byte { return v }, func(cp *engine.Coupon) []byte { return []byte(cp.ID) }); err != nil {
		return err
	}
	if err := indexed(bucketCouponsDue, due, func(k, _ []byte) []byte { return afterTime(k) }, couponDueKey); err != nil {
		return err
	}
	return indexed(bucketCouponsByMember, byMember, func(_, v []byte) []byte { return v }, couponMemberKey)
}

func afterTime(k []byte) []byte {
	if len(k) <= 8 {
		return nil
	}
	return k[8:]
}
