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

// The shortcuts of the purchase path (engine.LotBalancer and
// engine.MetricSummer): what they read is kept up to date by PutLot and
// AddMetric in the same transaction as the records, and Check verifies it.
var (
	_ engine.LotBalancer  = (*tx)(nil)
	_ engine.MetricSummer = (*tx)(nil)
)

// openLotV1 starts a lots_open value: the lot's Remaining, AvailableAt and
// ExpiresAt, so a balance reads the index alone.
const openLotV1 = 1

func openLotValue(l *engine.Lot) []byte {
	b := make([]byte, 1, 32)
	b[0] = openLotV1
	b = binary.AppendVarint(b, l.Remaining)
	b = appendInstant(b, l.AvailableAt)
	return appendInstant(b, l.ExpiresAt)
}

// appendInstant appends t as Unix seconds and nanoseconds, exactly, unlike
// a time key which clamps to 1970–2262.
func appendInstant(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

var errBadOpenLot = errors.New("malformed lots_open value")

func readInstant(v []byte) (time.Time, []byte, error) {
	sec, n := binary.Varint(v)
	if n <= 0 {
		return time.Time{}, nil, errBadOpenLot
	}
	nsec, m := binary.Uvarint(v[n:])
	if m <= 0 || nsec >= 1e9 {
		return time.Time{}, nil, errBadOpenLot
	}
	return time.Unix(sec, int64(nsec)).UTC(), v[n+m:], nil
}

func parseOpenLotValue(v []byte) (engine.LotBalance, error) {
	var lb engine.LotBalance
	if len(v) == 0 || v[0] != openLotV1 {
		return lb, errBadOpenLot
	}
	r, n := binary.Varint(v[1:])
	if n <= 0 {
		return lb, errBadOpenLot
	}
	lb.Remaining = r
	var err error
	rest := v[1+n:]
	if lb.AvailableAt, rest, err = readInstant(rest); err != nil {
		return lb, err
	}
	if lb.ExpiresAt, rest, err = readInstant(rest); err != nil {
		return lb, err
	}
	if len(rest) > 0 {
		return lb, errBadOpenLot
	}
	return lb, nil
}

// reindexOpen moves l's lots_open entry from where old had it and writes
// its value, unless it already holds that value.
func reindexOpen(b *bolt.Bucket, old, l *engine.Lot) error {
	var from []byte
	if old != nil {
		from = openLotKey(old)
	}
	to := openLotKey(l)
	if from != nil && !bytes.Equal(from, to) {
		if err := b.Delete(from); err != nil {
			return err
		}
	}
	if to == nil {
		return nil
	}
	return putIfChanged(b, to, openLotValue(l))
}

// OpenLotBalances implements engine.LotBalancer.
func (t *tx) OpenLotBalances(memberID string) ([]engine.LotBalance, error) {
	p := memberSection(memberID, sectionOpen, 0)
	var out []engine.LotBalance
	c := t.bucket(bucketMemberData).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		lb, err := parseOpenLotValue(v)
		if err != nil {
			return nil, fmt.Errorf("store: open lots of %s: entry %x: %w", memberID, k, err)
		}
		out = append(out, lb)
	}
	return out, nil
}

// metricSum is the running sum of a member's metric entries from From (a
// time key) on, stored in the member's sum section, after the history.
// Latest is at least the time key of every entry it counts, so a sum up to
// a later time needs no correction.
type metricSum struct {
	From   uint64
	Latest uint64
	Sum    engine.MetricEntry
}

var errMetricSum = errors.New("metric sum does not fit in 64 bits")

// addMetric adds (sign 1) or takes away (sign -1) e from s, refusing a sum
// that would wrap: a stored sum must never mislead a tier decision.
func addMetric(s *engine.MetricEntry, e engine.MetricEntry, sign int64) error {
	spend, ok1 := addSigned(s.Spend, e.Spend, sign)
	points, ok2 := addSigned(s.Points, e.Points, sign)
	visits, ok3 := addSigned(s.Visits, e.Visits, sign)
	if !ok1 || !ok2 || !ok3 {
		return errMetricSum
	}
	s.Spend, s.Points, s.Visits = spend, points, visits
	return nil
}

func addSigned(a, b, sign int64) (int64, bool) {
	if sign < 0 {
		if b == math.MinInt64 {
			return 0, false
		}
		b = -b
	}
	sum := a + b
	return sum, (sum > a) == (b > 0)
}

// metricRange adds up the member's entries, in the history under p, with
// lo <= time key < hi (hi 0: no end) and returns the largest time key seen.
func metricRange(c *bolt.Cursor, p []byte, lo, hi uint64) (engine.MetricEntry, uint64, error) {
	var sum engine.MetricEntry
	var latest uint64
	for k, v := c.Seek(appendUint64(p[:len(p):len(p)], lo)); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		kind := historyKind(k, p)
		if kind == 0 {
			continue
		}
		at := historyTime(k, p)
		if hi != 0 && at >= hi {
			break
		}
		if kind != historyMetric {
			continue
		}
		var e engine.MetricEntry
		if err := decode(v, &e); err != nil {
			return sum, 0, fmt.Errorf("key %x: %w", k, err)
		}
		if err := addMetric(&sum, e, 1); err != nil {
			return sum, 0, fmt.Errorf("key %x: %w", k, err)
		}
		latest = at
	}
	return sum, latest, nil
}

// MetricSum implements engine.MetricSummer. A write transaction moves the
// stored sum's start up to from, reading only the entries that left the
// window since it last moved; without a stored sum, or for a window that
// starts before it, it reads the entries from from on and, when writing,
// stores the sum they make.
func (t *tx) MetricSum(memberID string, from, to time.Time) (engine.MetricEntry, error) {
	b := t.bucket(bucketMemberData)
	sk, p := memberSection(memberID, sectionSum, 0), memberSection(memberID, sectionHistory, 0)
	lo, hi := timeKey(from), timeKey(to)
	s, err := get[metricSum](b, sk)
	if err != nil {
		return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
	}
	c := b.Cursor()
	if s == nil || lo < s.From {
		all, latest, err := metricRange(c, p, lo, 0)
		if err != nil {
			return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
		}
		if t.tx.Writable() {
			t.writing()
			if err := put(b, sk, &metricSum{From: lo, Latest: latest, Sum: all}); err != nil {
				return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
			}
		}
		s = &metricSum{From: lo, Latest: latest, Sum: all}
	} else if lo > s.From {
		left, _, err := metricRange(c, p, s.From, lo)
		if err != nil {
			return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
		}
		if err := addMetric(&s.Sum, left, -1); err != nil {
			return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
		}
		s.From = lo
		if t.tx.Writable() {
			t.writing()
			if err := put(b, sk, s); err != nil {
				return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
			}
		}
	}
	out := s.Sum
	if s.Latest > hi {
		later, _, err := metricRange(c, p, hi+1, 0)
		if err != nil {
			return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
		}
		if err := addMetric(&out, later, -1); err != nil {
			return engine.MetricEntry{}, fmt.Errorf("store: metric sum of %s: %w", memberID, err)
		}
	}
	return out, nil
}

// countMetric adds e to the member's stored sum, if there is one and e
// falls in it.
func (t *tx) countMetric(b *bolt.Bucket, memberID string, e engine.MetricEntry) error {
	sk := memberSection(memberID, sectionSum, 0)
	s, err := get[metricSum](b, sk)
	if err != nil || s == nil {
		return err
	}
	at := timeKey(e.At)
	if at < s.From {
		return nil
	}
	if err := addMetric(&s.Sum, e, 1); err != nil {
		return err
	}
	s.Latest = max(s.Latest, at)
	return put(b, sk, s)
}
