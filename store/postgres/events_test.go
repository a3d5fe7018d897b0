package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
)

// TestEventsUpgradeKeepsSeqs: a database whose events were numbered as
// they committed (schema 3) keeps their seqs when it moves to the
// sequencer, and the next event is numbered after them.
func TestEventsUpgradeKeepsSeqs(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, bootstrap); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:3] {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO loyalty_schema_migrations VALUES ($1, $2, now())`, m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO events (seq, id, type, member_id, at, payload) VALUES
		(1, 'evt_a', 'points.expiring', 'm', now(), '{}'), (2, NULL, 'points.expiring', 'm', now(), NULL);
		UPDATE event_seq SET last_seq = 2`); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.SequenceEvery = -1
	db, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(ctx, func(tx engine.Tx) error {
		return tx.AppendEvent(&engine.Event{ID: "evt_new", Type: "t", At: time.Now().UTC().Truncate(time.Microsecond)})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.View(ctx, func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		var got []string
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%s@%d", e.ID, e.Seq))
		}
		if len(got) != 3 || got[0] != "evt_a@1" || got[1] != "@2" || got[2] != "evt_new@3" {
			t.Errorf("feed after the upgrade = %v, want evt_a@1, @2, evt_new@3", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBackgroundSequencer: events get their seqs soon after they commit
// even when nobody reads the feed, and a store opened without the pass
// leaves them to the first reader.
func TestBackgroundSequencer(t *testing.T) {
	ctx := context.Background()
	for _, every := range []time.Duration{20 * time.Millisecond, -1} {
		url := pgtest.URL(t)
		opts := DefaultOptions()
		opts.SequenceEvery = every
		db, err := Open(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(ctx, func(tx engine.Tx) error {
			return tx.AppendEvent(&engine.Event{Type: "t", At: time.Now().UTC().Truncate(time.Microsecond)})
		}); err != nil {
			t.Fatal(err)
		}
		unsequenced := func() int {
			var n int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE seq IS NULL`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		deadline := time.Now().Add(5 * time.Second)
		for unsequenced() > 0 && every > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		switch n := unsequenced(); {
		case every > 0 && n != 0:
			t.Errorf("with a pass every %s, %d events still have no seq after 5s", every, n)
		case every < 0 && n != 1:
			t.Errorf("without a pass, %d events have no seq before anyone read the feed, want 1", n)
		}
		if err := db.SequenceEvents(ctx); err != nil || unsequenced() != 0 {
			t.Errorf("SequenceEvents: %v, %d left", err, unsequenced())
		}
		db.Close()
	}
}

// TestSequencersRace: many sequencers at once, on one store and on two
// opened on one database, number every event once.
func TestSequencersRace(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	opts := DefaultOptions()
	opts.SequenceEvery = time.Millisecond
	a, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 300
	errs := make(chan error, n)
	for i := range n {
		db := a
		if i%2 == 1 {
			db = b
		}
		go func() {
			errs <- db.Update(ctx, func(tx engine.Tx) error {
				return tx.AppendEvent(&engine.Event{Type: "t", At: time.Now().UTC().Truncate(time.Microsecond)})
			})
		}()
		if i%10 == 0 {
			go func() { errs <- db.SequenceEvents(ctx) }()
		}
	}
	for range n + n/10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SequenceEvents(ctx); err != nil {
		t.Fatal(err)
	}
	var count, distinct, maxSeq, counter int64
	if err := a.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0), (SELECT last_seq FROM event_seq) FROM events`).Scan(&count, &distinct, &maxSeq, &counter); err != nil {
		t.Fatal(err)
	}
	if count != n || distinct != n || maxSeq != n || counter != n {
		t.Errorf("%d events, %d distinct seqs, the largest %d, the counter %d; want %d of each", count, distinct, maxSeq, counter, n)
	}
}
