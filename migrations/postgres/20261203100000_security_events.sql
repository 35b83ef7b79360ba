-- Each user's security history: sign-ins, sign-outs, revoked sessions,
-- password changes, refresh-token reuse and lockouts, newest first by id.
-- `session_id` names the session an event concerns but is no foreign key:
-- sessions are purged a week after they end, their history is kept for
-- SECURITY_HISTORY_RETENTION. Events go with their user.
CREATE TABLE security_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    session_id TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX security_events_by_user ON security_events(user_id, id);
CREATE INDEX security_events_by_time ON security_events(at);
