-- Every command rewrites its member's row. With room left on each page
-- the new version goes beside the old one (a HOT update), and none of the
-- four indexes on members needs a new entry: most commands change no
-- indexed column (id, external_id, email, phone).
ALTER TABLE members SET (fillfactor = 80);
