package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestLedgerPagesInSeqOrder pages a ledger whose entries' times step back,
// repeat and leap, with lots and metric entries between them, from every
// cursor: the pages must follow seq whatever the times.
func TestLedgerPagesInSeqOrder(t *testing.T) {
	db := MustOpenDB(t)
	m := newID()
	offsets := []time.Duration{10, 5, 5, 5, 20, -100, 20, 1e6, 1e6, 3, 1e9, 1e9, 1e9 + 1}
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: m, Status: engine.StatusActive, LedgerSeq: uint64(len(offsets))}); err != nil {
			return err
		}
		var bal int64
		for i, d := range offsets {
			at := t0.Add(d * time.Second)
			bal += int64(i)
			if err := tx.AppendLedger(&engine.LedgerEntry{ID: fmt.Sprint("e", i+1), MemberID: m, Seq: uint64(i + 1), Points: int64(i), BalanceAfter: bal, At: at}); err != nil {
				return err
			}
			if err := tx.PutLot(&engine.Lot{ID: engine.NewTimeID(at.Add(time.Millisecond)), MemberID: m, Points: 1, EarnedAt: at}); err != nil {
				return err
			}
			if err := tx.AddMetric(m, engine.MetricEntry{At: at.Add(-time.Hour), Visits: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	n := uint64(len(offsets))
	mustView(t, db, func(tx engine.Tx) error {
		for before := uint64(0); before <= n+2; before++ {
			for _, limit := range []int{0, 1, 2, 5} {
				var want []uint64
				for s := n; s >= 1; s-- {
					if (before == 0 || s < before) && (limit == 0 || len(want) < limit) {
						want = append(want, s)
					}
				}
				es, err := tx.Ledger(m, before, limit)
				if err != nil {
					return err
				}
				got := ids(es, func(e *engine.LedgerEntry) string { return fmt.Sprint(e.Seq) })
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Ledger(before %d, limit %d) = %v, want %v", before, limit, got, want)
				}
			}
		}
		return nil
	})
}

func TestAppendLedgerRefusesASeqNotAfterTheLast(t *testing.T) {
	db := MustOpenDB(t)
	m := newID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: m, Status: engine.StatusActive, LedgerSeq: 3, Points: 3}); err != nil {
			return err
		}
		for _, s := range []uint64{1, 3} {
			if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: s, Points: 1, BalanceAfter: int64(s)}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, s := range []uint64{1, 2, 3} {
		err := db.Update(t.Context(), func(tx engine.Tx) error {
			return tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: s, Points: 1, At: t0})
		})
		if err == nil || !strings.Contains(err.Error(), "already has entry 3") {
			t.Errorf("append of entry %d after entry 3: %v, want a refusal", s, err)
		}
	}
	// The refused entries are not there; the gap at 2 is the test's own.
	mustView(t, db, func(tx engine.Tx) error {
		es, err := tx.Ledger(m, 0, 0)
		if got := ids(es, func(e *engine.LedgerEntry) string { return fmt.Sprint(e.Seq) }); err != nil || !slices.Equal(got, []string{"3", "1"}) {
			t.Errorf("ledger after the refusals: %v, %v", got, err)
		}
		return nil
	})
	// The test's own gap at 2 would fail the Check MustOpenDB runs at the
	// end: drop entry 3 (appended at time 0) and number the member to 1.
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMemberData).Delete(ledgerKey(memberSection(m, sectionHistory, 0), 0, 3))
	}); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		mem, err := tx.Member(m)
		if err != nil {
			return err
		}
		mem.LedgerSeq, mem.Points = 1, 1
		return tx.PutMember(mem)
	})
}

// TestPurchaseWritesEndTheHistory: what a purchase adds to a member with a
// long past (a ledger entry, a lot with a time-ordered id, a metric entry,
// all at about now) goes in at the end of the member's history, next to
// the sections it rewrites, while a lot whose id tells no time goes at the
// start.
func TestPurchaseWritesEndTheHistory(t *testing.T) {
	db := MustOpenDB(t)
	m := newID()
	now := t0.AddDate(1, 0, 0)
	var seq uint64
	var bal int64
	purchase := func(tx engine.Tx, at time.Time, lotID string) error {
		seq++
		bal += 10
		if err := tx.PutLot(&engine.Lot{ID: lotID, MemberID: m, Points: 10, Remaining: 10, EarnedAt: at, ExpiresAt: at.AddDate(1, 0, 0)}); err != nil {
			return err
		}
		if err := tx.AppendLedger(&engine.LedgerEntry{MemberID: m, Seq: seq, Points: 10, BalanceAfter: bal, At: at}); err != nil {
			return err
		}
		if err := tx.AddMetric(m, engine.MetricEntry{At: at, Spend: 100, Points: 10, Visits: 1}); err != nil {
			return err
		}
		return tx.PutMember(&engine.Member{ID: m, Status: engine.StatusActive, Points: bal, LedgerSeq: seq, LifetimeEarned: bal})
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for d := range 100 {
			at := t0.AddDate(0, 0, d)
			if err := purchase(tx, at, engine.NewTimeID(at)); err != nil {
				return err
			}
		}
		_, err := tx.(engine.MetricSummer).MetricSum(m, t0, now)
		return err
	})
	legacyLot := newID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := purchase(tx, now.Add(-time.Second), legacyLot); err != nil {
			return err
		}
		return purchase(tx, now, engine.NewTimeID(now))
	})
	if err := db.bolt.View(func(btx *bolt.Tx) error {
		p := memberSection(m, sectionHistory, 0)
		c := btx.Bucket(bucketMemberData).Cursor()
		var kinds []byte
		k, _ := c.Seek(p)
		if want := lotKey(m, legacyLot); !bytes.Equal(k, want) {
			t.Errorf("the history starts with %x, want the lot whose id tells no time, %x", k, want)
		}
		for k, _ := seekLast(c, historyEnd(p)); k != nil && bytes.HasPrefix(k, p) && len(kinds) < 3; k, _ = c.Prev() {
			kinds = append(kinds, historyKind(k, p))
		}
		if got := string(kinds); got != "mle" {
			t.Errorf("the history ends, newest first, with kinds %q, want the purchase's metric, lot and ledger entry %q", got, "mle")
		}
		var after []string
		for k, _ := c.Seek(historyEnd(p)); k != nil && bytes.HasPrefix(k, memberKey(m)); k, _ = c.Next() {
			after = append(after, string(k[uuidLen]))
		}
		if got, want := strings.Join(after, ""), strings.Repeat("o", 102)+"sz"; got != want {
			t.Errorf("after the history come sections %q, want the open lots, the metric sum and the account, %q", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateV3Resumes stops a move to schema 4 after a few chunks, as a
// crash would, and lets the next Open finish it: the file must come out
// exactly as one moved in a single go.
func TestMigrateV3Resumes(t *testing.T) {
	whole := legacyCopy(t, "schema3")
	db := mustOpenPath(t, whole, testOptions())
	verifyClean(t, db)

	defer func(n int) { migrateChunk = n }(migrateChunk)
	migrateChunk = 7
	path := legacyCopy(t, "schema3")
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := startRekeying(raw); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if n, err := rekeyChunk(raw); err != nil || n != migrateChunk {
			t.Fatalf("chunk moved %d records, %v; want %d", n, err, migrateChunk)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	// A program of schema 3 refuses a file of a newer schema: the
	// half-moved file must say 4, or one would misread it.
	if got := fileSchema(t, path); got != schemaVersion {
		t.Errorf("a half-moved file has schema %d, want %d", got, schemaVersion)
	}
	ro := testOptions()
	ro.ReadOnly = true
	if _, err := Open(path, ro); err == nil || !strings.Contains(err.Error(), "part-way through its move") {
		t.Errorf("read-only open of a half-moved file: %v, want a refusal that says to finish the move", err)
	}
	resumed := mustOpenPath(t, path, testOptions())
	verifyClean(t, resumed)
	want, got := bucketDump(t, db), bucketDump(t, resumed)
	if got != want {
		t.Errorf("a move resumed after a crash differs from one in a single go:\n%s\nwant\n%s", got, want)
	}
}

// bucketDump lists member_data, expiry and meta's schema, key by key.
func bucketDump(t *testing.T, db *DB) string {
	t.Helper()
	var b strings.Builder
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		fmt.Fprintf(&b, "schema %x rekeying %x\n", tx.Bucket(bucketMeta).Get(schemaKey), tx.Bucket(bucketMeta).Get(rekeyingKey))
		for _, name := range [][]byte{bucketMemberData, bucketExpiry} {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				fmt.Fprintf(&b, "%s %x %x\n", name, k, v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestMigrateV3ByHand moves a schema-3 file written key by key: a member
// with a UUID id and one without, ledger times that step back and repeat,
// a lot with a time-ordered id and one without, metric entries and their
// sum, and two things a damaged file may hold, a ledger key of the wrong
// length and an expiry entry of a spent lot. Everything reads back in
// order, and the damage is kept for Check to report, not lost or fatal.
func TestMigrateV3ByHand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db := mustOpenPath(t, path, testOptions())
	a, b := newID(), "card-7"
	wantLots := map[string][]string{}
	spent := &engine.Lot{ID: newID(), MemberID: a, Points: 5, EarnedAt: t0, ExpiresAt: t0.AddDate(1, 0, 0)}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta, members := tx.Bucket(bucketMeta), tx.Bucket(bucketMembers)
		data, expiry := tx.Bucket(bucketMemberData), tx.Bucket(bucketExpiry)
		if err := meta.Put(schemaKey, []byte{0, 0, 0, 0, 0, 0, 0, 3}); err != nil {
			return err
		}
		putRec := func(bk *bolt.Bucket, k []byte, rec any) {
			v, err := encode(rec)
			if err == nil {
				err = bk.Put(k, v)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{a, b} {
			mk := memberKey(id)
			putRec(members, mk, &engine.Member{ID: id, Status: engine.StatusActive, EnrolledAt: t0})
			putRec(data, sectionOf(mk, v3Account, 0), &account{Points: 30, LifetimeEarned: 30, LedgerSeq: 3})
			for i, h := range []int{2, 1, 1} {
				putRec(data, appendUint64(sectionOf(mk, v3Ledger, 8), uint64(i+1)), &engine.LedgerEntry{MemberID: id, Seq: uint64(i + 1), Points: 10, BalanceAfter: int64(10 * (i + 1)), At: t0.Add(time.Duration(h) * time.Hour)})
			}
			lots := []*engine.Lot{
				{ID: engine.NewTimeID(t0.Add(2 * time.Hour)), MemberID: id, Points: 10, Remaining: 10, EarnedAt: t0, ExpiresAt: t0.AddDate(1, 0, 0)},
				{ID: newID(), MemberID: id, Points: 20, Remaining: 20, EarnedAt: t0, ExpiresAt: t0.AddDate(2, 0, 0)},
			}
			for _, l := range lots {
				wantLots[id] = append(wantLots[id], l.ID)
				putRec(data, v3LotKey(mk, l.ID), l)
				if err := data.Put(openLotKey(l), openLotValue(l)); err != nil {
					return err
				}
				if err := expiry.Put(v3ExpiryKey(l), nil); err != nil {
					return err
				}
			}
			putRec(data, sectionOf(mk, v3Metrics, 0), &metricSum{From: timeKey(t0), Latest: timeKey(t0.Add(time.Hour)), Sum: engine.MetricEntry{Spend: 300, Visits: 2}})
			for n, h := range []int{0, 1} {
				putRec(data, appendUint64(appendTime(sectionOf(mk, v3Metrics, 16), t0.Add(time.Duration(h)*time.Hour)), uint64(n+1)), engine.MetricEntry{At: t0.Add(time.Duration(h) * time.Hour), Spend: 150, Visits: 1})
			}
		}
		mk := memberKey(a)
		putRec(data, append(sectionOf(mk, v3Ledger, 3), 1, 2, 3), &engine.LedgerEntry{MemberID: a, Seq: 9})
		putRec(data, v3LotKey(mk, spent.ID), spent)
		spentOpen := *spent
		spentOpen.Remaining = 5
		return expiry.Put(v3ExpiryKey(&spentOpen), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenPath(t, path, testOptions())
	if n, err := schemaOf(db.bolt); err != nil || n != schemaVersion || rekeyingUnderWay(db.bolt) {
		t.Fatalf("schema after the move: %d, %v, still moving %t", n, err, rekeyingUnderWay(db.bolt))
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, id := range []string{a, b} {
			m, err := tx.Member(id)
			if err != nil || m.Points != 30 || m.LedgerSeq != 3 {
				t.Errorf("member %s after the move: %+v, %v", id, m, err)
			}
			for _, c := range []struct {
				before uint64
				want   string
			}{{0, "[3 2 1]"}, {3, "[2 1]"}, {2, "[1]"}} {
				es, err := tx.Ledger(id, c.before, 0)
				if got := fmt.Sprint(ids(es, func(e *engine.LedgerEntry) string { return fmt.Sprint(e.Seq) })); err != nil || got != c.want {
					t.Errorf("%s: Ledger(before %d) = %s, %v; want %s", id, c.before, got, err, c.want)
				}
			}
			open, err := tx.OpenLots(id)
			if got, want := fmt.Sprint(lotIDs(open)), fmt.Sprint(wantLots[id]); err != nil || got != want {
				t.Errorf("%s: open lots %s, %v; want %s", id, got, err, want)
			}
			ms, err := tx.Metrics(id, t0.Add(time.Minute))
			if err != nil || len(ms) != 1 || ms[0].Spend != 150 {
				t.Errorf("%s: metrics from a minute in: %+v, %v", id, ms, err)
			}
		}
		due, err := tx.DueLots(t0.AddDate(3, 0, 0), nil, 0)
		if err != nil || len(due) != 5 || !slices.Contains(lotIDs(due), spent.ID) {
			t.Errorf("due lots: %v, %v; want the four open lots and the spent one its stale entry names", lotIDs(due), err)
		}
		return nil
	})
	var out strings.Builder
	n, err := db.Check(&out)
	if err != nil || n != 2 || !strings.Contains(out.String(), "starts with no member key") || !strings.Contains(out.String(), "points at no open lot expiring then") {
		t.Errorf("check after the move: %d problems, %v, want the two the file had:\n%s", n, err, out.String())
	}
}
