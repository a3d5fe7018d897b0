-- Webhook endpoints and their deliveries (engine.Webhook, engine.Delivery),
-- each record whole in detail. A delivery's webhook_id, seq and status
-- have columns of their own for the worker's reads: the pending
-- deliveries of an endpoint, in event order, from a small partial index
-- however long the endpoint's history. Deleting an endpoint deletes its
-- deliveries.
CREATE TABLE webhooks (
	id     text PRIMARY KEY,
	detail jsonb NOT NULL
);
CREATE TABLE deliveries (
	webhook_id text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	seq        bigint NOT NULL,
	status     text NOT NULL,
	detail     jsonb NOT NULL,
	PRIMARY KEY (webhook_id, seq)
);
CREATE INDEX deliveries_pending ON deliveries (webhook_id, seq) WHERE status = 'pending';
-- Pruning deletes the deliveries of old events by seq.
CREATE INDEX deliveries_by_seq ON deliveries (seq);
