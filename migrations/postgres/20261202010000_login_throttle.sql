-- The login throttle's state, shared by every server on this database
-- (src/auth/throttle.rs holds the rule): the SQLite migration of the same
-- version, in PostgreSQL's types. Times are Unix milliseconds (UTC).

-- One row per login attempt that still matters: in flight (`lease_until`
-- set: it counts until then, so an attempt whose server crashed stops
-- counting by itself) or failed (`failed_at` set: it counts until it leaves
-- the lockout window). An attempt that succeeds or gets no verdict leaves
-- no row. A success marks its pair's failures `pair_cleared`: they no
-- longer count for that (email, address) pair, but still for the email.
CREATE TABLE login_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_key    TEXT NOT NULL,               -- as `email_key` gives it: at most 381 bytes
    address      TEXT NOT NULL,               -- the client address, as text
    started_at   BIGINT NOT NULL,
    lease_until  BIGINT,                      -- NULL once the attempt ended
    failed_at    BIGINT,                      -- NULL unless it failed
    pair_cleared BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX login_attempts_by_pair ON login_attempts(email_key, address);
CREATE INDEX login_attempts_by_failure ON login_attempts(failed_at);
CREATE INDEX login_attempts_by_lease ON login_attempts(lease_until);

-- Each login or register attempt from an address, for the per-address rate.
CREATE TABLE address_attempts (
    address TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX address_attempts_by_address ON address_attempts(address, at);
CREATE INDEX address_attempts_by_time ON address_attempts(at);
