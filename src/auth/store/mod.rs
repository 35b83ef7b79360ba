//! The store: the one door to the database for users, sessions, refresh
//! tokens and the login throttle's state. Handlers, the bearer check, the
//! throttle and the pages call its methods; none of them sees a pool or
//! writes SQL.
//!
//! The rules are Rust, written once, in `rules`: when a session is live,
//! and what a presented refresh token gets. An engine (`sqlite.rs`,
//! `postgres.rs`) only reads and writes rows, through the small `Engine`
//! interface below. Its one subtle method is `rotate_step`: it reads the
//! presented token, asks the rule, and applies the decision, where a spend
//! is a conditional write that succeeds only while the parent token is
//! still unspent and its session not revoked, so two requests that both
//! decided to spend one token can't both do it, whatever the engine's
//! isolation. (SQLite does all of it inside one write transaction;
//! PostgreSQL reads, then writes.)
//!
//! The login throttle's rule is Rust too, in `auth::throttle`. Its rows
//! (`login_attempts`, `address_attempts`) are shared by every server on the
//! database; the one subtle method is `begin_attempt`, which reads an
//! email's attempts, asks the rule, and records the new one, all under a
//! lock on that email that holds across instances.

mod postgres;
mod rows;
pub mod rules;
mod sqlite;

use std::future::Future;
use std::time::Duration;

use crate::clock::{as_ms, rfc3339, Millis};

use super::model::{SecurityEvent, SecurityEventKind, Session, User};
use super::password::PasswordHashString;
use super::refresh::{RefreshKeys, RefreshToken};
use super::validate::Email;

use rules::{decide, Decision, Liveness, Refusal, SessionTimes, TokenState};
pub use rules::{Lifetimes, RevokeReason};

/// The engines' error. Every engine speaks through sqlx, so its error is
/// the common currency; the HTTP layer answers any of them with a 503.
pub type StoreError = sqlx::Error;

/// A user as the API shows them.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub created_at: Millis,
}

impl UserRow {
    pub fn to_user(&self) -> User {
        User {
            id: self.id.clone(),
            email: self.email.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

/// An account with its password hash, for login only.
pub struct Credentials {
    pub user: UserRow,
    pub password_hash: String,
}

pub enum CreateError {
    EmailTaken,
    Database(StoreError),
}

/// A session as stored, without its user.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub created_at: Millis,
    pub user_agent: Option<String>,
    pub address: Option<String>,
    pub times: SessionTimes,
}

impl SessionRecord {
    fn to_session(&self, current_id: &str) -> Session {
        Session {
            id: self.id.clone(),
            created_at: rfc3339(self.created_at),
            last_used_at: rfc3339(self.times.last_used_at),
            // Named only where it is shown (`handlers::with_device`): the
            // bearer check builds a `Session` on every request.
            device: None,
            user_agent: self.user_agent.clone(),
            address: self.address.clone(),
            remembered: self.times.remembered,
            current: self.id == current_id,
        }
    }
}

/// The user and session behind a verified access token.
pub struct LiveSession {
    pub user: UserRow,
    pub session: Session,
}

/// Why a session behind an access token no longer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Expired,
    /// Logged out, revoked, killed by reuse, or gone altogether.
    Revoked,
}

/// A token handed out, and how long its cookie should live.
#[derive(Debug)]
pub struct RefreshGrant {
    pub token: RefreshToken,
    pub user_id: String,
    pub session_id: String,
    /// `None`: session cookies (a session not remembered).
    pub cookie_max_age: Option<Duration>,
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
    Reused {
        session_id: String,
        /// This presentation is the one that revealed the reuse (and
        /// revoked the session), not a later one.
        just_detected: bool,
    },
    #[error(transparent)]
    Database(#[from] StoreError),
}

/// A presented refresh token, its successor and its session, as an engine
/// reads them in one query.
pub struct Presented {
    pub token_id: i64,
    pub session_id: String,
    pub user: UserRow,
    pub state: TokenState,
}

impl Presented {
    /// The spend of this token, for its successor's hash at `now`.
    fn spend<'a>(&'a self, successor_hash: &'a [u8], now: Millis) -> Spend<'a> {
        Spend {
            parent_id: self.token_id,
            session_id: &self.session_id,
            successor_hash,
            now,
        }
    }
}

/// A new session and its first refresh token.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
    pub user_agent: Option<&'a str>,
    pub address: &'a str,
    pub remembered: bool,
    pub token_hash: &'a [u8],
}

/// What one rotation step found, what the rule decided, and whether the
/// decision's write took effect (for `Spend`, `false` means another
/// request spent the token first).
pub struct Step {
    pub found: Option<Presented>,
    pub decision: Decision,
    pub applied: bool,
}

/// Spending a parent token: mark it used at `now`, store its successor,
/// and touch the session; all of it, or nothing when the parent is spent
/// already or the session revoked.
pub struct Spend<'a> {
    pub parent_id: i64,
    pub session_id: &'a str,
    pub successor_hash: &'a [u8],
    pub now: Millis,
}

/// A login attempt to record as in flight, and what of its email's
/// attempts still counts.
pub struct NewAttempt<'a> {
    pub email_key: &'a str,
    pub address: &'a str,
    pub now: Millis,
    /// It counts as in flight until then, unless it ends first.
    pub lease_until: Millis,
    /// Failures at or before this have left the window.
    pub failures_after: Millis,
}

/// One of an email's attempts that still counts: in flight (`failed_at`
/// is `None`, its lease not yet expired) or failed within the window.
#[derive(Debug, Clone)]
pub struct LiveAttempt {
    pub address: String,
    pub failed_at: Option<Millis>,
    /// A success at this pair since: it still counts for the email only.
    pub pair_cleared: bool,
}

/// A login attempt recorded in flight, as its end needs it.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: i64,
    pub email_key: String,
    pub address: String,
    pub started_at: Millis,
}

/// An address's login and register attempts in the rate window.
#[derive(Debug, Clone, Copy)]
pub struct Recent {
    pub count: u32,
    pub oldest: Option<Millis>,
}

/// Throttle rows that no longer count, deleted by housekeeping: failures
/// at or before `failed_by`, leases that ran out by `leased_by`, address
/// attempts at or before `rate_by`.
pub struct ThrottleCutoffs {
    pub failed_by: Millis,
    pub leased_by: Millis,
    pub rate_by: Millis,
}

/// Whose history an event goes into: a user's, the user of a session, or
/// the user with an email key (nobody's, if no account has it).
#[derive(Debug, Clone, Copy)]
pub enum EventSubject<'a> {
    User(&'a str),
    Session(&'a str),
    Email(&'a str),
}

/// An event for the security history.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub subject: EventSubject<'a>,
    pub at: Millis,
    pub kind: SecurityEventKind,
    /// The session it concerns, if one.
    pub session_id: Option<&'a str>,
    /// What the person reads; never a token, a password or a hash.
    pub detail: &'a str,
}

/// The most events one page of the history holds.
pub const HISTORY_PAGE: usize = 50;

/// What an engine does: rows in, rows out, no rules. Each write is one
/// transaction. (Futures are `Send`: handlers hold them across awaits.)
trait Engine {
    /// Inserts a user; `EmailTaken` when `email_key` exists.
    fn create_user(
        &self,
        user: &UserRow,
        email_key: &str,
        password_hash: &str,
    ) -> impl Future<Output = Result<(), CreateError>> + Send;

    fn credentials(
        &self,
        email_key: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send;

    /// In one transaction: sets the user's password hash and revokes every
    /// unrevoked session of theirs but `keep_session`; how many it revoked.
    fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: Millis,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes the user and, with them, their sessions and refresh tokens;
    /// `false` if there was no such user.
    fn delete_user(&self, user_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn start_session(
        &self,
        session: &NewSession<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads the token with this hash (whether its successor is unused,
    /// its session and user), asks `decide`, and applies the decision:
    /// `Spend` as the conditional write (the parent spent, the successor
    /// stored as `successor_hash`, the session touched; nothing if the
    /// parent was spent or its session revoked since it was read),
    /// `RevokeForReuse` as a revoke. Other decisions write nothing.
    fn rotate_step<F>(
        &self,
        token_hash: &[u8],
        successor_hash: &[u8],
        now: Millis,
        decide: F,
    ) -> impl Future<Output = Result<Step, StoreError>> + Send
    where
        F: FnOnce(Option<&TokenState>) -> Decision + Send + 'static;

    fn session_of(
        &self,
        token_hash: &[u8],
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Revokes one session unless it is revoked already; `true` if it was.
    fn revoke(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revokes every unrevoked session of a user; how many.
    fn revoke_all(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A session of this user, with the user.
    fn session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<(UserRow, SessionRecord)>, StoreError>> + Send;

    /// Every stored session of a user, newest first.
    fn sessions_of(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// Deletes, with their tokens, sessions that ended before `cutoff`:
    /// capped, revoked, or idle for `idle_ms` by then.
    fn purge_ended(
        &self,
        cutoff: Millis,
        idle_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Answers, and accepts a write transaction.
    fn is_ready(&self) -> impl Future<Output = bool> + Send;

    // The security history.

    /// Adds the event to its subject's history (nothing if the subject is
    /// gone or, for an email, was never an account).
    fn record_event(
        &self,
        event: &NewEvent<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A user's events with ids below `before`, newest first, at most `limit`.
    fn events_of(
        &self,
        user_id: &str,
        before: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<rows::EventFields>, StoreError>> + Send;

    /// Deletes events older than `cutoff`; how many.
    fn purge_events(&self, cutoff: Millis) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // The login throttle's rows.

    /// Under a lock on `new.email_key` that holds across instances: reads
    /// the email's live attempts, asks `admit`, and if it agrees records
    /// `new` in flight. Its id, or what `admit` refused with.
    fn begin_attempt<F, R>(
        &self,
        new: &NewAttempt<'_>,
        admit: F,
    ) -> impl Future<Output = Result<Result<i64, R>, StoreError>> + Send
    where
        F: FnOnce(&[LiveAttempt]) -> Result<(), R> + Send + 'static,
        R: Send + 'static;

    /// Marks the attempt failed at `at`; records it anew if housekeeping
    /// deleted it meanwhile (it outlived its lease).
    fn fail_attempt(
        &self,
        attempt: &AttemptRow,
        at: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many failures after `since` count against the pair
    /// (`email_key`, `address`) and against the email from anywhere.
    fn failures_since(
        &self,
        email_key: &str,
        address: &str,
        since: Millis,
    ) -> impl Future<Output = Result<(i64, i64), StoreError>> + Send;

    /// Deletes the attempt, and clears its pair's failures.
    fn succeed_attempt(
        &self,
        attempt: &AttemptRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the attempt: it counts nothing.
    fn forget_attempt(&self, id: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Under a lock on `address` that holds across instances: counts its
    /// attempts after `since`, asks `admit`, and if it agrees records one
    /// at `now`.
    fn add_address_attempt<F, R>(
        &self,
        address: &str,
        since: Millis,
        now: Millis,
        admit: F,
    ) -> impl Future<Output = Result<Result<(), R>, StoreError>> + Send
    where
        F: FnOnce(Recent) -> Result<(), R> + Send + 'static,
        R: Send + 'static;

    /// Deletes throttle rows that no longer count; how many.
    fn purge_throttle(
        &self,
        cutoffs: &ThrottleCutoffs,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Which database stands behind the store. Another engine is another
/// variant, and one more arm in `engine!`.
#[derive(Clone)]
pub enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

impl From<crate::db::Pool> for Backend {
    fn from(pool: crate::db::Pool) -> Self {
        match pool {
            crate::db::Pool::Sqlite(pool) => pool.into(),
            crate::db::Pool::Postgres(pool) => pool.into(),
        }
    }
}

/// Runs `$call` on whichever engine stands behind `$store`.
macro_rules! engine {
    ($store:expr, $engine:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sqlite($engine) => $call.await,
            Backend::Postgres($engine) => $call.await,
        }
    };
}

/// Users, sessions and refresh tokens, with the rules that govern them,
/// and the login throttle's rows. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    keys: RefreshKeys,
    lifetimes: Lifetimes,
}

impl Store {
    pub fn new(backend: Backend, keys: RefreshKeys, lifetimes: Lifetimes) -> Self {
        Self {
            backend,
            keys,
            lifetimes,
        }
    }

    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    // Users.

    pub async fn create_user(
        &self,
        email: &Email,
        password_hash: &PasswordHashString,
        now: Millis,
    ) -> Result<UserRow, CreateError> {
        let user = UserRow {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.display.clone(),
            created_at: now,
        };
        engine!(self, e => e.create_user(&user, &email.key, &password_hash.0))?;
        Ok(user)
    }

    pub async fn credentials(&self, email_key: &str) -> Result<Option<Credentials>, StoreError> {
        engine!(self, e => e.credentials(email_key))
    }

    /// A new password, and every other session of the user ended at once
    /// (their access tokens die on their next request); `keep_session`, the
    /// one the change was made from, stands. How many sessions it ended.
    pub async fn change_password(
        &self,
        user_id: &str,
        password_hash: &PasswordHashString,
        keep_session: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        engine!(self, e => e.change_password(user_id, &password_hash.0, keep_session, now))
    }

    /// Deletes the user with everything of theirs: sessions (so every
    /// access token dies on its next request) and refresh tokens. The
    /// email can register again.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        engine!(self, e => e.delete_user(user_id))
    }

    // Sessions and their refresh tokens.

    /// Opens a session for a user who just proved who they are.
    /// `remembered`: "keep me signed in" (see `SessionTimes`).
    pub async fn start_session(
        &self,
        user_id: &str,
        (user_agent, address): (Option<&str>, &str),
        remembered: bool,
        now: Millis,
    ) -> Result<RefreshGrant, StoreError> {
        let session_id = uuid::Uuid::new_v4().to_string();
        let token = RefreshToken::generate();
        let times = SessionTimes {
            last_used_at: now,
            expires_at: now.saturating_add(as_ms(self.lifetimes.absolute)),
            revoked: None,
            remembered,
        };
        let token_hash = self.keys.hash(&token);
        let session = NewSession {
            id: &session_id,
            user_id,
            now,
            expires_at: times.expires_at,
            user_agent,
            address,
            remembered,
            token_hash: &token_hash,
        };
        engine!(self, e => e.start_session(&session))?;
        Ok(RefreshGrant {
            token,
            user_id: user_id.to_string(),
            cookie_max_age: times.cookie_max_age(now, &self.lifetimes),
            session_id,
        })
    }

    /// Rotation: read the presented token, decide by the rule
    /// (`rules::decide`), apply. A spend is a conditional write; losing it
    /// means another request spent the token between this one's read and
    /// write, so this one reads again and decides again (now a replay
    /// inside the grace window, or reuse).
    pub async fn rotate(
        &self,
        presented: &RefreshToken,
        now: Millis,
    ) -> Result<(RefreshGrant, UserRow), RotateError> {
        let presented_hash = self.keys.hash(presented);
        let successor_hash = self.keys.hash(&self.keys.successor(presented));
        let lifetimes = self.lifetimes;
        // A spend can be lost once: after that the token is spent, and the
        // rule never says spend for a spent token.
        for _ in 0..2 {
            let rule = move |token: Option<&TokenState>| decide(token, now, &lifetimes);
            let step =
                engine!(self, e => e.rotate_step(&presented_hash, &successor_hash, now, rule))?;
            if let Some(outcome) = self.outcome(presented, step, now)? {
                return Ok(outcome);
            }
        }
        // Lost twice: nothing in this store spends a token twice, so the
        // token is not what it seemed.
        Err(RotateError::Unknown)
    }

    /// What a rotation step comes to for the caller. `None` when its spend
    /// was lost to another request.
    fn outcome(
        &self,
        presented: &RefreshToken,
        step: Step,
        now: Millis,
    ) -> Result<Option<(RefreshGrant, UserRow)>, RotateError> {
        let Some(found) = step.found else {
            return Err(RotateError::Unknown);
        };
        match step.decision {
            Decision::Spend if !step.applied => Ok(None),
            Decision::Spend => {
                let touched = SessionTimes {
                    last_used_at: now,
                    ..found.state.session
                };
                Ok(Some(self.grant(presented, found, touched, now)))
            }
            Decision::Replay => {
                let untouched = found.state.session;
                Ok(Some(self.grant(presented, found, untouched, now)))
            }
            // Revoked by another request between this one's read and its
            // revoke (a racing presentation, a logout): read again and
            // decide on what the session is now, so the reuse is reported
            // once and a logout isn't called theft.
            Decision::RevokeForReuse if !step.applied => Ok(None),
            Decision::RevokeForReuse => {
                tracing::warn!(
                    session_id = %found.session_id,
                    "refresh token reuse detected; session revoked"
                );
                Err(RotateError::Reused {
                    session_id: found.session_id,
                    just_detected: true,
                })
            }
            Decision::Refuse(refusal) => Err(match refusal {
                Refusal::Unknown => RotateError::Unknown,
                Refusal::Expired => RotateError::Expired,
                Refusal::Revoked => RotateError::Revoked,
                Refusal::Reused => RotateError::Reused {
                    session_id: found.session_id,
                    just_detected: false,
                },
            }),
        }
    }

    /// The presented token's successor, for the session as it now stands.
    /// (The successor is derived from the presented token, so a replay in
    /// the grace window gets the same one.)
    fn grant(
        &self,
        presented: &RefreshToken,
        found: Presented,
        session: SessionTimes,
        now: Millis,
    ) -> (RefreshGrant, UserRow) {
        let grant = RefreshGrant {
            token: self.keys.successor(presented),
            user_id: found.user.id.clone(),
            session_id: found.session_id,
            cookie_max_age: session.cookie_max_age(now, &self.lifetimes),
        };
        (grant, found.user)
    }

    /// The session a token (spent or not) belongs to, if any.
    pub async fn session_of(&self, token: &RefreshToken) -> Result<Option<String>, StoreError> {
        let hash = self.keys.hash(token);
        engine!(self, e => e.session_of(&hash))
    }

    /// Ends one session; every refresh and access token of it dies with it.
    pub async fn revoke(
        &self,
        session_id: &str,
        reason: RevokeReason,
        now: Millis,
    ) -> Result<bool, StoreError> {
        engine!(self, e => e.revoke(session_id, reason, now))
    }

    /// Ends every session of a user.
    pub async fn revoke_all(&self, user_id: &str, now: Millis) -> Result<u64, StoreError> {
        engine!(self, e => e.revoke_all(user_id, RevokeReason::Revoked, now))
    }

    /// The bearer check's one read: is the token's session still live, and
    /// whose is it? A session that is gone (deleted with its user, or
    /// purged after it ended) counts as revoked.
    pub async fn live(
        &self,
        user_id: &str,
        session_id: &str,
        now: Millis,
    ) -> Result<Result<LiveSession, Ended>, StoreError> {
        let Some((user, record)) = engine!(self, e => e.session(user_id, session_id))? else {
            return Ok(Err(Ended::Revoked));
        };
        Ok(match record.times.liveness(now, &self.lifetimes) {
            Liveness::Live => Ok(LiveSession {
                session: record.to_session(session_id),
                user,
            }),
            Liveness::Expired => Err(Ended::Expired),
            Liveness::Revoked(_) => Err(Ended::Revoked),
        })
    }

    /// The user's live sessions, newest first, `current_id` marked.
    /// Sessions that ended are filtered here, by the same rule; housekeeping
    /// deletes them after a while, so the list read stays short.
    pub async fn list_live(
        &self,
        user_id: &str,
        current_id: &str,
        now: Millis,
    ) -> Result<Vec<Session>, StoreError> {
        let records = engine!(self, e => e.sessions_of(user_id))?;
        Ok(records
            .iter()
            .filter(|r| r.times.is_live(now, &self.lifetimes))
            .map(|r| r.to_session(current_id))
            .collect())
    }

    /// True when `session_id` is a live session of `user_id`.
    pub async fn is_live_of(
        &self,
        user_id: &str,
        session_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let found = engine!(self, e => e.session(user_id, session_id))?;
        Ok(found.is_some_and(|(_, record)| record.times.is_live(now, &self.lifetimes)))
    }

    // Housekeeping and readiness.

    /// Deletes sessions that ended more than `retention` ago, with their
    /// tokens. Live sessions keep their spent tokens: reuse detection
    /// needs them.
    pub async fn purge_ended(&self, now: Millis, retention: Duration) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(as_ms(retention));
        let idle = as_ms(self.lifetimes.idle);
        engine!(self, e => e.purge_ended(cutoff, idle))
    }

    // The security history.

    /// Adds an event to a user's security history. A failure is logged and
    /// swallowed: the history must not undo what it records (a sign-in, a
    /// revocation), and the database failing here would have failed that too.
    pub async fn record(&self, event: NewEvent<'_>) {
        if let Err(e) = engine!(self, e => e.record_event(&event)) {
            tracing::warn!(error = %e, kind = event.kind.as_str(), "could not record a security event");
        }
    }

    /// A page of a user's history, newest first: events with ids below
    /// `before` (all, if none), and the `before` of the next page.
    pub async fn history(
        &self,
        user_id: &str,
        before: Option<i64>,
    ) -> Result<(Vec<SecurityEvent>, Option<i64>), StoreError> {
        let limit = HISTORY_PAGE as i64 + 1;
        let before = before.unwrap_or(i64::MAX);
        let mut rows = engine!(self, e => e.events_of(user_id, before, limit))?;
        let next = if rows.len() > HISTORY_PAGE {
            rows.truncate(HISTORY_PAGE);
            rows.last().map(|row| row.id)
        } else {
            None
        };
        Ok((
            rows.into_iter()
                .filter_map(rows::EventFields::into_event)
                .collect(),
            next,
        ))
    }

    /// Deletes events older than `retention`.
    pub async fn purge_history(&self, now: Millis, retention: Duration) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(as_ms(retention));
        engine!(self, e => e.purge_events(cutoff))
    }

    /// True when the database answers and accepts a write transaction.
    pub async fn is_ready(&self) -> bool {
        engine!(self, e => e.is_ready())
    }

    // The login throttle's rows (its rule is `auth::throttle`).

    /// Records a login attempt in flight if `admit`, shown the email's live
    /// attempts under a lock on the email held across instances, agrees.
    pub async fn begin_attempt<R: Send + 'static>(
        &self,
        new: &NewAttempt<'_>,
        admit: impl FnOnce(&[LiveAttempt]) -> Result<(), R> + Send + 'static,
    ) -> Result<Result<i64, R>, StoreError> {
        engine!(self, e => e.begin_attempt(new, admit))
    }

    pub async fn fail_attempt(&self, attempt: &AttemptRow, at: Millis) -> Result<(), StoreError> {
        engine!(self, e => e.fail_attempt(attempt, at))
    }

    /// The pair's and the email's failures after `since`.
    pub async fn failures_since(
        &self,
        email_key: &str,
        address: &str,
        since: Millis,
    ) -> Result<(i64, i64), StoreError> {
        engine!(self, e => e.failures_since(email_key, address, since))
    }

    pub async fn succeed_attempt(&self, attempt: &AttemptRow) -> Result<(), StoreError> {
        engine!(self, e => e.succeed_attempt(attempt))
    }

    pub async fn forget_attempt(&self, id: i64) -> Result<(), StoreError> {
        engine!(self, e => e.forget_attempt(id))
    }

    /// Records an attempt from `address` at `now` if `admit`, shown its
    /// attempts after `since` under a lock on the address held across
    /// instances, agrees.
    pub async fn add_address_attempt<R: Send + 'static>(
        &self,
        address: &str,
        since: Millis,
        now: Millis,
        admit: impl FnOnce(Recent) -> Result<(), R> + Send + 'static,
    ) -> Result<Result<(), R>, StoreError> {
        engine!(self, e => e.add_address_attempt(address, since, now, admit))
    }

    /// Deletes throttle rows that no longer count; how many.
    pub async fn purge_throttle(&self, cutoffs: &ThrottleCutoffs) -> Result<u64, StoreError> {
        engine!(self, e => e.purge_throttle(cutoffs))
    }
}
