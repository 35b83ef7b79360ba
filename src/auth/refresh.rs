//! Refresh tokens: opaque 256-bit values whose keyed hashes live in SQLite.
//! Each use rotates the token in one statement (a trigger spends the parent);
//! presenting a spent token outside the grace window revokes the session.
//!
//! Successors are derived, not drawn: successor = HMAC(k_derive, parent).
//! So a racing duplicate inside the grace window can be answered with the
//! very successor the first call issued, without storing any token.

use std::{sync::Arc, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use rand_core::RngCore as _;
use sha2::Sha256;
use sqlx::SqlitePool;

use crate::clock::{as_ms, Millis};

use super::users::UserRow;

const TOKEN_BYTES: usize = 32;

/// A refresh token as the cookie carries it; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken([u8; TOKEN_BYTES]);

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Anything that isn't exactly 32 base64url bytes is not a token.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

/// Two keys derived from `REFRESH_TOKEN_SECRET` with distinct labels: with a
/// single key, a token's stored hash would be its successor in plaintext.
#[derive(Clone)]
pub struct RefreshKeys {
    hash_key: [u8; 32],
    derive_key: [u8; 32],
}

impl RefreshKeys {
    pub fn new(secret: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"silent-refresh/refresh-token"), secret);
        let mut hash_key = [0u8; 32];
        let mut derive_key = [0u8; 32];
        hkdf.expand(b"hash at rest v1", &mut hash_key)
            .expect("32 bytes is a valid HKDF length");
        hkdf.expand(b"derive successor v1", &mut derive_key)
            .expect("32 bytes is a valid HKDF length");
        Self {
            hash_key,
            derive_key,
        }
    }

    /// What the database stores and looks tokens up by.
    pub fn hash(&self, token: &RefreshToken) -> Vec<u8> {
        mac(&self.hash_key, &token.0).to_vec()
    }

    pub fn successor(&self, parent: &RefreshToken) -> RefreshToken {
        RefreshToken(mac(&self.derive_key, &parent.0))
    }
}

fn mac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The session rules that rotation enforces.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A session ends after this long without a refresh.
    pub idle: Duration,
    /// A session ends this long after login, however often it rotates.
    pub absolute: Duration,
    /// How long a just-used token may be replayed by an honest race.
    pub grace: Duration,
}

/// A token handed out, and how long its cookie should live.
#[derive(Debug)]
pub struct RefreshGrant {
    pub token: RefreshToken,
    pub user_id: String,
    pub session_id: String,
    pub cookie_max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("unknown refresh token")]
    Unknown,
    #[error("session expired")]
    Expired,
    #[error("session revoked")]
    Revoked,
    #[error("refresh token reused")]
    Reused { session_id: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Why a session ended early; stored in `sessions.revoked_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    Revoked,
    Reuse,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Reuse => "reuse",
        }
    }
}

/// The refresh-token store: one seam over the SQL, so another database
/// could stand behind it.
#[derive(Clone)]
pub struct RefreshStore {
    pool: SqlitePool,
    keys: RefreshKeys,
    lifetimes: Lifetimes,
    /// SQLite has one writer. Queueing writers here, in order, beats letting
    /// them poll the lock in SQLite's busy handler, which sleeps in steps of
    /// up to 100 ms and makes the tail latency of refresh.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// A token that `spend` just spent, with what the answer needs.
#[derive(sqlx::FromRow)]
struct SpentRow {
    session_id: String,
    expires_at: i64,
    user_id: String,
    email: String,
    user_created_at: i64,
}

/// A token that could not be spent, and the state of its session.
#[derive(sqlx::FromRow)]
struct PresentedRow {
    session_id: String,
    used_at: Option<i64>,
    successor_unused: bool,
    user_id: String,
    email: String,
    user_created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl PresentedRow {
    fn user(&self) -> UserRow {
        UserRow {
            id: self.user_id.clone(),
            email: self.email.clone(),
            created_at: self.user_created_at,
        }
    }
}

impl RefreshStore {
    pub fn new(pool: SqlitePool, keys: RefreshKeys, lifetimes: Lifetimes) -> Self {
        Self {
            pool,
            keys,
            lifetimes,
            writer: Arc::default(),
        }
    }

    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Opens a session for a user who just proved who they are.
    pub async fn start_session(
        &self,
        user_id: &str,
        user_agent: Option<&str>,
        now: Millis,
    ) -> Result<RefreshGrant, sqlx::Error> {
        let session_id = uuid::Uuid::new_v4().to_string();
        let token = RefreshToken::generate();
        let expires_at = now.saturating_add(as_ms(self.lifetimes.absolute));
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5);
             INSERT INTO refresh_tokens (session_id, token_hash, issued_at) VALUES (?1, ?6, ?3);",
        )
        .bind(&session_id)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .bind(user_agent)
        .bind(self.keys.hash(&token))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshGrant {
            token,
            user_id: user_id.to_string(),
            session_id,
            cookie_max_age: self.cookie_max_age(now, now, expires_at),
        })
    }

    /// Spends `presented` and returns its successor with the session's user,
    /// or explains why not.
    pub async fn rotate(
        &self,
        presented: &RefreshToken,
        now: Millis,
    ) -> Result<(RefreshGrant, UserRow), RotateError> {
        let presented_hash = self.keys.hash(presented);
        let successor = self.keys.successor(presented);
        let _writer = self.writer.lock().await;
        if let Some(rotated) = self.spend(&presented_hash, &successor, now).await? {
            return Ok(rotated);
        }
        self.refuse_or_replay(&presented_hash, successor, now).await
    }

    /// The common case in one statement: an unspent token of a live session
    /// gets its successor (the `refresh_tokens_spend_parent` trigger spends
    /// the parent and touches the session). `None` when the token is not an
    /// unspent token of a live session.
    async fn spend(
        &self,
        presented_hash: &[u8],
        successor: &RefreshToken,
        now: Millis,
    ) -> Result<Option<(RefreshGrant, UserRow)>, sqlx::Error> {
        let idle_cutoff = now.saturating_sub(as_ms(self.lifetimes.idle));
        let row: Option<SpentRow> = sqlx::query_as(
            "INSERT INTO refresh_tokens (session_id, token_hash, parent_id, issued_at)
             SELECT t.session_id, ?1, t.id, ?2
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ?3 AND t.used_at IS NULL AND s.revoked_at IS NULL
               AND s.expires_at > ?2 AND s.last_used_at > ?4
             RETURNING
               session_id,
               (SELECT s.expires_at FROM sessions s WHERE s.id = session_id) AS expires_at,
               (SELECT s.user_id FROM sessions s WHERE s.id = session_id) AS user_id,
               (SELECT u.email FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE s.id = session_id) AS email,
               (SELECT u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
                WHERE s.id = session_id) AS user_created_at",
        )
        .bind(self.keys.hash(successor))
        .bind(now)
        .bind(presented_hash)
        .bind(idle_cutoff)
        // `fetch_all`, not `fetch_optional`: the statement must step to its
        // end, where SQLite commits and reports a failed commit. sqlx stops
        // a `fetch_optional` after the first row and resets the statement,
        // which commits too but drops any error, so a successor could be
        // handed out that was never stored.
        .fetch_all(&self.pool)
        .await?
        .pop();
        Ok(row.map(|row| {
            let issued = RefreshGrant {
                token: successor.clone(),
                user_id: row.user_id.clone(),
                session_id: row.session_id,
                cookie_max_age: self.cookie_max_age(now, now, row.expires_at),
            };
            let user = UserRow {
                id: row.user_id,
                email: row.email,
                created_at: row.user_created_at,
            };
            (issued, user)
        }))
    }

    /// Why `presented` was not spent: unknown, its session over, or spent
    /// already. A spent token inside the grace window, whose successor is
    /// still unused, is an honest race and gets that successor again;
    /// any other spent token is reuse and ends the session.
    async fn refuse_or_replay(
        &self,
        presented_hash: &[u8],
        successor: RefreshToken,
        now: Millis,
    ) -> Result<(RefreshGrant, UserRow), RotateError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<PresentedRow> = sqlx::query_as(
            "SELECT t.session_id, t.used_at, s.user_id, u.email, u.created_at AS user_created_at,
                    s.last_used_at, s.expires_at, s.revoked_at, s.revoked_reason,
                    successor.used_at IS NULL AND successor.id IS NOT NULL AS successor_unused
             FROM refresh_tokens t
             JOIN sessions s ON s.id = t.session_id
             JOIN users u ON u.id = s.user_id
             LEFT JOIN refresh_tokens successor ON successor.id = t.successor_id
             WHERE t.token_hash = ?",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(RotateError::Unknown);
        };

        if row.revoked_at.is_some() {
            return Err(match row.revoked_reason.as_deref() {
                Some("reuse") => RotateError::Reused {
                    session_id: row.session_id,
                },
                _ => RotateError::Revoked,
            });
        }
        let idle_deadline = row.last_used_at.saturating_add(as_ms(self.lifetimes.idle));
        if now >= row.expires_at || now >= idle_deadline {
            return Err(RotateError::Expired);
        }
        let Some(used_at) = row.used_at else {
            // Unspent and live, yet `spend` declined under the same writer
            // lock and clock reading: no writer of this store can cause it.
            return Err(RotateError::Unknown);
        };

        let grace = as_ms(self.lifetimes.grace);
        if grace > 0 && now - used_at < grace && row.successor_unused {
            tx.rollback().await?;
            let user = row.user();
            return Ok((
                RefreshGrant {
                    token: successor,
                    user_id: row.user_id,
                    session_id: row.session_id,
                    cookie_max_age: self.cookie_max_age(now, row.last_used_at, row.expires_at),
                },
                user,
            ));
        }

        // Anything else is reuse: someone holds a token they shouldn't.
        revoke_in(&mut tx, &row.session_id, RevokeReason::Reuse, now).await?;
        tx.commit().await?;
        tracing::warn!(session_id = %row.session_id, "refresh token reuse detected; session revoked");
        Err(RotateError::Reused {
            session_id: row.session_id,
        })
    }

    /// The session a token (spent or not) belongs to, if any.
    pub async fn session_of(&self, token: &RefreshToken) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = ?")
            .bind(self.keys.hash(token))
            .fetch_optional(&self.pool)
            .await
    }

    /// Ends one session; every refresh and access token of it dies with it.
    pub async fn revoke(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> Result<bool, sqlx::Error> {
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let changed = revoke_in(&mut tx, session_id, reason, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Ends every live session of a user.
    pub async fn revoke_all(&self, user_id: &str, now: Millis) -> Result<u64, sqlx::Error> {
        let _writer = self.writer.lock().await;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
             WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(RevokeReason::Revoked.as_str())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes sessions that ended more than `retention` ago, with their
    /// tokens. Live sessions keep their spent tokens: reuse detection
    /// needs them.
    pub async fn purge_ended(&self, now: Millis, retention: Duration) -> Result<u64, sqlx::Error> {
        let cutoff = now.saturating_sub(as_ms(retention));
        let idle = as_ms(self.lifetimes.idle);
        let _writer = self.writer.lock().await;
        let done = sqlx::query(
            "DELETE FROM sessions
             WHERE expires_at < ?1 OR revoked_at < ?1 OR last_used_at + ?2 < ?1",
        )
        .bind(cutoff)
        .bind(idle)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The lesser of the idle and the absolute time the session has left.
    fn cookie_max_age(&self, now: Millis, last_used_at: Millis, expires_at: Millis) -> Duration {
        let idle_left = last_used_at + as_ms(self.lifetimes.idle) - now;
        let absolute_left = expires_at - now;
        Duration::from_millis(idle_left.min(absolute_left).max(0) as u64)
    }
}

async fn revoke_in(
    tx: &mut sqlx::SqliteConnection,
    session_id: &str,
    reason: RevokeReason,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason.as_str())
    .bind(session_id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_malformed_text() {
        let token = RefreshToken::generate();
        let text = token.encode();
        assert_eq!(text.len(), 43);
        assert_eq!(RefreshToken::parse(&text), Some(token));
        for bad in [
            "",
            "short",
            &"A".repeat(44),
            &format!("{}=", &text[..42]),
            "a.b.c",
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{:?}", RefreshToken::generate()).contains(&text));
    }

    #[test]
    fn stored_hash_is_not_the_successor() {
        let keys = RefreshKeys::new(b"a refresh secret of at least 32 bytes");
        let token = RefreshToken::generate();
        let successor = keys.successor(&token);
        assert_ne!(keys.hash(&token), successor.0.to_vec());
        assert_ne!(successor, token);
        // Derivation is deterministic: a replay gets the same successor.
        assert_eq!(keys.successor(&token), successor);
    }
}
