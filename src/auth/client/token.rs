//! The access token this tab holds (in memory only) and its proactive
//! renewal: a refresh shortly before expiry, so most calls never see a 401.

use std::cell::{Cell, RefCell};

use gloo_timers::callback::Timeout;
use leptos::{prelude::*, task::spawn_local};

use super::{
    browser::inner,
    calls, tabs,
    timeline::{self, log, now},
    with_blank_signature, AuthClient, AuthState, EventKind,
};
use crate::auth::model::{TokenResponse, User};

/// A token this close to expiry is not worth sending.
const MIN_USEFUL_MS: f64 = 1_000.0;

/// The in-memory token. Not `Debug`, not `Serialize`: it must not leak.
struct HeldToken {
    value: String,
    expires_at: f64,
    /// The token's whole lifetime, for sizing the renewal margin.
    lifetime: f64,
}

/// What a call sends, and which token that was (see [`Holder::generation`]).
pub struct Sendable {
    pub value: String,
    pub generation: u64,
}

#[derive(Default)]
pub struct Holder {
    token: RefCell<Option<HeldToken>>,
    /// Bumped whenever the held token changes; tells a 401 on the current
    /// token from a 401 on one already replaced.
    generation: Cell<u64>,
    renew_timer: RefCell<Option<Timeout>>,
}

impl Holder {
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn is_held(&self) -> bool {
        self.token.borrow().is_some()
    }

    pub fn expires_at(&self) -> Option<f64> {
        self.token.borrow().as_ref().map(|held| held.expires_at)
    }

    /// Worth sending: not about to expire.
    pub fn is_usable(&self) -> bool {
        self.expires_at()
            .is_some_and(|expires_at| expires_at - now() > MIN_USEFUL_MS)
    }

    /// Not yet inside the renewal margin.
    pub fn is_fresh(&self) -> bool {
        self.token
            .borrow()
            .as_ref()
            .is_some_and(|held| held.expires_at - now() > base_margin(held.lifetime))
    }

    pub fn sendable(&self) -> Option<Sendable> {
        self.token.borrow().as_ref().map(|held| Sendable {
            value: held.value.clone(),
            generation: self.generation.get(),
        })
    }

    /// Forgets the token and stops its renewal; false if none was held.
    pub fn forget(&self) -> bool {
        *self.renew_timer.borrow_mut() = None;
        let had = self.token.borrow_mut().take().is_some();
        self.bump();
        had
    }

    fn replace(&self, token: HeldToken) {
        *self.token.borrow_mut() = Some(token);
        self.bump();
    }

    fn bump(&self) {
        self.generation.set(self.generation.get() + 1);
    }
}

/// Where a new token came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Refresh,
    Credentials,
    OtherTab,
    /// The answer to a password change, which rotates the cookie too.
    PasswordChange,
}

impl Source {
    fn via(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Credentials => "login",
            Self::OtherTab => "other-tab",
            Self::PasswordChange => "password-change",
        }
    }
}

/// Holds the token of a refresh, login or register answer.
pub fn adopt(client: AuthClient, response: TokenResponse, source: Source) {
    let lifetime = response.expires_in as f64 * 1000.0;
    hold(
        client,
        response.access_token,
        now() + lifetime,
        lifetime,
        response.user,
        source,
    );
}

/// A new token: keep it, show it, tell the other tabs, plan its renewal.
pub fn hold(
    client: AuthClient,
    value: String,
    expires_at: f64,
    lifetime: f64,
    user: User,
    source: Source,
) {
    let inner = inner(client);
    if source != Source::OtherTab {
        tabs::announce_rotation(client, &value, expires_at, lifetime, &user);
    }
    inner.token.replace(HeldToken {
        value,
        expires_at,
        lifetime,
    });
    // Any token ends a run of failed refreshes.
    inner.refresh.reset_backoff();
    timeline::token_issued(client, expires_at, source.via());
    log_new_token(client, source, &user, expires_at);
    if client.user.get_untracked().as_ref() != Some(&user) {
        client.user.set(Some(user));
    }
    client.state.set(AuthState::Authenticated { expires_at });
    reschedule(client);
}

fn log_new_token(client: AuthClient, source: Source, user: &User, expires_at: f64) {
    let seconds = (expires_at - now()) / 1000.0;
    let (kind, detail) = match source {
        Source::Refresh => (
            EventKind::RefreshDone,
            format!("new access token for {seconds:.0} s; refresh cookie rotated"),
        ),
        Source::Credentials => (
            EventKind::LoggedIn,
            format!("as {}; access token for {seconds:.0} s", user.email),
        ),
        Source::PasswordChange => (
            EventKind::PasswordChanged,
            format!("every other session ended; refresh cookie rotated; access token for {seconds:.0} s"),
        ),
        Source::OtherTab => (
            EventKind::Rotated,
            format!(
                "another tab rotated the refresh cookie; adopted its token ({seconds:.0} s left)"
            ),
        ),
    };
    log(client, kind, detail);
}

/// A fifth of the token's life, at most a minute.
fn base_margin(lifetime: f64) -> f64 {
    (lifetime * 0.2).min(60_000.0)
}

/// How long before expiry the token is renewed: the base margin plus jitter,
/// so tabs and devices spread out.
fn renew_margin(lifetime: f64) -> f64 {
    base_margin(lifetime) + (lifetime * 0.1).min(30_000.0) * js_sys::Math::random()
}

/// Arms the proactive renewal for the held token (or disarms it).
pub fn reschedule(client: AuthClient) {
    let holder = &inner(client).token;
    let next = holder.token.borrow().as_ref().map(|held| {
        (
            held.expires_at - renew_margin(held.lifetime) - now(),
            holder.generation(),
        )
    });
    let timer = match next {
        Some((delay, generation)) if client.proactive.get_untracked() => Some(Timeout::new(
            delay.clamp(0.0, 2_000_000_000.0) as u32,
            move || {
                spawn_local(async move {
                    let _ =
                        calls::refresh(client, generation, "proactive: token expires soon").await;
                });
            },
        )),
        _ => None,
    };
    // Replacing the old timer cancels it.
    *holder.renew_timer.borrow_mut() = timer;
}

/// The demo's "drop the token": as after a reload, the next call refreshes first.
pub fn drop_token(client: AuthClient) {
    if !inner(client).token.forget() {
        return;
    }
    timeline::token_ended(client);
    client
        .state
        .set(AuthState::Authenticated { expires_at: now() });
    log(
        client,
        EventKind::TokenDropped,
        "access token forgotten; the next call refreshes first",
    );
}

/// The demo's "make the token stale": a well-formed token the server
/// rejects, so the next call runs 401 -> refresh -> retry.
pub fn make_token_stale(client: AuthClient) {
    let holder = &inner(client).token;
    let spoiled = match holder.token.borrow_mut().as_mut() {
        Some(held) => {
            held.value = with_blank_signature(&held.value);
            true
        }
        None => false,
    };
    if spoiled {
        holder.bump();
        log(
            client,
            EventKind::TokenStale,
            "held token replaced by a well-formed one the server rejects",
        );
    }
}
