-- Users, their sessions, and each session's chain of refresh tokens.
-- Times are Unix milliseconds (UTC).

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,              -- as typed (trimmed), for display
    email_key     TEXT NOT NULL UNIQUE,       -- lower-cased, for lookups
    password_hash TEXT NOT NULL,              -- argon2id PHC string
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER NOT NULL,          -- last rotation; idle expiry counts from here
    expires_at     INTEGER NOT NULL,          -- absolute cap, never extended
    user_agent     TEXT,
    revoked_at     INTEGER,
    revoked_reason TEXT                        -- logout, revoked, reuse
);
CREATE INDEX sessions_by_user ON sessions(user_id, created_at DESC);
CREATE INDEX sessions_by_end ON sessions(expires_at);

CREATE TABLE refresh_tokens (
    id           INTEGER PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,        -- keyed hash; the token itself is never stored
    parent_id    INTEGER REFERENCES refresh_tokens(id) ON DELETE CASCADE,
    successor_id INTEGER REFERENCES refresh_tokens(id) ON DELETE SET NULL,
    issued_at    INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);
CREATE INDEX refresh_tokens_by_parent ON refresh_tokens(parent_id);

-- One row that the readiness probe writes (and rolls back) to prove the
-- database accepts writes.
CREATE TABLE readiness_probe (id INTEGER PRIMARY KEY, checked_at INTEGER NOT NULL);
