-- The login throttle's state, shared by every server on this database
-- (src/auth/throttle.rs holds the rule). Times are Unix milliseconds (UTC).
-- Safe to run twice (`IF NOT EXISTS`), as tests/migrations.rs replays the
-- migrations after an edited one on a database that already has them.

-- One row per login attempt that still matters: in flight (`lease_until`
-- set: it counts until then, so an attempt whose server crashed stops
-- counting by itself) or failed (`failed_at` set: it counts until it leaves
-- the lockout window). An attempt that succeeds or gets no verdict leaves
-- no row. A success marks its pair's failures `pair_cleared`: they no
-- longer count for that (email, address) pair, but still for the email.
-- AUTOINCREMENT: an id is never reused, so a late write for a purged
-- attempt can never land on another's row.
CREATE TABLE IF NOT EXISTS login_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    email_key    TEXT NOT NULL,               -- as `email_key` gives it: at most 381 bytes
    address      TEXT NOT NULL,               -- the client address, as text
    started_at   INTEGER NOT NULL,
    lease_until  INTEGER,                     -- NULL once the attempt ended
    failed_at    INTEGER,                     -- NULL unless it failed
    pair_cleared BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS login_attempts_by_pair ON login_attempts(email_key, address);
CREATE INDEX IF NOT EXISTS login_attempts_by_failure ON login_attempts(failed_at);
CREATE INDEX IF NOT EXISTS login_attempts_by_lease ON login_attempts(lease_until);

-- Each login or register attempt from an address, for the per-address rate.
CREATE TABLE IF NOT EXISTS address_attempts (
    address TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS address_attempts_by_address ON address_attempts(address, at);
CREATE INDEX IF NOT EXISTS address_attempts_by_time ON address_attempts(at);
