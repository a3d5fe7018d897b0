package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
)

// TestBurstOnOneMember: a hundred concurrent updates of one member, on a
// store allowed only three attempts each, all commit: they take turns in
// the process's queue instead of failing to serialise whenever the row
// lock changes hands. Updates of a second member run beside them.
func TestBurstOnOneMember(t *testing.T) {
	ctx := context.Background()
	opts := DefaultOptions()
	opts.MaxAttempts = 3
	db, err := Open(ctx, pgtest.URL(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []string{"hot", "other"} {
		if err := db.Update(ctx, func(tx engine.Tx) error { return tx.PutMember(&engine.Member{ID: id}) }); err != nil {
			t.Fatal(err)
		}
	}
	const n = 100
	var wg sync.WaitGroup
	var runs atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		id := "hot"
		if i%10 == 0 {
			id = "other"
		}
		wg.Go(func() {
			errs <- db.Update(ctx, func(tx engine.Tx) error {
				runs.Add(1)
				// A read first, as a purchase looks its id up: the snapshot
				// is taken before the member's lock.
				if _, err := tx.Marked("x"); err != nil {
					return err
				}
				m, err := tx.Member(id)
				if err != nil {
					return err
				}
				m.Points++
				return tx.PutMember(m)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.View(ctx, func(tx engine.Tx) error {
		hot, err := tx.Member("hot")
		if err != nil {
			return err
		}
		other, err := tx.Member("other")
		if err == nil && (hot.Points != 90 || other.Points != 10) {
			t.Errorf("points %d and %d, want 90 and 10", hot.Points, other.Points)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d updates ran their functions %d times", n, runs.Load())
}
