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
// answer, say) sit in a jsonb column beside them. Unique member keys are
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
// by side. SERIALIZABLE was tried and dropped: its predicate locks cover
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
// Event seqs come from the single row of event_seq. A transaction's events
// are stored by one statement sent with its COMMIT, which raises the
// counter and takes the seqs it frees. The row lock makes event writers
// commit one at a time, in seq order (a second writer fails to serialise
// and runs again), so a snapshot that shows an event
// shows every smaller seq: the feed never hands out a cursor past an event
// that is still to commit. A sequence would not do (a seq taken early can
// commit after a larger one), nor would PostgreSQL's transaction ids
// (CockroachDB has none). The cost is that event writers serialise on one
// row while they commit; today only the expiry notices write events, one
// transaction per job chunk.
//
// # Times
//
// timestamptz keeps microseconds: a stamp loses its nanoseconds when
// written (engine/store.go asks the engine to truncate first). Query bounds
// keep theirs: they are rounded so that they compare with stored stamps as
// the exact values would. The zero time is stored as 0001-01-01 00:00:00Z,
// except a lot that never expires, whose expires_at is NULL.
package postgres
