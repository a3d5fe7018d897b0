-- Rewards: the coupons members take or bonuses issue, and each reward's
-- running counts. A coupon's code is its key; the id of the request (or
-- bonus) that issued it is unique too, for idempotent retries. Issued
-- coupons are indexed by expiry for the expire-coupons job; the counts'
-- row of a reward is what every issue of it writes, so concurrent takes
-- of the last of a stock collide there and run again.
CREATE TABLE coupons (
	code text COLLATE "C" PRIMARY KEY,
	id text COLLATE "C" NOT NULL,
	member_id text COLLATE "C" NOT NULL REFERENCES members (id) DEFERRABLE INITIALLY DEFERRED,
	reward text COLLATE "C" NOT NULL,
	status text NOT NULL,
	issued_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	points bigint NOT NULL,
	-- title, source, lot draws, answers, the use and the end
	detail jsonb NOT NULL
);

CREATE UNIQUE INDEX coupons_by_id ON coupons (id);
CREATE INDEX coupons_by_member ON coupons (member_id, issued_at, code);
CREATE INDEX coupons_due ON coupons (expires_at, code) WHERE status = 'issued';

CREATE TABLE reward_counts (
	reward text COLLATE "C" PRIMARY KEY,
	issued bigint NOT NULL,
	used bigint NOT NULL,
	expired bigint NOT NULL,
	cancelled bigint NOT NULL,
	points bigint NOT NULL
);
