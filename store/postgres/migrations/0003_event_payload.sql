-- Events carry an id (the webhook-id of their deliveries) and their data
-- as the JSON bytes the engine wrote, kept exactly; data keeps the notices
-- written before, whose values were strings.
ALTER TABLE events ADD COLUMN id text COLLATE "C";
ALTER TABLE events ADD COLUMN payload bytea;
CREATE UNIQUE INDEX events_by_id ON events (id);
