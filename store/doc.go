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
//	member_data             a member's history, open lots, metric sum and
//	                        account, side by side (keys.go):
//	  history section       member|'h'|at|kind|…, in time order:
//	                        member|'h'|at|'e'|seq → LedgerEntry
//	                        member|'h'|at|'l'|lotID → Lot
//	                        member|'h'|at|'m'|n → MetricEntry
//	  lots_open section     member|'o'|expiresAt|lotID → remaining,
//	                        availableAt, expiresAt, while Remaining > 0
//	  sum section           member|'s' → running sum of the member's
//	                        metric entries
//	  account section       member|'z' → the Member fields that purchases,
//	                        refunds, redemptions and expiry change
//	                        (account.go)
//	expiry                  expiresAt|lot key → nil, while Remaining > 0
//	                        and ExpiresAt is set; after the time comes the
//	                        lot's key in member_data
//	rule_uses               member|rule|period → count (8 bytes)
//	markers                 key → nil
//	rules                   version → RulesVersion
//	job_runs                name|startedAt → JobRun
//	events                  seq → Event
//	analytics_summaries     computedAt → AnalyticsSummary
//	settings                name → the engine's bytes (engine.Tx.Setting)
//	leases                  name → expiry (unix nanoseconds, 8 bytes) and
//	                        holder (engine.Tx.TakeLease)
//	coupons                 code → Coupon
//	coupons_by_id           id → code (unique)
//	coupons_by_member       member|issuedAt|code → code
//	coupons_due             expiresAt|code → nil, while the coupon is issued
//	webhooks                id → Webhook
//	deliveries              len|webhookID|seq → Delivery
//	deliveries_pending      len|webhookID|seq → nil, while the delivery is pending
//	reward_counts           reward name → RewardCount
//	transfers               id → Transfer
//
// # Key parts
//
//   - member: the 16 bytes of the id when it is a UUID in canonical lower-case
//     form (as the engine makes them), so members sort in id order; any other
//     id is stored as a 2-byte big-endian length and its bytes. The length
//     keeps such keys from being prefixes of each other. The two forms can
//     only be confused by an id crafted to spell another member's UUID bytes,
//     which ids made by the engine never are.
//   - at in the history: a ledger entry's time, or the time of the entry
//     before it if that is later, so the ledger is in seq order whatever
//     the clock did (AppendLedger refuses a seq that is not after the
//     last); a lot's is the instant its id was minted, read from the id
//     when it is a UUID of version 7 (as the engine mints them) and 0 for
//     any other id, so the id alone finds the lot; a metric entry's is its
//     At. Ledger pages by seq by bisecting these time keys.
//   - lotID in history keys: the 16 bytes of a canonical UUID, or a 2-byte
//     length and the bytes, like the member key; in lots_open, the raw
//     bytes.
//   - times (occurredAt, expiresAt, issuedAt, at, startedAt, computedAt): unix
//     nanoseconds as a big-endian uint64; times before 1970 count as 0 and
//     times past 2262 as the largest int64. In lots_open a lot that never
//     expires has the largest uint64, so it sorts after every lot that does.
//   - seq, n, version: big-endian uint64; event seqs and metric n come from
//     the bucket's sequence.
//   - rule, period, name: a 2-byte big-endian length and the bytes, so that a
//     name is never a prefix of another.
//   - id, code, reward name, unique values, marker keys: the raw bytes,
//     always last.
//
// Empty unique values (no email, say) are not indexed. Index entries name the
// member by its member key, so following one back costs a single Get.
//
// # Values
//
// Records are encoded by codec.go: a version byte, then the record in the
// tagged binary form of codec_bin.go (version 2). Files written before it
// hold JSON records (version 1), which stay until the record is next
// written; both are read, only version 2 is written, and a type the binary
// form cannot express is refused. Counters and the schema version are
// plain 8-byte big-endian integers.
//
// # The stored format
//
// A field is stored under its stored name, which is its Go name: the binary
// tag is a hash of it, and JSON records keyed the field by it (or by its
// json tag's name). Renaming a field of a stored type in Go would therefore
// leave that field of every existing record unread, at zero. A struct tag
// keeps the old stored name, and with it the data:
//
//	TotalSpend int64 `store:"name=LifetimeSpend"`
//
// and `store:"json=key"` keeps the JSON key when a json tag changes for the
// API. The stored types are engine.Member, Purchase, Refund, Redemption,
// Adjustment, LedgerEntry, Lot, MetricEntry, RulesVersion, JobRun, Event,
// AnalyticsSummary, Coupon, RewardCount and Transfer, every struct inside them (rules.RuleResult, the result
// types), and account and metricSum here. The engine and rules packages
// carry the tag as a plain string; they do not import this package.
//
// testdata/format.golden lists every stored type with each field's stored
// name, tag, wire kind, form, JSON key and Go field; the list of record
// types is derived from this package's source (every type whose values
// reach encode or decode). TestFormat fails when the code differs from the
// manifest and says what to do:
//
//   - a field added, or a type newly stored: go test ./store -run TestFormat
//     -update, and commit store/testdata;
//   - a field renamed: pin its old stored name as above;
//   - a field removed, or its type changed: the records on disk still hold
//     it in the old form; write a migration that converts them first.
//
// -update also adds, to testdata/records, a golden record of each type the
// code now writes in a new form: a record encoded from a value with every
// field set, its JSON form, and what it holds. TestGoldenRecords decodes
// all of them, the old ones too, and compares: a change that would misread
// existing databases fails there even when the manifest was rewritten.
// Golden records are never edited, and deleted only once a migration has
// converted every record of their form.
//
// # Locality
//
// A purchase writes a member's account, a ledger entry, a lot, its
// lots_open entry, a metric entry and the metric sum. The entry, the lot
// and the metric entry carry times near the present, so they go in at the
// end of the member's history, and the sections after it hold what the
// purchase rewrites: the open lots, the sum and the account. However long
// the member's past, the purchase writes one spot of member_data, usually
// one page, instead of one in each of five buckets or one in each of
// several sections; bbolt's cost per commit grows with the pages it
// writes, and on a disk that takes 10,000-28,000 random page writes a
// second they are what limits purchases (docs/PERFORMANCE.md). The members
// bucket changes only when a member's profile or tier does. Two derived
// values keep the purchase path from reading every lot and metric entry of
// the member (fastpath.go), and Check verifies both: a lots_open value
// holds the lot's remaining points and its available and expiry instants,
// and the record under member|'s' holds the sum of the member's metric
// entries from a time key on, moved forward as the tier window moves.
//
// Schema 1 kept ledger, lots, lots_open and metrics in buckets of their
// own, with JSON values and no derived values; a writable Open moves such a
// file to schema 2 in chunks (migrate.go). Schema 2 gathered them into
// member_data, a section per kind (member|'e'|seq, member|'l'|lotID,
// member|'m'|at|n and the sum at member|'m'), and kept the whole member in
// members; schema 3 added the account at member|'a' and splits a schema-2
// member the next time it is written, so a member record may still hold
// its account. A writable Open moves a schema-2 or -3 file to schema 4 in
// one pass over member_data and one over expiry, in chunks that survive a
// crash, after recording schema 4 so that an older program refuses the
// half-moved file (migrateV3); a read-only Open refuses a file of an older
// schema, or one part-way through its move, and says to open it for
// writing once. A file of each schema, written by the last version of
// it running the same café (testdata/legacy, made by testdata/legacy/gen),
// must open, verify clean and read every member as the old server
// answered (TestLegacyFiles, and cmd/loyalty's TestUpgradeKeepsAnswers
// over HTTP).
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
