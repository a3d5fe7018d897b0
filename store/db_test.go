package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

func TestDefaultOptions(t *testing.T) {
	got := DefaultOptions()
	want := Options{Timeout: time.Second, MaxBatchSize: 1000}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultOptions() = %+v, want %+v", got, want)
	}
}

func TestOpenCreatesBuckets(t *testing.T) {
	db := MustOpenDB(t)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				t.Errorf("bucket %s missing", name)
			}
		}
		if v := tx.Bucket(bucketMeta).Get(schemaKey); binary.BigEndian.Uint64(v) != schemaVersion {
			t.Errorf("schema version = %x", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if db.Path() == "" || db.Size() <= 0 {
		t.Errorf("Path() = %q, Size() = %d", db.Path(), db.Size())
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loyalty.db")
	db, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	id := newID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: id, Email: "a@x"}); err != nil {
			return err
		}
		return tx.AppendEvent(&engine.Event{Type: "t"})
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenPath(t, path, testOptions())
	mustView(t, db, func(tx engine.Tx) error {
		if m, err := tx.MemberByKey(engine.KeyEmail, "a@x"); err != nil || m == nil || m.ID != id {
			t.Errorf("after reopen: MemberByKey = %v, %v", m, err)
		}
		return nil
	})
	e := &engine.Event{Type: "t"}
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.AppendEvent(e) })
	if e.Seq != 2 {
		t.Errorf("event seq after reopen = %d, want 2", e.Seq)
	}
	mustCheck(t, db)
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loyalty.db")
	db, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	id := newID()
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(&engine.Member{ID: id}) })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	opts := testOptions()
	opts.ReadOnly = true
	ro := mustOpenPath(t, path, opts)
	// Readers share the lock.
	ro2 := mustOpenPath(t, path, opts)
	for _, db := range []*DB{ro, ro2} {
		mustView(t, db, func(tx engine.Tx) error {
			if m, err := tx.Member(id); err != nil || m == nil {
				t.Errorf("read-only Member = %v, %v", m, err)
			}
			return nil
		})
	}
	if err := ro.Update(t.Context(), func(tx engine.Tx) error { return tx.Mark("x") }); err == nil {
		t.Error("Update on a read-only store: no error")
	}
	mustCheck(t, ro)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked.db")
	mustOpenPath(t, locked, testOptions())

	newer := filepath.Join(dir, "newer.db")
	writeRaw(t, newer, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(schemaKey, binary.BigEndian.AppendUint64(nil, schemaVersion+1))
	})
	foreign := filepath.Join(dir, "foreign.db")
	writeRaw(t, foreign, func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })

	quick := testOptions()
	quick.Timeout = 50 * time.Millisecond
	readOnly := testOptions()
	readOnly.ReadOnly = true
	tests := []struct {
		name string
		path string
		opts Options
		want string
	}{
		{"locked by another open", locked, quick, "locked by another process"},
		{"newer schema", newer, testOptions(), fmt.Sprintf("has schema version %d, newer than this program's %d (loyalty ", schemaVersion+1, schemaVersion)},
		{"newer schema read-only", newer, readOnly, fmt.Sprintf("has schema version %d, newer than this program's %d (loyalty ", schemaVersion+1, schemaVersion)},
		{"not ours, read-only", foreign, readOnly, "not a loyalty database"},
		{"missing, read-only", filepath.Join(dir, "missing.db"), readOnly, "missing.db"},
	}
	for _, tt := range tests {
		db, err := Open(tt.path, tt.opts)
		if err == nil {
			_ = db.Close()
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}

	// The refused newer file was left untouched.
	raw, err := bolt.Open(newer, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMembers) != nil {
			t.Error("Open created buckets in a file it refused")
		}
		return nil
	})
}

// writeRaw creates a bbolt file at path with fn.
func writeRaw(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateConcurrent(t *testing.T) {
	db := MustOpenDB(t)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := newID()
			errs <- db.Update(t.Context(), func(tx engine.Tx) error {
				if err := tx.PutMember(&engine.Member{ID: id, Email: id + "@x", Points: int64(i)}); err != nil {
					return err
				}
				if err := tx.AddRuleUse("shared", "rule", "all", 1); err != nil {
					return err
				}
				return tx.AppendEvent(&engine.Event{Type: "enrolled", MemberID: id})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	mustView(t, db, func(tx engine.Tx) error {
		ms, err := tx.Members("", 0)
		if err != nil {
			return err
		}
		if len(ms) != n {
			t.Errorf("%d members, want %d", len(ms), n)
		}
		es, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		for i, e := range es {
			if e.Seq != uint64(i+1) {
				t.Errorf("event %d has seq %d", i, e.Seq)
			}
		}
		if len(es) != n {
			t.Errorf("%d events, want %d", len(es), n)
		}
		if uses, _ := tx.RuleUses("shared", "rule", "all"); uses != n {
			t.Errorf("RuleUses = %d, want %d", uses, n)
		}
		return nil
	})
}

// TestUpdateError checks that a failing function's error comes back as it
// was and its writes are dropped, while the writes it was batched with
// still commit.
func TestUpdateError(t *testing.T) {
	db := MustOpenDB(t)
	taken := newID()
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(&engine.Member{ID: taken, Email: "taken@x"}) })

	myErr := &engine.Error{Code: engine.EINSUFFICIENT, Message: "not enough points"}
	var wg sync.WaitGroup
	var mineErr, conflictErr error
	okErrs := make([]error, 20)
	wg.Go(func() {
		mineErr = db.Update(t.Context(), func(tx engine.Tx) error {
			if err := tx.Mark("failed-1"); err != nil {
				return err
			}
			return myErr
		})
	})
	wg.Go(func() {
		conflictErr = db.Update(t.Context(), func(tx engine.Tx) error {
			if err := tx.Mark("failed-2"); err != nil {
				return err
			}
			return tx.PutMember(&engine.Member{ID: newID(), Email: "taken@x"})
		})
	})
	for i := range okErrs {
		wg.Go(func() {
			okErrs[i] = db.Update(t.Context(), func(tx engine.Tx) error { return tx.Mark("ok-" + string(rune('a'+i))) })
		})
	}
	wg.Wait()

	if mineErr != myErr {
		t.Errorf("Update returned %v, want the function's own error", mineErr)
	}
	if engine.ErrorCode(conflictErr) != engine.ECONFLICT {
		t.Errorf("conflict: Update returned %v", conflictErr)
	}
	mustView(t, db, func(tx engine.Tx) error {
		for _, key := range []string{"failed-1", "failed-2"} {
			if ok, _ := tx.Marked(key); ok {
				t.Errorf("%s: write of a failed function committed", key)
			}
		}
		for i, err := range okErrs {
			key := "ok-" + string(rune('a'+i))
			if ok, _ := tx.Marked(key); err != nil || !ok {
				t.Errorf("%s: %v, committed %v", key, err, ok)
			}
		}
		return nil
	})

	viewErr := errors.New("view failed")
	if err := db.View(t.Context(), func(engine.Tx) error { return viewErr }); err != viewErr {
		t.Errorf("View returned %v, want the function's own error", err)
	}
}

func TestWriteTo(t *testing.T) {
	db := MustOpenDB(t)
	id := newID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: id, Phone: "555"}); err != nil {
			return err
		}
		return tx.PutLot(&engine.Lot{ID: "l", MemberID: id, Remaining: 3, ExpiresAt: t0})
	})
	var buf bytes.Buffer
	n, err := db.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Errorf("WriteTo = %d bytes, wrote %d", n, buf.Len())
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	backup := mustOpenPath(t, path, testOptions())
	mustCheck(t, backup)
	mustView(t, backup, func(tx engine.Tx) error {
		if m, err := tx.MemberByKey(engine.KeyPhone, "555"); err != nil || m == nil || m.ID != id {
			t.Errorf("backup: MemberByKey = %v, %v", m, err)
		}
		if due, err := tx.DueLots(t0, nil, 0); err != nil || len(due) != 1 {
			t.Errorf("backup: DueLots = %v, %v", due, err)
		}
		return nil
	})
}

// TestViewDoesNotStallGrowth holds a read transaction open, as a backup
// would, while writes grow the file well past its first mapping.
func TestViewDoesNotStallGrowth(t *testing.T) {
	db := MustOpenDB(t)
	viewing, release := make(chan struct{}), make(chan struct{})
	viewDone := make(chan error)
	go func() {
		viewDone <- db.View(t.Context(), func(engine.Tx) error {
			close(viewing)
			<-release
			return nil
		})
	}()
	<-viewing
	wrote := make(chan error)
	go func() {
		note := strings.Repeat("x", 1000)
		wrote <- db.Update(t.Context(), func(tx engine.Tx) error {
			for i := range 2000 {
				if err := tx.PutAdjustment(&engine.Adjustment{ID: newID(), Points: int64(i), Reason: note}); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a write that grows the file waited for an open View")
	}
	close(release)
	if err := <-viewDone; err != nil {
		t.Fatal(err)
	}
	if db.Size() < 2e6 {
		t.Errorf("Size() = %d after writing 2 MB", db.Size())
	}
}

// TestEventPagesFilled holds the feed's leaves full: events are appended
// in order, so a page split at half (bbolt's default) would never be
// filled again.
func TestEventPagesFilled(t *testing.T) {
	db := MustOpenDB(t)
	payload := []byte(`{"member_id":"0b7f5c1e-3d2a-4f6b-9c8d-7e6f5a4b3c2d","points":120}`)
	for range 20 {
		mustUpdate(t, db, func(tx engine.Tx) error {
			for range 100 {
				if err := tx.AppendEvent(&engine.Event{Type: "points.earned", Payload: payload}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := db.bolt.View(func(btx *bolt.Tx) error {
		st := btx.Bucket(bucketEvents).Stats()
		if st.LeafPageN < 10 {
			t.Fatalf("%d leaf pages for 2,000 events: too few to tell how full they are", st.LeafPageN)
		}
		if fill := float64(st.LeafInuse) / float64(st.LeafPageN*btx.DB().Info().PageSize); fill < 0.9 {
			t.Errorf("the feed's leaves are %.0f%% full (%d pages), want at least 90%%", fill*100, st.LeafPageN)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
