//! Protected calls, and where a 401 becomes a refresh. Read top to bottom:
//!
//! 1. [`authed`]: send with the held token, refreshing first when none is
//!    usable. A 401 on a token that was not fresh from a refresh gets one
//!    refresh and one retry; any other 401 fails the call. At most one
//!    refresh per call, never a loop.
//! 2. [`refresh`]: the single flight. However many calls fail at once, one
//!    refresh leaves this tab; the others await its outcome.
//! 3. [`refresh_under_lock`]: the cross-tab Web Lock, the re-check for a
//!    token another tab already got while this one waited, and the request
//!    itself, with a deadline so a hung refresh can't hold the lock and the
//!    flight for ever.
//! 4. [`settle`]: what the answer means. A token: hold it. A 401 from
//!    refresh (only that): the session is over. Anything else (5xx, 429,
//!    network, no answer in time): keep the person logged in and retry with
//!    backoff.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use gloo_timers::callback::Timeout;
use leptos::{prelude::*, task::spawn_local};
use serde::de::DeserializeOwned;

use super::{
    browser::inner,
    fetch::{
        self, within, Answer, Outgoing, CALL_DEADLINE_MS, CREDENTIALS_DEADLINE_MS,
        REFRESH_DEADLINE_MS,
    },
    flight::Flight,
    session,
    timeline::{log, now},
    token::{self, Sendable, Source},
    web_lock::with_lock,
    AuthClient, AuthState, EventKind, LogoutReason,
};
use crate::auth::{
    api,
    model::{ApiError, ErrorCode, TokenResponse},
};

/// Every tab of this origin takes this lock around anything that spends or
/// replaces the refresh cookie (refresh, login, logout), so two tabs never
/// spend one cookie at once.
pub const COOKIE_LOCK: &str = "silent-refresh:refresh-cookie";
/// Longer than any refresh (which has its own deadline); past it we go
/// ahead without the lock (the server's grace window covers a rare overlap).
pub const LOCK_WAIT_MS: u32 = 10_000;
const MAX_BACKOFF_MS: f64 = 30_000.0;

pub type RefreshOutcome = Result<(), ApiError>;

// ------------------------------------------------------------ 1. the call

#[derive(Clone, Copy)]
enum Verb {
    Get,
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Delete => "DELETE",
        }
    }
}

pub async fn get_json<T: DeserializeOwned>(client: AuthClient, path: &str) -> Result<T, ApiError> {
    let answer = authed(client, Verb::Get, path).await?;
    if !answer.ok() {
        return Err(answer.error());
    }
    answer.json()
}

pub async fn delete(client: AuthClient, path: &str) -> Result<(), ApiError> {
    let answer = authed(client, Verb::Delete, path).await?;
    if !answer.ok() {
        return Err(answer.error());
    }
    Ok(())
}

async fn authed(client: AuthClient, verb: Verb, path: &str) -> Result<Answer, ApiError> {
    let what = format!("{} {path}", verb.as_str());
    let (token, fresh_from_refresh) = usable_token(client).await?;
    log(client, EventKind::Call, what.clone());
    let answer = send(verb, path, &token).await?;
    if answer.status() != 401 {
        return Ok(answer);
    }
    let error = answer.error();
    if fresh_from_refresh {
        // The token came from a refresh a moment ago: this is not an expiry,
        // and a second refresh would not change the answer.
        log(
            client,
            EventKind::Unauthorized,
            format!(
                "{what}: {} with a token fresh from a refresh; not refreshing again",
                error.error
            ),
        );
        return Err(refused_fresh_token(error));
    }
    log(
        client,
        EventKind::Unauthorized,
        format!("{what}: {}", error.error),
    );

    // Joins a refresh in flight, skips it when the token was already
    // replaced (the call went out with an old one), runs one otherwise.
    refresh(client, token.generation, "a call got 401").await?;
    let token = current_token(client)?;
    log(client, EventKind::Retry, what.clone());
    let answer = send(verb, path, &token).await?;
    if answer.status() == 401 {
        let error = answer.error();
        log(
            client,
            EventKind::Unauthorized,
            format!("{what}: {} again after the refresh; giving up", error.error),
        );
        return Err(refused_fresh_token(error));
    }
    Ok(answer)
}

/// A token worth sending, and whether a refresh had to run (or be joined)
/// to get it.
async fn usable_token(client: AuthClient) -> Result<(Sendable, bool), ApiError> {
    let holder = &inner(client).token;
    if holder.is_usable() {
        return Ok((current_token(client)?, false));
    }
    refresh(client, holder.generation(), "no usable token for a call").await?;
    Ok((current_token(client)?, true))
}

fn current_token(client: AuthClient) -> Result<Sendable, ApiError> {
    inner(client).token.sendable().ok_or_else(not_logged_in)
}

async fn send(verb: Verb, path: &str, token: &Sendable) -> Result<Answer, ApiError> {
    Outgoing::new(verb.as_str(), path, CALL_DEADLINE_MS)
        .bearer(&token.value)
        .send()
        .await
}

/// Only a 401 from refresh means logged out; this one fails the call alone.
fn refused_fresh_token(error: ApiError) -> ApiError {
    ApiError::new(
        error.error,
        "The server refused this call even with a brand-new access token, so it was not retried. You are still logged in: try again, and log in again if it keeps happening.",
    )
}

fn not_logged_in() -> ApiError {
    ApiError::new(
        ErrorCode::SessionExpired,
        "You are not logged in any more. Please log in again.",
    )
}

// ------------------------------------------------------ 2. single flight

/// The refresh machinery's memory, kept per tab.
#[derive(Default)]
pub struct RefreshState {
    flight: RefCell<Option<Rc<Flight<RefreshOutcome>>>>,
    /// Consecutive transient failures, for the backoff.
    failures: Cell<u32>,
    retry_timer: RefCell<Option<Timeout>>,
    /// Bumped when a session ends, so a refresh answer that lands after a
    /// logout is thrown away instead of logging the person back in.
    epoch: Cell<u64>,
}

impl RefreshState {
    pub fn is_running(&self) -> bool {
        self.flight.borrow().is_some()
    }

    pub fn reset_backoff(&self) {
        self.failures.set(0);
        *self.retry_timer.borrow_mut() = None;
    }

    pub fn end_session(&self) {
        self.epoch.set(self.epoch.get() + 1);
        self.reset_backoff();
    }
}

/// Waits for a refresh in flight, if any, to land (login and logout go
/// after it, so the cookie they meet is the newest).
pub async fn settled(client: AuthClient) {
    let running = inner(client).refresh.flight.borrow().clone();
    if let Some(flight) = running {
        let _ = flight.wait().await;
    }
}

/// Makes sure a token newer than `seen_generation` is held. Joins a refresh
/// already on the wire; otherwise starts one, unless the token was already
/// replaced meanwhile.
pub async fn refresh(
    client: AuthClient,
    seen_generation: u64,
    cause: &'static str,
) -> RefreshOutcome {
    let inner = inner(client);
    let running = inner.refresh.flight.borrow().clone();
    if let Some(flight) = running {
        return flight.wait().await;
    }
    if inner.token.generation() > seen_generation && inner.token.is_held() {
        return Ok(());
    }
    let flight = Flight::new();
    *inner.refresh.flight.borrow_mut() = Some(flight.clone());
    let result = flight.wait();
    // Its own task: the refresh completes for every waiter even if the
    // caller that started it goes away.
    spawn_local(async move {
        let outcome = refresh_under_lock(client, seen_generation, cause).await;
        inner.refresh.flight.borrow_mut().take();
        flight.finish(outcome);
    });
    result.await
}

// ---------------------------------------------------- 3. lock and request

async fn refresh_under_lock(
    client: AuthClient,
    seen_generation: u64,
    cause: &'static str,
) -> RefreshOutcome {
    if client.state.get_untracked().is_signed_out() && seen_generation != 0 {
        // Logged out while this refresh was queued.
        return Err(not_logged_in());
    }
    let epoch = inner(client).refresh.epoch.get();
    let was = client.state.get_untracked();
    let at_page_load = seen_generation == 0 && client.user.get_untracked().is_none();
    client.state.set(AuthState::Refreshing);

    let work = move || async move {
        // While this tab waited for the lock, another may have rotated and
        // sent us its token: adopt it instead of spending the cookie again.
        let holder = &inner(client).token;
        if holder.generation() > seen_generation && holder.is_usable() {
            return None;
        }
        log(client, EventKind::RefreshStarted, cause);
        // Ends by the deadline whatever the network does, and with it the
        // lock and the flight. Dropping the server function's future aborts
        // its fetch.
        let answer = within(REFRESH_DEADLINE_MS, api::refresh()).await;
        Some(answer.unwrap_or_else(|| Err(fetch::timed_out(REFRESH_DEADLINE_MS))))
    };
    let answer = with_lock(COOKIE_LOCK, LOCK_WAIT_MS, work)
        .await
        .unwrap_or_else(|| Some(Err(fetch::network_error())));

    if inner(client).refresh.epoch.get() != epoch {
        // The session ended (logout) while the answer was on its way.
        return Err(not_logged_in());
    }
    settle(client, answer, was, at_page_load)
}

// ------------------------------------------- calls that touch the cookie

/// A protected form `POST` whose answer replaces or clears the refresh
/// cookie (a password change rotates it; deleting the account clears it).
/// It waits for any refresh in flight and goes under the cookie lock, so no
/// tab spends the same cookie at the same moment (a race that slips past
/// the lock gets the server's grace replay). A 401 gets one refresh, taken
/// outside the lock, which the refresh takes itself, and one retry.
pub async fn post_under_cookie_lock(
    client: AuthClient,
    path: &'static str,
    body: String,
) -> Result<Answer, ApiError> {
    let what = format!("POST {path}");
    let mut refreshed = false;
    loop {
        settled(client).await;
        let (token, fresh_from_refresh) = usable_token(client).await?;
        log(client, EventKind::Call, what.clone());
        let (bearer, form) = (token.value.clone(), body.clone());
        let answer = with_lock(COOKIE_LOCK, LOCK_WAIT_MS, move || async move {
            // Two password hashes on the server, as long as a login's one
            // may take: a shorter deadline could give up on a change that
            // went through.
            Outgoing::new("POST", path, CREDENTIALS_DEADLINE_MS)
                .bearer(&bearer)
                .form(form)
                .send()
                .await
        })
        .await
        .unwrap_or_else(|| Err(fetch::network_error()))?;
        if answer.status() != 401 {
            return Ok(answer);
        }
        let error = answer.error();
        if fresh_from_refresh || refreshed {
            log(
                client,
                EventKind::Unauthorized,
                format!(
                    "{what}: {} with a fresh token; not refreshing again",
                    error.error
                ),
            );
            return Err(refused_fresh_token(error));
        }
        log(
            client,
            EventKind::Unauthorized,
            format!("{what}: {}", error.error),
        );
        refresh(client, token.generation, "a call got 401").await?;
        refreshed = true;
        log(client, EventKind::Retry, what.clone());
    }
}

// ------------------------------------------------------------ 4. outcome

/// `answer` is `None` when another tab's token made the refresh unnecessary.
fn settle(
    client: AuthClient,
    answer: Option<Result<TokenResponse, ApiError>>,
    was: AuthState,
    at_page_load: bool,
) -> RefreshOutcome {
    match answer {
        None => {
            restore_state(client, was);
            Ok(())
        }
        Some(Ok(response)) => {
            token::adopt(client, response, Source::Refresh);
            Ok(())
        }
        Some(Err(error)) if error.error.ends_session() => {
            if error.error == ErrorCode::TokenReused {
                log(
                    client,
                    EventKind::ReuseDetected,
                    "the server saw a refresh token used twice and ended the session",
                );
            }
            if at_page_load && error.error == ErrorCode::InvalidToken {
                // Nobody was logged in here after all (a stale hint cookie).
                inner(client).token.forget();
                log(client, EventKind::RefreshFailed, "no live session");
                client.state.set(AuthState::Anonymous);
            } else {
                session::end_session(client, LogoutReason::from_code(error.error), true);
            }
            Err(error)
        }
        Some(Err(error)) => {
            // Not a verdict on the session: keep the person logged in, try again later.
            back_off(client, &error);
            restore_state(client, was);
            Err(error)
        }
    }
}

/// Schedules the next attempt: 1 s, 2 s, 4 s … up to 30 s, each with jitter.
fn back_off(client: AuthClient, error: &ApiError) {
    let inner = inner(client);
    let failures = inner.refresh.failures.get() + 1;
    inner.refresh.failures.set(failures);
    let delay = (1_000.0 * 2f64.powi(failures as i32 - 1)).min(MAX_BACKOFF_MS)
        * (0.5 + js_sys::Math::random() / 2.0);
    let why = if fetch::is_timeout(error) {
        format!("no answer within {} s", REFRESH_DEADLINE_MS / 1000)
    } else {
        error.error.to_string()
    };
    log(
        client,
        EventKind::RefreshFailed,
        format!("{why}; retrying in {:.1} s", delay / 1000.0),
    );
    let generation = inner.token.generation();
    *inner.refresh.retry_timer.borrow_mut() = Some(Timeout::new(delay as u32, move || {
        spawn_local(async move {
            let _ = refresh(client, generation, "retry after a failed refresh").await;
        });
    }));
}

/// After a refresh that changed nothing, go back to what the state said
/// (still `Refreshing` at page load until an answer comes).
fn restore_state(client: AuthClient, was: AuthState) {
    if client.state.get_untracked() != AuthState::Refreshing {
        return;
    }
    let held_expiry = inner(client).token.expires_at();
    let next = match (held_expiry, was) {
        (Some(expires_at), _) => AuthState::Authenticated { expires_at },
        (None, AuthState::Refreshing) if client.user.get_untracked().is_some() => {
            AuthState::Authenticated { expires_at: now() }
        }
        (None, was) => was,
    };
    client.state.set(next);
}
