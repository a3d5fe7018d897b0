package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// The webhook buckets (doc.go) may be missing from a file opened
// read-only that an older program wrote: such a file has no webhooks.

// deliveryKey is the deliveries key of the delivery of event seq to
// webhook id: the id, length first, then the seq, so that a webhook's
// deliveries sit together in event order.
func deliveryKey(id string, seq uint64) []byte {
	return appendUint64(appendString(make([]byte, 0, 2+len(id)+8), id), seq)
}

// PutWebhook implements engine.Tx.
func (t *tx) PutWebhook(w *engine.Webhook) error {
	if w.ID == "" {
		return fmt.Errorf("store: put webhook: %w", errEmptyID)
	}
	t.writing()
	if err := put(t.bucket(bucketWebhooks), []byte(w.ID), w); err != nil {
		return fmt.Errorf("store: put webhook %s: %w", w.ID, err)
	}
	return nil
}

// Webhook implements engine.Tx.
func (t *tx) Webhook(id string) (*engine.Webhook, error) {
	b := t.bucket(bucketWebhooks)
	if b == nil || id == "" {
		return nil, nil
	}
	w, err := get[engine.Webhook](b, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("store: webhook %s: %w", id, err)
	}
	return w, nil
}

// Webhooks implements engine.Tx.
func (t *tx) Webhooks() ([]*engine.Webhook, error) {
	b := t.bucket(bucketWebhooks)
	if b == nil {
		return nil, nil
	}
	c := b.Cursor()
	k, v := c.First()
	ws, err := list[engine.Webhook](k, v, c.Next, all, 0)
	if err != nil {
		return nil, fmt.Errorf("store: webhooks: %w", err)
	}
	return ws, nil
}

// DeleteWebhook implements engine.Tx.
func (t *tx) DeleteWebhook(id string) error {
	t.writing()
	if err := t.bucket(bucketWebhooks).Delete([]byte(id)); err != nil {
		return fmt.Errorf("store: delete webhook %s: %w", id, err)
	}
	p := appendString(nil, id)
	for _, name := range [][]byte{bucketDeliveries, bucketDeliveriesPending} {
		b := t.bucket(name)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("store: delete webhook %s: %s: %w", id, name, err)
			}
		}
	}
	return nil
}

// PutDelivery implements engine.Tx, keeping deliveries_pending in step:
// a delivery is there exactly while it is pending.
func (t *tx) PutDelivery(d *engine.Delivery) error {
	if d.WebhookID == "" || d.Seq == 0 {
		return fmt.Errorf("store: put delivery: %w", errEmptyID)
	}
	t.writing()
	key := deliveryKey(d.WebhookID, d.Seq)
	if err := put(t.bucket(bucketDeliveries), key, d); err != nil {
		return fmt.Errorf("store: put delivery %s/%d: %w", d.WebhookID, d.Seq, err)
	}
	pending := t.bucket(bucketDeliveriesPending)
	var err error
	if d.Status == engine.DeliveryPending {
		err = pending.Put(key, nil)
	} else {
		err = pending.Delete(key)
	}
	if err != nil {
		return fmt.Errorf("store: put delivery %s/%d: deliveries_pending: %w", d.WebhookID, d.Seq, err)
	}
	return nil
}

// Delivery implements engine.Tx.
func (t *tx) Delivery(webhookID string, seq uint64) (*engine.Delivery, error) {
	b := t.bucket(bucketDeliveries)
	if b == nil {
		return nil, nil
	}
	d, err := get[engine.Delivery](b, deliveryKey(webhookID, seq))
	if err != nil {
		return nil, fmt.Errorf("store: delivery %s/%d: %w", webhookID, seq, err)
	}
	return d, nil
}

// Deliveries implements engine.Tx. The pending ones come from their own
// index, so that a long history of sent deliveries is not read through.
func (t *tx) Deliveries(webhookID, status string, after uint64, limit int) ([]*engine.Delivery, error) {
	deliveries := t.bucket(bucketDeliveries)
	if deliveries == nil {
		return nil, nil
	}
	b := deliveries
	if status == engine.DeliveryPending {
		b = t.bucket(bucketDeliveriesPending)
	}
	p := appendString(nil, webhookID)
	start := deliveryKey(webhookID, after)
	c := b.Cursor()
	var out []*engine.Delivery
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, p) && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		if bytes.Equal(k, start) {
			continue
		}
		if b != deliveries {
			v = deliveries.Get(k)
			if v == nil {
				return nil, fmt.Errorf("store: deliveries of %s: deliveries_pending has %x, which deliveries has not", webhookID, k)
			}
		}
		d := new(engine.Delivery)
		if err := decode(v, d); err != nil {
			return nil, fmt.Errorf("store: deliveries of %s: key %x: %w", webhookID, k, err)
		}
		if status == "" || d.Status == status {
			out = append(out, d)
		}
	}
	return out, nil
}

// DeleteEvents implements engine.Tx. The deliveries of the events go
// with them, found by each event's seq in every webhook's range.
func (t *tx) DeleteEvents(upTo uint64, limit int) (int, error) {
	events := t.bucket(bucketEvents)
	var seqs [][]byte
	c := events.Cursor()
	for k, _ := c.First(); k != nil && bytesToSeq(k) <= upTo && (limit <= 0 || len(seqs) < limit); k, _ = c.Next() {
		seqs = append(seqs, bytes.Clone(k))
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	t.writing()
	for _, k := range seqs {
		if err := events.Delete(k); err != nil {
			return 0, fmt.Errorf("store: delete event %x: %w", k, err)
		}
	}
	last := bytesToSeq(seqs[len(seqs)-1])
	hooks, err := t.Webhooks()
	if err != nil {
		return 0, err
	}
	for _, w := range hooks {
		for _, name := range [][]byte{bucketDeliveries, bucketDeliveriesPending} {
			if err := deleteRange(t.bucket(name), appendString(nil, w.ID), last); err != nil {
				return 0, fmt.Errorf("store: delete events: %s of %s: %w", name, w.ID, err)
			}
		}
	}
	return len(seqs), nil
}

// deleteRange deletes the keys of b under prefix p whose seq, the last 8
// bytes, is at most upTo.
func deleteRange(b *bolt.Bucket, p []byte, upTo uint64) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(k) == len(p)+8 && bytesToSeq(k[len(p):]) <= upTo; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func bytesToSeq(k []byte) uint64 {
	if len(k) < 8 {
		return 0
	}
	var n uint64
	for _, c := range k[len(k)-8:] {
		n = n<<8 | uint64(c)
	}
	return n
}

// deliveries checks that deliveries_pending lists exactly the pending
// deliveries, and that every delivery's webhook exists and its key is its
// own. A file older than the webhook buckets has none to check.
func (c *checker) deliveries(btx *bolt.Tx) error {
	deliveries, pending, hooks := btx.Bucket(bucketDeliveries), btx.Bucket(bucketDeliveriesPending), btx.Bucket(bucketWebhooks)
	if deliveries == nil || pending == nil || hooks == nil {
		return nil
	}
	err := deliveries.ForEach(func(k, v []byte) error {
		var d engine.Delivery
		if !c.decodeAt(bucketDeliveries, k, v, &d) {
			return c.err
		}
		if !bytes.Equal(k, deliveryKey(d.WebhookID, d.Seq)) {
			c.problemf("%s: %x holds the delivery of event %d to %s", bucketDeliveries, k, d.Seq, d.WebhookID)
		}
		if hooks.Get([]byte(d.WebhookID)) == nil {
			c.problemf("%s: %x: webhook %s does not exist", bucketDeliveries, k, d.WebhookID)
		}
		if listed := pending.Get(k) != nil; listed != (d.Status == engine.DeliveryPending) {
			c.problemf("%s: %x is %s, and deliveries_pending lists it: %v", bucketDeliveries, k, d.Status, listed)
		}
		return c.err
	})
	if err != nil {
		return err
	}
	return pending.ForEach(func(k, _ []byte) error {
		if deliveries.Get(k) == nil {
			c.problemf("%s: %x names no delivery", bucketDeliveriesPending, k)
		}
		return c.err
	})
}
