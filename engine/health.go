package engine

import (
	"context"
	"sync"
	"time"
)

// StoreHealth tells whether the store is taking writes: a write the store
// itself failed (a full disk, an I/O error, a file gone read-only) makes it
// failing until a write succeeds again.
type StoreHealth struct {
	Failing bool
	// Since is when the first of the failing writes was refused.
	Since time.Time
	// Err is the last failure, as the store reported it.
	Err string
}

// probeEvery bounds how often StoreHealth writes to see whether a failing
// store has recovered.
const probeEvery = time.Second

// writeHealth records how the store's writes end. The store has no say:
// it reports errors as it always does, and the engine tells its own
// functions' errors (a refusal, a conflict) from the store's.
type writeHealth struct {
	mu        sync.Mutex
	state     StoreHealth
	lastProbe time.Time
}

func (h *writeHealth) failed(at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.state.Failing {
		h.state = StoreHealth{Failing: true, Since: at}
	}
	h.state.Err = err.Error()
}

func (h *writeHealth) succeeded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state = StoreHealth{}
}

// probeDue claims the next probe of a failing store, at most one per
// probeEvery however many health checks ask.
func (h *writeHealth) probeDue() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.state.Failing || time.Since(h.lastProbe) < probeEvery {
		return false
	}
	h.lastProbe = time.Now()
	return true
}

func (h *writeHealth) get() StoreHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// healthStore is the store as the engine uses it: every write's outcome
// is recorded in health.
type healthStore struct {
	Store
	health *writeHealth
	now    func() time.Time
}

func (s healthStore) Update(ctx context.Context, fn func(Tx) error) error {
	// fn may run more than once (group commit); what counts is its last
	// run. A panic leaves fnFailed set: the write failed, not the store.
	var fnFailed bool
	err := s.Store.Update(ctx, func(tx Tx) error {
		fnFailed = true
		err := fn(tx)
		fnFailed = err != nil
		return err
	})
	switch {
	case err == nil:
		s.health.succeeded()
	case !fnFailed:
		s.health.failed(s.now(), err)
	}
	return err
}

// StoreHealth reports whether the store is taking writes. While it is
// failing, the check itself tries an empty write (at most once a second),
// so that the health recovers on its own once the store does, even when no
// till writes because a load balancer took this server out on the failure.
func (e *Engine) StoreHealth(ctx context.Context) StoreHealth {
	if e.health.probeDue() {
		_ = e.store.Update(ctx, func(Tx) error { return nil })
	}
	return e.health.get()
}
