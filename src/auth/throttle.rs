//! Login throttling: failures per (email, address) and per email in a
//! sliding window, attempts in flight counted against the allowance, and a
//! per-address rate for login and register.
//!
//! The state is rows in the database, kept by the store, so every server
//! on one database shares it: five failures spread over two instances lock
//! the pair on both. The rule is here, written once: the store reads an
//! email's attempts that still count under a lock on the email that holds
//! across instances, `admit` decides, and the store records the new attempt
//! before the lock goes.
//!
//! An attempt in flight holds a lease of `LEASE`: its row counts until
//! then, so an instance that crashes mid-attempt leaves nothing stuck. A
//! normal end rewrites or deletes the row at once.
//!
//! What bounds the tables: a key is at most `EMAIL_KEY_MAX_BYTES` (a longer
//! one is replaced by its digest); the per-address rate bounds how fast any
//! one address adds rows to either table; an email takes no new attempt
//! once `EMAIL_MAX_FAILURES` of its rows count; and housekeeping (`purge`)
//! deletes every row once it no longer counts.

use std::{borrow::Cow, future::Future, net::IpAddr, time::Duration};

use crate::clock::{as_ms, Millis};

use super::store::{
    AttemptRow, LiveAttempt, NewAttempt, Recent, Store, StoreError, ThrottleCutoffs,
};
use super::validate::{digest_key, EMAIL_KEY_MAX_BYTES};

/// Failures for one email from anywhere before it locks for everyone.
pub const EMAIL_MAX_FAILURES: u32 = 20;
/// How long an attempt in flight counts if its server never ends it (it
/// crashed, or lost the database); far longer than any password check.
pub const LEASE: Duration = Duration::from_secs(60);
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// What a caller turned away only for attempts in flight is told to wait.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_failures: u32,
    pub lockout: Duration,
    pub rate_per_minute: u32,
}

/// Go ahead (`Ok`), or how long to wait before trying again.
pub type Verdict<T> = Result<T, Duration>;

/// What one counter (a pair, or an email) holds right now.
#[derive(Default)]
struct Tally {
    failures: u32,
    oldest_failure: Option<Millis>,
    in_flight: u32,
}

impl Tally {
    fn count(&mut self, failed_at: Option<Millis>) {
        match failed_at {
            Some(at) => {
                self.failures += 1;
                self.oldest_failure = Some(self.oldest_failure.map_or(at, |t| t.min(at)));
            }
            None => self.in_flight += 1,
        }
    }

    /// How long until one more attempt fits under `max`, if it doesn't now.
    fn wait(&self, max: u32, now: Millis, window: Millis) -> Option<Duration> {
        if self.failures + self.in_flight < max {
            return None;
        }
        Some(match self.oldest_failure {
            Some(oldest) if self.failures >= max => {
                Duration::from_millis((oldest + window - now).max(1) as u64)
            }
            _ => IN_FLIGHT_WAIT,
        })
    }
}

/// The rule of `begin`, over the email's attempts that still count (failures
/// in the window, attempts in flight) from every address.
fn admit(limits: &Limits, live: &[LiveAttempt], address: &str, now: Millis) -> Verdict<()> {
    let (mut pair, mut email) = (Tally::default(), Tally::default());
    for attempt in live {
        email.count(attempt.failed_at);
        if attempt.address == address && !attempt.pair_cleared {
            pair.count(attempt.failed_at);
        }
    }
    let window = as_ms(limits.lockout);
    let pair_wait = pair.wait(limits.max_failures, now, window);
    let email_wait = email.wait(EMAIL_MAX_FAILURES, now, window);
    pair_wait.max(email_wait).map_or(Ok(()), Err)
}

/// The rule of `check_rate`, over the address's attempts in the last minute.
fn admit_rate(rate_per_minute: u32, recent: Recent, now: Millis) -> Verdict<()> {
    if recent.count < rate_per_minute {
        return Ok(());
    }
    let oldest = recent.oldest.unwrap_or(now);
    Err(Duration::from_millis(
        (oldest + as_ms(RATE_WINDOW) - now).max(1) as u64,
    ))
}

/// `key`, or its digest when it is longer than any email key can be.
fn bounded(key: &str) -> Cow<'_, str> {
    if key.len() <= EMAIL_KEY_MAX_BYTES {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(digest_key(key))
    }
}

/// Runs `work` on a task of its own and waits for it. A request dropped
/// midway (its client hung up) stops waiting, but the work still finishes:
/// the throttle's rows never depend on a client staying to the end.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down, and the pool with it.
        Err(_) => Err(StoreError::PoolClosed),
    }
}

/// The login throttle: its rule over rows the store keeps. Cheap to clone.
#[derive(Clone)]
pub struct Throttle {
    limits: Limits,
    store: Store,
}

impl Throttle {
    /// How long a lockout lasts at most (the failure window).
    pub fn lockout(&self) -> Duration {
        self.limits.lockout
    }

    pub fn new(limits: Limits, store: Store) -> Self {
        Self { limits, store }
    }

    /// Counts one login or register attempt from `address`, unless it is
    /// over the rate: then how long to wait.
    pub async fn check_rate(
        &self,
        address: IpAddr,
        now: Millis,
    ) -> Result<Verdict<()>, StoreError> {
        let rate = self.limits.rate_per_minute;
        let since = now.saturating_sub(as_ms(RATE_WINDOW));
        self.store
            .add_address_attempt(&address.to_string(), since, now, move |recent| {
                admit_rate(rate, recent, now)
            })
            .await
    }

    /// Reserves a password check for `email` (an `email_key`) from
    /// `address`, or says how long to wait.
    pub async fn begin(
        &self,
        email: &str,
        address: IpAddr,
        now: Millis,
    ) -> Result<Verdict<Attempt>, StoreError> {
        let throttle = self.clone();
        let email = bounded(email).into_owned();
        // Should the request be dropped, the attempt made for it is
        // dropped on the task, and frees its place at once.
        detached(throttle.begin_on_task(email, address, now)).await
    }

    async fn begin_on_task(
        self,
        email_key: String,
        address: IpAddr,
        now: Millis,
    ) -> Result<Verdict<Attempt>, StoreError> {
        let address = address.to_string();
        let new = NewAttempt {
            email_key: &email_key,
            address: &address,
            now,
            lease_until: now.saturating_add(as_ms(LEASE)),
            failures_after: now.saturating_sub(as_ms(self.limits.lockout)),
        };
        let limits = self.limits;
        let begun = self
            .store
            .begin_attempt(&new, {
                let address = address.clone();
                move |live| admit(&limits, live, &address, now)
            })
            .await?;
        Ok(begun.map(|id| Attempt {
            store: self.store,
            row: AttemptRow {
                id,
                email_key,
                address,
                started_at: now,
            },
            checking_since: None,
            limits,
            done: false,
        }))
    }

    /// Deletes what no longer counts: failures out of the window, leases
    /// run out, address attempts over a minute old. How many rows.
    pub async fn purge(&self, now: Millis) -> Result<u64, StoreError> {
        let cutoffs = ThrottleCutoffs {
            failed_by: now.saturating_sub(as_ms(self.limits.lockout)),
            leased_by: now,
            rate_by: now.saturating_sub(as_ms(RATE_WINDOW)),
        };
        self.store.purge_throttle(&cutoffs).await
    }
}

/// What a failure locked: sign-in for this email from its address, or
/// from everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    Pair,
    Email,
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Failed(Millis),
    /// No verdict: the check never ran, or the server couldn't finish it.
    NoVerdict,
}

impl Outcome {
    async fn record(self, store: Store, attempt: AttemptRow) -> Result<(), StoreError> {
        match self {
            Outcome::Succeeded => store.succeed_attempt(&attempt).await,
            Outcome::Failed(at) => store.fail_attempt(&attempt, at).await,
            Outcome::NoVerdict => store.forget_attempt(attempt.id).await,
        }
    }
}

/// A login attempt holding its place in the allowance until it finishes.
///
/// It ends with `succeeded`, `failed` or `unavailable`. Dropped without one,
/// it counts as a failure once its password check has started (`checking`):
/// a client that hangs up mid-check has still had a guess's worth of work.
/// Dropped before that, it just frees its place. (A drop writes on a task
/// of its own; with no runtime to run it, the lease runs out instead.)
pub struct Attempt {
    store: Store,
    row: AttemptRow,
    /// When the password check began.
    checking_since: Option<Millis>,
    limits: Limits,
    done: bool,
}

impl Attempt {
    async fn end(mut self, outcome: Outcome) -> Result<(), StoreError> {
        self.done = true;
        detached(outcome.record(self.store.clone(), self.row.clone())).await
    }

    /// The password check starts now: from here on, dropping the attempt
    /// without a verdict counts as a failure at `now`.
    pub fn checking(&mut self, now: Millis) {
        self.checking_since = Some(now);
    }

    pub async fn succeeded(self) -> Result<(), StoreError> {
        self.end(Outcome::Succeeded).await
    }

    /// Records the failure; which lockout, if any, this failure reached
    /// (counted after it was written, so attempts that ran in parallel
    /// can't all miss it; the one that makes the count reach the limit
    /// reports it).
    pub async fn failed(self, now: Millis) -> Result<Option<Lockout>, StoreError> {
        let (store, limits) = (self.store.clone(), self.limits);
        let (email_key, address) = (self.row.email_key.clone(), self.row.address.clone());
        self.end(Outcome::Failed(now)).await?;
        let since = now.saturating_sub(as_ms(limits.lockout));
        let (pair, email) = store.failures_since(&email_key, &address, since).await?;
        Ok(if email == i64::from(EMAIL_MAX_FAILURES) {
            Some(Lockout::Email)
        } else if pair == i64::from(limits.max_failures) {
            Some(Lockout::Pair)
        } else {
            None
        })
    }

    /// The server couldn't give a verdict (a 503): frees the place and
    /// counts nothing, even after `checking`.
    pub async fn unavailable(self) -> Result<(), StoreError> {
        self.end(Outcome::NoVerdict).await
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let outcome = match self.checking_since {
            Some(at) => {
                tracing::info!(address = %self.row.address, "login dropped during its password check; counted as a failure");
                Outcome::Failed(at)
            }
            None => Outcome::NoVerdict,
        };
        let write = outcome.record(self.store.clone(), self.row.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = write.await {
                        tracing::warn!(error = %e, "could not end a dropped login attempt; its lease will run out");
                    }
                });
            }
            Err(_) => {
                tracing::warn!("no runtime to end a dropped login attempt; its lease will run out")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::refresh::RefreshKeys;
    use crate::auth::store::Lifetimes;
    use sqlx::SqlitePool;

    const MIN: Millis = 60_000;

    const LIMITS: Limits = Limits {
        max_failures: 5,
        lockout: Duration::from_secs(15 * 60),
        rate_per_minute: 3,
    };

    /// A throttle on a fresh SQLite file, as one server instance sees it.
    struct Fixture {
        t: Throttle,
        pool: SqlitePool,
        dir: tempfile::TempDir,
    }

    async fn instance(url: &str) -> (Throttle, SqlitePool) {
        let pool = crate::db::sqlite::connect(url).await.unwrap();
        let lifetimes = Lifetimes {
            idle: Duration::from_secs(3600),
            browser_idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3 * 3600),
            grace: Duration::from_secs(10),
        };
        let keys = RefreshKeys::new(b"a refresh secret of at least 32 bytes");
        let store = Store::new(pool.clone().into(), keys, lifetimes);
        (Throttle::new(LIMITS, store), pool)
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (t, pool) = instance(&url_of(&dir)).await;
        Fixture { t, pool, dir }
    }

    fn url_of(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display())
    }

    impl Fixture {
        async fn begin(&self, email: &str, address: IpAddr, now: Millis) -> Verdict<Attempt> {
            self.t.begin(email, address, now).await.unwrap()
        }

        async fn fail(&self, email: &str, address: IpAddr, now: Millis) {
            let attempt = self.begin(email, address, now).await.unwrap();
            attempt.failed(now).await.unwrap();
        }

        async fn wait(&self, email: &str, address: IpAddr, now: Millis) -> Option<Duration> {
            self.begin(email, address, now).await.err()
        }

        async fn count(&self, sql: &str) -> i64 {
            sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
        }

        /// Waits for dropped attempts to end: each writes on a task of
        /// its own.
        async fn settled(&self) {
            for _ in 0..500 {
                let in_flight = "SELECT COUNT(*) FROM login_attempts WHERE lease_until IS NOT NULL";
                if self.count(in_flight).await == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("dropped attempts never ended");
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn sixth_attempt_waits_until_the_oldest_failure_leaves() {
        let f = fixture().await;
        for i in 0..5 {
            f.fail("a@x.io", ip(1), i * MIN).await;
        }
        let wait = f.wait("a@x.io", ip(1), 5 * MIN).await;
        assert_eq!(wait, Some(Duration::from_secs(10 * 60)));
        // Another address is not locked out by these five.
        assert!(f.begin("a@x.io", ip(2), 5 * MIN).await.is_ok());
        // Once the first failure is 15 minutes old, one more try is allowed.
        assert!(f.begin("a@x.io", ip(1), 15 * MIN).await.is_ok());
    }

    #[tokio::test]
    async fn success_clears_the_pair() {
        let f = fixture().await;
        for _ in 0..4 {
            f.fail("a@x.io", ip(1), 0).await;
        }
        let attempt = f.begin("a@x.io", ip(1), 0).await.unwrap();
        attempt.succeeded().await.unwrap();
        for _ in 0..4 {
            f.fail("a@x.io", ip(1), 0).await;
        }
        assert!(f.begin("a@x.io", ip(1), 0).await.is_ok());
    }

    #[tokio::test]
    async fn a_success_keeps_the_failures_counted_for_the_email() {
        let f = fixture().await;
        for _ in 0..4 {
            f.fail("a@x.io", ip(1), 0).await;
        }
        let attempt = f.begin("a@x.io", ip(1), 0).await.unwrap();
        attempt.succeeded().await.unwrap();
        for i in 0..16u8 {
            f.fail("a@x.io", ip(100 + i), 0).await;
        }
        // Four cleared for the pair plus sixteen: twenty for the email.
        assert_eq!(
            f.wait("a@x.io", ip(1), MIN).await,
            Some(Duration::from_secs(14 * 60))
        );
    }

    #[tokio::test]
    async fn twenty_failures_from_anywhere_lock_the_email() {
        let f = fixture().await;
        for i in 0..20u8 {
            f.fail("a@x.io", ip(i), 0).await;
        }
        assert!(f.begin("a@x.io", ip(200), 0).await.is_err());
        assert!(f.begin("b@x.io", ip(200), 0).await.is_ok());
    }

    #[tokio::test]
    async fn attempts_in_flight_count() {
        let f = fixture().await;
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(f.begin("a@x.io", ip(1), 0).await.unwrap());
        }
        assert_eq!(f.wait("a@x.io", ip(1), 0).await, Some(IN_FLIGHT_WAIT));
        drop(held);
        f.settled().await;
        assert!(f.begin("a@x.io", ip(1), 0).await.is_ok());
    }

    #[tokio::test]
    async fn rate_per_address() {
        let f = fixture().await;
        for _ in 0..3 {
            f.t.check_rate(ip(1), 0).await.unwrap().unwrap();
        }
        assert_eq!(
            f.t.check_rate(ip(1), 1_000).await.unwrap(),
            Err(Duration::from_secs(59))
        );
        assert!(f.t.check_rate(ip(2), 1_000).await.unwrap().is_ok());
        assert!(f.t.check_rate(ip(1), MIN).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_dropped_attempt_counts_as_a_failure_once_its_check_started() {
        let f = fixture().await;
        for _ in 0..4 {
            f.fail("a@x.io", ip(1), 0).await;
        }
        // The client hangs up while its password is being checked.
        let mut attempt = f.begin("a@x.io", ip(1), 0).await.unwrap();
        attempt.checking(MIN);
        drop(attempt);
        f.settled().await;
        assert_eq!(
            f.wait("a@x.io", ip(1), 2 * MIN).await,
            Some(Duration::from_secs(13 * 60))
        );
        // Counted at the time its check began: once the first four leave
        // the window, it alone remains.
        assert!(f.begin("a@x.io", ip(1), 15 * MIN).await.is_ok());
    }

    #[tokio::test]
    async fn failures_stay_in_time_order_when_attempts_end_out_of_order() {
        let f = fixture().await;
        let mut early = f.begin("a@x.io", ip(1), 0).await.unwrap();
        early.checking(0);
        for _ in 0..4 {
            f.fail("a@x.io", ip(1), 5 * MIN).await;
        }
        // Dropped last, but dated from when its check began.
        drop(early);
        f.settled().await;
        assert_eq!(
            f.wait("a@x.io", ip(1), 5 * MIN).await,
            Some(Duration::from_secs(10 * 60))
        );
        assert!(f.begin("a@x.io", ip(1), 15 * MIN).await.is_ok());
    }

    #[tokio::test]
    async fn an_attempt_without_a_check_or_ending_unavailable_counts_nothing() {
        let f = fixture().await;
        for _ in 0..10 {
            // Turned away before the check (say the database is down).
            drop(f.begin("a@x.io", ip(1), 0).await.unwrap());
            // The check began, but no verdict came (the hash task failed).
            let mut attempt = f.begin("a@x.io", ip(1), 0).await.unwrap();
            attempt.checking(0);
            attempt.unavailable().await.unwrap();
        }
        f.settled().await;
        let rows = "SELECT COUNT(*) FROM login_attempts";
        assert_eq!(f.count(rows).await, 0, "no verdict leaves no row");
        for _ in 0..5 {
            f.fail("a@x.io", ip(1), 0).await;
        }
        assert!(f.begin("a@x.io", ip(1), 0).await.is_err());
    }

    #[tokio::test]
    async fn a_success_leaves_nothing_behind() {
        let f = fixture().await;
        let attempt = f.begin("a@x.io", ip(1), 0).await.unwrap();
        attempt.succeeded().await.unwrap();
        assert_eq!(f.count("SELECT COUNT(*) FROM login_attempts").await, 0);
    }

    #[tokio::test]
    async fn an_overlong_key_is_kept_as_a_digest() {
        let f = fixture().await;
        let long = "x".repeat(64 * 1024);
        for _ in 0..5 {
            f.fail(&long, ip(1), 0).await;
        }
        let keys = "SELECT COUNT(DISTINCT email_key) FROM login_attempts";
        assert_eq!(f.count(keys).await, 1);
        let longest = f
            .count("SELECT MAX(LENGTH(email_key)) FROM login_attempts")
            .await;
        assert!(longest as usize <= EMAIL_KEY_MAX_BYTES, "{longest}");
        // Still one counter, so it still locks.
        assert!(f.begin(&long, ip(1), 0).await.is_err());
    }

    #[tokio::test]
    async fn a_lease_runs_out_when_its_instance_never_ends_the_attempt() {
        let f = fixture().await;
        // Five attempts whose server crashed mid-check: nothing ends them.
        for _ in 0..5 {
            std::mem::forget(f.begin("a@x.io", ip(1), 0).await.unwrap());
        }
        let lease_end = as_ms(LEASE);
        assert_eq!(
            f.wait("a@x.io", ip(1), lease_end - 1).await,
            Some(IN_FLIGHT_WAIT)
        );
        // Their leases run out together, and they stop counting.
        let attempt = f.begin("a@x.io", ip(1), lease_end).await.unwrap();
        attempt.unavailable().await.unwrap();
        // Housekeeping then deletes them.
        assert_eq!(f.t.purge(lease_end).await.unwrap(), 5);
        assert_eq!(f.count("SELECT COUNT(*) FROM login_attempts").await, 0);
    }

    #[tokio::test]
    async fn an_attempt_that_outlives_its_lease_still_counts_its_failure() {
        let f = fixture().await;
        let mut slow = f.begin("a@x.io", ip(1), 0).await.unwrap();
        slow.checking(0);
        // Its lease ran out and housekeeping deleted its row.
        f.t.purge(as_ms(LEASE)).await.unwrap();
        slow.failed(as_ms(LEASE) + 1).await.unwrap();
        let failures = "SELECT COUNT(*) FROM login_attempts WHERE failed_at IS NOT NULL";
        assert_eq!(f.count(failures).await, 1);
    }

    #[tokio::test]
    async fn purge_deletes_only_what_no_longer_counts() {
        let f = fixture().await;
        for i in 0..5 {
            f.fail("a@x.io", ip(1), i * MIN).await;
        }
        for _ in 0..3 {
            f.t.check_rate(ip(3), 14 * MIN).await.unwrap().unwrap();
        }
        let held = f.begin("b@x.io", ip(2), 15 * MIN).await.unwrap();
        // At 15m30s the failure at 0 and the address attempts are out.
        let now = 15 * MIN + MIN / 2;
        assert_eq!(f.t.purge(now).await.unwrap(), 1 + 3);
        assert_eq!(f.count("SELECT COUNT(*) FROM address_attempts").await, 0);
        // The four failures left still count: one more locks the pair
        // until the one at a minute leaves.
        f.fail("a@x.io", ip(1), now).await;
        assert_eq!(
            f.wait("a@x.io", ip(1), now).await,
            Some(Duration::from_secs(30))
        );
        // The attempt in flight kept its row, and ends into it.
        held.failed(now).await.unwrap();
        let of_b = "SELECT COUNT(*) FROM login_attempts WHERE email_key = 'b@x.io'";
        assert_eq!(f.count(of_b).await, 1);
    }

    #[tokio::test]
    async fn instances_on_one_database_share_the_count() {
        let f = fixture().await;
        let (other, _pool) = instance(&url_of(&f.dir)).await;
        for i in 0..5 {
            let t = if i % 2 == 0 { &f.t } else { &other };
            let attempt = t.begin("a@x.io", ip(1), 0).await.unwrap().unwrap();
            attempt.failed(0).await.unwrap();
        }
        for t in [&f.t, &other] {
            assert!(t.begin("a@x.io", ip(1), MIN).await.unwrap().is_err());
        }
        // An attempt in flight on one counts on the other.
        let mut held = Vec::new();
        for i in 0..5 {
            let t = if i < 2 { &f.t } else { &other };
            held.push(t.begin("b@x.io", ip(1), 0).await.unwrap().unwrap());
        }
        for t in [&f.t, &other] {
            let wait = t.begin("b@x.io", ip(1), 0).await.unwrap().err();
            assert_eq!(wait, Some(IN_FLIGHT_WAIT));
        }
        for attempt in held {
            attempt.unavailable().await.unwrap();
        }
        assert!(other.begin("b@x.io", ip(1), 0).await.unwrap().is_ok());
    }
}
