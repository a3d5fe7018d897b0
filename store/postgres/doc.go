// Package postgres keeps the engine's records in PostgreSQL. It implements
// engine.Store, passes store/storetest like the bbolt store, and decides
// nothing: every policy lives in the engine.
//
// # Schema
//
// migrations/ holds the schema as numbered SQL files, applied in order at
// Open (or by loyalty migrate) and recorded in loyalty_schema_migrations.
// They run under a lease row in loyalty_leases (a holder and an expiry)
// rather than an advisory lock, which CockroachDB and YugabyteDB lack; a
// holder that dies leaves a lease that others take once it expires.
// testdata/schema.golden pins the schema they build: a released migration
// is never edited, a change is a new file.
//
// Each record type has a table; money, points, balances, ids and times are
// columns (bigint, text in the "C" collation, timestamptz), and the parts
// of a record that only the engine reads back (a purchase's lines and
// answer, say) sit in a jsonb column beside them. A record with a detail
// column puts there every field that has no column of its own, so a field
// added to the engine's type is kept without a change here; the jsonb keys
// are the fields' keys in the stored format that bbolt pins
// (internal/storedname, store/testdata/format.golden), so a field renamed
// in Go keeps its data with the same store tag on both stores
// (storedjson.go). storetest round-trips a value of every record type with
// every field set, so a field a table lacks fails the suite. Unique member keys are
// partial unique indexes that skip empty values; client ids are primary
// keys; the records of a member name it by foreign key, checked at commit.
// The open and due lots are partial indexes on lots (remaining > 0), so the
// database keeps them in step with every write.
//
// # Transactions
//
// Update runs fn at REPEATABLE READ: one snapshot, taken by its first
// statement, and a serialization failure (40001) when it writes a row, or
// inserts a key, that another transaction changed after that snapshot, so
// no write is lost. Reading a member, or any record of a member (ledger,
// lots, metrics, rule uses), locks that member's row (FOR NO KEY UPDATE)
// the first time: a second Update of the member waits for the first to
// commit, then fails to lock the changed row and runs again, so commands
// of one member are serialised while those of different members run side
// by side. Within one process, Updates of one member first take turns in a
// queue (queue.go), so that under a burst on one member they do not all
// fail each time the lock changes hands; only other servers' collide. SERIALIZABLE was tried and dropped: its predicate locks cover
// index pages, so purchases of different members collided on the pages of
// the purchases they looked up (an absent id, then inserted beside the
// others) and most transactions failed at 64 tills (docs/SCALING.md).
//
// Update runs fn again, after a random backoff, when the database refuses
// to serialise it (40001), picks it as a deadlock victim (40P01), sees a
// key a concurrent writer took first (23505, at most a few times: a key
// that stays taken is fn's mistake), or loses the connection before COMMIT
// was sent (the server rolled back). A connection lost during COMMIT leaves
// the outcome unknown: Update returns the error, and the engine's
// idempotent client ids make the client's retry safe. View runs at
// REPEATABLE READ READ ONLY: one snapshot, no locks.
//
// Writes do not go to the server when they are made: they queue, and are
// sent in one round trip with the next read (which sees them) or with
// COMMIT. A purchase costs a round trip per read and one for its writes
// and commit. Within a round trip, members rows (locks and writes) go
// first, so two transactions of one member collide there before anything
// else.
//
// # Events
//
// A transaction stores its events with seq NULL, in one statement sent
// with its COMMIT, and touches no shared row: event writers commit side by
// side. A sequencer then numbers the events it finds committed: in one
// short REPEATABLE READ transaction it raises the single counter row of
// event_seq by their number and gives them the seqs it frees, in the order
// they were inserted. Two sequencers that see the same events both update
// the counter row, so the second waits for the first and then fails to
// serialise (40001) rather than number them again; sequencers thus commit
// one at a time, each numbering only events committed before it began, and
// a snapshot that shows seq N shows every smaller seq. A transaction that
// commits late simply has its events numbered by a later sequencer, after
// the seqs handed out meanwhile: the feed never hands out a cursor past an
// event that is not yet visible, because an event has no seq until it is.
//
// Who sequences: a reader of the feed, when Events is the first call of
// its transaction, runs a sequencer just before taking its snapshot (so a
// reader sees every event committed before it asked), and every store runs
// a background pass every 100 ms (Options.SequenceEvery) so seqs follow
// commits closely when nobody reads. A pass is one read of the small
// partial index events_unsequenced when nothing is pending, and gives up
// its turn when another server's sequencer holds the row, so servers need
// no lease for it: a lease would only save those reads, and a dead holder
// would leave the numbering to readers until it expired.
//
// Rejected: numbering as they commit from the counter row (the first
// version: a row lock taken just before COMMIT made event writers commit
// one at a time, one fsync each, and the losers of a race run again);
// sequences or SERIAL (a seq taken early commits after a larger one, and
// CockroachDB's are not ordered across nodes); PostgreSQL's transaction
// ids or commit timestamps (CockroachDB has neither); a high-water mark
// with a gap timeout (every rollback, common under retries, leaves a gap
// that stalls the feed until the timeout). The price of the sequencer is
// that each event row is written twice (inserted, then numbered) and gets
// its seq up to one pass after its commit; Event.Seq is not set by Update.
//
// # Times
//
// timestamptz keeps microseconds: a stamp loses its nanoseconds when
// written (engine/store.go asks the engine to truncate first). Query bounds
// keep theirs: they are rounded so that they compare with stored stamps as
// the exact values would. The zero time is stored as 0001-01-01 00:00:00Z,
// except a lot that never expires, whose expires_at is NULL.
package postgres
