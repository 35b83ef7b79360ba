-- A token's successor is the token whose `parent_id` is its id, so
-- `successor_id` wrote the same link a second time, and cost every
-- rotation: the spend changed an indexed column, so the parent's new row
-- version could never stay on its page (a HOT update) and went into all
-- five indexes, and its foreign key locked the successor's row to check
-- it. The column goes, with its index and key; `parent_id` becomes unique:
-- a token has at most one successor, now a rule of the schema too.
--
-- Upgrading: instances of the previous version write this column, so stop
-- them all before the first instance of this version starts. If one still
-- holds the table, this migration fails after 10 s (and the new instance
-- with it) rather than queueing every query behind its lock.
SET LOCAL lock_timeout = '10s';
ALTER TABLE refresh_tokens DROP COLUMN successor_id;
DROP INDEX refresh_tokens_by_parent;
CREATE UNIQUE INDEX refresh_tokens_by_parent ON refresh_tokens(parent_id);

-- Room on each page written from now on for the new row version of a
-- spend (tokens) or a touch (sessions), so those updates can stay on their
-- page and skip the indexes. Pages already full keep no room until they are
-- rewritten.
ALTER TABLE refresh_tokens SET (fillfactor = 70);
ALTER TABLE sessions SET (fillfactor = 70);
