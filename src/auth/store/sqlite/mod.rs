//! The SQLite engine: the store's rows in one file. Reads go to a pool;
//! every write goes to the one writer (`writer.rs`), which runs the writes
//! waiting at once in one `BEGIN IMMEDIATE` transaction (group commit).
//! `BEGIN IMMEDIATE` takes SQLite's one write lock at the start, so a
//! transaction never fails halfway for want of it. Rotation is correct
//! without the writer's order, because `spend` is a conditional write.
//!
//! The login throttle's `begin_attempt` and `add_address_attempt` read,
//! decide and write inside one write: SQLite's write lock is the lock on
//! the email (or address) that they need, for every process on the file
//! alike.

mod writer;

use sqlx::SqlitePool;

use crate::clock::Millis;

use super::rows::{
    CredentialFields, LiveAttemptFields, PresentedFields, SessionFields, SessionWithUser,
    CREDENTIALS, LIVE_ATTEMPTS, PRESENTED, SESSIONS_OF_USER, SESSION_OF_TOKEN, SESSION_WITH_USER,
};
use super::rules::RevokeReason;
use super::{
    AttemptRow, Backend, CreateError, Credentials, Engine, LiveAttempt, NewAttempt, NewSession,
    Presented, Recent, SessionRecord, Spend, StoreError, ThrottleCutoffs, UserRow,
};

use writer::Writer;

#[derive(Clone)]
pub struct Sqlite {
    pool: SqlitePool,
    writer: Writer,
}

impl From<SqlitePool> for Backend {
    /// Starts the writer (a task: call it inside the runtime), with a
    /// connection of its own opened like the pool's.
    fn from(pool: SqlitePool) -> Self {
        let writer = Writer::start((*pool.connect_options()).clone());
        Backend::Sqlite(Sqlite { pool, writer })
    }
}

impl Engine for Sqlite {
    async fn create_user(
        &self,
        user: &UserRow,
        email_key: &str,
        password_hash: &str,
    ) -> Result<(), CreateError> {
        let (user, email_key, password_hash) =
            (user.clone(), email_key.to_owned(), password_hash.to_owned());
        let inserted = self
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO users (id, email, email_key, password_hash, created_at)
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&email_key)
                    .bind(&password_hash)
                    .bind(user.created_at)
                    .execute(&mut *conn)
                    .await
                })
            })
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
        let id = session.id.to_owned();
        let user_id = session.user_id.to_owned();
        let (now, expires_at) = (session.now, session.expires_at);
        let user_agent = session.user_agent.map(str::to_owned);
        let token_hash = session.token_hash.to_vec();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent)
                         VALUES (?1, ?2, ?3, ?3, ?4, ?5);
                         INSERT INTO refresh_tokens (session_id, token_hash, issued_at) VALUES (?1, ?6, ?3);",
                    )
                    .bind(&id)
                    .bind(&user_id)
                    .bind(now)
                    .bind(expires_at)
                    .bind(&user_agent)
                    .bind(&token_hash)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn presented(&self, token_hash: &[u8]) -> Result<Option<Presented>, StoreError> {
        let row: Option<PresentedFields> = sqlx::query_as(PRESENTED)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn spend(&self, spend: &Spend<'_>) -> Result<bool, StoreError> {
        let (now, parent_id) = (spend.now, spend.parent_id);
        let session_id = spend.session_id.to_owned();
        let successor_hash = spend.successor_hash.to_vec();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    // The condition: what the decision read still holds.
                    // Nothing else a concurrent request can change decides
                    // a spend (a session has one unspent token, so nobody
                    // else can touch its clock). Changing no row, it
                    // leaves nothing to undo.
                    let spent = sqlx::query(
                        "UPDATE refresh_tokens SET used_at = ?1
                         WHERE id = ?2 AND used_at IS NULL
                           AND EXISTS (SELECT 1 FROM sessions WHERE id = ?3 AND revoked_at IS NULL)",
                    )
                    .bind(now)
                    .bind(parent_id)
                    .bind(&session_id)
                    .execute(&mut *conn)
                    .await?;
                    if spent.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query(
                        "INSERT INTO refresh_tokens (session_id, token_hash, parent_id, issued_at)
                         VALUES (?3, ?4, ?2, ?1);
                         UPDATE refresh_tokens SET successor_id = last_insert_rowid() WHERE id = ?2 AND used_at = ?1;
                         UPDATE sessions SET last_used_at = ?1 WHERE id = ?3;",
                    )
                    .bind(now)
                    .bind(parent_id)
                    .bind(&session_id)
                    .bind(&successor_hash)
                    .execute(&mut *conn)
                    .await?;
                    Ok(true)
                })
            })
            .await
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
        let session_id = session_id.to_owned();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
                         WHERE id = ? AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(reason.as_str())
                    .bind(&session_id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
            })
            .await
    }

    async fn revoke_all(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
                         WHERE user_id = ? AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(reason.as_str())
                    .bind(&user_id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
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
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "DELETE FROM sessions
                         WHERE expires_at < ?1 OR revoked_at < ?1 OR last_used_at + ?2 < ?1",
                    )
                    .bind(cutoff)
                    .bind(idle_ms)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }

    async fn is_ready(&self) -> bool {
        crate::db::sqlite::is_ready(&self.pool).await
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
        let email_key = new.email_key.to_owned();
        let address = new.address.to_owned();
        let (now, failures_after, lease_until) = (new.now, new.failures_after, new.lease_until);
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let live: Vec<LiveAttemptFields> = sqlx::query_as(LIVE_ATTEMPTS)
                        .bind(&email_key)
                        .bind(failures_after)
                        .bind(now)
                        .fetch_all(&mut *conn)
                        .await?;
                    let live: Vec<LiveAttempt> = live.into_iter().map(Into::into).collect();
                    if let Err(refused) = admit(&live) {
                        return Ok(Err(refused));
                    }
                    let id = sqlx::query_scalar(
                        "INSERT INTO login_attempts (email_key, address, started_at, lease_until)
                         VALUES (?, ?, ?, ?) RETURNING id",
                    )
                    .bind(&email_key)
                    .bind(&address)
                    .bind(now)
                    .bind(lease_until)
                    .fetch_one(&mut *conn)
                    .await?;
                    Ok(Ok(id))
                })
            })
            .await
    }

    async fn fail_attempt(&self, attempt: &AttemptRow, at: Millis) -> Result<(), StoreError> {
        let attempt = attempt.clone();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let updated = sqlx::query(
                        "UPDATE login_attempts SET lease_until = NULL, failed_at = ? WHERE id = ?",
                    )
                    .bind(at)
                    .bind(attempt.id)
                    .execute(&mut *conn)
                    .await?;
                    if updated.rows_affected() == 0 {
                        sqlx::query(
                            "INSERT INTO login_attempts (email_key, address, started_at, failed_at)
                             VALUES (?, ?, ?, ?)",
                        )
                        .bind(&attempt.email_key)
                        .bind(&attempt.address)
                        .bind(attempt.started_at)
                        .bind(at)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn succeed_attempt(&self, attempt: &AttemptRow) -> Result<(), StoreError> {
        let attempt = attempt.clone();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "DELETE FROM login_attempts WHERE id = ?1;
                         UPDATE login_attempts SET pair_cleared = TRUE
                         WHERE email_key = ?2 AND address = ?3
                           AND failed_at IS NOT NULL AND NOT pair_cleared;",
                    )
                    .bind(attempt.id)
                    .bind(&attempt.email_key)
                    .bind(&attempt.address)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn forget_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM login_attempts WHERE id = ?")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
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
        let address = address.to_owned();
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                        "SELECT COUNT(*), MIN(at) FROM address_attempts WHERE address = ? AND at > ?",
                    )
                    .bind(&address)
                    .bind(since)
                    .fetch_one(&mut *conn)
                    .await?;
                    let recent = Recent {
                        count: u32::try_from(count).unwrap_or(u32::MAX),
                        oldest,
                    };
                    if let Err(refused) = admit(recent) {
                        return Ok(Err(refused));
                    }
                    sqlx::query("INSERT INTO address_attempts (address, at) VALUES (?, ?)")
                        .bind(&address)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    Ok(Ok(()))
                })
            })
            .await
    }

    async fn purge_throttle(&self, cutoffs: &ThrottleCutoffs) -> Result<u64, StoreError> {
        let (failed_by, leased_by, rate_by) =
            (cutoffs.failed_by, cutoffs.leased_by, cutoffs.rate_by);
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let attempts = sqlx::query(
                        "DELETE FROM login_attempts WHERE failed_at <= ? OR lease_until <= ?",
                    )
                    .bind(failed_by)
                    .bind(leased_by)
                    .execute(&mut *conn)
                    .await?;
                    let addresses = sqlx::query("DELETE FROM address_attempts WHERE at <= ?")
                        .bind(rate_by)
                        .execute(&mut *conn)
                        .await?;
                    Ok(attempts.rows_affected() + addresses.rows_affected())
                })
            })
            .await
    }
}

/// The conditional write at work, on a real database file: two requests
/// that both read a token unspent and both decide to spend it.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Lifetimes, RefreshGrant, RotateError, Store};
    use super::*;
    use crate::auth::password::PasswordHashString;
    use crate::auth::refresh::RefreshKeys;
    use crate::auth::validate::parse_email;

    const SECOND: Millis = 1000;
    const T0: Millis = 1_800_000_000_000;

    struct Fixture {
        store: Store,
        pool: SqlitePool,
        first: RefreshGrant,
        _dir: tempfile::TempDir,
    }

    /// A store with one user and one fresh session.
    async fn fixture(grace: Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
        let pool = crate::db::sqlite::connect(&url).await.unwrap();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(3 * 3600),
            grace,
        };
        let keys = RefreshKeys::new(b"a refresh secret of at least 32 bytes");
        let store = Store::new(pool.clone().into(), keys, lifetimes);
        let email = parse_email("race@example.com").unwrap();
        let hash = PasswordHashString("$argon2id$not-checked-here".into());
        let Ok(user) = store.create_user(&email, &hash, T0).await else {
            panic!("the user is created");
        };
        let first = store.start_session(&user.id, None, T0).await.unwrap();
        Fixture {
            store,
            pool,
            first,
            _dir: dir,
        }
    }

    impl Fixture {
        /// The presented token as a request reads it before deciding.
        async fn read(&self) -> Option<Presented> {
            let Backend::Sqlite(engine) = &self.store.backend else {
                unreachable!("the fixture is SQLite");
            };
            let hash = self.store.keys.hash(&self.first.token);
            engine.presented(&hash).await.unwrap()
        }

        async fn count(&self, sql: &str) -> i64 {
            sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
        }
    }

    #[tokio::test]
    async fn a_lost_spend_changes_nothing_and_becomes_a_replay() {
        let f = fixture(Duration::from_secs(10)).await;
        let now = T0 + SECOND;
        let (mine, theirs) = (f.read().await, f.read().await);
        let (their_grant, _) = f
            .store
            .settle(&f.first.token, theirs, now)
            .await
            .unwrap()
            .expect("the first spend wins");
        let lost = f.store.settle(&f.first.token, mine, now).await.unwrap();
        assert!(lost.is_none(), "the second spend of one parent is refused");
        assert_eq!(f.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);

        // Read again, the loser is an honest race: the same successor.
        let (my_grant, _) = f.store.rotate(&f.first.token, now).await.unwrap();
        assert_eq!(my_grant.token, their_grant.token);
        assert_eq!(f.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
    }

    #[tokio::test]
    async fn without_grace_a_lost_spend_is_reuse() {
        let f = fixture(Duration::ZERO).await;
        let (mine, theirs) = (f.read().await, f.read().await);
        f.store
            .settle(&f.first.token, theirs, T0)
            .await
            .unwrap()
            .expect("the first spend wins");
        assert!(f
            .store
            .settle(&f.first.token, mine, T0)
            .await
            .unwrap()
            .is_none());
        let again = f.store.rotate(&f.first.token, T0).await;
        assert!(
            matches!(again, Err(RotateError::Reused { .. })),
            "{again:?}"
        );
        assert_eq!(
            f.count("SELECT COUNT(*) FROM sessions WHERE revoked_reason = 'reuse'")
                .await,
            1
        );
    }

    #[tokio::test]
    async fn a_spend_after_the_session_was_revoked_changes_nothing() {
        let f = fixture(Duration::from_secs(10)).await;
        let mine = f.read().await;
        // A logout lands between this request's read and its write.
        let session_id = f.first.session_id.clone();
        assert!(f
            .store
            .revoke(&session_id, RevokeReason::Logout, T0)
            .await
            .unwrap());
        let lost = f.store.settle(&f.first.token, mine, T0).await.unwrap();
        assert!(lost.is_none());
        assert_eq!(
            f.count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
                .await,
            0
        );
        let again = f.store.rotate(&f.first.token, T0).await;
        assert!(matches!(again, Err(RotateError::Revoked)), "{again:?}");
    }

    #[tokio::test]
    async fn a_spend_marks_the_parent_links_the_successor_and_touches_the_session() {
        let f = fixture(Duration::from_secs(10)).await;
        let now = T0 + 60 * SECOND;
        let (grant, _) = f.store.rotate(&f.first.token, now).await.unwrap();
        assert_eq!(grant.cookie_max_age, Duration::from_secs(3600));
        let linked = format!(
            "SELECT COUNT(*) FROM refresh_tokens parent
             JOIN refresh_tokens child ON child.id = parent.successor_id
             WHERE parent.used_at = {now} AND child.parent_id = parent.id
               AND child.used_at IS NULL AND child.issued_at = {now}"
        );
        assert_eq!(f.count(&linked).await, 1);
        let touched = format!("SELECT COUNT(*) FROM sessions WHERE last_used_at = {now}");
        assert_eq!(f.count(&touched).await, 1);
    }
}
