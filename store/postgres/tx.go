package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

var _ engine.Tx = (*tx)(nil)

// tx is one transaction on one connection. Writes are not sent when they
// are made: they queue, and go to the server in one round trip with the
// next read (which must see them) or with COMMIT. A purchase thus costs a
// round trip per read it makes and one for all its writes. The price is
// that a write the server refuses fails the read or commit that carries
// it; the error names the write.
type tx struct {
	ctx      context.Context
	conn     *pgx.Conn
	write    bool
	begun    bool
	finished bool
	// committing is set once COMMIT is on its way: a connection lost after
	// that may or may not have committed.
	committing bool
	// err is the first failure of the transaction on the server; once set,
	// every call returns it and the transaction can only roll back.
	err   error
	queue []stmt
	// events wait for COMMIT, which stores them in one statement.
	events []*engine.Event
	// keys holds the unique keys of members as this transaction last read
	// or wrote them, so that PutMember looks for holders only when a key
	// changes.
	keys map[string]memberKeys
	// locked holds the members whose rows this transaction has locked.
	locked map[string]bool
	// absent holds purchase ids this transaction looked up and did not
	// find, which PutPurchase may then simply insert.
	absent map[string]bool
	// ahead is what a purchase's first round trip read of its member
	// for later (prefetch.go), or nil.
	ahead *readAhead
	// places are the Update's places in the member queues (queue.go), nil
	// in a View; holdsLocks is set once a statement that locks rows has
	// been sent.
	places     *places
	holdsLocks bool
}

type stmt struct {
	what string
	sql  string
	args []any
	// member marks a write of a members row; see batch.
	member bool
}

type memberKeys struct{ externalID, email, phone string }

var errReadOnly = errors.New("postgres: write in a read-only transaction (View)")

// exec queues a write. Not knowing what it changes, it drops what was
// read ahead (prefetch.go).
func (t *tx) exec(what, sql string, args ...any) error {
	t.ahead = nil
	return t.enqueue(stmt{what: what, sql: sql, args: args})
}

// execOther queues a write that changes neither lots nor metric entries,
// so keeps what was read ahead of them.
func (t *tx) execOther(what, sql string, args ...any) error {
	return t.enqueue(stmt{what: what, sql: sql, args: args})
}

func (t *tx) enqueue(s stmt) error {
	if t.err != nil {
		return t.err
	}
	if !t.write {
		return errReadOnly
	}
	t.queue = append(t.queue, s)
	return nil
}

// query sends the queued writes and then sql, in one round trip, and
// calls each for every row of sql's answer.
func (t *tx) query(what, sql string, args []any, each func(pgx.Rows) error) error {
	return t.queries(read{what, sql, args, each})
}

// read is one query of a round trip, and what to do with each row.
type read struct {
	what string
	sql  string
	args []any
	each func(pgx.Rows) error
}

// queries sends the queued writes and then the reads, in one round trip.
func (t *tx) queries(reads ...read) error {
	if t.err != nil {
		return t.err
	}
	b := t.batch()
	for _, r := range reads {
		b.Queue(r.sql, r.args...).Fn = func(br pgx.BatchResults) error {
			rows, err := br.Query()
			if err != nil {
				return fmt.Errorf("postgres: %s: %w", r.what, err)
			}
			defer rows.Close()
			for rows.Next() {
				if err := r.each(rows); err != nil {
					return fmt.Errorf("postgres: %s: %w", r.what, err)
				}
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("postgres: %s: %w", r.what, err)
			}
			return nil
		}
	}
	return t.send(b)
}

// batch starts a round trip: BEGIN the first time, then the queued writes.
func (t *tx) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if !t.begun {
		if t.write {
			b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ")
		} else {
			b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
		}
	}
	// Members rows (locks and writes) go first. Two transactions of one
	// member collide on that row before anything else: the later one fails
	// with a serialization failure and runs again, rather than tripping
	// over the earlier one's ledger entry with a duplicate key.
	for _, members := range []bool{true, false} {
		for _, s := range t.queue {
			if s.member != members {
				continue
			}
			b.Queue(s.sql, s.args...).Fn = func(br pgx.BatchResults) error {
				if _, err := br.Exec(); err != nil {
					return fmt.Errorf("postgres: %s: %w", s.what, err)
				}
				return nil
			}
		}
	}
	if len(t.queue) > 0 {
		t.holdsLocks = true
	}
	t.queue = t.queue[:0]
	return b
}

func (t *tx) send(b *pgx.Batch) error {
	t.begun = true
	if err := t.conn.SendBatch(t.ctx, b).Close(); err != nil {
		t.err = err
		return err
	}
	return nil
}

// commit sends what is queued, the events and COMMIT in one round trip.
func (t *tx) commit() {
	if t.err != nil {
		return
	}
	if !t.begun && len(t.queue) == 0 && len(t.events) == 0 {
		t.finished = true
		return
	}
	b := t.batch()
	if err := t.queueEvents(b); err != nil {
		t.err = err
		return
	}
	t.committing = true
	b.Queue("COMMIT").Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("postgres: commit: %w", err)
		}
		return commitTag(tag)
	}
	if err := t.send(b); err != nil {
		return
	}
	t.finished = true
}

// lockMember makes the next round trip lock the member's row, unless this
// transaction holds it already: see doc.go on isolation. A View takes no
// locks.
func (t *tx) lockMember(id string) {
	if !t.write || t.locked[id] || t.err != nil {
		return
	}
	if t.turn(id); t.err != nil {
		return
	}
	t.queue = append(t.queue, stmt{member: true, what: "lock member " + id,
		sql: `SELECT 1 FROM members WHERE id = $1 FOR NO KEY UPDATE`, args: []any{id}})
	t.lockedMember(id)
}

// turn takes the member's place in this process's queue before the
// transaction locks its row (queue.go), if it is free. When it is not, and
// the transaction holds no row lock and no other place, the attempt ends
// with errRestart and Update waits for the place, holding no connection,
// before the next; otherwise the transaction goes on without it.
func (t *tx) turn(id string) {
	if !t.write || t.places == nil || t.err != nil {
		return
	}
	if held := t.places.try(id); !held && !t.holdsLocks && len(t.places.held) == 0 {
		t.places.want = id
		t.err = errRestart
	}
}

func (t *tx) lockedMember(id string) {
	if t.locked == nil {
		t.locked = map[string]bool{}
	}
	t.locked[id] = true
}

// forUpdate is the suffix of a query for members: in an Update it locks
// the rows it reads.
func (t *tx) forUpdate() string {
	if t.write {
		return " FOR NO KEY UPDATE"
	}
	return ""
}

// lostBeforeCommit tells whether the transaction failed because its
// connection died before COMMIT was sent: the server then rolled it back,
// so running it again on another connection is safe.
func (t *tx) lostBeforeCommit() bool {
	return !t.committing && t.conn.IsClosed() && t.ctx.Err() == nil
}

// rollback ends the transaction if it is open. A connection whose
// rollback fails is closed, so the pool does not hand it out again.
func (t *tx) rollback() {
	if t.finished {
		return
	}
	t.finished = true
	if !t.begun {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = t.conn.Close(ctx)
	}
}

// Times: the server keeps microseconds. A stored stamp s and a bound b
// with a finer part compare as the exact values would when b is rounded
// up for s >= b and s < b, and down for s <= b.
func ceilMicro(t time.Time) time.Time {
	if f := t.Truncate(time.Microsecond); !f.Equal(t) {
		return f.Add(time.Microsecond)
	}
	return t
}

func floorMicro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// noLimit stands for a limit <= 0, which the engine means as "all".
func limitOf(limit int) int64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return int64(limit)
}

func toInt64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("postgres: %s %d is out of range", what, v)
	}
	return int64(v), nil
}

// jsonOf encodes v for a jsonb column (storedjson.go); nil stays SQL NULL.
func jsonOf(v any) (any, error) {
	b, err := marshalStored(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return string(b), nil
}

func fromJSON(b []byte, v any) error {
	if b == nil {
		return nil
	}
	return unmarshalStored(b, v)
}
