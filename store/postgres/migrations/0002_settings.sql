-- Small values the engine keeps for itself across restarts (the test
-- clock's offset, the latest write time, server secrets), opaque to the
-- store.
CREATE TABLE settings (
	name text COLLATE "C" PRIMARY KEY,
	value bytea NOT NULL
);
