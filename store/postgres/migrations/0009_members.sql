-- Member operations: a merged member names the survivor, and transfers
-- of points between members are recorded under their client id, as the
-- other writes are. Erasure reads a member's events without an index of
-- events by member: it is rare, and every event insert would pay for one.
ALTER TABLE members ADD COLUMN merged_into text COLLATE "C" NOT NULL DEFAULT '';

CREATE TABLE transfers (
	id text COLLATE "C" PRIMARY KEY,
	from_member_id text COLLATE "C" NOT NULL REFERENCES members (id),
	to_member_id text COLLATE "C" NOT NULL REFERENCES members (id),
	at timestamptz NOT NULL,
	points bigint NOT NULL,
	reason text NOT NULL,
	request_hash text NOT NULL,
	-- lot draws and answer
	detail jsonb NOT NULL
);
