package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store/postgres"
)

// Several servers may share one PostgreSQL database (docs/SCALING.md). Two
// things then need more than one process's view: the scheduled jobs, which
// one server at a time runs under a lease, and the rules, which each
// server reads back from the database every few seconds to follow what
// another published. A bbolt file has one server, which needs neither.

// Defaults of the shared-database settings.
const (
	DefaultJobLease  = 15 * time.Second
	DefaultRulesPoll = 2 * time.Second
)

// sharedDB tells whether other servers may use this server's database.
func (m *Main) sharedDB() bool { return postgres.IsURL(m.Config.DBPath) }

// jobsLeaseName names the lease of the scheduled jobs.
const jobsLeaseName = "scheduler"

// leadership holds the scheduled jobs' lease for this server, renewing it
// every third of its ttl and trying to take it when another holds it. The
// server runs scheduled jobs only while it holds it; when it loses it (an
// other server took it after a renewal failed, or the ttl ran out without
// one) the jobs it runs stop between two chunks, and the next holder runs
// what they left, as jobs are safe to run again.
type leadership struct {
	db     engine.Store
	holder string
	ttl    time.Duration
	log    *slog.Logger
	// gained runs, in its own goroutine, each time the lease is taken,
	// with a context that ends when it is lost.
	gained func(ctx context.Context)

	mu     sync.Mutex
	ctx    context.Context // nil while not held
	cancel context.CancelFunc
	expiry *time.Timer

	stop      chan struct{}
	done      chan struct{}
	started   bool
	closeOnce sync.Once
}

func newLeadership(db engine.Store, ttl time.Duration, log *slog.Logger, gained func(context.Context)) *leadership {
	return &leadership{db: db, holder: holderName(), ttl: ttl, log: log, gained: gained,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// holderName names this process in lease rows: unique, and readable by
// an operator looking at loyalty_leases.
func holderName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// current returns a context that ends when the lease is lost, and false
// while this server does not hold it.
func (l *leadership) current() (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctx, l.ctx != nil
}

// start takes the lease at once if it can, then keeps it (or keeps
// trying) in the background until close.
func (l *leadership) start() {
	l.started = true
	l.attempt()
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.attempt()
			}
		}
	}()
}

// attempt takes or renews the lease once. The lease runs from the
// database's now, which comes after this server's start of the attempt:
// this server counts it from that start, so it stops before another
// server can take it over, whatever the two clocks say.
func (l *leadership) attempt() {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
	defer cancel()
	var held bool
	err := l.db.Update(ctx, func(tx engine.Tx) error {
		var err error
		held, err = tx.TakeLease(jobsLeaseName, l.holder, l.ttl)
		return err
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		// Keep what is held until it runs out: the expiry timer ends it.
		l.log.Warn("renewing the scheduled jobs' lease failed", "err", err)
	case held:
		left := l.ttl - time.Since(began) - l.ttl/10
		if l.ctx == nil {
			l.ctx, l.cancel = context.WithCancel(context.Background())
			l.expiry = time.AfterFunc(left, l.expire)
			l.log.Info("this server runs the scheduled jobs", "holder", l.holder)
			go l.gained(l.ctx)
		} else {
			l.expiry.Reset(left)
		}
	default:
		l.lose("another server holds the scheduled jobs' lease")
	}
}

func (l *leadership) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lose("the scheduled jobs' lease ran out without a renewal")
}

// lose gives up running jobs; the caller holds l.mu.
func (l *leadership) lose(why string) {
	if l.ctx == nil {
		return
	}
	l.cancel()
	l.expiry.Stop()
	l.ctx, l.cancel = nil, nil
	l.log.Info("this server no longer runs the scheduled jobs: "+why, "holder", l.holder)
}

// close stops renewing, stops the jobs and releases the lease so that
// another server takes it at its next try rather than at expiry.
func (l *leadership) close() {
	l.closeOnce.Do(l.shutdown)
}

func (l *leadership) shutdown() {
	if !l.started {
		return
	}
	close(l.stop)
	<-l.done
	l.mu.Lock()
	held := l.ctx != nil
	l.lose("shutting down")
	l.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.db.Update(ctx, func(tx engine.Tx) error { return tx.ReleaseLease(jobsLeaseName, l.holder) }); err != nil {
		l.log.Warn("releasing the scheduled jobs' lease", "err", err)
	}
}

// followRules makes rules that another server published live here within
// every, until ctx ends; save, when not nil, writes them to this server's
// rules file. It returns a function that waits for it to stop.
func followRules(ctx context.Context, e *engine.Engine, every time.Duration, save func([]byte) error, log *slog.Logger) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastErr string
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			_, err := e.FollowRules(ctx, save)
			switch {
			case err != nil && ctx.Err() == nil && err.Error() != lastErr:
				log.Error("following the database's rules", "err", err)
				lastErr = err.Error()
			case err == nil:
				lastErr = ""
			}
		}
	}()
	return func() { <-done }
}
