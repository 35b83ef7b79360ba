-- A token's successor is the token whose `parent_id` is its id, so
-- `successor_id` wrote the same link a second time. Worse, its foreign key
-- (ON DELETE SET NULL) had no index: every token deleted with its session
-- made SQLite scan the whole table for rows naming it. Purging 200 ended
-- sessions from 200,000 tokens took 155 s, all of it holding the write
-- lock. The column goes, and `parent_id` becomes unique: a token has at
-- most one successor, now a rule of the schema too.
--
-- `parent_id` also loses ON DELETE CASCADE. Tokens only ever go with their
-- session (`session_id` cascades), and SQLite runs each cascaded delete
-- inside the one before it: deleting a session whose chain was over 1,000
-- tokens long (a tab open for ten days) failed with "too many levels of
-- trigger recursion", so the purge failed on every run after that.
--
-- SQLite can't drop a column a foreign key uses, so the table is rebuilt
-- (https://sqlite.org/lang_altertable.html#otheralter).

-- Dropping the old table deletes its rows first, running their keys'
-- actions: with this index, finding the rows that name each deleted one is
-- a lookup instead of a scan.
CREATE INDEX refresh_tokens_by_successor ON refresh_tokens(successor_id);

CREATE TABLE refresh_tokens_rebuilt (
    id          INTEGER PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,         -- keyed hash; the token itself is never stored
    parent_id   INTEGER REFERENCES refresh_tokens_rebuilt(id),
    issued_at   INTEGER NOT NULL,
    used_at     INTEGER
);
INSERT INTO refresh_tokens_rebuilt (id, session_id, token_hash, parent_id, issued_at, used_at)
    SELECT id, session_id, token_hash, parent_id, issued_at, used_at
    FROM refresh_tokens ORDER BY id;
-- Unlinked first, so the old cascade has nothing to recurse through.
UPDATE refresh_tokens SET parent_id = NULL, successor_id = NULL;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_rebuilt RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);
CREATE UNIQUE INDEX refresh_tokens_by_parent ON refresh_tokens(parent_id);
