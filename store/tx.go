package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

var _ engine.Tx = (*tx)(nil)

// tx adapts a bbolt transaction to engine.Tx. Open made every bucket, so
// bucket lookups never fail (but for buckets added since, on a file opened
// read-only).
//
// wrote is set before the first change a method makes to the bbolt
// transaction: a write function that fails with it unset changed nothing,
// so the group commit keeps the others' work instead of rolling back
// (commit.go). A method sets it before anything that may write, never
// after, so a failure halfway through a method counts as a change.
type tx struct {
	tx    *bolt.Tx
	wrote bool
	// opened are the buckets a read transaction has opened so far. bbolt
	// keeps the buckets of a writable transaction but opens a bucket again
	// on every Tx.Bucket of a read-only one (a seek in the root and three
	// allocations), and a balance read asks for its few buckets a dozen
	// times.
	opened [4]openBucket
}

type openBucket struct {
	name []byte
	b    *bolt.Bucket
}

// writing notes that the transaction is about to change.
func (t *tx) writing() { t.wrote = true }

func (t *tx) bucket(name []byte) *bolt.Bucket {
	if t.tx.Writable() {
		return t.tx.Bucket(name)
	}
	for i := range t.opened {
		o := &t.opened[i]
		if o.b == nil {
			// A bucket a read-only file lacks stays nil, and is asked
			// for again next time: rare, and never on a server's file.
			o.name, o.b = name, t.tx.Bucket(name)
			return o.b
		}
		if bytes.Equal(o.name, name) {
			return o.b
		}
	}
	return t.tx.Bucket(name)
}

// get decodes the record at key, or returns nil if there is none.
func get[T any](b *bolt.Bucket, key []byte) (*T, error) {
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	rec := new(T)
	if err := decode(v, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func put(b *bolt.Bucket, key []byte, rec any) error {
	v, err := encode(rec)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

// list decodes records from a cursor while more(k) holds, at most limit
// (<= 0: no limit). next steps the cursor in the direction of the scan.
func list[T any](k, v []byte, next func() ([]byte, []byte), more func(k []byte) bool, limit int) ([]*T, error) {
	var out []*T
	for ; k != nil && more(k) && (limit <= 0 || len(out) < limit); k, v = next() {
		rec := new(T)
		if err := decode(v, rec); err != nil {
			return nil, fmt.Errorf("key %x: %w", k, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

func hasPrefix(p []byte) func([]byte) bool {
	return func(k []byte) bool { return bytes.HasPrefix(k, p) }
}

func all([]byte) bool { return true }

var errEmptyID = errors.New("empty id")

// Member implements engine.Tx.
func (t *tx) Member(id string) (*engine.Member, error) {
	m, err := t.memberAt(memberKey(id))
	if err != nil {
		return nil, fmt.Errorf("store: member %s: %w", id, err)
	}
	return m, nil
}

// memberAt reads the member under member key mk with its account, or nil.
func (t *tx) memberAt(mk []byte) (*engine.Member, error) {
	m, err := get[engine.Member](t.bucket(bucketMembers), mk)
	if err != nil || m == nil {
		return nil, err
	}
	if err := withAccount(t.bucket(bucketMemberData), m); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	return m, nil
}

// MemberByKey implements engine.Tx.
func (t *tx) MemberByKey(key, value string) (*engine.Member, error) {
	for _, u := range uniques {
		if u.field != key {
			continue
		}
		if value == "" {
			return nil, nil
		}
		mk := t.bucket(u.bucket).Get([]byte(value))
		if mk == nil {
			return nil, nil
		}
		m, err := t.memberAt(mk)
		if err != nil {
			return nil, fmt.Errorf("store: member by %s: %w", key, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("store: member by %q: not a unique key", key)
}

// PutMember implements engine.Tx. It checks every unique value before it
// writes anything, so a conflict leaves the transaction as it was. Each of
// the two records is written only if it changed: a purchase changes the
// account alone.
func (t *tx) PutMember(m *engine.Member) error {
	if m.ID == "" {
		return fmt.Errorf("store: put member: %w", errEmptyID)
	}
	profile, err := encode(profileOf(m))
	if err != nil {
		return fmt.Errorf("store: put member %s: %w", m.ID, err)
	}
	acct, err := encode(accountOf(m))
	if err != nil {
		return fmt.Errorf("store: put member %s: %w", m.ID, err)
	}
	key := memberKey(m.ID)
	members := t.bucket(bucketMembers)
	if old := members.Get(key); old == nil || !bytes.Equal(old, profile) {
		if err := t.putProfile(m, key, old, profile); err != nil {
			return fmt.Errorf("store: put member %s: %w", m.ID, err)
		}
	}
	t.writing()
	if err := putIfChanged(t.bucket(bucketMemberData), accountKey(m.ID), acct); err != nil {
		return fmt.Errorf("store: put member %s: account: %w", m.ID, err)
	}
	return nil
}

// putProfile writes the members record of m over oldValue (nil for a new
// member) and keeps the unique indexes in step with it.
func (t *tx) putProfile(m *engine.Member, key, oldValue, profile []byte) error {
	members := t.bucket(bucketMembers)
	var old *engine.Member
	if oldValue != nil {
		old = new(engine.Member)
		if err := decode(oldValue, old); err != nil {
			return err
		}
	}
	for _, u := range uniques {
		v := u.value(m)
		if v == "" {
			continue
		}
		if holder := t.bucket(u.bucket).Get([]byte(v)); holder != nil && !bytes.Equal(holder, key) {
			return &engine.Error{Code: engine.ECONFLICT, Field: u.field, Message: u.field + " is already used by another member"}
		}
	}
	t.writing()
	if err := members.Put(key, profile); err != nil {
		return err
	}
	for _, u := range uniques {
		now, was := u.value(m), ""
		if old != nil {
			was = u.value(old)
		}
		if now == was {
			continue
		}
		idx := t.bucket(u.bucket)
		// Only drop the old entry if it is ours: never make a broken index
		// worse by deleting another member's entry.
		if was != "" && bytes.Equal(idx.Get([]byte(was)), key) {
			if err := idx.Delete([]byte(was)); err != nil {
				return fmt.Errorf("unindex %s: %w", u.field, err)
			}
		}
		if now != "" {
			if err := idx.Put([]byte(now), key); err != nil {
				return fmt.Errorf("index %s: %w", u.field, err)
			}
		}
	}
	return nil
}

// Members implements engine.Tx. The order is key order, which for the
// engine's UUID ids is id order.
func (t *tx) Members(after string, limit int) ([]*engine.Member, error) {
	c := t.bucket(bucketMembers).Cursor()
	var k, v []byte
	if after == "" {
		k, v = c.First()
	} else {
		start := memberKey(after)
		if k, v = c.Seek(start); bytes.Equal(k, start) {
			k, v = c.Next()
		}
	}
	ms, err := list[engine.Member](k, v, c.Next, all, limit)
	if err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	data := t.bucket(bucketMemberData)
	for _, m := range ms {
		if err := withAccount(data, m); err != nil {
			return nil, fmt.Errorf("store: members: account of %s: %w", m.ID, err)
		}
	}
	return ms, nil
}

// Purchase implements engine.Tx.
func (t *tx) Purchase(id string) (*engine.Purchase, error) {
	p, err := get[engine.Purchase](t.bucket(bucketPurchases), idKey(id))
	if err != nil {
		return nil, fmt.Errorf("store: purchase %s: %w", id, err)
	}
	return p, nil
}

// PutPurchase implements engine.Tx.
func (t *tx) PutPurchase(p *engine.Purchase) error {
	if p.ID == "" {
		return fmt.Errorf("store: put purchase: %w", errEmptyID)
	}
	purchases, byTime := t.bucket(bucketPurchases), t.bucket(bucketPurchaseTime)
	key := idKey(p.ID)
	old, err := get[engine.Purchase](purchases, key)
	if err != nil {
		return fmt.Errorf("store: put purchase %s: %w", p.ID, err)
	}
	t.writing()
	if err := put(purchases, key, p); err != nil {
		return fmt.Errorf("store: put purchase %s: %w", p.ID, err)
	}
	tk := purchaseTimeKey(p)
	if old != nil {
		oldTK := purchaseTimeKey(old)
		if bytes.Equal(oldTK, tk) {
			return nil
		}
		if err := byTime.Delete(oldTK); err != nil {
			return fmt.Errorf("store: put purchase %s: unindex: %w", p.ID, err)
		}
	}
	if err := byTime.Put(tk, nil); err != nil {
		return fmt.Errorf("store: put purchase %s: index: %w", p.ID, err)
	}
	return nil
}

// PurchasesBetween implements engine.Tx.
func (t *tx) PurchasesBetween(from, to time.Time, limit int) ([]*engine.Purchase, error) {
	lo, hi := timeKey(from), timeKey(to)
	purchases := t.bucket(bucketPurchases)
	var out []*engine.Purchase
	c := t.bucket(bucketPurchaseTime).Cursor()
	for k, _ := c.Seek(appendUint64(nil, lo)); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		if binary.BigEndian.Uint64(k) >= hi {
			break
		}
		p, err := get[engine.Purchase](purchases, k[8:])
		if err != nil {
			return nil, fmt.Errorf("store: purchases between: %w", err)
		}
		if p == nil {
			return nil, fmt.Errorf("store: purchases between: index entry %x has no purchase", k)
		}
		out = append(out, p)
	}
	return out, nil
}

// Refund implements engine.Tx.
func (t *tx) Refund(id string) (*engine.Refund, error) {
	r, err := get[engine.Refund](t.bucket(bucketRefunds), idKey(id))
	if err != nil {
		return nil, fmt.Errorf("store: refund %s: %w", id, err)
	}
	return r, nil
}

// PutRefund implements engine.Tx.
func (t *tx) PutRefund(r *engine.Refund) error {
	return t.putByID(bucketRefunds, "refund", r.ID, r)
}

// Redemption implements engine.Tx.
func (t *tx) Redemption(id string) (*engine.Redemption, error) {
	r, err := get[engine.Redemption](t.bucket(bucketRedemptions), idKey(id))
	if err != nil {
		return nil, fmt.Errorf("store: redemption %s: %w", id, err)
	}
	return r, nil
}

// PutRedemption implements engine.Tx.
func (t *tx) PutRedemption(r *engine.Redemption) error {
	return t.putByID(bucketRedemptions, "redemption", r.ID, r)
}

// Adjustment implements engine.Tx.
func (t *tx) Adjustment(id string) (*engine.Adjustment, error) {
	a, err := get[engine.Adjustment](t.bucket(bucketAdjustments), idKey(id))
	if err != nil {
		return nil, fmt.Errorf("store: adjustment %s: %w", id, err)
	}
	return a, nil
}

// PutAdjustment implements engine.Tx.
func (t *tx) PutAdjustment(a *engine.Adjustment) error {
	return t.putByID(bucketAdjustments, "adjustment", a.ID, a)
}

func (t *tx) putByID(bucket []byte, what, id string, rec any) error {
	if id == "" {
		return fmt.Errorf("store: put %s: %w", what, errEmptyID)
	}
	t.writing()
	if err := put(t.bucket(bucket), idKey(id), rec); err != nil {
		return fmt.Errorf("store: put %s %s: %w", what, id, err)
	}
	return nil
}

// AppendLedger implements engine.Tx. The entry's time key is the larger
// of its time and the previous entry's, so a clock that steps back cannot
// put the history's ledger out of seq order, which Ledger relies on; a seq
// that is not after the member's last is refused for the same reason.
func (t *tx) AppendLedger(e *engine.LedgerEntry) error {
	if e.MemberID == "" {
		return fmt.Errorf("store: append ledger: %w", errEmptyID)
	}
	b, p := t.bucket(bucketMemberData), memberSection(e.MemberID, sectionHistory, 0)
	at := timeKey(e.At)
	if lastAt, lastSeq, ok := lastLedger(b.Cursor(), p); ok {
		if e.Seq <= lastSeq {
			return fmt.Errorf("store: append ledger: member %s already has entry %d, so entry %d is not new", e.MemberID, lastSeq, e.Seq)
		}
		at = max(at, lastAt)
	}
	t.writing()
	if err := put(b, ledgerKey(p, at, e.Seq), e); err != nil {
		return fmt.Errorf("store: append ledger %s/%d: %w", e.MemberID, e.Seq, err)
	}
	return nil
}

// lastLedger finds the newest ledger entry in the history under p. What
// follows it is what later writes added without a ledger entry, usually
// the lot and metric entry of the purchase that made it.
func lastLedger(c *bolt.Cursor, p []byte) (at, seq uint64, ok bool) {
	for k, _ := seekLast(c, historyEnd(p)); k != nil && bytes.HasPrefix(k, p); k, _ = c.Prev() {
		if seq, ok := ledgerSeqOf(k, p); ok {
			return historyTime(k, p), seq, true
		}
	}
	return 0, 0, false
}

// Ledger implements engine.Tx.
func (t *tx) Ledger(memberID string, before uint64, limit int) ([]*engine.LedgerEntry, error) {
	p := memberSection(memberID, sectionHistory, 0)
	c := t.bucket(bucketMemberData).Cursor()
	var k, v []byte
	if before == 0 {
		k, v = seekLast(c, historyEnd(p))
	} else {
		k, v = ledgerBefore(c, p, before)
	}
	var out []*engine.LedgerEntry
	for ; k != nil && bytes.HasPrefix(k, p) && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
		seq, ok := ledgerSeqOf(k, p)
		if !ok || before > 0 && seq >= before {
			continue
		}
		e := new(engine.LedgerEntry)
		if err := decode(v, e); err != nil {
			return nil, fmt.Errorf("store: ledger of %s: key %x: %w", memberID, k, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ledgerBefore moves c to where the member's entries with seq < before
// end. The ledger's time keys rise with seq, so it bisects the time keys
// for the first one at or after which the next entry has seq >= before (or
// there is none); every entry before that key has a lower seq, but for
// entries that share the time key just below, which the caller skips.
func ledgerBefore(c *bolt.Cursor, p []byte, before uint64) ([]byte, []byte) {
	at := appendUint64(p[:len(p):len(p)], 0)
	seek := func(t uint64) ([]byte, []byte) {
		binary.BigEndian.PutUint64(at[len(p):], t)
		return c.Seek(at)
	}
	reached := func(t uint64) bool {
		for k, _ := seek(t); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			if seq, ok := ledgerSeqOf(k, p); ok {
				return seq >= before
			}
		}
		return true
	}
	lo, hi := uint64(0), uint64(math.MaxUint64)
	for lo < hi {
		if mid := lo + (hi-lo)/2; reached(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if k, _ := seek(lo); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// PutLot implements engine.Tx. The index entries are derived from the old
// and the new lot, so any change of Remaining or ExpiresAt moves them.
func (t *tx) PutLot(l *engine.Lot) error {
	if l.MemberID == "" || l.ID == "" {
		return fmt.Errorf("store: put lot: %w", errEmptyID)
	}
	lots := t.bucket(bucketMemberData)
	key := lotKey(l.MemberID, l.ID)
	old, err := get[engine.Lot](lots, key)
	if err != nil {
		return fmt.Errorf("store: put lot %s/%s: %w", l.MemberID, l.ID, err)
	}
	t.writing()
	if err := put(lots, key, l); err != nil {
		return fmt.Errorf("store: put lot %s/%s: %w", l.MemberID, l.ID, err)
	}
	var oldExp []byte
	if old != nil {
		oldExp = expiryKey(old)
	}
	if err := reindexOpen(lots, old, l); err != nil {
		return fmt.Errorf("store: put lot %s/%s: lots_open: %w", l.MemberID, l.ID, err)
	}
	if err := reindex(t.bucket(bucketExpiry), oldExp, expiryKey(l)); err != nil {
		return fmt.Errorf("store: put lot %s/%s: expiry: %w", l.MemberID, l.ID, err)
	}
	return nil
}

// reindex replaces the entry from (nil: none) by to (nil: none).
func reindex(b *bolt.Bucket, from, to []byte) error {
	if bytes.Equal(from, to) {
		return nil
	}
	if from != nil {
		if err := b.Delete(from); err != nil {
			return err
		}
	}
	if to != nil {
		return b.Put(to, nil)
	}
	return nil
}

// Lot implements engine.Tx.
func (t *tx) Lot(memberID, lotID string) (*engine.Lot, error) {
	l, err := get[engine.Lot](t.bucket(bucketMemberData), lotKey(memberID, lotID))
	if err != nil {
		return nil, fmt.Errorf("store: lot %s/%s: %w", memberID, lotID, err)
	}
	return l, nil
}

// OpenLots implements engine.Tx.
func (t *tx) OpenLots(memberID string) ([]*engine.Lot, error) {
	p, hp := memberSection(memberID, sectionOpen, 0), memberSection(memberID, sectionHistory, 0)
	data := t.bucket(bucketMemberData)
	var out []*engine.Lot
	c := data.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if len(k) < len(p)+8 {
			return nil, fmt.Errorf("store: open lots of %s: malformed entry %x", memberID, k)
		}
		l, err := t.indexedLot(data, lotKeyIn(hp, string(k[len(p)+8:])), k)
		if err != nil {
			return nil, fmt.Errorf("store: open lots of %s: %w", memberID, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// indexedLot returns the lot an index entry names; a missing one means a
// broken index, which is an error rather than something to skip.
func (t *tx) indexedLot(lots *bolt.Bucket, key, entry []byte) (*engine.Lot, error) {
	l, err := get[engine.Lot](lots, key)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("index entry %x has no lot", entry)
	}
	return l, nil
}

// Lots implements engine.Tx.
func (t *tx) Lots(memberID string) ([]*engine.Lot, error) {
	var out []*engine.Lot
	c := t.bucket(bucketMemberData).Cursor()
	err := eachInHistory(c, memberSection(memberID, sectionHistory, 0), 0, historyLot, func(k, v []byte) error {
		l := new(engine.Lot)
		if err := decode(v, l); err != nil {
			return fmt.Errorf("key %x: %w", k, err)
		}
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: lots of %s: %w", memberID, err)
	}
	return out, nil
}

// eachInHistory calls fn with each of the member's history records of one
// kind, under the prefix p, from the time key from on, in history order.
func eachInHistory(c *bolt.Cursor, p []byte, from uint64, kind byte, fn func(k, v []byte) error) error {
	for k, v := c.Seek(appendUint64(p[:len(p):len(p)], from)); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if historyKind(k, p) != kind {
			continue
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// DueLots implements engine.Tx.
func (t *tx) DueLots(until time.Time, after *engine.Lot, limit int) ([]*engine.Lot, error) {
	hi := timeKey(until)
	lots := t.bucket(bucketMemberData)
	var out []*engine.Lot
	c := t.bucket(bucketExpiry).Cursor()
	k, _ := c.First()
	if after != nil {
		start := expiryPosition(after)
		if k, _ = c.Seek(start); bytes.Equal(k, start) {
			k, _ = c.Next()
		}
	}
	for ; k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		if binary.BigEndian.Uint64(k) > hi {
			break
		}
		l, err := t.indexedLot(lots, k[8:], k)
		if err != nil {
			return nil, fmt.Errorf("store: due lots: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// AddMetric implements engine.Tx.
func (t *tx) AddMetric(memberID string, e engine.MetricEntry) error {
	if memberID == "" {
		return fmt.Errorf("store: add metric: %w", errEmptyID)
	}
	b := t.bucket(bucketMemberData)
	t.writing()
	// The bucket sequence keeps two entries at the same instant apart.
	n, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("store: add metric for %s: %w", memberID, err)
	}
	if err := put(b, metricKey(memberSection(memberID, sectionHistory, 0), e.At, n), e); err != nil {
		return fmt.Errorf("store: add metric for %s: %w", memberID, err)
	}
	if err := t.countMetric(b, memberID, e); err != nil {
		return fmt.Errorf("store: add metric for %s: %w", memberID, err)
	}
	return nil
}

// Metrics implements engine.Tx.
func (t *tx) Metrics(memberID string, since time.Time) ([]engine.MetricEntry, error) {
	var out []engine.MetricEntry
	c := t.bucket(bucketMemberData).Cursor()
	err := eachInHistory(c, memberSection(memberID, sectionHistory, 0), timeKey(since), historyMetric, func(k, v []byte) error {
		var e engine.MetricEntry
		if err := decode(v, &e); err != nil {
			return fmt.Errorf("key %x: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: metrics of %s: %w", memberID, err)
	}
	return out, nil
}

// RuleUses implements engine.Tx.
func (t *tx) RuleUses(memberID, rule, period string) (int64, error) {
	n, err := decodeCount(t.bucket(bucketRuleUses).Get(ruleUseKey(memberID, rule, period)))
	if err != nil {
		return 0, fmt.Errorf("store: uses of %s by %s in %s: %w", rule, memberID, period, err)
	}
	return n, nil
}

// AddRuleUse implements engine.Tx.
func (t *tx) AddRuleUse(memberID, rule, period string, delta int64) error {
	b, key := t.bucket(bucketRuleUses), ruleUseKey(memberID, rule, period)
	n, err := decodeCount(b.Get(key))
	if err != nil {
		return fmt.Errorf("store: add use of %s by %s in %s: %w", rule, memberID, period, err)
	}
	t.writing()
	if err := b.Put(key, encodeCount(n+delta)); err != nil {
		return fmt.Errorf("store: add use of %s by %s in %s: %w", rule, memberID, period, err)
	}
	return nil
}

// Marked implements engine.Tx.
func (t *tx) Marked(key string) (bool, error) {
	return has(t.bucket(bucketMarkers), []byte(key)), nil
}

// Mark implements engine.Tx.
func (t *tx) Mark(key string) error {
	t.writing()
	if err := t.bucket(bucketMarkers).Put([]byte(key), nil); err != nil {
		return fmt.Errorf("store: mark %q: %w", key, err)
	}
	return nil
}

// PutRules implements engine.Tx.
func (t *tx) PutRules(v *engine.RulesVersion) error {
	t.writing()
	if err := put(t.bucket(bucketRules), rulesKey(v.Version), v); err != nil {
		return fmt.Errorf("store: put rules version %d: %w", v.Version, err)
	}
	return nil
}

// RulesVersion implements engine.Tx.
func (t *tx) RulesVersion(n int) (*engine.RulesVersion, error) {
	v, err := get[engine.RulesVersion](t.bucket(bucketRules), rulesKey(n))
	if err != nil {
		return nil, fmt.Errorf("store: rules version %d: %w", n, err)
	}
	return v, nil
}

// RulesVersions implements engine.Tx.
func (t *tx) RulesVersions() ([]*engine.RulesVersion, error) {
	c := t.bucket(bucketRules).Cursor()
	k, v := c.First()
	vs, err := list[engine.RulesVersion](k, v, c.Next, all, 0)
	if err != nil {
		return nil, fmt.Errorf("store: rules versions: %w", err)
	}
	return vs, nil
}

// LatestRules implements engine.Tx.
func (t *tx) LatestRules() (*engine.RulesVersion, error) {
	_, v := t.bucket(bucketRules).Cursor().Last()
	if v == nil {
		return nil, nil
	}
	var r engine.RulesVersion
	if err := decode(v, &r); err != nil {
		return nil, fmt.Errorf("store: latest rules: %w", err)
	}
	return &r, nil
}

// PutJobRun implements engine.Tx.
func (t *tx) PutJobRun(r *engine.JobRun) error {
	t.writing()
	if err := put(t.bucket(bucketJobRuns), jobRunKey(r.Name, r.StartedAt), r); err != nil {
		return fmt.Errorf("store: put run of %s: %w", r.Name, err)
	}
	return nil
}

// JobRuns implements engine.Tx.
func (t *tx) JobRuns(name string, limit int) ([]*engine.JobRun, error) {
	p := appendString(nil, name)
	c := t.bucket(bucketJobRuns).Cursor()
	k, v := seekLast(c, appendUint64(p[:len(p):len(p)], math.MaxUint64))
	rs, err := list[engine.JobRun](k, v, c.Prev, hasPrefix(p), limit)
	if err != nil {
		return nil, fmt.Errorf("store: runs of %s: %w", name, err)
	}
	return rs, nil
}

// appendOnlyFill is how full bbolt fills a page before it splits one,
// for a bucket whose keys only grow.
const appendOnlyFill = 1.0

// AppendEvent implements engine.Tx.
func (t *tx) AppendEvent(e *engine.Event) error {
	b := t.bucket(bucketEvents)
	t.writing()
	// Events only ever go after the last one, so a full page is never
	// written to again: bbolt's default split at half a page would leave
	// every leaf of the feed half empty, twice the pages to write and keep.
	b.FillPercent = appendOnlyFill
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("store: append event: %w", err)
	}
	e.Seq = seq
	if err := put(b, appendUint64(nil, seq), e); err != nil {
		return fmt.Errorf("store: append event %d: %w", seq, err)
	}
	return nil
}

// Events implements engine.Tx.
func (t *tx) Events(after uint64, limit int) ([]*engine.Event, error) {
	c := t.bucket(bucketEvents).Cursor()
	start := appendUint64(nil, after)
	k, v := c.Seek(start)
	if bytes.Equal(k, start) {
		k, v = c.Next()
	}
	es, err := list[engine.Event](k, v, c.Next, all, limit)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return es, nil
}

// Setting implements engine.Tx. A file opened read-only may predate the
// settings bucket: then nothing is set.
func (t *tx) Setting(name string) ([]byte, error) {
	b := t.bucket(bucketSettings)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return nil, nil
	}
	return bytes.Clone(v), nil
}

// PutSetting implements engine.Tx.
func (t *tx) PutSetting(name string, value []byte) error {
	if name == "" {
		return fmt.Errorf("store: put setting: empty name")
	}
	if value == nil {
		value = []byte{}
	}
	t.writing()
	if err := t.bucket(bucketSettings).Put([]byte(name), value); err != nil {
		return fmt.Errorf("store: put setting %q: %w", name, err)
	}
	return nil
}

// TakeLease implements engine.Tx, on the wall clock: a bbolt file has one
// process, so only its own goroutines share its leases.
func (t *tx) TakeLease(name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, fmt.Errorf("store: take lease: empty name or holder")
	}
	b := t.bucket(bucketLeases)
	now := time.Now()
	if v := b.Get([]byte(name)); len(v) >= 8 {
		until := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		if string(v[8:]) != holder && now.Before(until) {
			return false, nil
		}
	}
	t.writing()
	v := append(binary.BigEndian.AppendUint64(nil, uint64(now.Add(ttl).UnixNano())), holder...)
	if err := b.Put([]byte(name), v); err != nil {
		return false, fmt.Errorf("store: take lease %q: %w", name, err)
	}
	return true, nil
}

// ReleaseLease implements engine.Tx.
func (t *tx) ReleaseLease(name, holder string) error {
	b := t.bucket(bucketLeases)
	if v := b.Get([]byte(name)); len(v) < 8 || string(v[8:]) != holder {
		return nil
	}
	t.writing()
	if err := b.Delete([]byte(name)); err != nil {
		return fmt.Errorf("store: release lease %q: %w", name, err)
	}
	return nil
}
