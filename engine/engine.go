// Package engine is the loyalty domain: members, purchases, points, tiers and
// the jobs that move them. Every business rule lives here; storage, HTTP and
// scheduling are plugged in from outside.
package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// Clock tells the engine what time it is.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// TestClock runs at wall-clock speed from an offset that can only grow, so a
// demo or a test can jump ahead a year and run the jobs while time still
// flows between requests. It never shows a time past LatestTime. The
// engine's MoveClock also keeps it after the newest write and stores the
// offset, which a server restores when it starts (clock.go).
type TestClock struct {
	mu     sync.Mutex
	base   Clock
	offset time.Duration
}

// NewTestClock returns a TestClock that starts at base's time.
func NewTestClock(base Clock) *TestClock { return &TestClock{base: base} }

// Now returns the base time plus the accumulated offset.
func (c *TestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *TestClock) Advance(d time.Duration) error {
	if d < 0 {
		return FieldErrorf(EINVALID, "advance", "the clock only moves forward")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.moveTo("advance", c.base.Now().Add(c.offset).Add(d))
}

// Set moves the clock forward to t.
func (c *TestClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.base.Now().Add(c.offset)) {
		return FieldErrorf(EINVALID, "now", "the clock only moves forward")
	}
	return c.moveTo("now", t)
}

// Options configures an Engine.
type Options struct {
	Clock  Clock
	Logger *slog.Logger
	// JobChunk bounds how many records one job transaction touches, so a
	// job never holds the write lock long enough to stall the tills.
	JobChunk int
	// Hooks are told about committed changes, for metrics.
	Hooks Hooks
	// Backup runs the backup job: a verified copy of the store, taken at
	// engine time at, made by whoever wired the engine (the engine knows
	// no files); it returns the copy's size. Nil makes the job refuse to
	// run, with NoBackup as the reason.
	Backup   func(ctx context.Context, at time.Time) (int64, error)
	NoBackup string
	// MaxPendingDeliveries is the most pending deliveries a webhook
	// endpoint may have (DefaultMaxPendingDeliveries when 0): the worker
	// disables an endpoint past it, and a replay that would pass it is
	// refused. The worker must be given the same bound.
	MaxPendingDeliveries int
}

// DefaultMaxPendingDeliveries is the default of
// Options.MaxPendingDeliveries: a day of 1 event a second.
const DefaultMaxPendingDeliveries = 100_000

// Engine runs the program: it validates commands, applies the rules and
// keeps the store consistent.
type Engine struct {
	store    Store
	clock    Clock
	log      *slog.Logger
	jobChunk int
	hooks    Hooks
	backup   func(context.Context, time.Time) (int64, error)
	noBackup string
	// maxPending is Options.MaxPendingDeliveries.
	maxPending int

	live  atomic.Pointer[liveRules]
	rules rulesState

	jobsMu  sync.Mutex
	running map[string]bool

	health  writeHealth
	clockMu sync.Mutex // one MoveClock at a time
}

// liveRules pairs a compiled program with the stored version it came from,
// so every point can be traced to the version that produced it.
type liveRules struct {
	prog    *rules.Program
	version RulesVersion
}

// New returns an Engine over store. Rules must be loaded with LoadRules
// before commands are served.
func New(store Store, opts Options) *Engine {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.JobChunk <= 0 {
		opts.JobChunk = 500
	}
	if opts.MaxPendingDeliveries <= 0 {
		opts.MaxPendingDeliveries = DefaultMaxPendingDeliveries
	}
	e := &Engine{
		clock:      opts.Clock,
		log:        opts.Logger,
		jobChunk:   opts.JobChunk,
		maxPending: opts.MaxPendingDeliveries,
		hooks:      opts.Hooks,
		backup:     opts.Backup,
		noBackup:   opts.NoBackup,
		running:    map[string]bool{},
	}
	if opts.Hooks.Ledger != nil {
		store = ledgerStore{Store: store, hook: opts.Hooks.Ledger}
	}
	e.store = healthStore{Store: stampingStore{Store: store, clock: opts.Clock, known: new(atomic.Int64)}, health: &e.health, now: e.Now}
	return e
}

// Now is the engine's time; every command reads it once and stamps
// everything it writes with it. It is truncated to microseconds, which
// every store keeps (Store: Time).
func (e *Engine) Now() time.Time { return e.clock.Now().UTC().Truncate(time.Microsecond) }

// Clock returns the engine's clock, so the HTTP layer can move a TestClock.
func (e *Engine) Clock() Clock { return e.clock }

// Program returns the live rules and their version.
func (e *Engine) Program() (*rules.Program, RulesVersion) {
	l := e.live.Load()
	if l == nil {
		return nil, RulesVersion{}
	}
	return l.prog, l.version
}

// LoadRules makes prog live. A program whose text differs from the latest
// stored version is stored as a new version first; one that matches reuses
// that version, so restarting the server does not inflate the history.
func (e *Engine) LoadRules(ctx context.Context, prog *rules.Program, by string) (RulesVersion, error) {
	if err := checkBonuses(prog); err != nil {
		return RulesVersion{}, err
	}
	now := e.Now()
	var v RulesVersion
	err := e.store.Update(ctx, func(tx Tx) error {
		latest, err := tx.LatestRules()
		if err != nil {
			return err
		}
		if latest != nil && latest.Hash == prog.Hash {
			v = *latest
			return nil
		}
		v = RulesVersion{Version: 1, Hash: prog.Hash, Source: string(prog.Source), LoadedAt: now, By: by}
		if latest != nil {
			v.Version = latest.Version + 1
		}
		if err := tx.PutRules(&v); err != nil {
			return err
		}
		return emit(tx, now, EventRulesPublished, "", rulesEventData{Version: v.Version, Hash: v.Hash, By: by})
	})
	if err != nil {
		return RulesVersion{}, err
	}
	e.live.Store(&liveRules{prog: prog, version: v})
	e.log.Info("rules live", "version", v.Version, "hash", v.Hash[:12], "by", v.By)
	return v, nil
}

// RulesVersions lists every stored version of the rules, oldest first.
func (e *Engine) RulesVersions(ctx context.Context) ([]*RulesVersion, error) {
	var vs []*RulesVersion
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		vs, err = tx.RulesVersions()
		return err
	})
	return vs, err
}

// LatestRules returns the latest stored version of the rules, or nil when
// none was ever stored.
func (e *Engine) LatestRules(ctx context.Context) (*RulesVersion, error) {
	var v *RulesVersion
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		v, err = tx.LatestRules()
		return err
	})
	return v, err
}

// RulesVersion returns one stored version.
func (e *Engine) RulesVersion(ctx context.Context, n int) (*RulesVersion, error) {
	var v *RulesVersion
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		v, err = tx.RulesVersion(n)
		return err
	})
	if err == nil && v == nil {
		return nil, Errorf(ENOTFOUND, "rules version %d not found", n)
	}
	return v, err
}

func (e *Engine) mustProgram() (*liveRules, error) {
	l := e.live.Load()
	if l == nil {
		return nil, Errorf(EINTERNAL, "no rules loaded")
	}
	return l, nil
}
