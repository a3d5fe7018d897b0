package store

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// committer is the store's group commit: the write functions of concurrent
// Update calls run one after another in one bbolt transaction and share its
// commit and fsync.
//
// bbolt's own db.Batch starts a batch timer with the first call and closes
// the batch when it fires, even while the previous commit still holds the
// writer lock; under load, the calls that arrive during one commit end up in
// several small batches that then commit one by one (measured: 8 purchases
// per commit with 64 tills posting, when about 50 were waiting). Here a
// single goroutine takes everything queued whenever the previous commit is
// done, so a commit carries every write that arrived while the last one
// was being written, and a lone write commits at once instead of waiting
// for a timer.
type committer struct {
	db      *bolt.DB
	maxSize int

	mu     sync.Mutex
	queue  []*write
	closed bool
	wake   chan struct{} // holds one token while the queue may be non-empty
	done   chan struct{} // closed when the loop has drained the queue and ended
}

type write struct {
	fn  func(*bolt.Tx) error
	err chan error
}

func newCommitter(db *bolt.DB, maxSize int) *committer {
	c := &committer{db: db, maxSize: maxSize, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// update queues fn and waits for the commit that carries it. fn may run more
// than once: when a function of the same transaction fails after changing
// it, the transaction rolls back and the others run again without it.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return berrors.ErrDatabaseNotOpen
	}
	c.queue = append(c.queue, w)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.mu.Unlock()
	return <-w.err
}

// close refuses new writes and returns once the queued ones are committed.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.wake)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	for range c.wake {
		for {
			c.mu.Lock()
			n := min(len(c.queue), c.maxSize)
			batch := make([]*write, n)
			copy(batch, c.queue)
			c.queue = c.queue[n:]
			if len(c.queue) == 0 {
				// Let the slice's array go instead of growing it forever.
				c.queue = nil
			}
			c.mu.Unlock()
			if n == 0 {
				break
			}
			c.commit(batch)
		}
	}
}

// commit runs batch in one transaction. A function that fails after
// changing the transaction is answered with its error and the transaction
// is run again without it, so a failed write's changes are never committed.
// A function that fails before changing anything (a refusal: unknown
// member, too few points) costs the others nothing: they go on in the same
// transaction, and it is answered with its error once the commit is done,
// since it read what the functions before it wrote. Should the commit
// fail, every function of the batch gets that error.
func (c *committer) commit(batch []*write) {
	for len(batch) > 0 {
		failed, failErr := -1, error(nil)
		refused := make([]error, len(batch))
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, w := range batch {
				err := safely(w.fn, tx)
				switch {
				case err == nil:
				case changedNothing(err):
					refused[i] = err
				default:
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for i, w := range batch {
				if err == nil && refused[i] != nil {
					w.err <- refused[i]
					continue
				}
				w.err <- err
			}
			return
		}
		batch[failed].err <- failErr
		batch = append(batch[:failed], batch[failed+1:]...)
	}
}

// changedNothing tells whether a write function's error says it left the
// transaction as it found it; a panic, or an error from a function that
// does not say so, may have left changes.
func changedNothing(err error) bool {
	var fe fnError
	return errors.As(err, &fe) && fe.unchanged
}

// safely turns a panic in fn into an error for its caller alone: it runs on
// the committer's goroutine, where a panic would end the process.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a write transaction: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(tx)
}
