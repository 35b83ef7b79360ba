//! Sessions as the API shows them, and the per-request liveness check that
//! makes a revoked session's access tokens stop at once.

use sqlx::SqlitePool;

use crate::clock::{as_ms, rfc3339, Millis};

use super::model::{ErrorCode, Session};
use super::refresh::Lifetimes;
use super::users::UserRow;

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    created_at: i64,
    last_used_at: i64,
    user_agent: Option<String>,
}

impl SessionRow {
    fn to_session(&self, current_id: &str) -> Session {
        Session {
            id: self.id.clone(),
            created_at: rfc3339(self.created_at),
            last_used_at: rfc3339(self.last_used_at),
            user_agent: self.user_agent.clone(),
            current: self.id == current_id,
        }
    }
}

#[derive(sqlx::FromRow)]
struct LiveRow {
    user_id: String,
    email: String,
    user_created_at: i64,
    id: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    revoked_at: Option<i64>,
}

/// The user and session behind a verified access token.
pub struct LiveSession {
    pub user: UserRow,
    pub session: Session,
}

/// One indexed read: is the token's session still live, and whose is it?
pub async fn live(
    pool: &SqlitePool,
    user_id: &str,
    session_id: &str,
    lifetimes: &Lifetimes,
    now: Millis,
) -> Result<Result<LiveSession, ErrorCode>, sqlx::Error> {
    let row: Option<LiveRow> = sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.created_at AS user_created_at,
                s.id, s.created_at, s.last_used_at, s.expires_at, s.user_agent, s.revoked_at
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = ? AND s.user_id = ?",
    )
    .bind(session_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        // Deleted with its user, or purged after it ended.
        return Ok(Err(ErrorCode::SessionRevoked));
    };
    if row.revoked_at.is_some() {
        return Ok(Err(ErrorCode::SessionRevoked));
    }
    if now >= row.expires_at || now >= row.last_used_at.saturating_add(as_ms(lifetimes.idle)) {
        return Ok(Err(ErrorCode::SessionExpired));
    }
    let session = SessionRow {
        id: row.id,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        user_agent: row.user_agent,
    };
    Ok(Ok(LiveSession {
        user: UserRow {
            id: row.user_id,
            email: row.email,
            created_at: row.user_created_at,
        },
        session: session.to_session(session_id),
    }))
}

/// The user's live sessions, newest first.
pub async fn list_live(
    pool: &SqlitePool,
    user_id: &str,
    current_id: &str,
    lifetimes: &Lifetimes,
    now: Millis,
) -> Result<Vec<Session>, sqlx::Error> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT id, created_at, last_used_at, user_agent FROM sessions
         WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_used_at > ?
         ORDER BY created_at DESC, id",
    )
    .bind(user_id)
    .bind(now)
    .bind(now.saturating_sub(as_ms(lifetimes.idle)))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| r.to_session(current_id)).collect())
}

/// True when `session_id` is a live session of `user_id`.
pub async fn is_live_of(
    pool: &SqlitePool,
    user_id: &str,
    session_id: &str,
    lifetimes: &Lifetimes,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sessions
         WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_used_at > ?",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .bind(now.saturating_sub(as_ms(lifetimes.idle)))
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}
