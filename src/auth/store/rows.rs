//! Rows as both engines read them. The columns and their types are the
//! same on SQLite and PostgreSQL (times are i64 milliseconds), so one set
//! of `FromRow` types and conversions serves both.

use super::rules::{RevokeReason, SessionTimes, TokenState};
use super::{Credentials, LiveAttempt, Presented, SessionRecord, UserRow};
use crate::auth::model::{SecurityEvent, SecurityEventKind};
use crate::clock::rfc3339;

#[derive(sqlx::FromRow)]
pub(super) struct UserFields {
    id: String,
    email: String,
    created_at: i64,
}

impl From<UserFields> for UserRow {
    fn from(row: UserFields) -> Self {
        UserRow {
            id: row.id,
            email: row.email,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CredentialFields {
    #[sqlx(flatten)]
    user: UserFields,
    password_hash: String,
}

/// A session row's clock.
#[derive(sqlx::FromRow)]
pub(super) struct TimesFields {
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    remembered: bool,
}

impl From<TimesFields> for SessionTimes {
    fn from(row: TimesFields) -> Self {
        SessionTimes {
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked: row.revoked_at.map(|_| {
                row.revoked_reason
                    .as_deref()
                    .map_or(RevokeReason::Revoked, RevokeReason::from_stored)
            }),
            remembered: row.remembered,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionFields {
    id: String,
    created_at: i64,
    user_agent: Option<String>,
    signed_in_from: Option<String>,
    #[sqlx(flatten)]
    times: TimesFields,
}

impl From<SessionFields> for SessionRecord {
    fn from(row: SessionFields) -> Self {
        SessionRecord {
            id: row.id,
            created_at: row.created_at,
            user_agent: row.user_agent,
            address: row.signed_in_from,
            times: row.times.into(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionWithUser {
    user_id: String,
    email: String,
    user_created_at: i64,
    #[sqlx(flatten)]
    session: SessionFields,
}

#[derive(sqlx::FromRow)]
pub(super) struct PresentedFields {
    token_id: i64,
    session_id: String,
    used_at: Option<i64>,
    successor_unused: bool,
    user_id: String,
    email: String,
    user_created_at: i64,
    #[sqlx(flatten)]
    times: TimesFields,
}

/// The columns of a session as `SessionFields` reads them, from `s` (a
/// macro, so the queries below are literals: nothing is formatted per
/// request).
macro_rules! session_columns {
    () => {
        "s.id, s.created_at, s.user_agent, s.signed_in_from, s.last_used_at, s.expires_at, s.revoked_at, s.revoked_reason, s.remembered"
    };
}

// The reads, one text for both engines (both take `$n` placeholders).

pub(super) const CREDENTIALS: &str =
    "SELECT id, email, created_at, password_hash FROM users WHERE email_key = $1";

/// A presented token with its successor's state, its session and user.
pub(super) const PRESENTED: &str = "SELECT t.id AS token_id, t.session_id, t.used_at,
        successor.id IS NOT NULL AND successor.used_at IS NULL AS successor_unused,
        s.user_id, u.email, u.created_at AS user_created_at,
        s.last_used_at, s.expires_at, s.revoked_at, s.revoked_reason, s.remembered
    FROM refresh_tokens t
    JOIN sessions s ON s.id = t.session_id
    JOIN users u ON u.id = s.user_id
    LEFT JOIN refresh_tokens successor ON successor.parent_id = t.id
    WHERE t.token_hash = $1";

pub(super) const SESSION_OF_TOKEN: &str =
    "SELECT session_id FROM refresh_tokens WHERE token_hash = $1";

/// `$1` session id, `$2` user id.
pub(super) const SESSION_WITH_USER: &str = concat!(
    "SELECT u.id AS user_id, u.email, u.created_at AS user_created_at, ",
    session_columns!(),
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.user_id = $2"
);

/// A user's sessions, newest first.
pub(super) const SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.user_id = $1 ORDER BY s.created_at DESC, s.id"
);

/// `$1` user, `$2` ids below, `$3` at most.
pub(super) const EVENTS_OF_USER: &str =
    "SELECT id, at, kind, session_id, detail FROM security_events
    WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

/// Inserts into the history of a user (`$1`), of a session's user (`$1`
/// a session id), or of an email's user (`$1` an email key): `$2` at, `$3`
/// kind, `$4` session id, `$5` detail.
pub(super) const EVENT_FOR_USER: &str =
    "INSERT INTO security_events (user_id, at, kind, session_id, detail)
    SELECT id, $2, $3, $4, $5 FROM users WHERE id = $1";
pub(super) const EVENT_FOR_SESSION: &str =
    "INSERT INTO security_events (user_id, at, kind, session_id, detail)
    SELECT user_id, $2, $3, $4, $5 FROM sessions WHERE id = $1";
pub(super) const EVENT_FOR_EMAIL: &str =
    "INSERT INTO security_events (user_id, at, kind, session_id, detail)
    SELECT id, $2, $3, $4, $5 FROM users WHERE email_key = $1";

/// One stored security event.
#[derive(sqlx::FromRow)]
pub(in crate::auth) struct EventFields {
    pub(super) id: i64,
    at: i64,
    kind: String,
    session_id: Option<String>,
    detail: String,
}

impl EventFields {
    /// As the API shows it; `None` for a kind this version doesn't know
    /// (written by a newer one).
    pub(super) fn into_event(self) -> Option<SecurityEvent> {
        Some(SecurityEvent {
            id: self.id.to_string(),
            at: rfc3339(self.at),
            kind: SecurityEventKind::from_stored(&self.kind)?,
            session_id: self.session_id,
            detail: self.detail,
        })
    }

    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            at: row.get("at")?,
            kind: row.get("kind")?,
            session_id: row.get("session_id")?,
            detail: row.get("detail")?,
        })
    }
}

impl<'a> super::NewEvent<'a> {
    /// The insert for its subject, and the subject's key (`$1`).
    pub(super) fn insert(&self) -> (&'static str, &'a str) {
        match self.subject {
            super::EventSubject::User(id) => (EVENT_FOR_USER, id),
            super::EventSubject::Session(id) => (EVENT_FOR_SESSION, id),
            super::EventSubject::Email(key) => (EVENT_FOR_EMAIL, key),
        }
    }
}

/// `$1` email key, `$2` address, `$3` failures after: the pair's failures
/// (not cleared by a success) and the email's from anywhere.
pub(super) const FAILURES_SINCE: &str = "SELECT
        COALESCE(SUM(CASE WHEN address = $2 AND NOT pair_cleared THEN 1 ELSE 0 END), 0) AS pair,
        COUNT(*) AS email
    FROM login_attempts WHERE email_key = $1 AND failed_at > $3";

/// An email's attempts that still count: `$2` failures after, `$3` leases after.
pub(super) const LIVE_ATTEMPTS: &str = "SELECT address, failed_at, pair_cleared FROM login_attempts
    WHERE email_key = $1 AND (failed_at > $2 OR lease_until > $3)";

impl From<CredentialFields> for Credentials {
    fn from(row: CredentialFields) -> Self {
        Credentials {
            user: row.user.into(),
            password_hash: row.password_hash,
        }
    }
}

impl From<SessionWithUser> for (UserRow, SessionRecord) {
    fn from(row: SessionWithUser) -> Self {
        let user = UserRow {
            id: row.user_id,
            email: row.email,
            created_at: row.user_created_at,
        };
        (user, row.session.into())
    }
}

impl From<PresentedFields> for Presented {
    fn from(row: PresentedFields) -> Self {
        Presented {
            token_id: row.token_id,
            session_id: row.session_id,
            user: UserRow {
                id: row.user_id,
                email: row.email,
                created_at: row.user_created_at,
            },
            state: TokenState {
                used_at: row.used_at,
                successor_unused: row.successor_unused,
                session: row.times.into(),
            },
        }
    }
}

/// One of an email's login attempts, as `begin_attempt` reads them.
#[derive(sqlx::FromRow)]
pub(super) struct LiveAttemptFields {
    address: String,
    failed_at: Option<i64>,
    pair_cleared: bool,
}

impl From<LiveAttemptFields> for LiveAttempt {
    fn from(row: LiveAttemptFields) -> Self {
        LiveAttempt {
            address: row.address,
            failed_at: row.failed_at,
            pair_cleared: row.pair_cleared,
        }
    }
}

// The SQLite engine reads through rusqlite (see `sqlite/conn.rs`): the
// same queries and columns, read by name.

impl CredentialFields {
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            user: UserFields {
                id: row.get("id")?,
                email: row.get("email")?,
                created_at: row.get("created_at")?,
            },
            password_hash: row.get("password_hash")?,
        })
    }
}

impl SessionFields {
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            created_at: row.get("created_at")?,
            user_agent: row.get("user_agent")?,
            signed_in_from: row.get("signed_in_from")?,
            times: TimesFields::from_sqlite(row)?,
        })
    }
}

impl SessionWithUser {
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            user_id: row.get("user_id")?,
            email: row.get("email")?,
            user_created_at: row.get("user_created_at")?,
            session: SessionFields::from_sqlite(row)?,
        })
    }
}

impl TimesFields {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            last_used_at: row.get("last_used_at")?,
            expires_at: row.get("expires_at")?,
            revoked_at: row.get("revoked_at")?,
            revoked_reason: row.get("revoked_reason")?,
            remembered: row.get("remembered")?,
        })
    }
}

impl PresentedFields {
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            token_id: row.get("token_id")?,
            session_id: row.get("session_id")?,
            used_at: row.get("used_at")?,
            successor_unused: row.get("successor_unused")?,
            user_id: row.get("user_id")?,
            email: row.get("email")?,
            user_created_at: row.get("user_created_at")?,
            times: TimesFields::from_sqlite(row)?,
        })
    }
}

impl LiveAttemptFields {
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            address: row.get("address")?,
            failed_at: row.get("failed_at")?,
            pair_cleared: row.get("pair_cleared")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `$n` of `sql` in the order they first appear.
    fn placeholders(sql: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u32>() {
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
        }
        seen
    }

    /// SQLite numbers `$n` by where each first appears, not by `n`, so a
    /// text bound by position must show `$1`, `$2`, ... in that order (the
    /// others, `EVENT_FOR_*` and `FAILURES_SINCE`, are bound by name).
    #[test]
    fn texts_bound_by_position_show_their_placeholders_in_order() {
        for sql in [
            CREDENTIALS,
            PRESENTED,
            SESSION_OF_TOKEN,
            SESSION_WITH_USER,
            SESSIONS_OF_USER,
            LIVE_ATTEMPTS,
            EVENTS_OF_USER,
        ] {
            let found = placeholders(sql);
            let in_order: Vec<u32> = (1..=found.len() as u32).collect();
            assert_eq!(found, in_order, "{sql}");
        }
        // And the named ones really are out of order (or the comment lies).
        assert_ne!(placeholders(FAILURES_SINCE), [1, 2, 3]);
        assert_ne!(placeholders(EVENT_FOR_USER), [1, 2, 3, 4, 5]);
    }
}
