// Package store keeps the engine's records in a bbolt file. It implements
// engine.Store and decides nothing: every policy lives in the engine.
//
// # Buckets
//
// Keys are built so that bbolt's byte order is the order the engine reads
// in. "|" below is plain concatenation, not a separator byte.
//
//	meta                    "schema" → schema version (8 bytes)
//	members                 member → Member
//	members_by_external_id  external id → member (unique)
//	members_by_email        email → member (unique)
//	members_by_phone        phone → member (unique)
//	purchases               id → Purchase
//	purchases_by_time       occurredAt|id → nil
//	refunds                 id → Refund
//	redemptions             id → Redemption
//	adjustments             id → Adjustment
//	ledger                  member|seq → LedgerEntry
//	lots                    member|lotID → Lot
//	lots_open               member|expiresAt|lotID → nil, while Remaining > 0
//	expiry                  expiresAt|member|lotID → nil, while Remaining > 0
//	                        and ExpiresAt is set
//	metrics                 member|at|n → MetricEntry
//	rule_uses               member|rule|period → count (8 bytes)
//	markers                 key → nil
//	rules                   version → RulesVersion
//	job_runs                name|startedAt → JobRun
//	events                  seq → Event
//
// # Key parts
//
//   - member: the 16 bytes of the id when it is a UUID in canonical lower-case
//     form (as the engine makes them), so members sort in id order; any other
//     id is stored as a 2-byte big-endian length and its bytes. The length
//     keeps such keys from being prefixes of each other. The two forms can
//     only be confused by an id crafted to spell another member's UUID bytes,
//     which ids made by the engine never are.
//   - times (occurredAt, expiresAt, at, startedAt): unix nanoseconds as a
//     big-endian uint64; times before 1970 count as 0 and times past 2262 as
//     the largest int64. In lots_open a lot that never expires has the
//     largest uint64, so it sorts after every lot that does.
//   - seq, n, version: big-endian uint64; event seqs and metric n come from
//     the bucket's sequence.
//   - rule, period, name: a 2-byte big-endian length and the bytes, so that a
//     name is never a prefix of another.
//   - id, lotID, unique values, marker keys: the raw bytes, always last.
//
// Empty unique values (no email, say) are not indexed. Index entries name the
// member by its member key, so following one back costs a single Get.
//
// # Values
//
// Records are encoded by codec.go: a version byte, then the record's JSON.
// Counters and the schema version are plain 8-byte big-endian integers.
//
// # Transactions
//
// Update goes through bbolt's Batch: concurrent writes share one commit and
// one fsync, and a function may run more than once. A function that fails
// makes its batch roll back and run again without it, so its writes are
// never seen. List methods treat a limit <= 0 as no limit.
package store
