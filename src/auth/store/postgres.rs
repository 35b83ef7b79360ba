//! The PostgreSQL engine: the store's rows on a server that many instances
//! share. Nothing here relies on the process: every guarantee holds across
//! instances, at PostgreSQL's default isolation (read committed).
//!
//! Rotation's `spend` is one statement (one round trip, one implicit
//! transaction) whose updates take row locks in one order: the session's
//! row, then the parent token's. It touches the session only if the
//! session is unrevoked and the parent looked unspent, spends the parent
//! only if the session was touched and the parent is still unspent, and
//! stores the successor only if the parent was spent. Two spends of one
//! token queue on the session's row; the second, once the first commits,
//! finds the parent's row spent when it re-checks `used_at IS NULL`
//! against the committed row, stores nothing, and reports the spend lost
//! (the store then reads again and decides a grace replay or reuse); its
//! touch of the session's clock is harmless, the same moment the winner
//! wrote. A logout or revoke updates the session's row, so a spend that
//! reaches it after sees `revoked_at` set and changes nothing, and a
//! revoke after a spend waits for its commit. Revokes take only session
//! rows and deleting a session takes its row before its tokens', so the
//! one order can't deadlock.
//!
//! The login throttle's `begin_attempt` (and `add_address_attempt`) take a
//! transaction-scoped advisory lock on the email (the address) before they
//! read: two instances admitting attempts for one email queue there, and
//! the second reads what the first recorded (read committed takes a new
//! snapshot per statement). Each holds one such lock at a time, so they
//! can't deadlock. The ends of attempts need no lock: they never add to
//! what an email counts.

use sqlx::PgPool;

use crate::clock::Millis;

use super::rows::{
    CredentialFields, EventFields, LiveAttemptFields, PresentedFields, SessionFields,
    SessionWithUser, CREDENTIALS, EVENTS_OF_USER, FAILURES_SINCE, LIVE_ATTEMPTS, PRESENTED,
    SESSIONS_OF_USER, SESSION_OF_TOKEN, SESSION_WITH_USER,
};
use super::rules::{Decision, RevokeReason, TokenState};
use super::{
    AttemptRow, Backend, CreateError, Credentials, Engine, LiveAttempt, NewAttempt, NewEvent,
    NewSession, Presented, Recent, SessionRecord, Spend, Step, StoreError, ThrottleCutoffs,
    UserRow,
};

#[derive(Clone)]
pub struct Postgres {
    pool: PgPool,
}

impl From<PgPool> for Backend {
    fn from(pool: PgPool) -> Self {
        Backend::Postgres(Postgres { pool })
    }
}

impl Postgres {
    /// The token with this hash, whether its successor is unused, its
    /// session and user: one read.
    async fn presented(&self, token_hash: &[u8]) -> Result<Option<Presented>, StoreError> {
        let row: Option<PresentedFields> = sqlx::query_as(PRESENTED)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    /// The conditional write of rotation. `false` when it changed nothing:
    /// the parent was spent or its session revoked since it was read.
    async fn spend(&self, spend: &Spend<'_>) -> Result<bool, StoreError> {
        // One statement, so one round trip and one implicit transaction.
        // The session's row lock first, then the parent's (see the module
        // comment).
        let spent = sqlx::query(
            "WITH touched AS (
                 UPDATE sessions SET last_used_at = $4
                 WHERE id = $1 AND revoked_at IS NULL
                   AND EXISTS (SELECT 1 FROM refresh_tokens WHERE id = $3 AND used_at IS NULL)
                 RETURNING id
             ), spent AS (
                 UPDATE refresh_tokens SET used_at = $4
                 WHERE id = $3 AND used_at IS NULL AND EXISTS (SELECT 1 FROM touched)
                 RETURNING id
             )
             INSERT INTO refresh_tokens (session_id, token_hash, parent_id, issued_at)
             SELECT $1, $2, id, $4 FROM spent",
        )
        .bind(spend.session_id)
        .bind(spend.successor_hash)
        .bind(spend.parent_id)
        .bind(spend.now)
        .execute(&self.pool)
        .await?;
        Ok(spent.rows_affected() == 1)
    }
}

impl Engine for Postgres {
    async fn create_user(
        &self,
        user: &UserRow,
        email_key: &str,
        password_hash: &str,
    ) -> Result<(), CreateError> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, email_key, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(email_key)
        .bind(password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(CreateError::EmailTaken)
            }
            Err(e) => Err(CreateError::Database(e)),
        }
    }

    async fn credentials(&self, email_key: &str) -> Result<Option<Credentials>, StoreError> {
        let row: Option<CredentialFields> = sqlx::query_as(CREDENTIALS)
            .bind(email_key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn start_session(&self, session: &NewSession<'_>) -> Result<(), StoreError> {
        // One statement, so one implicit transaction: both rows or neither.
        sqlx::query(
            "WITH session AS (
                 INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, remembered, signed_in_from)
                 VALUES ($1, $2, $3, $3, $4, $5, $7, $8)
                 RETURNING id
             )
             INSERT INTO refresh_tokens (session_id, token_hash, issued_at)
             SELECT id, $6, $3 FROM session",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(session.now)
        .bind(session.expires_at)
        .bind(session.user_agent)
        .bind(session.token_hash)
        .bind(session.remembered)
        .bind(session.address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn rotate_step<F>(
        &self,
        token_hash: &[u8],
        successor_hash: &[u8],
        now: Millis,
        decide: F,
    ) -> Result<Step, StoreError>
    where
        F: FnOnce(Option<&TokenState>) -> Decision + Send + 'static,
    {
        let found = self.presented(token_hash).await?;
        let decision = decide(found.as_ref().map(|p| &p.state));
        let applied = match (&found, decision) {
            (Some(found), Decision::Spend) => self.spend(&found.spend(successor_hash, now)).await?,
            (Some(found), Decision::RevokeForReuse) => {
                self.revoke(&found.session_id, RevokeReason::Reuse, now)
                    .await?
            }
            _ => false,
        };
        Ok(Step {
            found,
            decision,
            applied,
        })
    }

    async fn session_of(&self, token_hash: &[u8]) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(SESSION_OF_TOKEN)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
    }

    async fn revoke(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(session_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        // Locked in id order, as revoke_all does.
        let revoked = sqlx::query(
            "WITH others AS (
                 SELECT id FROM sessions
                 WHERE user_id = $3 AND id <> $4 AND revoked_at IS NULL
                 ORDER BY id
                 FOR UPDATE
             )
             UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             FROM others WHERE sessions.id = others.id AND sessions.revoked_at IS NULL",
        )
        .bind(now)
        .bind(RevokeReason::PasswordChanged.as_str())
        .bind(user_id)
        .bind(keep_session)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(revoked.rows_affected())
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        // Sessions go by their key's cascade, and tokens with them.
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> Result<u64, StoreError> {
        // Rows are locked in id order, so two of these for one user queue
        // rather than deadlock.
        let done = sqlx::query(
            "WITH mine AS (
                 SELECT id FROM sessions
                 WHERE user_id = $3 AND revoked_at IS NULL
                 ORDER BY id
                 FOR UPDATE
             )
             UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             FROM mine WHERE sessions.id = mine.id AND sessions.revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<(UserRow, SessionRecord)>, StoreError> {
        let row: Option<SessionWithUser> = sqlx::query_as(SESSION_WITH_USER)
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let rows: Vec<SessionFields> = sqlx::query_as(SESSIONS_OF_USER)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn purge_ended(&self, cutoff: Millis, idle_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM sessions
             WHERE expires_at < $1 OR revoked_at < $1 OR last_used_at + $2 < $1",
        )
        .bind(cutoff)
        .bind(idle_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn is_ready(&self) -> bool {
        crate::db::postgres::is_ready(&self.pool).await
    }

    async fn record_event(&self, event: &NewEvent<'_>) -> Result<(), StoreError> {
        let (sql, subject) = event.insert();
        sqlx::query(sql)
            .bind(subject)
            .bind(event.at)
            .bind(event.kind.as_str())
            .bind(event.session_id)
            .bind(event.detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn events_of(
        &self,
        user_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<EventFields>, StoreError> {
        sqlx::query_as(EVENTS_OF_USER)
            .bind(user_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    async fn purge_events(&self, cutoff: Millis) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM security_events WHERE at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn begin_attempt<F, R>(
        &self,
        new: &NewAttempt<'_>,
        admit: F,
    ) -> Result<Result<i64, R>, StoreError>
    where
        F: FnOnce(&[LiveAttempt]) -> Result<(), R> + Send + 'static,
        R: Send + 'static,
    {
        let mut tx = self.pool.begin().await?;
        // The two-key form: its key space is apart from the one-key locks
        // (sqlx's migrator takes one of those).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('login_attempts'), hashtext($1))")
            .bind(new.email_key)
            .execute(&mut *tx)
            .await?;
        let live: Vec<LiveAttemptFields> = sqlx::query_as(LIVE_ATTEMPTS)
            .bind(new.email_key)
            .bind(new.failures_after)
            .bind(new.now)
            .fetch_all(&mut *tx)
            .await?;
        let live: Vec<LiveAttempt> = live.into_iter().map(Into::into).collect();
        if let Err(refused) = admit(&live) {
            tx.rollback().await?;
            return Ok(Err(refused));
        }
        let id = sqlx::query_scalar(
            "INSERT INTO login_attempts (email_key, address, started_at, lease_until)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(new.email_key)
        .bind(new.address)
        .bind(new.now)
        .bind(new.lease_until)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    async fn failures_since(
        &self,
        email_key: &str,
        address: &str,
        since: Millis,
    ) -> Result<(i64, i64), StoreError> {
        sqlx::query_as(FAILURES_SINCE)
            .bind(email_key)
            .bind(address)
            .bind(since)
            .fetch_one(&self.pool)
            .await
    }

    async fn fail_attempt(&self, attempt: &AttemptRow, at: Millis) -> Result<(), StoreError> {
        // One statement, so one implicit transaction.
        sqlx::query(
            "WITH failed AS (
                 UPDATE login_attempts SET lease_until = NULL, failed_at = $1
                 WHERE id = $2
                 RETURNING id
             )
             INSERT INTO login_attempts (email_key, address, started_at, failed_at)
             SELECT $3, $4, $5, $1 WHERE NOT EXISTS (SELECT 1 FROM failed)",
        )
        .bind(at)
        .bind(attempt.id)
        .bind(&attempt.email_key)
        .bind(&attempt.address)
        .bind(attempt.started_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn succeed_attempt(&self, attempt: &AttemptRow) -> Result<(), StoreError> {
        sqlx::query(
            "WITH done AS (DELETE FROM login_attempts WHERE id = $1)
             UPDATE login_attempts SET pair_cleared = TRUE
             WHERE email_key = $2 AND address = $3
               AND failed_at IS NOT NULL AND NOT pair_cleared",
        )
        .bind(attempt.id)
        .bind(&attempt.email_key)
        .bind(&attempt.address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn forget_attempt(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_attempts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_address_attempt<F, R>(
        &self,
        address: &str,
        since: Millis,
        now: Millis,
        admit: F,
    ) -> Result<Result<(), R>, StoreError>
    where
        F: FnOnce(Recent) -> Result<(), R> + Send + 'static,
        R: Send + 'static,
    {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('address_attempts'), hashtext($1))")
            .bind(address)
            .execute(&mut *tx)
            .await?;
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM address_attempts WHERE address = $1 AND at > $2",
        )
        .bind(address)
        .bind(since)
        .fetch_one(&mut *tx)
        .await?;
        let recent = Recent {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            oldest,
        };
        if let Err(refused) = admit(recent) {
            tx.rollback().await?;
            return Ok(Err(refused));
        }
        sqlx::query("INSERT INTO address_attempts (address, at) VALUES ($1, $2)")
            .bind(address)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn purge_throttle(&self, cutoffs: &ThrottleCutoffs) -> Result<u64, StoreError> {
        let attempts =
            sqlx::query("DELETE FROM login_attempts WHERE failed_at <= $1 OR lease_until <= $2")
                .bind(cutoffs.failed_by)
                .bind(cutoffs.leased_by)
                .execute(&self.pool)
                .await?;
        let addresses = sqlx::query("DELETE FROM address_attempts WHERE at <= $1")
            .bind(cutoffs.rate_by)
            .execute(&self.pool)
            .await?;
        Ok(attempts.rows_affected() + addresses.rows_affected())
    }
}
