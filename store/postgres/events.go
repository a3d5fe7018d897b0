package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

// AppendEvent implements engine.Tx. The event is stored with the
// transaction's other writes, without a seq: it gets one once it is
// committed, from the sequencer (doc.go says why), so e.Seq stays 0 and
// the transaction's own Events does not list it.
func (t *tx) AppendEvent(e *engine.Event) error {
	if t.err != nil {
		return t.err
	}
	if !t.write {
		return errReadOnly
	}
	t.events = append(t.events, e)
	return nil
}

// insertEvents stores a transaction's events, unsequenced, in one
// statement sent with COMMIT. The rows are inserted in the order the
// transaction appended them, so their identities (n) keep that order for
// the sequencer.
const insertEvents = `INSERT INTO events (id, type, member_id, at, payload, data)
SELECT e.id, e.type, e.member_id, e.at, e.payload, e.data::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[], $6::text[]) WITH ORDINALITY AS e(id, type, member_id, at, payload, data, i)
ORDER BY e.i`

// queueEvents queues the insert of the transaction's events.
func (t *tx) queueEvents(b *pgx.Batch) error {
	n := len(t.events)
	if n == 0 {
		return nil
	}
	ids, types, members, ats, payloads, notices := make([]*string, n), make([]string, n), make([]string, n), make([]time.Time, n), make([][]byte, n), make([]*string, n)
	for i, e := range t.events {
		if e.ID != "" {
			ids[i] = &e.ID
		}
		types[i], members[i], ats[i], payloads[i] = e.Type, e.MemberID, e.At, e.Payload
		notice, err := jsonOf(e.Notice)
		if err != nil {
			return fmt.Errorf("postgres: append event: %w", err)
		}
		if s, ok := notice.(string); ok {
			notices[i] = &s
		}
	}
	b.Queue(insertEvents, ids, types, members, ats, payloads, notices).Fn = func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("postgres: append events: %w", err)
		}
		return nil
	}
	return nil
}

// Events implements engine.Tx. When it is the first call of its
// transaction it first sequences the events committed so far, in a
// transaction of its own just before this one's snapshot, so that a
// reader sees every event committed before it asked, not only those the
// background pass has reached.
func (t *tx) Events(after uint64, limit int) ([]*engine.Event, error) {
	if after >= math.MaxInt64 {
		return nil, nil
	}
	if !t.begun && t.err == nil {
		if err := sequenceRetrying(t.ctx, t.conn); err != nil {
			return nil, err
		}
	}
	var out []*engine.Event
	err := t.query("events", `SELECT seq, coalesce(id, ''), type, member_id, at, payload, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`,
		[]any{int64(after), limitOf(limit)}, func(rows pgx.Rows) error {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	return out, err
}

// scanEvent reads an event from a row of (seq, id, type, member_id, at,
// payload, data), the columns every query of events selects.
func scanEvent(rows pgx.Rows) (*engine.Event, error) {
	var e engine.Event
	var seq int64
	var notice []byte
	if err := rows.Scan(&seq, &e.ID, &e.Type, &e.MemberID, &e.At, &e.Payload, &notice); err != nil {
		return nil, err
	}
	e.Seq, e.At = uint64(seq), e.At.UTC()
	return &e, fromJSON(notice, &e.Notice)
}

// PutEvent stores an event under the Seq it already has and moves the
// counter past it, for copying a feed from another store: consumers keep
// their cursors.
func (t *tx) PutEvent(e *engine.Event) error {
	seq, err := toInt64("event seq", e.Seq)
	if err != nil {
		return err
	}
	if seq <= 0 {
		return fmt.Errorf("postgres: put event: seq %d is not a feed position", seq)
	}
	notice, err := jsonOf(e.Notice)
	if err != nil {
		return err
	}
	var id *string
	if e.ID != "" {
		id = &e.ID
	}
	return t.execOther(fmt.Sprintf("put event %d", e.Seq), `WITH c AS (UPDATE event_seq SET last_seq = greatest(last_seq, $1) WHERE id = 1)
		INSERT INTO events (seq, id, type, member_id, at, payload, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		seq, id, e.Type, e.MemberID, e.At, e.Payload, notice)
}

// sequenceBatch is the most events one sequencing transaction numbers.
const sequenceBatch = 10_000

// sequenceEvents gives the unsequenced events this statement's snapshot
// shows the seqs after event_seq's counter, in n order, and raises the
// counter past them. It runs alone in a REPEATABLE READ transaction: two
// sequencers with the same events in view both update the counter row, so
// the second waits for the first to commit and then fails to serialise
// (40001) rather than number the events again. A sequencer that finds
// nothing updates nothing, so an idle pass writes no WAL.
const sequenceEvents = `WITH todo AS (
	SELECT n, row_number() OVER (ORDER BY n) AS r FROM events WHERE seq IS NULL ORDER BY n LIMIT $1
), c AS (
	UPDATE event_seq SET last_seq = last_seq + (SELECT count(*) FROM todo)
	WHERE id = 1 AND EXISTS (SELECT 1 FROM todo)
	RETURNING last_seq - (SELECT count(*) FROM todo) AS base
)
UPDATE events SET seq = c.base + todo.r FROM c, todo WHERE events.n = todo.n`

// sequence runs one sequencing transaction on conn and tells how many
// events it numbered.
func sequence(ctx context.Context, conn *pgx.Conn) (int64, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ")
	var n int64
	b.Queue(sequenceEvents, sequenceBatch).Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		n = tag.RowsAffected()
		return err
	}
	b.Queue("COMMIT").Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		return commitTag(tag)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		// A failed statement leaves the transaction open until its
		// ROLLBACK; pgx does not end it for us.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
			_ = conn.Close(rctx)
		}
		return 0, err
	}
	return n, nil
}

// maxSequenceAttempts bounds how often a reader sequences again after
// another sequencer got there first: each failure means that one
// committed, so a few tries see everything committed before the reader
// asked, however many servers sequence at once.
const maxSequenceAttempts = 5

// sequenceRetrying sequences until nothing committed before it started is
// left without a seq: a full batch runs again, and a collision with
// another sequencer retries after a short pause.
func sequenceRetrying(ctx context.Context, conn *pgx.Conn) error {
	for attempt := 1; ; {
		n, err := sequence(ctx, conn)
		switch {
		case err == nil && n < sequenceBatch:
			return nil
		case err == nil:
			continue
		case isCode(err, "40001") && attempt < maxSequenceAttempts:
			attempt++
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return fmt.Errorf("postgres: sequence events: %w", err)
			}
		case isCode(err, "40001"):
			// Others keep sequencing: what this reader misses is in its
			// next read.
			return nil
		default:
			return fmt.Errorf("postgres: sequence events: %w", err)
		}
	}
}

// DefaultSequenceEvery is how often the background pass sequences events.
const DefaultSequenceEvery = 100 * time.Millisecond

// sequencer sequences events every interval until the store closes, so
// that events get their seqs soon after they commit even when nobody reads
// the feed. Every server runs one: a pass that finds nothing only reads
// the small index of unsequenced events, and one that collides with
// another server's gives up its turn.
func (db *DB) sequencer(every time.Duration) {
	defer close(db.sequencerDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.ctx.Done():
			return
		case <-t.C:
		}
		db.sequencePass()
	}
}

func (db *DB) sequencePass() {
	ctx, cancel := context.WithTimeout(db.ctx, db.opts.UpdateTimeout)
	defer cancel()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	for {
		n, err := sequence(ctx, conn.Conn())
		if err != nil || n < sequenceBatch {
			return
		}
	}
}

// SequenceEvents numbers every event committed so far that has no seq
// yet, as a reader of the feed does first; for tests and tools.
func (db *DB) SequenceEvents(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Release()
	return sequenceRetrying(ctx, conn.Conn())
}
