package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loyaltyhq/loyalty/engine"
)

var _ engine.Store = (*DB)(nil)

// IsURL tells whether a --db value names a PostgreSQL database rather than
// a bbolt file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Options configures Open. Zero values take the defaults.
type Options struct {
	// MaxConns caps the pool: how many transactions run at once. A
	// pool_max_conns parameter in the URL wins.
	MaxConns int
	// MaxAttempts bounds how often Update runs a function whose
	// transaction the database refused to serialise (SQLSTATE 40001 or
	// 40P01) before it gives up with that error.
	MaxAttempts int
	// UpdateTimeout bounds one attempt of an Update, so a lost connection
	// or a lock held by a stuck client fails the write instead of hanging.
	UpdateTimeout time.Duration
	// NoMigrate opens without creating or upgrading the schema; the
	// schema must then be exactly this program's (verify uses it).
	NoMigrate bool
	// SequenceEvery is how often the background pass gives committed
	// events their seqs (doc.go, "Events"); zero takes
	// DefaultSequenceEvery, a negative value runs no pass (readers of
	// the feed still sequence).
	SequenceEvery time.Duration
}

// DefaultOptions returns the options a server should use.
func DefaultOptions() Options {
	return Options{MaxConns: 32, MaxAttempts: 30, UpdateTimeout: time.Minute, SequenceEvery: DefaultSequenceEvery}
}

// DB is a loyalty database on a PostgreSQL server.
type DB struct {
	pool *pgxpool.Pool
	opts Options
	// ctx ends with Close, so that waits for a connection or a retry end
	// with it.
	ctx    context.Context
	cancel context.CancelFunc
	// sequencerDone is closed when the background sequencer has stopped.
	sequencerDone chan struct{}
	// queues line up this process's transactions of one member (queue.go).
	queues memberQueues
}

// Open connects to the database at url, creates or upgrades its schema
// (unless opts.NoMigrate) and checks that it is this program's.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	def := DefaultOptions()
	if opts.MaxConns <= 0 {
		opts.MaxConns = def.MaxConns
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = def.MaxAttempts
	}
	if opts.UpdateTimeout <= 0 {
		opts.UpdateTimeout = def.UpdateTimeout
	}
	if opts.SequenceEvery == 0 {
		opts.SequenceEvery = def.SequenceEvery
	}
	pool, err := newPool(ctx, url, opts.MaxConns)
	if err != nil {
		return nil, err
	}
	if !opts.NoMigrate {
		if _, err := migrate(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if err := checkVersion(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	dctx, cancel := context.WithCancel(context.Background())
	db := &DB{pool: pool, opts: opts, ctx: dctx, cancel: cancel, sequencerDone: make(chan struct{})}
	if opts.SequenceEvery > 0 {
		go db.sequencer(opts.SequenceEvery)
	} else {
		close(db.sequencerDone)
	}
	return db, nil
}

// newPool connects, so that a wrong URL or a server that is down fails
// here with a clear message rather than on the first request.
func newPool(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", Redact(url), err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", Redact(url), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", Redact(url), err)
	}
	return pool, nil
}

// Redact names the database at url for messages and logs, without its
// password.
func Redact(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return "the database URL"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// checkVersion refuses a database whose schema is not this program's.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) error {
	var v int
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM loyalty_schema_migrations`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		return errors.New("postgres: the database has no loyalty schema: run loyalty migrate --db URL")
	}
	if err != nil {
		return fmt.Errorf("postgres: read the schema version: %w", err)
	}
	switch want := SchemaVersion(); {
	case v > want:
		return errNewerSchema(v, want)
	case v < want:
		return fmt.Errorf("postgres: the database has schema version %d, older than this program's %d: run loyalty migrate --db URL", v, want)
	}
	return nil
}

// Close waits for the transactions in flight and closes the connections.
func (db *DB) Close() error {
	db.cancel()
	<-db.sequencerDone
	db.pool.Close()
	return nil
}

// Ping tells whether the database answers, for /healthz.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	// A connection that died while idle fails its ping and leaves the
	// pool; only a database that fails again on a new one is down.
	for range maxLostAttempts {
		if err = db.pool.Ping(ctx); err == nil {
			return nil
		}
	}
	return fmt.Errorf("postgres: %w", err)
}

// View runs fn in a read-only snapshot (REPEATABLE READ READ ONLY), which
// never blocks writers.
func (db *DB) View(ctx context.Context, fn func(engine.Tx) error) error {
	ctx, stop := db.bound(ctx)
	defer stop()
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		if retry, err = db.run(ctx, fn, false, nil); !retry || attempt >= maxLostAttempts {
			return err
		}
	}
}

// bound returns ctx ended also when the store closes, so that Close never
// waits on a caller's transaction longer than its statements take to stop.
func (db *DB) bound(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(db.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// maxLostAttempts bounds the attempts of a View whose connection was lost:
// the pool replaces a dead connection, so a second attempt usually works,
// and a third failure means the database is gone.
const maxLostAttempts = 3

// Update runs fn in a REPEATABLE READ transaction that locks the members
// it reads (doc.go). When the database refuses to serialise it with the
// others (SQLSTATE 40001, 40P01), another
// transaction wrote a key it was about to write (23505), or the connection
// was lost before COMMIT was sent (so nothing was committed), Update rolls
// back and runs fn again, after a random backoff that grows with each
// attempt: fn may run more than once, as engine.Store allows. A connection
// lost during COMMIT leaves the outcome unknown and is an error.
func (db *DB) Update(ctx context.Context, fn func(engine.Tx) error) error {
	parent, stop := db.bound(ctx)
	defer stop()
	var err error
	duplicates := 0
	pl := &places{qs: &db.queues}
	defer pl.release()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(parent, db.opts.UpdateTimeout)
		var retry bool
		retry, err = db.run(ctx, fn, true, pl)
		cancel()
		if retry && isCode(err, "23505") {
			// A key taken by a concurrent writer is seen by the next
			// attempt; one that stays taken is the function's mistake.
			duplicates++
		}
		if !retry || attempt >= db.opts.MaxAttempts || duplicates >= maxDuplicateAttempts {
			break
		}
		if errors.Is(err, errRestart) {
			// The wait for the member's turn is the pause.
			if err := pl.wait(parent); err != nil {
				return fmt.Errorf("postgres: update: %w", err)
			}
			continue
		}
		if err := sleep(parent, backoff(attempt)); err != nil {
			return fmt.Errorf("postgres: update: %w", err)
		}
	}
	return err
}

// backoff is a random wait before attempt n+1: up to 1 ms after the first
// failure, doubling to at most 100 ms, so that colliding writers spread out.
func backoff(n int) time.Duration {
	ceiling := time.Millisecond << min(n-1, 7)
	return time.Duration(rand.Int64N(int64(min(ceiling, 100*time.Millisecond)))) + 50*time.Microsecond
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// run is one attempt of View or Update. It tells whether the attempt
// failed in a way a new attempt can fix.
func (db *DB) run(ctx context.Context, fn func(engine.Tx) error, write bool, pl *places) (retry bool, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Release()
	t := &tx{ctx: ctx, conn: conn.Conn(), write: write, places: pl}
	done := false
	defer func() {
		// Also on a panic in fn: a connection must not go back to the pool
		// inside a transaction.
		if !done {
			t.rollback()
		}
	}()
	ferr := fn(t)
	if t.err == nil && ferr == nil && write {
		t.commit()
	}
	done = t.finished
	if !done {
		t.rollback()
		done = true
	}
	switch {
	case t.err != nil && (retryable(t.err) || t.lostBeforeCommit()):
		return true, t.err
	case ferr != nil:
		return false, ferr
	case t.err != nil:
		return false, t.err
	}
	return false, nil
}

// maxDuplicateAttempts bounds the attempts of an Update that keeps
// writing a key that exists.
const maxDuplicateAttempts = 3

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// retryable tells whether a transaction failed only because of what ran
// beside it: a serialization failure, a deadlock, a unique key another
// transaction took first (a new attempt sees it and decides again), or a
// turn in a member's queue that came after its snapshot.
func retryable(err error) bool {
	if errors.Is(err, errRestart) {
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}

// commitTag checks that COMMIT committed: in a failed transaction the
// server answers it with ROLLBACK and no error.
func commitTag(tag pgconn.CommandTag) error {
	if tag.String() != "COMMIT" {
		return fmt.Errorf("postgres: commit answered %q", tag.String())
	}
	return nil
}
