package engine

import (
	"context"
	"time"
)

// Store keeps the engine's records. Implementations decide nothing: every
// policy lives in the Engine. Two implement it, store (bbolt) and
// store/postgres, and both pass the conformance suite in store/storetest,
// which tests each promise below.
//
// Isolation: fn sees one consistent snapshot, no change it makes is lost,
// and commands that touch the same member are serialised. If another
// Update committed, after fn's snapshot, a change to a record fn writes
// (or a key fn inserts), fn runs again on the new state. bbolt gets all of
// this by running Updates one after another (sharing commits). PostgreSQL
// runs them side by side at REPEATABLE READ (snapshot isolation) and locks
// a member's row the first time an Update reads that member or its
// records, so a second Update of the member waits for the first to commit
// and runs again. What fn reads but does not write, beyond the members it
// touches, may have changed by the time it commits: a command that decides
// on a record (a purchase id's absence, a marker, the latest rules
// version) writes that record, so that a concurrent change shows as a
// conflict.
//
// Retries: fn may run more than once (bbolt reruns a batch without a
// failed function; PostgreSQL reruns on SQLSTATE 40001 and 40P01, on a
// unique key a concurrent writer took first, and when the connection died
// before COMMIT), so it must depend on nothing but the transaction and
// values captured before, and change nothing outside it. When fn returns
// an error, Update returns that error and none of fn's writes are kept.
//
// Context: View and Update take the caller's context (a request's, a
// job's). A store may stop waiting (for a lock, a connection, its turn in
// a group commit) once ctx is done and return its error; fn itself checks
// ctx only if it loops. An Update whose ctx ends may still have committed
// (the commit was under way): callers keep the idempotency rules that make
// a retry safe.
//
// Time: stamps are UTC and keep at least microseconds. bbolt keeps
// nanoseconds; PostgreSQL keeps microseconds and drops the rest. So that a
// value reads back equal from either store, every stamp the engine stores
// is truncated to microseconds: Engine.Now and the request parsers
// truncate. Query bounds may be finer: they compare with stored stamps as
// the exact values would. The zero time means unset (a lot's ExpiresAt:
// never) and reads back as the zero time.
//
// Members before: records that belong to a member (ledger entries, lots,
// metric entries, rule uses, purchases, refunds, redemptions, adjustments,
// coupons)
// are written after that member exists: committed before, or written
// earlier in the same transaction (a refund likewise after its purchase).
// PostgreSQL checks it with foreign keys at each statement (CockroachDB has
// no deferred constraints); bbolt does not check.
//
// Events: the feed never hands out a cursor past an event that is not yet
// visible. Seqs are increasing, and an event with a smaller seq is never
// made visible after one with a larger seq; a consumer that polls
// Events(cursor) with the last seq it saw thus sees every event once. The
// events of one transaction keep the order they were appended in. A store
// may number events after their transaction commits, so event writers need
// not wait for each other: bbolt numbers them in its single writer;
// PostgreSQL stores them unnumbered and a sequencer gives the committed
// ones the next seqs in a short transaction of its own, run by the first
// read of the feed and by a background pass (store/postgres/doc.go), so an
// event that commits late is numbered after those already handed out.
// Every event committed before an Events call began is listed by it when
// that call is the first of its transaction. fn must not rely on Event.Seq
// (it may still be 0 when Update returns) nor read its own events back.
type Store interface {
	// View runs fn in a read-only snapshot that never blocks writers;
	// writes in it fail.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction (see above on isolation).
	// Concurrent calls may share one commit (group commit) or run side by
	// side and be run again on conflict, so fn may run more than once and
	// must depend on nothing but the transaction and values captured
	// before.
	//
	// On a store with group commit (bbolt), a fn that fails before its
	// first write costs the others nothing: it is answered with its error
	// and they commit as if it had not run. A fn that fails after writing
	// makes the shared transaction roll back and every other fn of it run
	// again, which under load costs a whole commit's work. So write
	// functions make every refusal (not found, blocked, too few points,
	// over a limit) before they write.
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Unique member keys, each backed by an index.
const (
	KeyExternalID = "external_id"
	KeyEmail      = "email"
	KeyPhone      = "phone"
)

// Tx is one transaction. Lookups return (nil, nil) when a record does not
// exist; the engine decides whether that is an error. Returned records are
// copies the caller owns. A transaction reads its own writes. Put methods
// replace the whole record. List methods treat a limit <= 0 as no limit;
// ids order byte by byte.
type Tx interface {
	Member(id string) (*Member, error)
	// MemberByKey finds a member by a unique key (KeyExternalID, KeyEmail,
	// KeyPhone).
	MemberByKey(key, value string) (*Member, error)
	// PutMember writes a member and keeps the unique indexes in step with
	// it. A value held by another member is an *Error with code ECONFLICT
	// and Field set to the key.
	PutMember(m *Member) error
	// Members lists members in id order, starting after the id given ("" for
	// the first), at most limit.
	Members(after string, limit int) ([]*Member, error)

	Purchase(id string) (*Purchase, error)
	PutPurchase(p *Purchase) error
	// PurchasesBetween lists purchases with from <= OccurredAt < to, in
	// OccurredAt order, at most limit (0: no limit).
	PurchasesBetween(from, to time.Time, limit int) ([]*Purchase, error)

	Refund(id string) (*Refund, error)
	PutRefund(r *Refund) error
	Redemption(id string) (*Redemption, error)
	PutRedemption(r *Redemption) error
	Adjustment(id string) (*Adjustment, error)
	PutAdjustment(a *Adjustment) error

	// AppendLedger adds an entry under (MemberID, Seq). The Seq must be
	// after every Seq the member has (the engine appends LedgerSeq+1), so a
	// store may keep the ledger in the order it is appended.
	AppendLedger(e *LedgerEntry) error
	// Ledger lists a member's entries newest first, with Seq < before (0:
	// from the newest), at most limit (0: all).
	Ledger(memberID string, before uint64, limit int) ([]*LedgerEntry, error)

	// PutLot writes a lot and keeps the expiry index in step: a lot is in
	// the index exactly while it has Remaining > 0 and a non-zero ExpiresAt.
	PutLot(l *Lot) error
	Lot(memberID, lotID string) (*Lot, error)
	// OpenLots lists a member's lots with Remaining > 0, soonest ExpiresAt
	// first and lots that never expire last.
	OpenLots(memberID string) ([]*Lot, error)
	// Lots lists all of a member's lots, spent or not, in no set order.
	Lots(memberID string) ([]*Lot, error)
	// DueLots lists lots from the expiry index with ExpiresAt <= until, in
	// index order (ExpiresAt, member, lot), starting after the index entry
	// of the lot given (nil: from the start), at most limit.
	DueLots(until time.Time, after *Lot, limit int) ([]*Lot, error)

	// AddMetric records a tier-metric contribution for a member.
	AddMetric(memberID string, e MetricEntry) error
	// Metrics lists a member's metric entries with At >= since, in At order.
	Metrics(memberID string, since time.Time) ([]MetricEntry, error)

	// RuleUses counts a member's uses of a rule within a period key (such as
	// "all", "d2026-11-23", "m2026-11", "y2026").
	RuleUses(memberID, rule, period string) (int64, error)
	AddRuleUse(memberID, rule, period string, delta int64) error

	// Marked tells whether a one-time marker (birthday bonus of a year, an
	// expiry notice…) was set; Mark sets it.
	Marked(key string) (bool, error)
	Mark(key string) error

	PutRules(v *RulesVersion) error
	RulesVersion(n int) (*RulesVersion, error)
	// RulesVersions lists every version, oldest first.
	RulesVersions() ([]*RulesVersion, error)
	LatestRules() (*RulesVersion, error)

	// PutAnalyticsSummary stores the summary of an analytics run under its
	// ComputedAt; LatestAnalyticsSummary returns the newest, or nil.
	PutAnalyticsSummary(s *AnalyticsSummary) error
	LatestAnalyticsSummary() (*AnalyticsSummary, error)

	PutJobRun(r *JobRun) error
	// JobRuns lists a job's runs newest first, at most limit.
	JobRuns(name string, limit int) ([]*JobRun, error)

	// Setting returns the value stored under name, or nil when none is;
	// PutSetting stores one, replacing any. Settings are small values the
	// engine keeps for itself across restarts (the test clock's offset,
	// the latest time a write was stamped with, server secrets); the store
	// treats them as opaque bytes.
	Setting(name string) ([]byte, error)
	PutSetting(name string, value []byte) error

	// TakeLease takes or renews the lease called name for holder, for ttl
	// from now, and tells whether holder has it: it does when the lease is
	// free, expired, or already holder's. Leases let one of several
	// servers on one database do a thing at a time (run the scheduled
	// jobs, deliver webhooks); a holder that dies loses its lease when the
	// ttl runs out. "Now" is the store's clock (on PostgreSQL the
	// database's), so servers whose clocks differ agree on expiry.
	TakeLease(name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up holder's lease called name; a lease held by
	// another is left alone.
	ReleaseLease(name, holder string) error

	// Coupon returns the coupon whose canonical code is code.
	Coupon(code string) (*Coupon, error)
	// CouponByID returns the coupon issued by the request or bonus id.
	CouponByID(id string) (*Coupon, error)
	// PutCoupon writes a coupon and keeps its indexes in step: by id
	// (an id another code holds is an error), by member (a coupon given
	// another MemberID moves), and by expiry exactly while Status is
	// CouponIssued.
	PutCoupon(c *Coupon) error
	// MemberCoupons lists a member's coupons in (IssuedAt, Code) order.
	MemberCoupons(memberID string) ([]*Coupon, error)
	// DueCoupons lists issued coupons with ExpiresAt <= until, in
	// (ExpiresAt, Code) order, starting after the place of the coupon
	// given (nil: from the start), at most limit.
	DueCoupons(until time.Time, after *Coupon, limit int) ([]*Coupon, error)
	// RewardCount returns a reward's counts; PutRewardCount replaces them;
	// RewardCounts lists every reward's, by name.
	RewardCount(reward string) (*RewardCount, error)
	PutRewardCount(c *RewardCount) error
	RewardCounts() ([]*RewardCount, error)

	// Transfer returns the transfer recorded under a client id;
	// PutTransfer records one.
	Transfer(id string) (*Transfer, error)
	PutTransfer(t *Transfer) error

	// MemberEvents lists the stored events about a member (Event.MemberID),
	// committed ones in feed order and those not yet numbered after them,
	// so that erasure can rewrite what they carry.
	MemberEvents(memberID string) ([]*Event, error)
	// RewriteEvent replaces the payload (and legacy notice) of the stored
	// event with e's ID, or, for an event stored without one, e's Seq; its
	// place in the feed, type, member and time stay.
	RewriteEvent(e *Event) error

	// AppendEvent stores an event. The feed numbers it, at the latest
	// for the first Events call of a transaction after the commit (see
	// Store on the order of seqs).
	AppendEvent(e *Event) error
	// Events lists events with Seq > after, oldest first, at most limit.
	// The first call of a transaction lists every event committed before
	// it began.
	Events(after uint64, limit int) ([]*Event, error)
	// DeleteEvents deletes the events with Seq <= upTo, at most limit of
	// them, oldest first, with every delivery of them, and returns how
	// many events it deleted. Seqs are never given again.
	DeleteEvents(upTo uint64, limit int) (int, error)

	// PutWebhook writes a webhook endpoint; Webhook reads one; Webhooks
	// lists them all in id order; DeleteWebhook deletes one with its
	// deliveries.
	PutWebhook(w *Webhook) error
	Webhook(id string) (*Webhook, error)
	Webhooks() ([]*Webhook, error)
	DeleteWebhook(id string) error
	// PutDelivery writes the delivery of event Seq to WebhookID, whose
	// webhook exists.
	PutDelivery(d *Delivery) error
	Delivery(webhookID string, seq uint64) (*Delivery, error)
	// Deliveries lists a webhook's deliveries with Seq > after, in Seq
	// order, of status ("" for any), at most limit. Listing the pending
	// ones costs what there are of them, however many others there are.
	Deliveries(webhookID, status string, after uint64, limit int) ([]*Delivery, error)
}
