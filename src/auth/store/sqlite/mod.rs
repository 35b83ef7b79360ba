//! The SQLite engine: the store's rows in one file. Reads run on the
//! request's own thread (`reader.rs`); every write goes to the one writer
//! (`writer.rs`), a thread that runs the writes waiting at once in one
//! `BEGIN IMMEDIATE` transaction (group commit). Both call SQLite directly
//! (`conn.rs`); the sqlx pool opens and migrates the file. `BEGIN IMMEDIATE` takes SQLite's one write lock at the start,
//! so a transaction never fails halfway for want of it, and what a write
//! reads inside it holds until it commits, in every process on the file.
//!
//! So a rotation reads the presented token, decides and applies inside one
//! write: one trip to the writer. The spend stays a conditional write all
//! the same (`spend_in`), so it is correct without the lock's help.
//!
//! The login throttle's `begin_attempt` and `add_address_attempt` read,
//! decide and write inside one write too: SQLite's write lock is the lock
//! on the email (or address) that they need.

mod conn;
mod reader;
mod writer;

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use sqlx::SqlitePool;

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

use conn::Target;
use reader::Readers;
use writer::Writer;

#[derive(Clone)]
pub struct Sqlite {
    pool: SqlitePool,
    readers: Arc<Readers>,
    writer: Writer,
}

impl From<SqlitePool> for Backend {
    /// Starts the writer thread; it and the readers open the pool's file.
    fn from(pool: SqlitePool) -> Self {
        let target = Target {
            path: pool.connect_options().get_filename().to_owned(),
            busy_timeout: crate::db::BUSY_TIMEOUT,
        };
        Backend::Sqlite(Sqlite {
            readers: Arc::new(Readers::new(target.clone())),
            writer: Writer::start(target),
            pool,
        })
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
                conn.prepare_cached(
                    "INSERT INTO users (id, email, email_key, password_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    user.id,
                    user.email,
                    email_key,
                    password_hash,
                    user.created_at
                ])
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
        self.readers.read(|conn| {
            conn.prepare_cached(CREDENTIALS)?
                .query_row([email_key], CredentialFields::from_sqlite)
                .optional()
                .map(|row| row.map(Into::into))
        })
    }

    async fn start_session(&self, session: &NewSession<'_>) -> Result<(), StoreError> {
        let id = session.id.to_owned();
        let user_id = session.user_id.to_owned();
        let (now, expires_at) = (session.now, session.expires_at);
        let user_agent = session.user_agent.map(str::to_owned);
        let address = session.address.to_owned();
        let remembered = session.remembered;
        let token_hash = session.token_hash.to_vec();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, remembered, signed_in_from)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![id, user_id, now, expires_at, user_agent, remembered, address])?;
                conn.prepare_cached(
                    "INSERT INTO refresh_tokens (session_id, token_hash, issued_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, token_hash, now])?;
                Ok(())
            })
            .await
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
        let (token_hash, successor_hash) = (token_hash.to_vec(), successor_hash.to_vec());
        self.writer
            .write(move |conn| {
                let found = presented_in(conn, &token_hash)?;
                let decision = decide(found.as_ref().map(|p| &p.state));
                let applied = match (&found, decision) {
                    (Some(found), Decision::Spend) => {
                        spend_in(conn, &found.spend(&successor_hash, now))?
                    }
                    (Some(found), Decision::RevokeForReuse) => {
                        revoke_in(conn, &found.session_id, RevokeReason::Reuse, now)?
                    }
                    _ => false,
                };
                Ok(Step {
                    found,
                    decision,
                    applied,
                })
            })
            .await
    }

    async fn session_of(&self, token_hash: &[u8]) -> Result<Option<String>, StoreError> {
        self.readers.read(|conn| {
            conn.prepare_cached(SESSION_OF_TOKEN)?
                .query_row([token_hash], |row| row.get(0))
                .optional()
        })
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let (user_id, password_hash, keep_session) = (
            user_id.to_owned(),
            password_hash.to_owned(),
            keep_session.to_owned(),
        );
        self.writer
            .write(move |conn| {
                conn.prepare_cached("UPDATE users SET password_hash = ?1 WHERE id = ?2")?
                    .execute(params![password_hash, user_id])?;
                let revoked = conn
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2
                         WHERE user_id = ?3 AND id <> ?4 AND revoked_at IS NULL",
                    )?
                    .execute(params![
                        now,
                        RevokeReason::PasswordChanged.as_str(),
                        user_id,
                        keep_session
                    ])?;
                Ok(revoked as u64)
            })
            .await
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let user_id = user_id.to_owned();
        self.writer
            .write(move |conn| {
                // Sessions go by their key's cascade, and tokens with them.
                let deleted = conn
                    .prepare_cached("DELETE FROM users WHERE id = ?1")?
                    .execute([user_id])?;
                Ok(deleted > 0)
            })
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
            .write(move |conn| revoke_in(conn, &session_id, reason, now))
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
                let revoked = conn
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2
                         WHERE user_id = ?3 AND revoked_at IS NULL",
                    )?
                    .execute(params![now, reason.as_str(), user_id])?;
                Ok(revoked as u64)
            })
            .await
    }

    async fn session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<(UserRow, SessionRecord)>, StoreError> {
        self.readers.read(|conn| {
            conn.prepare_cached(SESSION_WITH_USER)?
                .query_row([session_id, user_id], SessionWithUser::from_sqlite)
                .optional()
                .map(|row| row.map(Into::into))
        })
    }

    async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.readers.read(|conn| {
            conn.prepare_cached(SESSIONS_OF_USER)?
                .query_map([user_id], SessionFields::from_sqlite)?
                .map(|row| row.map(Into::into))
                .collect()
        })
    }

    async fn purge_ended(&self, cutoff: Millis, idle_ms: i64) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| {
                let purged = conn
                    .prepare_cached(
                        "DELETE FROM sessions
                         WHERE expires_at < ?1 OR revoked_at < ?1 OR last_used_at + ?2 < ?1",
                    )?
                    .execute(params![cutoff, idle_ms])?;
                Ok(purged as u64)
            })
            .await
    }

    async fn is_ready(&self) -> bool {
        crate::db::sqlite::is_ready(&self.pool).await
    }

    async fn record_event(&self, event: &NewEvent<'_>) -> Result<(), StoreError> {
        let (sql, subject) = event.insert();
        let subject = subject.to_owned();
        let (at, kind) = (event.at, event.kind.as_str());
        let session_id = event.session_id.map(str::to_owned);
        let detail = event.detail.to_owned();
        self.writer
            .write(move |conn| {
                // By name: SQLite numbers `$n` in the order they appear,
                // and `$1` comes last in these statements.
                conn.prepare_cached(sql)?.execute(rusqlite::named_params! {
                    "$1": subject,
                    "$2": at,
                    "$3": kind,
                    "$4": session_id,
                    "$5": detail,
                })?;
                Ok(())
            })
            .await
    }

    async fn events_of(
        &self,
        user_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<EventFields>, StoreError> {
        self.readers.read(|conn| {
            conn.prepare_cached(EVENTS_OF_USER)?
                .query_map(params![user_id, before, limit], EventFields::from_sqlite)?
                .collect()
        })
    }

    async fn purge_events(&self, cutoff: Millis) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| {
                let deleted = conn
                    .prepare_cached("DELETE FROM security_events WHERE at < ?1")?
                    .execute([cutoff])?;
                Ok(deleted as u64)
            })
            .await
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
                let live = conn
                    .prepare_cached(LIVE_ATTEMPTS)?
                    .query_map(
                        params![email_key, failures_after, now],
                        LiveAttemptFields::from_sqlite,
                    )?
                    .map(|row| row.map(LiveAttempt::from))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if let Err(refused) = admit(&live) {
                    return Ok(Err(refused));
                }
                conn.prepare_cached(
                    "INSERT INTO login_attempts (email_key, address, started_at, lease_until)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![email_key, address, now, lease_until])?;
                Ok(Ok(conn.last_insert_rowid()))
            })
            .await
    }

    async fn failures_since(
        &self,
        email_key: &str,
        address: &str,
        since: Millis,
    ) -> Result<(i64, i64), StoreError> {
        self.readers.read(|conn| {
            // By name: `$2` comes before `$1` in the text, and SQLite
            // numbers `$n` in the order they appear.
            conn.prepare_cached(FAILURES_SINCE)?.query_row(
                rusqlite::named_params! { "$1": email_key, "$2": address, "$3": since },
                |row| Ok((row.get("pair")?, row.get("email")?)),
            )
        })
    }

    async fn fail_attempt(&self, attempt: &AttemptRow, at: Millis) -> Result<(), StoreError> {
        let attempt = attempt.clone();
        self.writer
            .write(move |conn| {
                let updated = conn
                    .prepare_cached(
                        "UPDATE login_attempts SET lease_until = NULL, failed_at = ?1 WHERE id = ?2",
                    )?
                    .execute(params![at, attempt.id])?;
                if updated == 0 {
                    conn.prepare_cached(
                        "INSERT INTO login_attempts (email_key, address, started_at, failed_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        attempt.email_key,
                        attempt.address,
                        attempt.started_at,
                        at
                    ])?;
                }
                Ok(())
            })
            .await
    }

    async fn succeed_attempt(&self, attempt: &AttemptRow) -> Result<(), StoreError> {
        let attempt = attempt.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM login_attempts WHERE id = ?1")?
                    .execute([attempt.id])?;
                conn.prepare_cached(
                    "UPDATE login_attempts SET pair_cleared = TRUE
                     WHERE email_key = ?1 AND address = ?2
                       AND failed_at IS NOT NULL AND NOT pair_cleared",
                )?
                .execute(params![attempt.email_key, attempt.address])?;
                Ok(())
            })
            .await
    }

    async fn forget_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM login_attempts WHERE id = ?1")?
                    .execute([id])?;
                Ok(())
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
                let (count, oldest): (i64, Option<i64>) = conn
                    .prepare_cached(
                        "SELECT COUNT(*), MIN(at) FROM address_attempts WHERE address = ?1 AND at > ?2",
                    )?
                    .query_row(params![address, since], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                let recent = Recent {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    oldest,
                };
                if let Err(refused) = admit(recent) {
                    return Ok(Err(refused));
                }
                conn.prepare_cached("INSERT INTO address_attempts (address, at) VALUES (?1, ?2)")?
                    .execute(params![address, now])?;
                Ok(Ok(()))
            })
            .await
    }

    async fn purge_throttle(&self, cutoffs: &ThrottleCutoffs) -> Result<u64, StoreError> {
        let (failed_by, leased_by, rate_by) =
            (cutoffs.failed_by, cutoffs.leased_by, cutoffs.rate_by);
        self.writer
            .write(move |conn| {
                let attempts = conn
                    .prepare_cached(
                        "DELETE FROM login_attempts WHERE failed_at <= ?1 OR lease_until <= ?2",
                    )?
                    .execute(params![failed_by, leased_by])?;
                let addresses = conn
                    .prepare_cached("DELETE FROM address_attempts WHERE at <= ?1")?
                    .execute([rate_by])?;
                Ok((attempts + addresses) as u64)
            })
            .await
    }
}

/// The token with this hash, whether its successor is unused, its session
/// and user: one read, inside the writer's transaction.
fn presented_in(conn: &Connection, token_hash: &[u8]) -> rusqlite::Result<Option<Presented>> {
    conn.prepare_cached(PRESENTED)?
        .query_row([token_hash], PresentedFields::from_sqlite)
        .optional()
        .map(|row| row.map(Into::into))
}

/// The conditional write of rotation: spends the parent, stores its
/// successor and touches the session, or changes nothing (`false`) when
/// the parent is spent already or its session revoked. Nothing else a
/// concurrent request can change decides a spend (a session has one
/// unspent token, so nobody else can touch its clock).
fn spend_in(conn: &Connection, spend: &Spend<'_>) -> rusqlite::Result<bool> {
    let spent = conn
        .prepare_cached(
            "UPDATE refresh_tokens SET used_at = ?1
             WHERE id = ?2 AND used_at IS NULL
               AND EXISTS (SELECT 1 FROM sessions WHERE id = ?3 AND revoked_at IS NULL)",
        )?
        .execute(params![spend.now, spend.parent_id, spend.session_id])?;
    if spent == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (session_id, token_hash, parent_id, issued_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        spend.session_id,
        spend.successor_hash,
        spend.parent_id,
        spend.now
    ])?;
    conn.prepare_cached("UPDATE sessions SET last_used_at = ?1 WHERE id = ?2")?
        .execute(params![spend.now, spend.session_id])?;
    Ok(true)
}

/// Revokes one session unless it is revoked already; `true` if it was.
fn revoke_in(
    conn: &Connection,
    session_id: &str,
    reason: RevokeReason,
    now: Millis,
) -> rusqlite::Result<bool> {
    let revoked = conn
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2
             WHERE id = ?3 AND revoked_at IS NULL",
        )?
        .execute(params![now, reason.as_str(), session_id])?;
    Ok(revoked > 0)
}

/// The conditional write at work, on a real database file: a request that
/// read the token unspent and decided to spend it, but whose write comes
/// after another request's (as with two processes on one file).
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
            browser_idle: Duration::from_secs(600),
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
        let first = store
            .start_session(&user.id, (None, "127.0.0.1"), true, T0)
            .await
            .unwrap();
        Fixture {
            store,
            pool,
            first,
            _dir: dir,
        }
    }

    impl Fixture {
        fn engine(&self) -> &Sqlite {
            let Backend::Sqlite(engine) = &self.store.backend else {
                unreachable!("the fixture is SQLite");
            };
            engine
        }

        /// The first token as a request reads it before deciding.
        async fn read(&self) -> Presented {
            let hash = self.store.keys.hash(&self.first.token);
            self.engine()
                .writer
                .write(move |conn| presented_in(conn, &hash))
                .await
                .unwrap()
                .expect("the first token is stored")
        }

        /// The spend that request decided on, applied only now.
        async fn spend_late(&self, read: Presented, now: Millis) -> bool {
            let successor = self.store.keys.successor(&self.first.token);
            let successor_hash = self.store.keys.hash(&successor);
            self.engine()
                .writer
                .write(move |conn| spend_in(conn, &read.spend(&successor_hash, now)))
                .await
                .unwrap()
        }

        async fn count(&self, sql: &str) -> i64 {
            sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
        }
    }

    #[tokio::test]
    async fn a_late_spend_changes_nothing_and_the_token_is_a_replay() {
        let f = fixture(Duration::from_secs(10)).await;
        let now = T0 + SECOND;
        let mine = f.read().await;
        let (their_grant, _) = f.store.rotate(&f.first.token, now).await.unwrap();
        assert!(
            !f.spend_late(mine, now).await,
            "the second spend of one parent is refused"
        );
        assert_eq!(f.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);

        // Read again, the late request is an honest race: the same successor.
        let (my_grant, _) = f.store.rotate(&f.first.token, now).await.unwrap();
        assert_eq!(my_grant.token, their_grant.token);
        assert_eq!(f.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
    }

    #[tokio::test]
    async fn without_grace_a_late_spend_is_reuse() {
        let f = fixture(Duration::ZERO).await;
        let mine = f.read().await;
        f.store.rotate(&f.first.token, T0).await.unwrap();
        assert!(!f.spend_late(mine, T0).await);
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
        assert!(!f.spend_late(mine, T0).await);
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
        assert_eq!(grant.cookie_max_age, Some(Duration::from_secs(3600)));
        let linked = format!(
            "SELECT COUNT(*) FROM refresh_tokens parent
             JOIN refresh_tokens child ON child.parent_id = parent.id
             WHERE parent.used_at = {now}
               AND child.used_at IS NULL AND child.issued_at = {now}"
        );
        assert_eq!(f.count(&linked).await, 1);
        let touched = format!("SELECT COUNT(*) FROM sessions WHERE last_used_at = {now}");
        assert_eq!(f.count(&touched).await, 1);
    }

    #[tokio::test]
    async fn an_email_taken_is_told_apart_from_a_failure() {
        let f = fixture(Duration::from_secs(10)).await;
        let email = parse_email("RACE@example.com").unwrap();
        let hash = PasswordHashString("$argon2id$not-checked-here".into());
        let again = f.store.create_user(&email, &hash, T0).await;
        assert!(matches!(again, Err(CreateError::EmailTaken)));
    }
}
