package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/version"
)

// schemaVersion is the layout described in doc.go. Open refuses files with a
// newer one, which this program would misread. Version 2 gathered each
// member's ledger, lots and metrics into member_data; a writable Open moves
// a version-1 file to it (migrate.go). Version 3 keeps the part of a member
// that every purchase changes in member_data too (account.go); its records
// move there as they are next written. Version 4 keeps a member's ledger
// entries, lots and metric entries in one time-ordered history (keys.go); a
// writable Open moves a version-2 or -3 file to it (migrate.go), so that
// what a purchase writes lands in one place.
const schemaVersion = 4

var schemaKey = []byte("schema")

// initialMmapSize is mapped up front. A write that outgrows the mapping must
// wait until no read transaction (a backup, say) is open, so growing rarely
// keeps View from stalling writers; on 64-bit systems it costs only address
// space, not memory or disk.
const initialMmapSize = 1 << 30

var _ engine.Store = (*DB)(nil)

// Options configures Open. Zero durations and sizes take the defaults.
type Options struct {
	// ReadOnly opens the file with a shared lock, for verify and backup
	// alongside other readers; writes fail.
	ReadOnly bool
	// Timeout bounds the wait for the file lock, so a second process gets
	// an error instead of hanging.
	Timeout time.Duration
	// MaxBatchSize is how many writes a commit takes at most (commit.go).
	MaxBatchSize int
	// NoSync skips fsync on commit: faster, but a crash can lose or corrupt
	// data. For tests and bulk imports only.
	NoSync bool
	// Migrating, if set, is told before a writable Open moves a file of an
	// older schema to this one, which takes minutes on a large file.
	Migrating func(from, to uint64)
}

// DefaultOptions returns the options a server should use.
func DefaultOptions() Options {
	return Options{
		Timeout:      time.Second,
		MaxBatchSize: 1000,
	}
}

// DB is a loyalty database in one bbolt file.
type DB struct {
	bolt    *bolt.DB
	commits *committer
}

// Open opens or creates the database at path and checks its schema version.
// ErrLocked is Open's answer when another process holds the file: bbolt
// lets one process write a file or several read it, never both at once, and
// reading without the lock while another writes is not safe (the writer
// reuses the pages a reader may be on).
var ErrLocked = errors.New("locked by another process")

func Open(path string, opts Options) (*DB, error) {
	def := DefaultOptions()
	if opts.Timeout <= 0 {
		opts.Timeout = def.Timeout
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = def.MaxBatchSize
	}
	// The file holds personal data (emails, phones): owner only.
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.Timeout,
		ReadOnly:        opts.ReadOnly,
		NoSync:          opts.NoSync,
		InitialMmapSize: initialMmapSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w (waited %s for its lock)", path, ErrLocked, opts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opts.ReadOnly {
		err = b.View(func(tx *bolt.Tx) error { return checkSchema(tx, path) })
	} else {
		err = b.Update(func(tx *bolt.Tx) error { return initSchema(tx, path) })
	}
	if err == nil && !opts.ReadOnly {
		var n uint64
		n, err = schemaOf(b)
		moving := err == nil && (n < schemaVersion || rekeyingUnderWay(b))
		if moving && opts.Migrating != nil {
			opts.Migrating(n, schemaVersion)
		}
		if moving && n == 1 {
			err = migrateV1(b)
		}
		if moving && err == nil {
			err = migrateV3(b)
		}
	}
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return &DB{bolt: b, commits: newCommitter(b, opts.MaxBatchSize)}, nil
}

// initSchema creates the buckets of a new file and checks an existing one.
// It runs in one transaction so a refused file is left untouched.
func initSchema(tx *bolt.Tx, path string) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("store: create bucket meta: %w", err)
	}
	if meta.Get(schemaKey) == nil {
		if err := meta.Put(schemaKey, binary.BigEndian.AppendUint64(nil, schemaVersion)); err != nil {
			return fmt.Errorf("store: write schema version: %w", err)
		}
	}
	if err := checkSchema(tx, path); err != nil {
		return err
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	return nil
}

func checkSchema(tx *bolt.Tx, path string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("store: %s is not a loyalty database (no schema version)", path)
	}
	v := meta.Get(schemaKey)
	if len(v) != 8 {
		return fmt.Errorf("store: %s: bad schema version record (%d bytes)", path, len(v))
	}
	switch n := binary.BigEndian.Uint64(v); {
	case n < 1:
		return fmt.Errorf("store: %s has unknown schema version %d", path, n)
	case n > schemaVersion:
		return fmt.Errorf("store: %s has schema version %d, newer than this program's %d (%s): a newer loyalty wrote it; run that one, or restore the backup taken before the upgrade (docs/OPERATIONS.md, rolling back)", path, n, schemaVersion, version.Get())
	case n < schemaVersion && !tx.Writable():
		return fmt.Errorf("store: %s has schema version %d: open it once for writing (loyalty serve) to move it to version %d", path, n, schemaVersion)
	case meta.Get(rekeyingKey) != nil && !tx.Writable():
		return fmt.Errorf("store: %s is part-way through its move to schema version %d: open it once for writing (loyalty serve) to finish it", path, schemaVersion)
	}
	return nil
}

// rekeyingUnderWay tells whether a move to schema 4 stopped part-way.
func rekeyingUnderWay(b *bolt.DB) bool {
	var under bool
	_ = b.View(func(tx *bolt.Tx) error {
		under = tx.Bucket(bucketMeta).Get(rekeyingKey) != nil
		return nil
	})
	return under
}

// schemaOf reads the schema version of an open file.
func schemaOf(b *bolt.DB) (uint64, error) {
	var n uint64
	err := b.View(func(tx *bolt.Tx) error {
		n = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(schemaKey))
		return nil
	})
	return n, err
}

// Close commits the writes already queued, refuses new ones and closes the
// file; it waits for open transactions to finish.
func (db *DB) Close() error {
	db.commits.close()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path returns the path of the file.
func (db *DB) Path() string { return db.bolt.Path() }

// Size returns the size of the file in bytes, or 0 if it cannot be read.
func (db *DB) Size() int64 {
	fi, err := os.Stat(db.bolt.Path())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// fnError carries an error of the caller's function through bbolt, so that
// View and Update can tell it from bbolt's own and return it unchanged.
// unchanged is set when the function had not written anything, which the
// group commit relies on (commit.go).
type fnError struct {
	err       error
	unchanged bool
}

func (e fnError) Error() string { return e.err.Error() }

func call(fn func(engine.Tx) error, btx *bolt.Tx) error {
	t := &tx{tx: btx}
	if err := fn(t); err != nil {
		return fnError{err: err, unchanged: !t.wrote}
	}
	return nil
}

func unwrapFn(op string, err error) error {
	var fe fnError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return fe.err
	default:
		return fmt.Errorf("store: %s: %w", op, err)
	}
}

// View runs fn in a read-only transaction, unless ctx is already done.
func (db *DB) View(ctx context.Context, fn func(engine.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: view: %w", err)
	}
	return unwrapFn("view", db.bolt.View(func(btx *bolt.Tx) error { return call(fn, btx) }))
}

// Update runs fn in a read-write transaction shared with concurrent calls
// (group commit, commit.go); fn may run more than once. A ctx already done
// keeps fn out of the queue; once queued, Update waits for its commit
// whatever ctx does, because fn will still run and the caller's variables
// it sets must not be read before.
func (db *DB) Update(ctx context.Context, fn func(engine.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: update: %w", err)
	}
	return unwrapFn("update", db.commits.update(func(btx *bolt.Tx) error { return call(fn, btx) }))
}

// WriteTo writes a consistent copy of the database to w without blocking
// writers, for backups.
func (db *DB) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}
