package store

import (
	"fmt"

	"github.com/loyaltyhq/loyalty/engine"
)

// The transfers bucket may be missing from a file opened read-only that
// an older program wrote: such a file has no transfers.

// Transfer implements engine.Tx.
func (t *tx) Transfer(id string) (*engine.Transfer, error) {
	b := t.bucket(bucketTransfers)
	if b == nil || id == "" {
		return nil, nil
	}
	tr, err := get[engine.Transfer](b, idKey(id))
	if err != nil {
		return nil, fmt.Errorf("store: transfer %s: %w", id, err)
	}
	return tr, nil
}

// PutTransfer implements engine.Tx.
func (t *tx) PutTransfer(tr *engine.Transfer) error {
	return t.putByID(bucketTransfers, "transfer", tr.ID, tr)
}

// MemberEvents implements engine.Tx. The events bucket has no index by
// member: erasure, its one reader, is rare enough to read the feed whole.
func (t *tx) MemberEvents(memberID string) ([]*engine.Event, error) {
	var out []*engine.Event
	c := t.bucket(bucketEvents).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e := new(engine.Event)
		if err := decode(v, e); err != nil {
			return nil, fmt.Errorf("store: events of %s: key %x: %w", memberID, k, err)
		}
		if e.MemberID == memberID {
			out = append(out, e)
		}
	}
	return out, nil
}

// RewriteEvent implements engine.Tx. Every event of the bbolt store has a
// seq, its key, which names it whether or not it has an ID.
func (t *tx) RewriteEvent(e *engine.Event) error {
	b := t.bucket(bucketEvents)
	key := appendUint64(nil, e.Seq)
	old, err := get[engine.Event](b, key)
	if err != nil {
		return fmt.Errorf("store: rewrite event %d: %w", e.Seq, err)
	}
	if old == nil || old.ID != e.ID {
		return fmt.Errorf("store: rewrite event %d: no such event with id %q", e.Seq, e.ID)
	}
	old.Payload, old.Notice = e.Payload, e.Notice
	t.writing()
	if err := put(b, key, old); err != nil {
		return fmt.Errorf("store: rewrite event %d: %w", e.Seq, err)
	}
	return nil
}
