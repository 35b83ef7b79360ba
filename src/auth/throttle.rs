//! Login throttling, in memory: failures per (email, address) and per email
//! in a sliding window, attempts in flight counted against the allowance,
//! and a per-address rate for login and register.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::clock::{as_ms, Millis};

/// Failures for one email from anywhere before it locks for everyone.
pub const EMAIL_MAX_FAILURES: u32 = 20;
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// What a caller turned away only for attempts in flight is told to wait.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_failures: u32,
    pub lockout: Duration,
    pub rate_per_minute: u32,
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

    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }
}

#[derive(Default)]
struct State {
    pairs: HashMap<(String, IpAddr), Counter>,
    emails: HashMap<String, Counter>,
    attempts: HashMap<IpAddr, VecDeque<Millis>>,
}

#[derive(Clone)]
pub struct Throttle {
    limits: Limits,
    state: Arc<Mutex<State>>,
}

/// A login attempt holding its place in the allowance until it finishes.
pub struct Attempt {
    throttle: Throttle,
    email: String,
    address: IpAddr,
    done: bool,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Arc::default(),
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
        let mut state = self.lock();
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

    /// Reserves a password check for `email` from `address`, or says how
    /// long to wait.
    pub fn begin(&self, email: &str, address: IpAddr, now: Millis) -> Result<Attempt, Duration> {
        let window = as_ms(self.limits.lockout);
        let mut state = self.lock();
        let state = &mut *state;
        let pair = state.pairs.entry((email.to_string(), address)).or_default();
        pair.prune(now, window);
        let pair_wait = pair.wait(self.limits.max_failures, now, window);
        let global = state.emails.entry(email.to_string()).or_default();
        global.prune(now, window);
        let global_wait = global.wait(EMAIL_MAX_FAILURES, now, window);
        if let Some(wait) = pair_wait.max(global_wait) {
            return Err(wait);
        }
        global.in_flight += 1;
        state
            .pairs
            .get_mut(&(email.to_string(), address))
            .expect("inserted above")
            .in_flight += 1;
        Ok(Attempt {
            throttle: self.clone(),
            email: email.to_string(),
            address,
            done: false,
        })
    }

    /// Forgets counters with nothing left in their window.
    pub fn prune(&self, now: Millis) {
        let lockout = as_ms(self.limits.lockout);
        let rate = as_ms(RATE_WINDOW);
        let mut state = self.lock();
        state.pairs.retain(|_, c| {
            c.prune(now, lockout);
            !c.is_idle()
        });
        state.emails.retain(|_, c| {
            c.prune(now, lockout);
            !c.is_idle()
        });
        state
            .attempts
            .retain(|_, t| t.back().is_some_and(|&last| last + rate > now));
    }

    fn finish(&self, email: &str, address: IpAddr, outcome: Option<(bool, Millis)>) {
        let mut state = self.lock();
        let key = (email.to_string(), address);
        if let Some(pair) = state.pairs.get_mut(&key) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
            match outcome {
                Some((true, _)) => pair.failures.clear(),
                Some((false, at)) => pair.failures.push_back(at),
                None => {}
            }
        }
        if let Some(global) = state.emails.get_mut(email) {
            global.in_flight = global.in_flight.saturating_sub(1);
            if let Some((false, at)) = outcome {
                global.failures.push_back(at);
            }
        }
    }
}

impl Attempt {
    pub fn succeeded(mut self) {
        self.done = true;
        self.throttle
            .finish(&self.email, self.address, Some((true, 0)));
    }

    pub fn failed(mut self, now: Millis) {
        self.done = true;
        self.throttle
            .finish(&self.email, self.address, Some((false, now)));
    }
}

/// An attempt that ended in an error (no verdict) just frees its place.
impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.finish(&self.email, self.address, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn throttle() -> Throttle {
        Throttle::new(Limits {
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            rate_per_minute: 3,
        })
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
}
