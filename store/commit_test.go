package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var testAppends = []byte("test_appends")

// newTestCommitter opens a bbolt file with one bucket and a committer on it.
func newTestCommitter(t *testing.T, maxSize int) (*bolt.DB, *committer) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "commit.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(testAppends)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := newCommitter(db, maxSize)
	t.Cleanup(func() {
		c.close()
		_ = db.Close()
	})
	return db, c
}

// appendKey is a write that records the transaction it ran in.
func appendKey(key string, seen *sync.Map) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		seen.Store(key, tx)
		return tx.Bucket(testAppends).Put([]byte(key), []byte("v"))
	}
}

// holdCommitter queues a write that blocks in its transaction until the
// returned function is called, so that writes queued meanwhile wait for the
// next commit together.
func holdCommitter(t *testing.T, c *committer) (release func() error) {
	t.Helper()
	entered, gate, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- c.update(func(*bolt.Tx) error {
			close(entered)
			<-gate
			return nil
		})
	}()
	<-entered
	return func() error {
		close(gate)
		return <-done
	}
}

// queueWrites starts one update per fn and returns once all are queued.
func queueWrites(t *testing.T, c *committer, fns []func(*bolt.Tx) error) []chan error {
	t.Helper()
	errs := make([]chan error, len(fns))
	for i, fn := range fns {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- c.update(fn) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.queue)
		c.mu.Unlock()
		if n == len(fns) {
			return errs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes queued", n, len(fns))
		}
		time.Sleep(time.Millisecond)
	}
}

func distinctTxs(seen *sync.Map) map[*bolt.Tx]int {
	txs := map[*bolt.Tx]int{}
	seen.Range(func(_, v any) bool {
		txs[v.(*bolt.Tx)]++
		return true
	})
	return txs
}

func keys(t *testing.T, db *bolt.DB) []string {
	t.Helper()
	var ks []string
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(testAppends).ForEach(func(k, _ []byte) error {
			ks = append(ks, string(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return ks
}

// commitQueued queues n writes behind a held commit, lets them go and
// returns how many of them each transaction carried.
func commitQueued(t *testing.T, c *committer, n int) map[*bolt.Tx]int {
	t.Helper()
	release := holdCommitter(t, c)
	var seen sync.Map
	fns := make([]func(*bolt.Tx) error, n)
	for i := range fns {
		fns[i] = appendKey(fmt.Sprintf("k%02d", i), &seen)
	}
	errs := queueWrites(t, c, fns)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	return distinctTxs(&seen)
}

func TestCommitterSharesOneCommitAmongWaitingWrites(t *testing.T) {
	db, c := newTestCommitter(t, 1000)
	if txs := commitQueued(t, c, 20); len(txs) != 1 {
		t.Errorf("20 queued writes ran in %d transactions, want 1", len(txs))
	}
	if got := keys(t, db); len(got) != 20 {
		t.Errorf("%d keys stored, want 20", len(got))
	}
}

func TestCommitterCapsWritesPerCommit(t *testing.T) {
	_, c := newTestCommitter(t, 5)
	var sizes []int
	for _, n := range commitQueued(t, c, 12) {
		sizes = append(sizes, n)
	}
	if len(sizes) != 3 {
		t.Fatalf("12 writes with at most 5 per commit ran in transactions of %v, want 3 transactions", sizes)
	}
	for _, n := range sizes {
		if n > 5 {
			t.Errorf("a transaction carried %d writes, more than 5", n)
		}
	}
}

func TestCommitterDropsOnlyTheFailedWrite(t *testing.T) {
	db, c := newTestCommitter(t, 1000)
	release := holdCommitter(t, c)
	var seen sync.Map
	refused := errors.New("refused")
	fns := []func(*bolt.Tx) error{
		appendKey("a", &seen),
		func(tx *bolt.Tx) error {
			if err := tx.Bucket(testAppends).Put([]byte("failed"), []byte("v")); err != nil {
				return err
			}
			return refused
		},
		func(tx *bolt.Tx) error {
			if err := tx.Bucket(testAppends).Put([]byte("panicked"), []byte("v")); err != nil {
				return err
			}
			panic("boom")
		},
		appendKey("b", &seen),
	}
	errs := queueWrites(t, c, fns)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	got := make([]error, len(errs))
	for i, ch := range errs {
		got[i] = <-ch
	}
	if got[0] != nil || got[3] != nil {
		t.Errorf("the good writes failed: %v, %v", got[0], got[3])
	}
	if !errors.Is(got[1], refused) {
		t.Errorf("failed write: err = %v, want %v", got[1], refused)
	}
	if got[2] == nil || !strings.Contains(got[2].Error(), "boom") {
		t.Errorf("panicking write: err = %v, want the panic as an error", got[2])
	}
	if ks := keys(t, db); strings.Join(ks, ",") != "a,b" {
		t.Errorf("stored keys %v, want only a and b: a failed write's changes must not be committed", ks)
	}
}

func TestCommitterCloseCommitsQueuedWritesThenRefuses(t *testing.T) {
	db, c := newTestCommitter(t, 1000)
	release := holdCommitter(t, c)
	var seen sync.Map
	errs := queueWrites(t, c, []func(*bolt.Tx) error{appendKey("a", &seen), appendKey("b", &seen)})
	closed := make(chan struct{})
	go func() {
		c.close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("close returned while a write was still in its transaction")
	case <-time.After(50 * time.Millisecond):
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	<-closed
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Errorf("queued write: %v", err)
		}
	}
	if ks := keys(t, db); len(ks) != 2 {
		t.Errorf("stored keys %v, want the two queued before close", ks)
	}
	if err := c.update(appendKey("late", &seen)); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("update after close: err = %v, want %v", err, berrors.ErrDatabaseNotOpen)
	}
}
