package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

// PutWebhook implements engine.Tx.
func (t *tx) PutWebhook(w *engine.Webhook) error {
	if w.ID == "" {
		return fmt.Errorf("postgres: put webhook: %w", errEmptyID)
	}
	detail, err := jsonOf(*w)
	if err != nil {
		return fmt.Errorf("postgres: put webhook %s: %w", w.ID, err)
	}
	return t.execOther("put webhook "+w.ID, `INSERT INTO webhooks (id, detail) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET detail = excluded.detail`, w.ID, detail)
}

func (t *tx) webhooks(what, sql string, args ...any) ([]*engine.Webhook, error) {
	var out []*engine.Webhook
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		var detail []byte
		if err := rows.Scan(&detail); err != nil {
			return err
		}
		w := new(engine.Webhook)
		if err := fromJSON(detail, w); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		w.OldSecretUntil, w.CreatedAt, w.UpdatedAt = w.OldSecretUntil.UTC(), w.CreatedAt.UTC(), w.UpdatedAt.UTC()
		out = append(out, w)
		return nil
	})
	return out, err
}

// Webhook implements engine.Tx.
func (t *tx) Webhook(id string) (*engine.Webhook, error) {
	ws, err := t.webhooks("webhook "+id, `SELECT detail FROM webhooks WHERE id = $1`, id)
	if err != nil || len(ws) == 0 {
		return nil, err
	}
	return ws[0], nil
}

// Webhooks implements engine.Tx.
func (t *tx) Webhooks() ([]*engine.Webhook, error) {
	return t.webhooks("webhooks", `SELECT detail FROM webhooks ORDER BY id COLLATE "C"`)
}

// DeleteWebhook implements engine.Tx; its deliveries go by the foreign
// key's cascade.
func (t *tx) DeleteWebhook(id string) error {
	return t.execOther("delete webhook "+id, `DELETE FROM webhooks WHERE id = $1`, id)
}

// PutDelivery implements engine.Tx.
func (t *tx) PutDelivery(d *engine.Delivery) error {
	seq, err := toInt64("delivery seq", d.Seq)
	if err != nil {
		return err
	}
	if d.WebhookID == "" || seq == 0 {
		return fmt.Errorf("postgres: put delivery: %w", errEmptyID)
	}
	detail, err := jsonOf(*d)
	if err != nil {
		return fmt.Errorf("postgres: put delivery %s/%d: %w", d.WebhookID, d.Seq, err)
	}
	return t.execOther(fmt.Sprintf("put delivery %s/%d", d.WebhookID, d.Seq), `INSERT INTO deliveries (webhook_id, seq, status, detail) VALUES ($1, $2, $3, $4)
		ON CONFLICT (webhook_id, seq) DO UPDATE SET status = excluded.status, detail = excluded.detail`,
		d.WebhookID, seq, d.Status, detail)
}

func (t *tx) deliveries(what, sql string, args ...any) ([]*engine.Delivery, error) {
	var out []*engine.Delivery
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		var detail []byte
		if err := rows.Scan(&detail); err != nil {
			return err
		}
		d := new(engine.Delivery)
		if err := fromJSON(detail, d); err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		d.LastAttemptAt, d.NextAttemptAt, d.CreatedAt = d.LastAttemptAt.UTC(), d.NextAttemptAt.UTC(), d.CreatedAt.UTC()
		out = append(out, d)
		return nil
	})
	return out, err
}

// Delivery implements engine.Tx.
func (t *tx) Delivery(webhookID string, seq uint64) (*engine.Delivery, error) {
	n, err := toInt64("delivery seq", seq)
	if err != nil {
		return nil, err
	}
	ds, err := t.deliveries(fmt.Sprintf("delivery %s/%d", webhookID, seq), `SELECT detail FROM deliveries WHERE webhook_id = $1 AND seq = $2`, webhookID, n)
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	return ds[0], nil
}

// Deliveries implements engine.Tx.
func (t *tx) Deliveries(webhookID, status string, after uint64, limit int) ([]*engine.Delivery, error) {
	n, err := toInt64("delivery cursor", after)
	if err != nil {
		return nil, err
	}
	const q = `SELECT detail FROM deliveries WHERE webhook_id = $1 AND seq > $2`
	const order = ` ORDER BY seq LIMIT $3`
	switch status {
	case "":
		return t.deliveries("deliveries of "+webhookID, q+order, webhookID, n, limitOf(limit))
	case engine.DeliveryPending:
		// The status as a literal, so that the plan reads the partial
		// index deliveries_pending, however often the statement runs.
		return t.deliveries("pending deliveries of "+webhookID, q+` AND status = 'pending'`+order, webhookID, n, limitOf(limit))
	}
	return t.deliveries("deliveries of "+webhookID, q+` AND status = $4`+order, webhookID, n, limitOf(limit), status)
}

// DeleteEvents implements engine.Tx. Only numbered events are deleted:
// one the sequencer has not reached yet has no seq to compare. The
// counter of seqs is event_seq's, which deleting leaves alone, so a seq
// is never given again.
func (t *tx) DeleteEvents(upTo uint64, limit int) (int, error) {
	n, err := toInt64("events bound", upTo)
	if err != nil {
		return 0, err
	}
	var deleted int
	err = t.query("delete events", `WITH e AS (
		DELETE FROM events WHERE n IN (SELECT n FROM events WHERE seq <= $1 ORDER BY seq LIMIT $2) RETURNING seq
	), d AS (
		DELETE FROM deliveries WHERE seq <= (SELECT max(seq) FROM e)
	)
	SELECT count(*) FROM e`, []any{n, limitOf(limit)}, func(rows pgx.Rows) error {
		return rows.Scan(&deleted)
	})
	return deleted, err
}
