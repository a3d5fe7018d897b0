package store

import (
	"bytes"
	"encoding/binary"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// Bucket names; doc.go describes what each holds.
var (
	bucketMeta         = []byte("meta")
	bucketMembers      = []byte("members")
	bucketByExternalID = []byte("members_by_external_id")
	bucketByEmail      = []byte("members_by_email")
	bucketByPhone      = []byte("members_by_phone")
	bucketPurchases    = []byte("purchases")
	bucketPurchaseTime = []byte("purchases_by_time")
	bucketRefunds      = []byte("refunds")
	bucketRedemptions  = []byte("redemptions")
	bucketAdjustments  = []byte("adjustments")
	bucketMemberData   = []byte("member_data")
	bucketExpiry       = []byte("expiry")
	bucketRuleUses     = []byte("rule_uses")
	bucketMarkers      = []byte("markers")
	bucketRules        = []byte("rules")
	bucketJobRuns      = []byte("job_runs")
	bucketEvents       = []byte("events")
	bucketAnalytics    = []byte("analytics_summaries")
	bucketSettings     = []byte("settings")
	bucketLeases       = []byte("leases")

	bucketCoupons         = []byte("coupons")
	bucketCouponsByID     = []byte("coupons_by_id")
	bucketCouponsByMember = []byte("coupons_by_member")
	bucketCouponsDue      = []byte("coupons_due")
	bucketRewardCounts    = []byte("reward_counts")

	bucketWebhooks          = []byte("webhooks")
	bucketDeliveries        = []byte("deliveries")
	bucketDeliveriesPending = []byte("deliveries_pending")
	bucketTransfers         = []byte("transfers")
)

var allBuckets = [][]byte{
	bucketMeta, bucketMembers, bucketByExternalID, bucketByEmail, bucketByPhone,
	bucketPurchases, bucketPurchaseTime, bucketRefunds, bucketRedemptions,
	bucketAdjustments, bucketMemberData, bucketExpiry, bucketRuleUses,
	bucketMarkers, bucketRules, bucketJobRuns, bucketEvents, bucketAnalytics,
	bucketSettings, bucketLeases, bucketCoupons, bucketCouponsByID, bucketCouponsByMember,
	bucketCouponsDue, bucketRewardCounts, bucketWebhooks, bucketDeliveries, bucketDeliveriesPending, bucketTransfers,
}

// Sections of a member's data in member_data: the member key, then one of
// these bytes, then the rest of the record's key. A purchase adds a ledger
// entry, a lot and a metric entry to the member's history, all with time
// keys near the present, so they go in at the end of the history, next to
// the open lots, the metric sum and the account it also rewrites: one spot
// of the member's range, mostly one page, however long the member's past.
const (
	sectionHistory = 'h'
	sectionOpen    = 'o'
	sectionSum     = 's'
	sectionAccount = 'z'
)

// Kinds of history record, after the record's time key.
const (
	historyLedger = 'e'
	historyLot    = 'l'
	historyMetric = 'm'
)

// memberSection is the prefix of a member's records of one section.
func memberSection(memberID string, section byte, room int) []byte {
	return append(appendID(make([]byte, 0, uuidLen+1+room), memberID), section)
}

// sectionOf is memberSection for a member key already built.
func sectionOf(mk []byte, section byte, room int) []byte {
	return append(append(make([]byte, 0, len(mk)+1+room), mk...), section)
}

// historyKey is the start of a history record's key: the member's history
// prefix p, the time key and the kind.
func historyKey(p []byte, at uint64, kind byte, room int) []byte {
	k := append(make([]byte, 0, len(p)+9+room), p...)
	return append(appendUint64(k, at), kind)
}

// historyEnd sorts after every history record under the prefix p.
func historyEnd(p []byte) []byte {
	return append(append(make([]byte, 0, len(p)+9), p...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

// historyKind is the kind of the history record k under the prefix p, or 0
// if k is not one.
func historyKind(k, p []byte) byte {
	if len(k) <= len(p)+8 {
		return 0
	}
	return k[len(p)+8]
}

// historyTime is the time key of the history record k under the prefix p.
func historyTime(k, p []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(p):])
}

// ledgerSeqOf is the seq of k, a ledger record under the prefix p; ok is
// false for any other key.
func ledgerSeqOf(k, p []byte) (seq uint64, ok bool) {
	if len(k) != len(p)+17 || k[len(p)+8] != historyLedger {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(p)+9:]), true
}

// unique describes one unique member index.
type unique struct {
	field  string // engine.Key* and the Field of a conflict error
	bucket []byte
	value  func(*engine.Member) string
}

var uniques = []unique{
	{engine.KeyExternalID, bucketByExternalID, func(m *engine.Member) string { return m.ExternalID }},
	{engine.KeyEmail, bucketByEmail, func(m *engine.Member) string { return m.Email }},
	{engine.KeyPhone, bucketByPhone, func(m *engine.Member) string { return m.Phone }},
}

// uuidLen is the length of a member key made from a UUID id.
const uuidLen = 16

// neverExpires stands for a zero ExpiresAt in lots_open, after every real time.
const neverExpires = math.MaxUint64

var (
	unixEpoch = time.Unix(0, 0)
	lastNano  = time.Unix(0, math.MaxInt64)
)

// timeKey maps t to a sortable integer. UnixNano is undefined outside
// 1678–2262, so times outside 1970–2262 are clamped rather than wrapped.
func timeKey(t time.Time) uint64 {
	switch {
	case t.Before(unixEpoch):
		return 0
	case t.After(lastNano):
		return math.MaxInt64
	default:
		return uint64(t.UnixNano())
	}
}

func appendUint64(dst []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, n)
}

func appendTime(dst []byte, t time.Time) []byte {
	return appendUint64(dst, timeKey(t))
}

// appendString appends s with a 2-byte length. A longer s makes a key past
// bbolt's MaxKeySize, which Put refuses, so the truncated length is harmless.
func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendID appends the key form of a member's or a lot's id (see doc.go).
func appendID(dst []byte, id string) []byte {
	if u, ok := parseUUID(id); ok {
		return append(dst, u[:]...)
	}
	return appendString(dst, id)
}

func memberKey(id string) []byte {
	return appendID(make([]byte, 0, uuidLen), id)
}

// uuidHex is where each byte's two hex digits start in a canonical UUID.
var uuidHex = [uuidLen]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// parseUUID accepts only the canonical lower-case form: a looser parse would
// give two different id strings the same key.
func parseUUID(s string) (u [uuidLen]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	for i, x := range uuidHex {
		hi, ok1 := lowerHex(s[x])
		lo, ok2 := lowerHex(s[x+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[i] = hi<<4 | lo
	}
	return u, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	default:
		return 0, false
	}
}

func idKey(id string) []byte { return []byte(id) }

func purchaseTimeKey(p *engine.Purchase) []byte {
	return append(appendTime(make([]byte, 0, 8+len(p.ID)), p.OccurredAt), p.ID...)
}

// ledgerKey is the key of a member's ledger entry seq whose time key is
// at: the larger of the entry's time and the time key of the entry before,
// so that the history holds the ledger in seq order (AppendLedger).
func ledgerKey(p []byte, at, seq uint64) []byte {
	return appendUint64(historyKey(p, at, historyLedger, 8), seq)
}

func lotKey(memberID, lotID string) []byte {
	return lotKeyIn(memberSection(memberID, sectionHistory, 0), lotID)
}

// lotKeyIn is a lot's key under the member's history prefix p. Its time
// key comes from the id alone, so the id finds the lot: the instant a
// time-ordered id (UUID version 7, as the engine mints them) was made, and
// 0, the start of the history, for any other id.
func lotKeyIn(p []byte, lotID string) []byte {
	return appendID(historyKey(p, lotTime(lotID), historyLot, uuidLen), lotID)
}

// lotTime is the time key of a lot id (lotKeyIn).
func lotTime(lotID string) uint64 {
	u, ok := parseUUID(lotID)
	if !ok || u[6]>>4 != 7 {
		return 0
	}
	ms := uint64(u[0])<<40 | uint64(u[1])<<32 | uint64(u[2])<<24 | uint64(u[3])<<16 | uint64(u[4])<<8 | uint64(u[5])
	if ms > math.MaxInt64/1_000_000 {
		return math.MaxInt64
	}
	return ms * 1_000_000
}

func metricKey(p []byte, at time.Time, n uint64) []byte {
	return appendUint64(historyKey(p, timeKey(at), historyMetric, 8), n)
}

// openLotKey is l's lots_open key, or nil if l is spent.
func openLotKey(l *engine.Lot) []byte {
	if l.Remaining <= 0 {
		return nil
	}
	exp := uint64(neverExpires)
	if !l.ExpiresAt.IsZero() {
		exp = timeKey(l.ExpiresAt)
	}
	k := appendUint64(memberSection(l.MemberID, sectionOpen, 8+len(l.ID)), exp)
	return append(k, l.ID...)
}

// expiryKey is l's expiry key, or nil if l is spent or never expires.
func expiryKey(l *engine.Lot) []byte {
	if l.Remaining <= 0 || l.ExpiresAt.IsZero() {
		return nil
	}
	return expiryPosition(l)
}

// expiryPosition is where l sorts in the expiry index, whether it is there
// or not: a lot the expiry job has just spent still marks its place. After
// the time comes l's key in member_data, so the entry leads to it.
func expiryPosition(l *engine.Lot) []byte {
	return append(appendTime(make([]byte, 0, 8+uuidLen+10+2+len(l.ID)), l.ExpiresAt), lotKey(l.MemberID, l.ID)...)
}

func ruleUseKey(memberID, rule, period string) []byte {
	k := appendID(make([]byte, 0, uuidLen+4+len(rule)+len(period)), memberID)
	return appendString(appendString(k, rule), period)
}

func rulesKey(version int) []byte {
	return appendUint64(nil, uint64(version))
}

func jobRunKey(name string, startedAt time.Time) []byte {
	return appendTime(appendString(make([]byte, 0, 10+len(name)), name), startedAt)
}

// seekLast moves c to the last key <= max and returns it.
func seekLast(c *bolt.Cursor, max []byte) ([]byte, []byte) {
	k, v := c.Seek(max)
	switch {
	case k == nil:
		return c.Last()
	case bytes.Equal(k, max):
		return k, v
	default:
		return c.Prev()
	}
}

// has tells whether key is in b. It does not use Get, whose answer for a key
// with an empty value is nil or not depending on where the value lives.
func has(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return k != nil && bytes.Equal(k, key)
}
