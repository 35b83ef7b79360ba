//! The rules the store enforces, as plain functions of what it read and the
//! time: when a session is live, and what a presented refresh token gets.
//! No database here, so every branch has a unit test below; the engines
//! only read and write rows.

use std::time::Duration;

use crate::clock::{as_ms, Millis};

/// The session rules that rotation and the bearer check enforce.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A session ends after this long without a refresh.
    pub idle: Duration,
    /// The same for a session started without "keep me signed in" (never
    /// longer than `idle`).
    pub browser_idle: Duration,
    /// A session ends this long after login, however often it rotates.
    pub absolute: Duration,
    /// How long a just-used token may be replayed by an honest race.
    pub grace: Duration,
}

/// Why a session ended early; stored in `sessions.revoked_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    Revoked,
    Reuse,
    /// Ended by a password change made in another session.
    PasswordChanged,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::Reuse => "reuse",
            Self::PasswordChanged => "password_changed",
        }
    }

    /// The stored text back; anything unknown is a plain revocation.
    pub fn from_stored(text: &str) -> Self {
        match text {
            "logout" => Self::Logout,
            "reuse" => Self::Reuse,
            "password_changed" => Self::PasswordChanged,
            _ => Self::Revoked,
        }
    }
}

/// A session's clock, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    /// The last rotation (or the login); idle expiry counts from here.
    pub last_used_at: Millis,
    /// The absolute cap, never extended.
    pub expires_at: Millis,
    /// Set when the session was ended early.
    pub revoked: Option<RevokeReason>,
    /// Started with "keep me signed in": its cookies outlive the browser,
    /// and it ends after `idle` unused. Otherwise its cookies die with the
    /// browser and it ends after `browser_idle`.
    pub remembered: bool,
}

/// Whether a session still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Live,
    /// Past its absolute cap or its idle limit.
    Expired,
    /// Ended early: logout, a revoke, or reuse.
    Revoked(RevokeReason),
}

impl SessionTimes {
    /// The one rule for "is this session live": not revoked, and neither
    /// its absolute cap nor its idle limit has come. The bearer check, the
    /// sessions list and rotation all ask this.
    pub fn liveness(&self, now: Millis, lifetimes: &Lifetimes) -> Liveness {
        if let Some(reason) = self.revoked {
            return Liveness::Revoked(reason);
        }
        if now >= self.expires_at || now >= self.idle_deadline(lifetimes) {
            return Liveness::Expired;
        }
        Liveness::Live
    }

    pub fn is_live(&self, now: Millis, lifetimes: &Lifetimes) -> bool {
        self.liveness(now, lifetimes) == Liveness::Live
    }

    fn idle_deadline(&self, lifetimes: &Lifetimes) -> Millis {
        let idle = if self.remembered {
            lifetimes.idle
        } else {
            lifetimes.browser_idle.min(lifetimes.idle)
        };
        self.last_used_at.saturating_add(as_ms(idle))
    }

    /// How long a cookie for this session may live: the lesser of the idle
    /// and the absolute time it has left. `None` for a session that wasn't
    /// remembered: its cookies are session cookies, gone with the browser.
    pub fn cookie_max_age(&self, now: Millis, lifetimes: &Lifetimes) -> Option<Duration> {
        if !self.remembered {
            return None;
        }
        let idle_left = self.idle_deadline(lifetimes).saturating_sub(now);
        let absolute_left = self.expires_at.saturating_sub(now);
        Some(Duration::from_millis(
            idle_left.min(absolute_left).max(0) as u64
        ))
    }
}

/// A presented refresh token as the store read it: whether it was used,
/// whether its successor still waits unused, and its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    pub used_at: Option<Millis>,
    /// It has a successor, and that successor has not been used.
    pub successor_unused: bool,
    pub session: SessionTimes,
}

/// What a presented refresh token gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An unspent token of a live session: spend it, issue its successor
    /// and touch the session.
    Spend,
    /// Used within the grace window while its successor still waits: an
    /// honest race. Answer with that same successor; write nothing, so no
    /// second branch starts and the session is not extended.
    Replay,
    /// Used, and not an honest race: someone holds a copy. Revoke the
    /// whole session.
    RevokeForReuse,
    /// Refuse without writing anything.
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such token (never issued, or purged with its session).
    Unknown,
    /// Its session passed its absolute cap or its idle limit.
    Expired,
    /// Its session was logged out or revoked.
    Revoked,
    /// Its session was already revoked for reuse.
    Reused,
}

/// The rotation rule, whole. `None` is a token the store doesn't know.
pub fn decide(token: Option<&TokenState>, now: Millis, lifetimes: &Lifetimes) -> Decision {
    let Some(token) = token else {
        return Decision::Refuse(Refusal::Unknown);
    };
    match token.session.liveness(now, lifetimes) {
        Liveness::Live => {}
        Liveness::Revoked(RevokeReason::Reuse) => return Decision::Refuse(Refusal::Reused),
        Liveness::Revoked(_) => return Decision::Refuse(Refusal::Revoked),
        Liveness::Expired => return Decision::Refuse(Refusal::Expired),
    }
    let Some(used_at) = token.used_at else {
        return Decision::Spend;
    };
    // The grace window starts when the token was used; `0s` turns it off,
    // so that any second use is reuse.
    let grace = as_ms(lifetimes.grace);
    if grace > 0 && now - used_at < grace && token.successor_unused {
        Decision::Replay
    } else {
        Decision::RevokeForReuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Millis = 1000;
    const NOW: Millis = 1_000_000_000;

    fn lifetimes(grace_secs: u64) -> Lifetimes {
        Lifetimes {
            idle: Duration::from_secs(3600),
            browser_idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3 * 3600),
            grace: Duration::from_secs(grace_secs),
        }
    }

    /// A session used a minute ago, with hours of its cap left.
    fn live_session() -> SessionTimes {
        SessionTimes {
            last_used_at: NOW - 60 * SECOND,
            expires_at: NOW + 3600 * SECOND,
            revoked: None,
            remembered: true,
        }
    }

    fn unspent() -> TokenState {
        TokenState {
            used_at: None,
            successor_unused: false,
            session: live_session(),
        }
    }

    /// Used `ago` milliseconds before NOW, its successor unused or not.
    fn used(ago: Millis, successor_unused: bool) -> TokenState {
        TokenState {
            used_at: Some(NOW - ago),
            successor_unused,
            session: live_session(),
        }
    }

    #[test]
    fn an_unknown_token_is_refused() {
        assert_eq!(
            decide(None, NOW, &lifetimes(10)),
            Decision::Refuse(Refusal::Unknown)
        );
    }

    #[test]
    fn an_unspent_token_of_a_live_session_is_spent() {
        assert_eq!(
            decide(Some(&unspent()), NOW, &lifetimes(10)),
            Decision::Spend
        );
    }

    #[test]
    fn a_session_past_its_idle_limit_is_expired() {
        let mut token = unspent();
        token.session.last_used_at = NOW - 3600 * SECOND;
        assert_eq!(
            decide(Some(&token), NOW, &lifetimes(10)),
            Decision::Refuse(Refusal::Expired)
        );
        token.session.last_used_at += 1;
        assert_eq!(decide(Some(&token), NOW, &lifetimes(10)), Decision::Spend);
    }

    #[test]
    fn a_session_at_its_absolute_cap_is_expired_however_recently_used() {
        let mut token = unspent();
        token.session.last_used_at = NOW;
        token.session.expires_at = NOW;
        assert_eq!(
            decide(Some(&token), NOW, &lifetimes(10)),
            Decision::Refuse(Refusal::Expired)
        );
    }

    #[test]
    fn a_revoked_session_refuses_every_token_even_inside_grace() {
        for reason in [RevokeReason::Logout, RevokeReason::Revoked] {
            for mut token in [unspent(), used(SECOND, true)] {
                token.session.revoked = Some(reason);
                assert_eq!(
                    decide(Some(&token), NOW, &lifetimes(10)),
                    Decision::Refuse(Refusal::Revoked),
                    "{reason:?}"
                );
            }
        }
    }

    #[test]
    fn a_session_revoked_for_reuse_answers_reused_without_revoking_again() {
        let mut token = used(SECOND, true);
        token.session.revoked = Some(RevokeReason::Reuse);
        assert_eq!(
            decide(Some(&token), NOW, &lifetimes(10)),
            Decision::Refuse(Refusal::Reused)
        );
    }

    #[test]
    fn revocation_outranks_expiry() {
        let mut token = unspent();
        token.session.expires_at = NOW - SECOND;
        token.session.revoked = Some(RevokeReason::Logout);
        assert_eq!(
            decide(Some(&token), NOW, &lifetimes(10)),
            Decision::Refuse(Refusal::Revoked)
        );
    }

    #[test]
    fn a_replay_inside_grace_with_the_successor_unused_is_answered_again() {
        assert_eq!(
            decide(Some(&used(0, true)), NOW, &lifetimes(10)),
            Decision::Replay
        );
        assert_eq!(
            decide(Some(&used(10 * SECOND - 1, true)), NOW, &lifetimes(10)),
            Decision::Replay
        );
    }

    #[test]
    fn a_replay_once_the_grace_window_closed_is_reuse() {
        assert_eq!(
            decide(Some(&used(10 * SECOND, true)), NOW, &lifetimes(10)),
            Decision::RevokeForReuse
        );
    }

    #[test]
    fn a_replay_after_the_successor_was_used_is_reuse_even_inside_grace() {
        assert_eq!(
            decide(Some(&used(SECOND, false)), NOW, &lifetimes(10)),
            Decision::RevokeForReuse
        );
    }

    #[test]
    fn zero_grace_makes_any_second_use_reuse() {
        assert_eq!(
            decide(Some(&used(0, true)), NOW, &lifetimes(0)),
            Decision::RevokeForReuse
        );
    }

    #[test]
    fn an_expired_session_is_expired_not_reuse() {
        let mut token = used(2 * 3600 * SECOND, false);
        token.session.last_used_at = NOW - 2 * 3600 * SECOND;
        assert_eq!(
            decide(Some(&token), NOW, &lifetimes(10)),
            Decision::Refuse(Refusal::Expired)
        );
    }

    #[test]
    fn liveness_is_one_rule() {
        let l = lifetimes(10);
        let live = live_session();
        assert_eq!(live.liveness(NOW, &l), Liveness::Live);
        assert!(live.is_live(NOW, &l));
        let idle = SessionTimes {
            last_used_at: NOW - 3600 * SECOND,
            ..live
        };
        assert_eq!(idle.liveness(NOW, &l), Liveness::Expired);
        let capped = SessionTimes {
            expires_at: NOW,
            ..live
        };
        assert_eq!(capped.liveness(NOW, &l), Liveness::Expired);
        let revoked = SessionTimes {
            revoked: Some(RevokeReason::Logout),
            ..live
        };
        assert_eq!(
            revoked.liveness(NOW, &l),
            Liveness::Revoked(RevokeReason::Logout)
        );
        assert!(!revoked.is_live(NOW, &l));
    }

    #[test]
    fn cookie_lives_the_lesser_of_idle_and_absolute_time_left() {
        let l = lifetimes(10);
        let session = SessionTimes {
            last_used_at: NOW - 60 * SECOND,
            expires_at: NOW + 7200 * SECOND,
            revoked: None,
            remembered: true,
        };
        assert_eq!(
            session.cookie_max_age(NOW, &l),
            Some(Duration::from_secs(3600 - 60))
        );
        let near_cap = SessionTimes {
            expires_at: NOW + 30 * SECOND,
            ..session
        };
        assert_eq!(
            near_cap.cookie_max_age(NOW, &l),
            Some(Duration::from_secs(30))
        );
        let past = SessionTimes {
            expires_at: NOW - SECOND,
            ..session
        };
        assert_eq!(past.cookie_max_age(NOW, &l), Some(Duration::ZERO));
        // Not remembered: a session cookie, whatever the time left.
        let browser_only = SessionTimes {
            remembered: false,
            ..session
        };
        assert_eq!(browser_only.cookie_max_age(NOW, &l), None);
    }

    #[test]
    fn a_session_not_remembered_ends_after_the_shorter_idle_limit() {
        let l = lifetimes(10);
        let browser_only = SessionTimes {
            remembered: false,
            ..live_session()
        };
        let idle_for = |secs: i64| SessionTimes {
            last_used_at: NOW - secs * SECOND,
            ..browser_only
        };
        assert_eq!(idle_for(599).liveness(NOW, &l), Liveness::Live);
        assert_eq!(idle_for(600).liveness(NOW, &l), Liveness::Expired);
        // Remembered, the same idle time is nothing.
        let remembered = SessionTimes {
            remembered: true,
            ..idle_for(600)
        };
        assert_eq!(remembered.liveness(NOW, &l), Liveness::Live);
        // Never longer than the remembered limit, however it is set.
        let long = Lifetimes {
            browser_idle: Duration::from_secs(7200),
            ..l
        };
        assert_eq!(idle_for(3600).liveness(NOW, &long), Liveness::Expired);
    }

    #[test]
    fn revoke_reasons_round_trip_through_storage() {
        for reason in [
            RevokeReason::Logout,
            RevokeReason::Revoked,
            RevokeReason::Reuse,
            RevokeReason::PasswordChanged,
        ] {
            assert_eq!(RevokeReason::from_stored(reason.as_str()), reason);
        }
        assert_eq!(RevokeReason::from_stored("other"), RevokeReason::Revoked);
    }
}
