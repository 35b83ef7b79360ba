//! Login throttling, in memory: failures per (email, address) and per email
//! in a sliding window, attempts in flight counted against the allowance,
//! and a per-address rate for login and register.
//!
//! Memory is bounded. A key is at most `EMAIL_KEY_MAX_BYTES` (a longer one is
//! replaced by its digest), and each of the three maps holds at most
//! `max_entries` entries. Only idle entries are ever dropped: a counter with
//! a failure still in its window or an attempt in flight is kept, so nobody
//! can flush a lockout (or a partial count) by flooding the map with junk.
//! When a map is full of entries still needed, a new key gets 429.

use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::clock::{as_ms, Millis};

use super::validate::{digest_key, EMAIL_KEY_MAX_BYTES};

/// Failures for one email from anywhere before it locks for everyone.
pub const EMAIL_MAX_FAILURES: u32 = 20;
/// Entries per map the server keeps (see `Usage` for what one costs).
pub const DEFAULT_MAX_ENTRIES: usize = 50_000;
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// What a caller turned away only for attempts in flight is told to wait.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);
/// What a new key is told to wait when its map is full of entries in use.
const FULL_WAIT: Duration = Duration::from_secs(60);
/// A full map is swept for idle entries at most this often, so a flood of
/// new keys against a full map costs one pass a second, not one a request.
const SWEEP_EVERY: Millis = 1_000;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_failures: u32,
    pub lockout: Duration,
    pub rate_per_minute: u32,
}

/// What the throttle holds: entries per map and the bytes of their email
/// keys (each at most `EMAIL_KEY_MAX_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub pairs: usize,
    pub emails: usize,
    pub addresses: usize,
    pub key_bytes: usize,
}

impl Usage {
    pub fn entries(&self) -> usize {
        self.pairs + self.emails + self.addresses
    }
}

#[derive(Default)]
struct Counter {
    failures: VecDeque<Millis>,
    in_flight: u32,
}

impl Counter {
    fn prune(&mut self, now: Millis, window: Millis) {
        while self.failures.front().is_some_and(|&t| t + window <= now) {
            self.failures.pop_front();
        }
    }

    /// Keeps `failures` oldest first, even when attempts end out of order
    /// (a dropped one is dated from when its check began).
    fn record_failure(&mut self, at: Millis) {
        let position = self.failures.partition_point(|&t| t <= at);
        self.failures.insert(position, at);
    }

    /// How long until one more attempt fits under `max`, if it doesn't now.
    fn wait(&self, max: u32, now: Millis, window: Millis) -> Option<Duration> {
        let used = self.failures.len() as u32 + self.in_flight;
        if used < max {
            return None;
        }
        Some(match self.failures.front() {
            Some(&oldest) if self.failures.len() as u32 >= max => {
                Duration::from_millis((oldest + window - now).max(1) as u64)
            }
            _ => IN_FLIGHT_WAIT,
        })
    }

    /// Nothing in flight and no failure left: it can go without losing
    /// anything.
    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }
}

struct State {
    pairs: HashMap<(String, IpAddr), Counter>,
    emails: HashMap<String, Counter>,
    attempts: HashMap<IpAddr, VecDeque<Millis>>,
    /// Earliest time a full map may be swept again.
    next_sweep: Millis,
}

#[derive(Clone)]
pub struct Throttle {
    limits: Limits,
    max_entries: usize,
    state: Arc<Mutex<State>>,
}

/// How a login attempt ended.
enum Outcome {
    Succeeded,
    Failed(Millis),
    /// No verdict: the check never ran, or the server couldn't finish it.
    NoVerdict,
}

/// A login attempt holding its place in the allowance until it finishes.
///
/// It ends with `succeeded`, `failed` or `unavailable`. Dropped without one,
/// it counts as a failure once its password check has started (`checking`):
/// a client that hangs up mid-check has still had a guess's worth of work.
/// Dropped before that (a 503 from the database or the hashing slots), it
/// just frees its place.
pub struct Attempt {
    throttle: Throttle,
    email: String,
    address: IpAddr,
    /// When the password check began.
    checking_since: Option<Millis>,
    done: bool,
}

/// `key`, or its digest when it is longer than any email key can be.
fn bounded(key: &str) -> Cow<'_, str> {
    if key.len() <= EMAIL_KEY_MAX_BYTES {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(digest_key(key))
    }
}

impl State {
    /// Drops idle counters and addresses with no attempt left in the window.
    fn prune(&mut self, now: Millis, lockout: Millis) {
        let rate = as_ms(RATE_WINDOW);
        self.pairs.retain(|_, c| {
            c.prune(now, lockout);
            !c.is_idle()
        });
        self.emails.retain(|_, c| {
            c.prune(now, lockout);
            !c.is_idle()
        });
        self.attempts
            .retain(|_, t| t.back().is_some_and(|&last| last + rate > now));
    }

    /// Prunes, unless a sweep ran less than `SWEEP_EVERY` ago.
    fn sweep(&mut self, now: Millis, lockout: Millis) {
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.prune(now, lockout);
        }
    }

    /// Whether a new attempt for `pair` fits without growing a map past `max`.
    fn has_room(&self, pair: &(String, IpAddr), max: usize) -> bool {
        let fits = |present: bool, len: usize| present || len < max;
        fits(self.pairs.contains_key(pair), self.pairs.len())
            && fits(self.emails.contains_key(&pair.0), self.emails.len())
    }
}

impl Throttle {
    /// `max_entries` bounds each map (`DEFAULT_MAX_ENTRIES` in the server).
    pub fn new(limits: Limits, max_entries: usize) -> Self {
        Self {
            limits,
            max_entries: max_entries.max(1),
            state: Arc::new(Mutex::new(State {
                pairs: HashMap::new(),
                emails: HashMap::new(),
                attempts: HashMap::new(),
                next_sweep: Millis::MIN,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere never leaves these counters half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one login or register attempt from `address`; Err is how long
    /// to wait.
    pub fn check_rate(&self, address: IpAddr, now: Millis) -> Result<(), Duration> {
        let window = as_ms(RATE_WINDOW);
        let lockout = as_ms(self.limits.lockout);
        let mut state = self.lock();
        if !state.attempts.contains_key(&address) && state.attempts.len() >= self.max_entries {
            state.sweep(now, lockout);
            if state.attempts.len() >= self.max_entries {
                return Err(FULL_WAIT);
            }
        }
        let times = state.attempts.entry(address).or_default();
        while times.front().is_some_and(|&t| t + window <= now) {
            times.pop_front();
        }
        if times.len() as u32 >= self.limits.rate_per_minute {
            let oldest = *times.front().expect("limit is at least one");
            return Err(Duration::from_millis((oldest + window - now).max(1) as u64));
        }
        times.push_back(now);
        Ok(())
    }

    /// Reserves a password check for `email` (an `email_key`) from
    /// `address`, or says how long to wait.
    pub fn begin(&self, email: &str, address: IpAddr, now: Millis) -> Result<Attempt, Duration> {
        let window = as_ms(self.limits.lockout);
        let pair = (bounded(email).into_owned(), address);
        let mut state = self.lock();
        let wait_of = |counter: Option<&mut Counter>, max: u32| {
            counter.and_then(|c| {
                c.prune(now, window);
                c.wait(max, now, window)
            })
        };
        let pair_wait = wait_of(state.pairs.get_mut(&pair), self.limits.max_failures);
        let email_wait = wait_of(state.emails.get_mut(&pair.0), EMAIL_MAX_FAILURES);
        if let Some(wait) = pair_wait.max(email_wait) {
            return Err(wait);
        }
        if !state.has_room(&pair, self.max_entries) {
            state.sweep(now, window);
            if !state.has_room(&pair, self.max_entries) {
                return Err(FULL_WAIT);
            }
        }
        state.emails.entry(pair.0.clone()).or_default().in_flight += 1;
        let (email, address) = pair.clone();
        state.pairs.entry(pair).or_default().in_flight += 1;
        Ok(Attempt {
            throttle: self.clone(),
            email,
            address,
            checking_since: None,
            done: false,
        })
    }

    /// Forgets counters with nothing left in their window.
    pub fn prune(&self, now: Millis) {
        let lockout = as_ms(self.limits.lockout);
        self.lock().prune(now, lockout);
    }

    /// What the throttle holds right now.
    pub fn usage(&self) -> Usage {
        let state = self.lock();
        Usage {
            pairs: state.pairs.len(),
            emails: state.emails.len(),
            addresses: state.attempts.len(),
            key_bytes: state.pairs.keys().map(|(k, _)| k.len()).sum::<usize>()
                + state.emails.keys().map(String::len).sum::<usize>(),
        }
    }

    fn finish(&self, email: &str, address: IpAddr, outcome: Outcome) {
        let mut state = self.lock();
        let key = (email.to_string(), address);
        if let Some(pair) = state.pairs.get_mut(&key) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Succeeded => pair.failures.clear(),
                Outcome::Failed(at) => pair.record_failure(at),
                Outcome::NoVerdict => {}
            }
            if pair.is_idle() {
                state.pairs.remove(&key);
            }
        }
        if let Some(global) = state.emails.get_mut(email) {
            global.in_flight = global.in_flight.saturating_sub(1);
            if let Outcome::Failed(at) = outcome {
                global.record_failure(at);
            }
            if global.is_idle() {
                state.emails.remove(email);
            }
        }
    }
}

impl Attempt {
    fn end(&mut self, outcome: Outcome) {
        self.done = true;
        self.throttle.finish(&self.email, self.address, outcome);
    }

    /// The password check starts now: from here on, dropping the attempt
    /// without a verdict counts as a failure at `now`.
    pub fn checking(&mut self, now: Millis) {
        self.checking_since = Some(now);
    }

    pub fn succeeded(mut self) {
        self.end(Outcome::Succeeded);
    }

    pub fn failed(mut self, now: Millis) {
        self.end(Outcome::Failed(now));
    }

    /// The server couldn't give a verdict (a 503): frees the place and
    /// counts nothing, even after `checking`.
    pub fn unavailable(mut self) {
        self.end(Outcome::NoVerdict);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let outcome = match self.checking_since {
            Some(at) => {
                tracing::info!(address = %self.address, "login dropped during its password check; counted as a failure");
                Outcome::Failed(at)
            }
            None => Outcome::NoVerdict,
        };
        self.end(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::validate::email_key;

    const MIN: Millis = 60_000;

    const LIMITS: Limits = Limits {
        max_failures: 5,
        lockout: Duration::from_secs(15 * 60),
        rate_per_minute: 3,
    };

    fn throttle() -> Throttle {
        Throttle::new(LIMITS, DEFAULT_MAX_ENTRIES)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn sixth_attempt_waits_until_the_oldest_failure_leaves() {
        let t = throttle();
        for i in 0..5 {
            t.begin("a@x.io", ip(1), i * MIN).unwrap().failed(i * MIN);
        }
        let wait = t.begin("a@x.io", ip(1), 5 * MIN).err().unwrap();
        assert_eq!(wait, Duration::from_secs(10 * 60));
        // Another address is not locked out by these five.
        assert!(t.begin("a@x.io", ip(2), 5 * MIN).is_ok());
        // Once the first failure is 15 minutes old, one more try is allowed.
        assert!(t.begin("a@x.io", ip(1), 15 * MIN).is_ok());
    }

    #[test]
    fn success_clears_the_pair() {
        let t = throttle();
        for _ in 0..4 {
            t.begin("a@x.io", ip(1), 0).unwrap().failed(0);
        }
        t.begin("a@x.io", ip(1), 0).unwrap().succeeded();
        for _ in 0..4 {
            t.begin("a@x.io", ip(1), 0).unwrap().failed(0);
        }
        assert!(t.begin("a@x.io", ip(1), 0).is_ok());
    }

    #[test]
    fn twenty_failures_from_anywhere_lock_the_email() {
        let t = throttle();
        for i in 0..20u8 {
            t.begin("a@x.io", ip(i), 0).unwrap().failed(0);
        }
        assert!(t.begin("a@x.io", ip(200), 0).is_err());
        assert!(t.begin("b@x.io", ip(200), 0).is_ok());
    }

    #[test]
    fn attempts_in_flight_count() {
        let t = throttle();
        let held: Vec<_> = (0..5)
            .map(|_| t.begin("a@x.io", ip(1), 0).unwrap())
            .collect();
        assert_eq!(t.begin("a@x.io", ip(1), 0).err(), Some(IN_FLIGHT_WAIT));
        drop(held);
        assert!(t.begin("a@x.io", ip(1), 0).is_ok());
    }

    #[test]
    fn rate_per_address() {
        let t = throttle();
        for _ in 0..3 {
            t.check_rate(ip(1), 0).unwrap();
        }
        assert_eq!(t.check_rate(ip(1), 1_000), Err(Duration::from_secs(59)));
        assert!(t.check_rate(ip(2), 1_000).is_ok());
        assert!(t.check_rate(ip(1), MIN).is_ok());
    }

    #[test]
    fn a_dropped_attempt_counts_as_a_failure_once_its_check_started() {
        let t = throttle();
        for _ in 0..4 {
            t.begin("a@x.io", ip(1), 0).unwrap().failed(0);
        }
        // The client hangs up while its password is being checked.
        let mut attempt = t.begin("a@x.io", ip(1), 0).unwrap();
        attempt.checking(MIN);
        drop(attempt);
        assert_eq!(
            t.begin("a@x.io", ip(1), 2 * MIN).err(),
            Some(Duration::from_secs(13 * 60))
        );
        // Counted at the time its check began: once the first four leave
        // the window, it alone remains.
        assert!(t.begin("a@x.io", ip(1), 15 * MIN).is_ok());
    }

    #[test]
    fn failures_stay_in_time_order_when_attempts_end_out_of_order() {
        let t = throttle();
        let mut early = t.begin("a@x.io", ip(1), 0).unwrap();
        early.checking(0);
        for _ in 0..4 {
            t.begin("a@x.io", ip(1), 5 * MIN).unwrap().failed(5 * MIN);
        }
        // Dropped last, but dated from when its check began.
        drop(early);
        assert_eq!(
            t.begin("a@x.io", ip(1), 5 * MIN).err(),
            Some(Duration::from_secs(10 * 60))
        );
        assert!(t.begin("a@x.io", ip(1), 15 * MIN).is_ok());
    }

    #[test]
    fn an_attempt_without_a_check_or_ending_unavailable_counts_nothing() {
        let t = throttle();
        for _ in 0..10 {
            // Turned away before the check (say the database is down).
            drop(t.begin("a@x.io", ip(1), 0).unwrap());
            // The check began, but no verdict came (the hash task failed).
            let mut attempt = t.begin("a@x.io", ip(1), 0).unwrap();
            attempt.checking(0);
            attempt.unavailable();
        }
        assert_eq!(t.usage().entries(), 0, "idle counters are dropped at once");
        for _ in 0..5 {
            t.begin("a@x.io", ip(1), 0).unwrap().failed(0);
        }
        assert!(t.begin("a@x.io", ip(1), 0).is_err());
    }

    #[test]
    fn a_success_leaves_nothing_behind() {
        let t = throttle();
        t.begin("a@x.io", ip(1), 0).unwrap().succeeded();
        assert_eq!(t.usage().entries(), 0);
    }

    #[test]
    fn an_overlong_key_is_kept_as_a_digest() {
        let t = throttle();
        let long = "x".repeat(64 * 1024);
        for _ in 0..5 {
            t.begin(&long, ip(1), 0).unwrap().failed(0);
        }
        let usage = t.usage();
        assert_eq!((usage.pairs, usage.emails), (1, 1));
        assert!(usage.key_bytes <= 2 * EMAIL_KEY_MAX_BYTES, "{usage:?}");
        // Still one counter, so it still locks.
        assert!(t.begin(&long, ip(1), 0).is_err());
    }

    #[test]
    fn a_full_map_makes_room_only_from_idle_entries() {
        let t = Throttle::new(LIMITS, 2);
        t.begin("a@x.io", ip(1), 0).unwrap().failed(0);
        t.begin("b@x.io", ip(1), 0).unwrap().failed(0);
        // Full of counters with a failure in their window: a new key waits,
        // known keys go on.
        assert_eq!(t.begin("c@x.io", ip(1), MIN).err(), Some(FULL_WAIT));
        assert_eq!(t.begin("a@x.io", ip(2), MIN).err(), Some(FULL_WAIT));
        t.begin("a@x.io", ip(1), MIN).unwrap().failed(MIN);
        // Once the failures at 0 leave the window, b is idle and makes room;
        // a keeps its failure at one minute.
        let c = t.begin("c@x.io", ip(1), 15 * MIN).unwrap();
        assert_eq!(t.usage().emails, 2);
        c.failed(15 * MIN);
    }

    #[test]
    fn the_address_map_is_bounded_too() {
        let t = Throttle::new(LIMITS, 2);
        t.check_rate(ip(1), 0).unwrap();
        t.check_rate(ip(2), 0).unwrap();
        assert_eq!(t.check_rate(ip(3), 0), Err(FULL_WAIT));
        assert!(t.check_rate(ip(1), 0).is_ok());
        assert!(t.check_rate(ip(3), MIN).is_ok());
        assert!(t.usage().addresses <= 2);
    }

    #[test]
    fn junk_emails_leave_it_bounded_while_a_lockout_holds() {
        const CAP: usize = 1_000;
        let t = Throttle::new(
            Limits {
                rate_per_minute: 1_000_000,
                ..LIMITS
            },
            CAP,
        );
        let victim = email_key("Victim@Example.com");
        for i in 0..5 {
            t.begin(&victim, ip(1), i).unwrap().failed(i);
        }
        let locked_for = t.begin(&victim, ip(1), 10).err().unwrap();
        // A partial count and an attempt in flight, neither to be flushed.
        let partial = email_key("partial@example.com");
        for _ in 0..4 {
            t.begin(&partial, ip(2), 10).unwrap().failed(10);
        }
        let in_flight = t.begin(&email_key("busy@example.com"), ip(3), 10).unwrap();

        let mut admitted = 0;
        for i in 0..10_000u32 {
            let junk = match i % 100 {
                0 => format!("{i}{}@junk.example", "X".repeat(64 * 1024 - 20)),
                n if n % 10 == 0 => format!("{i}{}@junk.example", "y".repeat(n as usize * 20)),
                _ => format!("junk{i}@junk.example"),
            };
            let [_, _, hi, lo] = i.to_be_bytes();
            let address = IpAddr::from([10, 1, hi, lo]);
            let now = 20 + Millis::from(i);
            let _ = t.check_rate(address, now);
            if let Ok(attempt) = t.begin(&email_key(&junk), address, now) {
                admitted += 1;
                attempt.failed(now);
            }
            let usage = t.usage();
            assert!(
                usage.pairs <= CAP && usage.emails <= CAP && usage.addresses <= CAP,
                "{usage:?}"
            );
            assert!(
                usage.key_bytes <= 2 * CAP * EMAIL_KEY_MAX_BYTES,
                "{usage:?}"
            );
        }
        assert!(admitted <= CAP, "{admitted} junk keys admitted");

        // The lockout holds, to the same moment.
        let now = 20_000;
        assert_eq!(
            t.begin(&victim, ip(1), now).err(),
            Some(locked_for - Duration::from_millis(now as u64 - 10))
        );
        // The partial count was kept: one more failure locks.
        t.begin(&partial, ip(2), now).unwrap().failed(now);
        assert!(t.begin(&partial, ip(2), now).is_err());
        // The attempt in flight still had its counter to finish into.
        in_flight.failed(now);
        assert_eq!(t.usage().emails, CAP);
    }
}
