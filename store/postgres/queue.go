package postgres

import (
	"context"
	"errors"
	"sync"
)

// Transactions of one member line up in the process before they meet in
// the database. At REPEATABLE READ, a transaction that waits for a
// member's row lock and gets it after the holder committed has a snapshot
// older than the row and fails to serialise (40001): under a burst on one
// member (a family card at many tills) every waiter fails each time the
// lock changes hands, and some run out of attempts. So before a
// transaction locks its first member it takes that member's place in this
// process's queue. When the place is taken, the attempt ends (errRestart)
// and Update waits for the place between attempts, holding no connection
// (waiters holding connections would leave none for the holder); the next
// attempt's snapshot comes after the previous holder's commit. Within one
// process, transactions of one member thus take turns instead of
// colliding; only those of other servers still collide, and retry.
//
// No deadlock can hide in the queues: an Update waits for a place only
// between attempts, holding no row lock, no connection and no other place,
// and any other place it wants it only tries to take; so every wait cycle
// goes through the database, whose deadlock detector breaks it (40P01).

// errRestart ends an attempt that found its member's place taken; Update
// waits for the place and runs it again.
var errRestart = errors.New("postgres: another transaction of this process has the member: waiting for its turn")

type memberQueues struct {
	mu sync.Mutex
	m  map[string]*memberQueue
}

// memberQueue is one member's place: sem holds a token while a
// transaction of this process has it; refs counts holders and waiters,
// so the entry goes once nobody needs it.
type memberQueue struct {
	sem  chan struct{}
	refs int
}

func (qs *memberQueues) get(id string) *memberQueue {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.m == nil {
		qs.m = map[string]*memberQueue{}
	}
	q := qs.m[id]
	if q == nil {
		q = &memberQueue{sem: make(chan struct{}, 1)}
		qs.m[id] = q
	}
	q.refs++
	return q
}

func (qs *memberQueues) put(id string, q *memberQueue) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if q.refs--; q.refs == 0 {
		delete(qs.m, id)
	}
}

// places are the queue places one Update holds, across its attempts.
type places struct {
	qs   *memberQueues
	held map[string]*memberQueue
	// want is the place the last attempt ended for, to wait for before
	// the next.
	want string
}

// try takes id's place if it is free, and tells whether the caller holds
// it.
func (p *places) try(id string) bool {
	if _, ok := p.held[id]; ok {
		return true
	}
	q := p.qs.get(id)
	select {
	case q.sem <- struct{}{}:
		p.keep(id, q)
		return true
	default:
		p.qs.put(id, q)
		return false
	}
}

// wait takes the place an attempt ended for (want), once it is free or
// ctx ends. The caller holds no connection, no row lock and no place.
func (p *places) wait(ctx context.Context) error {
	id := p.want
	if id == "" {
		return nil
	}
	p.want = ""
	q := p.qs.get(id)
	select {
	case q.sem <- struct{}{}:
		p.keep(id, q)
		return nil
	case <-ctx.Done():
		p.qs.put(id, q)
		return ctx.Err()
	}
}

func (p *places) keep(id string, q *memberQueue) {
	if p.held == nil {
		p.held = map[string]*memberQueue{}
	}
	p.held[id] = q
}

// release gives up every place.
func (p *places) release() {
	for id, q := range p.held {
		<-q.sem
		p.qs.put(id, q)
	}
	p.held = nil
}
