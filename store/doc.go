// Package store keeps the engine's records in a bbolt file. It implements
// engine.Store and decides nothing: every policy lives in the engine.
//
// # Buckets
//
// Keys are built so that bbolt's byte order is the order the engine reads
// in. "|" below is plain concatenation, not a separator byte.
//
//	meta                    "schema" → schema version (8 bytes)
//	members                 member → Member, without its account (below)
//	members_by_external_id  external id → member (unique)
//	members_by_email        email → member (unique)
//	members_by_phone        phone → member (unique)
//	purchases               id → Purchase
//	purchases_by_time       occurredAt|id → nil
//	refunds                 id → Refund
//	redemptions             id → Redemption
//	adjustments             id → Adjustment
//	member_data             a member's account, ledger, lots and metrics,
//	                        side by side:
//	  account section       member|'a' → the Member fields that purchases,
//	                        refunds, redemptions and expiry change
//	                        (account.go)
//	  ledger section        member|'e'|seq → LedgerEntry
//	  lots section          member|'l'|lotID → Lot
//	  metrics section       member|'m' → running sum of the member's entries
//	                        member|'m'|at|n → MetricEntry
//	  lots_open section     member|'o'|expiresAt|lotID → remaining,
//	                        availableAt, expiresAt, while Remaining > 0
//	expiry                  expiresAt|member|'l'|lotID → nil, while
//	                        Remaining > 0 and ExpiresAt is set; after the
//	                        time comes the lot's key in member_data
//	rule_uses               member|rule|period → count (8 bytes)
//	markers                 key → nil
//	rules                   version → RulesVersion
//	job_runs                name|startedAt → JobRun
//	events                  seq → Event
//	analytics_summaries     computedAt → AnalyticsSummary
//	settings                name → the engine's bytes (engine.Tx.Setting)
//
// # Key parts
//
//   - member: the 16 bytes of the id when it is a UUID in canonical lower-case
//     form (as the engine makes them), so members sort in id order; any other
//     id is stored as a 2-byte big-endian length and its bytes. The length
//     keeps such keys from being prefixes of each other. The two forms can
//     only be confused by an id crafted to spell another member's UUID bytes,
//     which ids made by the engine never are.
//   - times (occurredAt, expiresAt, at, startedAt, computedAt): unix
//     nanoseconds as a big-endian uint64; times before 1970 count as 0 and
//     times past 2262 as the largest int64. In lots_open a lot that never
//     expires has the largest uint64, so it sorts after every lot that does.
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
// Records are encoded by codec.go: a version byte, then the record in the
// tagged binary form of codec_bin.go (version 2) or, as written before it
// and for types it cannot express, JSON (version 1); both are read.
// Counters and the schema version are plain 8-byte big-endian integers.
//
// # Locality
//
// A purchase writes a member's account, a ledger entry, a lot, its
// lots_open entry and a metric entry. In member_data these sit next to each
// other, usually in one page, so a commit of many purchases writes about
// one page per purchase there instead of one in each of five buckets;
// bbolt's cost per commit grows with the pages it writes, and on a disk
// that takes 10,000-28,000 random page writes a second they are what limits
// purchases (docs/PERFORMANCE.md). The members bucket changes only when a
// member's profile or tier does. Two derived values keep the
// purchase path from reading every lot and metric entry of the member
// (fastpath.go), and Check verifies both: a lots_open value holds the lot's
// remaining points and its available and expiry instants, and the record
// under member|'m' holds the sum of the member's metric entries from a time
// key on, moved forward as the tier window moves.
//
// Schema 1 kept ledger, lots, lots_open and metrics in buckets of their
// own, with JSON values and no derived values; a writable Open moves such a
// file to schema 2 in chunks (migrate.go), and a read-only Open refuses it.
// Schema 2 kept the whole member in members; schema 3 reads such a record
// as it is and splits it the next time the member is written, so a schema-2
// file is opened, read-only too, without a migration.
//
// # Transactions
//
// Update goes through the store's group commit (commit.go): the writes
// queued while one commit is written share the next commit and its fsync,
// and a function may run more than once. A function that fails after it
// wrote makes its batch roll back and run again without it, so its writes
// are never seen; one that fails before its first write (tx.go tracks
// them) leaves the batch going on without a rollback.
// List methods treat a limit <= 0 as no limit.
package store
