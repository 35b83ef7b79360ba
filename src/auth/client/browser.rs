//! Everything of the client that needs a browser: the token holder, the
//! authed-call wrapper, refresh (single flight, cross-tab lock, backoff),
//! proactive renewal and the tab-to-tab channel.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use gloo_net::http::{Request, Response};
use gloo_timers::callback::Timeout;
use leptos::{prelude::*, task::spawn_local};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use wasm_bindgen::{prelude::*, JsCast};
use web_sys::BroadcastChannel;

use super::{
    flight::Flight, web_lock::with_lock, with_blank_signature, AuthClient, AuthEvent, AuthState,
    CredentialsError, EventKind, LogoutReason, TokenSpan,
};
use crate::auth::{
    api,
    model::{ApiError, ErrorCode, TokenResponse, User},
};

/// Every tab of this origin takes this lock around a refresh (and login and
/// logout), so two tabs never spend one refresh cookie at once.
const LOCK_NAME: &str = "silent-refresh:refresh-cookie";
/// Longer than any sane refresh; past it we go ahead without the lock (the
/// server's grace window covers a rare overlap).
const LOCK_TIMEOUT_MS: u32 = 10_000;
const CHANNEL_NAME: &str = "silent-refresh:auth";
/// A token this close to expiry is not worth sending.
const MIN_USEFUL_MS: f64 = 1_000.0;
const MAX_EVENTS: usize = 200;
const MAX_BACKOFF_MS: f64 = 30_000.0;
const MAX_SPANS: usize = 30;

type RefreshOutcome = Result<(), ApiError>;

/// The in-memory token. Not `Debug`, not `Serialize`: it must not leak.
struct HeldToken {
    value: String,
    expires_at: f64,
    /// The token's whole lifetime, for sizing the proactive margin.
    lifetime: f64,
    /// Bumped whenever the held token changes; tells a 401 on the current
    /// token from a 401 on one already replaced.
    generation: u64,
}

pub struct Inner {
    token: RefCell<Option<HeldToken>>,
    generation: Cell<u64>,
    flight: RefCell<Option<Rc<Flight<RefreshOutcome>>>>,
    channel: RefCell<Option<BroadcastChannel>>,
    renew_timer: RefCell<Option<Timeout>>,
    /// Consecutive transient refresh failures, for the backoff.
    failures: Cell<u32>,
    /// Bumped when a session ends, so a refresh answer that lands after a
    /// logout is thrown away instead of logging the person back in.
    epoch: Cell<u64>,
    next_event_id: Cell<u64>,
}

impl Inner {
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            token: RefCell::new(None),
            generation: Cell::new(0),
            flight: RefCell::new(None),
            channel: RefCell::new(None),
            renew_timer: RefCell::new(None),
            failures: Cell::new(0),
            epoch: Cell::new(0),
            next_event_id: Cell::new(0),
        })
    }
}

/// What tabs tell each other. Carries an access token between same-origin
/// tabs of one browser, in memory only.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TabMessage {
    Rotated {
        access_token: String,
        expires_at: f64,
        lifetime: f64,
        user: User,
    },
    LoggedOut {
        reason: LogoutReason,
    },
}

/// Where a new token came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Refresh,
    Credentials,
    OtherTab,
}

fn now() -> f64 {
    js_sys::Date::now()
}

fn inner(client: AuthClient) -> Rc<Inner> {
    client.inner.get_value()
}

fn log(client: AuthClient, kind: EventKind, detail: impl Into<String>) {
    let inner = inner(client);
    let id = inner.next_event_id.get();
    inner.next_event_id.set(id + 1);
    let event = AuthEvent {
        id,
        at: now(),
        kind,
        detail: detail.into(),
    };
    client.events.update(|events| {
        events.push(event);
        if events.len() > MAX_EVENTS {
            let excess = events.len() - MAX_EVENTS;
            events.drain(..excess);
        }
    });
}

fn network_error() -> ApiError {
    ApiError::new(
        ErrorCode::NetworkError,
        "The server could not be reached. Check your connection and try again.",
    )
}

// ---------------------------------------------------------------- start-up

pub fn start(client: AuthClient, probably_signed_in: bool) {
    listen_to_other_tabs(client);
    listen_for_wake_ups(client);
    if probably_signed_in {
        // The token died with the last page; the refresh cookie may still live.
        spawn_local(async move {
            let _ = refresh(client, 0, "page load").await;
        });
    }
}

fn listen_to_other_tabs(client: AuthClient) {
    let Ok(channel) = BroadcastChannel::new(CHANNEL_NAME) else {
        return;
    };
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            if let Ok(message) = serde_json::from_str::<TabMessage>(&text) {
                on_tab_message(client, message);
            }
        });
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The client lives as long as the page.
    on_message.forget();
    *inner(client).channel.borrow_mut() = Some(channel);
}

fn broadcast(client: AuthClient, message: &TabMessage) {
    if let (Some(channel), Ok(text)) = (
        inner(client).channel.borrow().as_ref(),
        serde_json::to_string(message),
    ) {
        let _ = channel.post_message(&JsValue::from_str(&text));
    }
}

fn on_tab_message(client: AuthClient, message: TabMessage) {
    match message {
        TabMessage::Rotated {
            access_token,
            expires_at,
            lifetime,
            user,
        } => {
            let newer = inner(client)
                .token
                .borrow()
                .as_ref()
                .is_none_or(|held| expires_at > held.expires_at);
            if newer && expires_at > now() {
                hold(
                    client,
                    access_token,
                    expires_at,
                    lifetime,
                    user,
                    Source::OtherTab,
                );
            }
        }
        TabMessage::LoggedOut { reason } => {
            if !client.state.get_untracked().is_signed_out() {
                let reason = if reason.is_voluntary() {
                    LogoutReason::OtherTab
                } else {
                    reason
                };
                end_session(client, reason, false);
            }
        }
    }
}

/// Background tabs get their timers throttled: check again when the tab
/// shows or the network comes back.
fn listen_for_wake_ups(client: AuthClient) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let wake = move || {
        if client.state.get_untracked().is_signed_out() || inner(client).flight.borrow().is_some() {
            return;
        }
        if client.user.get_untracked().is_none() || !client.proactive.get_untracked() {
            return;
        }
        if !token_is_fresh(client) {
            let generation = inner(client).generation.get();
            spawn_local(async move {
                let _ = refresh(client, generation, "tab woke up with a stale token").await;
            });
        } else {
            reschedule(client);
        }
    };
    let on_visibility = Closure::<dyn FnMut()>::new(move || {
        let visible = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
        if visible {
            wake();
        }
    });
    let on_online = Closure::<dyn FnMut()>::new(wake);
    if let Some(document) = window.document() {
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visibility.as_ref().unchecked_ref(),
        );
    }
    let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
    on_visibility.forget();
    on_online.forget();
}

// ------------------------------------------------------------ token holder

/// Seconds of margin before expiry at which the token is renewed: a fifth of
/// its life, at most a minute, plus jitter so tabs and devices spread out.
fn renew_margin(lifetime: f64) -> f64 {
    let base = (lifetime * 0.2).min(60_000.0);
    let jitter = (lifetime * 0.1).min(30_000.0) * js_sys::Math::random();
    base + jitter
}

fn token_is_fresh(client: AuthClient) -> bool {
    inner(client)
        .token
        .borrow()
        .as_ref()
        .is_some_and(|held| held.expires_at - now() > (held.lifetime * 0.2).min(60_000.0))
}

fn hold(
    client: AuthClient,
    value: String,
    expires_at: f64,
    lifetime: f64,
    user: User,
    source: Source,
) {
    let inner = inner(client);
    let generation = inner.generation.get() + 1;
    inner.generation.set(generation);
    *inner.token.borrow_mut() = Some(HeldToken {
        value: value.clone(),
        expires_at,
        lifetime,
        generation,
    });
    inner.failures.set(0);
    let issued_at = now();
    client.spans.update(|spans| {
        end_last_span(spans, issued_at);
        spans.push(TokenSpan {
            issued_at,
            expires_at,
            replaced_at: None,
            via: match source {
                Source::Refresh => "refresh",
                Source::Credentials => "login",
                Source::OtherTab => "other-tab",
            },
        });
        if spans.len() > MAX_SPANS {
            spans.remove(0);
        }
    });
    if client.user.get_untracked().as_ref() != Some(&user) {
        client.user.set(Some(user.clone()));
    }
    client.state.set(AuthState::Authenticated { expires_at });
    let seconds = (expires_at - now()) / 1000.0;
    match source {
        Source::Refresh => log(
            client,
            EventKind::RefreshDone,
            format!("new access token for {seconds:.0} s; refresh cookie rotated"),
        ),
        Source::Credentials => log(
            client,
            EventKind::LoggedIn,
            format!("as {}; access token for {seconds:.0} s", user.email),
        ),
        Source::OtherTab => log(
            client,
            EventKind::Rotated,
            format!(
                "another tab rotated the refresh cookie; adopted its token ({seconds:.0} s left)"
            ),
        ),
    }
    if source != Source::OtherTab {
        broadcast(
            client,
            &TabMessage::Rotated {
                access_token: value,
                expires_at,
                lifetime,
                user,
            },
        );
    }
    reschedule(client);
}

fn end_last_span(spans: &mut [TokenSpan], at: f64) {
    if let Some(last) = spans.last_mut() {
        last.replaced_at.get_or_insert(at);
    }
}

fn adopt_response(client: AuthClient, response: TokenResponse, source: Source) {
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

/// Arms the proactive renewal for the held token (or disarms it).
pub fn reschedule(client: AuthClient) {
    let inner = inner(client);
    let next = inner.token.borrow().as_ref().map(|held| {
        (
            held.expires_at - renew_margin(held.lifetime) - now(),
            held.generation,
        )
    });
    let timer = match next {
        Some((delay, generation)) if client.proactive.get_untracked() => Some(Timeout::new(
            delay.clamp(0.0, 2_000_000_000.0) as u32,
            move || {
                spawn_local(async move {
                    let _ = refresh(client, generation, "proactive: token expires soon").await;
                });
            },
        )),
        _ => None,
    };
    // Replacing the old timer cancels it.
    *inner.renew_timer.borrow_mut() = timer;
}

pub fn drop_token(client: AuthClient) {
    let inner = inner(client);
    if inner.token.borrow_mut().take().is_none() {
        return;
    }
    inner.generation.set(inner.generation.get() + 1);
    *inner.renew_timer.borrow_mut() = None;
    client.spans.update(|spans| end_last_span(spans, now()));
    client
        .state
        .set(AuthState::Authenticated { expires_at: now() });
    log(
        client,
        EventKind::TokenDropped,
        "access token forgotten; the next call refreshes first",
    );
}

pub fn make_token_stale(client: AuthClient) {
    let inner = inner(client);
    let generation = inner.generation.get() + 1;
    let changed = {
        let mut token = inner.token.borrow_mut();
        match token.as_mut() {
            Some(held) => {
                held.value = with_blank_signature(&held.value);
                held.generation = generation;
                true
            }
            None => false,
        }
    };
    if changed {
        inner.generation.set(generation);
        log(
            client,
            EventKind::TokenStale,
            "held token replaced by a well-formed one the server rejects",
        );
    }
}

fn end_session(client: AuthClient, reason: LogoutReason, tell_other_tabs: bool) {
    let inner = inner(client);
    inner.token.borrow_mut().take();
    inner.generation.set(inner.generation.get() + 1);
    inner.epoch.set(inner.epoch.get() + 1);
    *inner.renew_timer.borrow_mut() = None;
    inner.failures.set(0);
    client.spans.update(|spans| end_last_span(spans, now()));
    client.user.set(None);
    client.state.set(AuthState::LoggedOut { reason });
    log(client, EventKind::LoggedOut, reason.as_str());
    if tell_other_tabs {
        broadcast(client, &TabMessage::LoggedOut { reason });
    }
}

// ----------------------------------------------------------------- refresh

/// Makes sure a token newer than `seen_generation` is held. Joins a refresh
/// already on the wire (single flight); otherwise starts one, unless the
/// token was already replaced meanwhile.
async fn refresh(client: AuthClient, seen_generation: u64, cause: &'static str) -> RefreshOutcome {
    let inner = inner(client);
    let running = inner.flight.borrow().clone();
    if let Some(flight) = running {
        return flight.wait().await;
    }
    if inner.generation.get() > seen_generation && inner.token.borrow().is_some() {
        return Ok(());
    }
    let flight = Flight::new();
    *inner.flight.borrow_mut() = Some(flight.clone());
    let result = flight.wait();
    // Its own task: the refresh completes for every waiter even if the
    // caller that started it goes away.
    spawn_local(async move {
        let outcome = refresh_under_lock(client, seen_generation, cause).await;
        inner.flight.borrow_mut().take();
        flight.finish(outcome);
    });
    result.await
}

async fn refresh_under_lock(
    client: AuthClient,
    seen_generation: u64,
    cause: &'static str,
) -> RefreshOutcome {
    if client.state.get_untracked().is_signed_out() && seen_generation != 0 {
        // Logged out while this refresh was queued.
        return Err(ApiError::new(
            ErrorCode::SessionExpired,
            "You are not logged in any more. Please log in again.",
        ));
    }
    let epoch = inner(client).epoch.get();
    let was = client.state.get_untracked();
    let at_page_load = seen_generation == 0 && client.user.get_untracked().is_none();
    client.state.set(AuthState::Refreshing);

    let work = move || async move {
        // While this tab waited for the lock, another may have rotated and
        // sent us its token: adopt it instead of spending the cookie again.
        let inner = inner(client);
        if inner.generation.get() > seen_generation && token_is_usable(&inner) {
            return None;
        }
        log(client, EventKind::RefreshStarted, cause);
        Some(api::refresh().await)
    };
    let answer = with_lock(LOCK_NAME, LOCK_TIMEOUT_MS, work)
        .await
        .unwrap_or_else(|| Some(Err(network_error())));

    if inner(client).epoch.get() != epoch {
        // The session ended (logout) while the answer was on its way.
        return Err(ApiError::new(
            ErrorCode::SessionExpired,
            "You are not logged in any more. Please log in again.",
        ));
    }
    match answer {
        None => {
            restore_state(client, was);
            Ok(())
        }
        Some(Ok(response)) => {
            adopt_response(client, response, Source::Refresh);
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
                inner(client).token.borrow_mut().take();
                log(client, EventKind::RefreshFailed, "no live session");
                client.state.set(AuthState::Anonymous);
            } else {
                end_session(client, LogoutReason::from_code(error.error), true);
            }
            Err(error)
        }
        Some(Err(error)) => {
            // Not a verdict on the session: keep the person logged in, try again later.
            let inner = inner(client);
            let failures = inner.failures.get() + 1;
            inner.failures.set(failures);
            let delay = (1_000.0 * 2f64.powi(failures as i32 - 1)).min(MAX_BACKOFF_MS)
                * (0.5 + js_sys::Math::random() / 2.0);
            log(
                client,
                EventKind::RefreshFailed,
                format!("{}; retrying in {:.1} s", error.error, delay / 1000.0),
            );
            let generation = inner.generation.get();
            *inner.renew_timer.borrow_mut() = Some(Timeout::new(delay as u32, move || {
                spawn_local(async move {
                    let _ = refresh(client, generation, "retry after a failed refresh").await;
                });
            }));
            restore_state(client, was);
            Err(error)
        }
    }
}

fn token_is_usable(inner: &Inner) -> bool {
    inner
        .token
        .borrow()
        .as_ref()
        .is_some_and(|held| held.expires_at - now() > MIN_USEFUL_MS)
}

/// After a refresh that changed nothing, go back to what the state said
/// (still `Refreshing` at page load until an answer comes).
fn restore_state(client: AuthClient, was: AuthState) {
    if client.state.get_untracked() != AuthState::Refreshing {
        return;
    }
    let held_expiry = inner(client).token.borrow().as_ref().map(|t| t.expires_at);
    let next = match (held_expiry, was) {
        (Some(expires_at), _) => AuthState::Authenticated { expires_at },
        (None, AuthState::Refreshing) if client.user.get_untracked().is_some() => {
            AuthState::Authenticated { expires_at: now() }
        }
        (None, was) => was,
    };
    client.state.set(next);
}

// ---------------------------------------------------------- protected calls

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

/// A token worth sending, refreshing first when none is held or it is about to expire.
async fn usable_token(client: AuthClient) -> Result<(String, u64), ApiError> {
    let inner = inner(client);
    if !token_is_usable(&inner) {
        let generation = inner.generation.get();
        refresh(client, generation, "no usable token for a call").await?;
    }
    current_token(client)
}

fn current_token(client: AuthClient) -> Result<(String, u64), ApiError> {
    inner(client)
        .token
        .borrow()
        .as_ref()
        .map(|held| (held.value.clone(), held.generation))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::SessionExpired,
                "You are not logged in any more. Please log in again.",
            )
        })
}

async fn send(verb: Verb, path: &str, token: &str) -> Result<Response, ApiError> {
    let bearer = format!("Bearer {token}");
    let request = match verb {
        Verb::Get => Request::get(path),
        Verb::Delete => Request::delete(path),
    };
    request
        .header("Authorization", &bearer)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|_| network_error())
}

async fn error_of(response: Response) -> ApiError {
    let status = response.status();
    response.json::<ApiError>().await.unwrap_or_else(|_| {
        ApiError::new(
            ErrorCode::Unknown,
            format!("The server answered {status} without a usable error."),
        )
    })
}

/// The rules of the client in one place: bearer header; on a 401 sent with
/// the current token, one refresh (shared with every other call) and one
/// retry; on a 401 sent with a replaced token, just the retry; never more.
async fn authed(client: AuthClient, verb: Verb, path: &str) -> Result<Response, ApiError> {
    let (token, sent_generation) = usable_token(client).await?;
    log(client, EventKind::Call, format!("{} {path}", verb.as_str()));
    let response = send(verb, path, &token).await?;
    if response.status() != 401 {
        return Ok(response);
    }
    let error = error_of(response).await;
    log(
        client,
        EventKind::Unauthorized,
        format!("{} {path}: {}", verb.as_str(), error.error),
    );

    // `refresh` joins a refresh in flight, skips it when the token was
    // already replaced, and runs one otherwise.
    refresh(client, sent_generation, "a call got 401").await?;
    let (token, _) = current_token(client)?;
    log(
        client,
        EventKind::Retry,
        format!("{} {path}", verb.as_str()),
    );
    let response = send(verb, path, &token).await?;
    if response.status() == 401 {
        // Right after a refresh this is not an expiry: no second refresh, no loop.
        let error = error_of(response).await;
        log(
            client,
            EventKind::Unauthorized,
            format!("{} {path}: {} again; giving up", verb.as_str(), error.error),
        );
        return Err(error);
    }
    Ok(response)
}

pub async fn get_json<T: DeserializeOwned>(client: AuthClient, path: &str) -> Result<T, ApiError> {
    let response = authed(client, Verb::Get, path).await?;
    if !response.ok() {
        return Err(error_of(response).await);
    }
    response
        .json::<T>()
        .await
        .map_err(|_| ApiError::new(ErrorCode::Unknown, "The server's answer could not be read."))
}

pub async fn delete(client: AuthClient, path: &str) -> Result<(), ApiError> {
    let response = authed(client, Verb::Delete, path).await?;
    if !response.ok() {
        return Err(error_of(response).await);
    }
    Ok(())
}

// ----------------------------------------------------- login and logout

fn form_value(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

/// Login or register. Runs under the cross-tab lock and after any refresh in
/// flight, so no late refresh answer can overwrite the new cookie.
pub async fn credentials(
    client: AuthClient,
    path: &'static str,
    email: String,
    password: String,
) -> Result<(), CredentialsError> {
    let running = inner(client).flight.borrow().clone();
    if let Some(flight) = running {
        let _ = flight.wait().await;
    }
    let body = format!(
        "email={}&password={}",
        form_value(&email),
        form_value(&password)
    );
    let answer = with_lock(LOCK_NAME, LOCK_TIMEOUT_MS, move || async move {
        let request = Request::post(path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .map_err(|_| network_error())?;
        request.send().await.map_err(|_| network_error())
    })
    .await
    .unwrap_or_else(|| Err(network_error()));

    let response = answer.map_err(|error| CredentialsError {
        error,
        retry_after_secs: None,
    })?;
    if response.ok() {
        let tokens = response
            .json::<TokenResponse>()
            .await
            .map_err(|_| CredentialsError {
                error: ApiError::new(ErrorCode::Unknown, "The server's answer could not be read."),
                retry_after_secs: None,
            })?;
        adopt_response(client, tokens, Source::Credentials);
        return Ok(());
    }
    let retry_after_secs = response
        .headers()
        .get("Retry-After")
        .and_then(|value| value.trim().parse::<u64>().ok());
    Err(CredentialsError {
        error: error_of(response).await,
        retry_after_secs,
    })
}

/// Forgets the session here at once (the page leaves without waiting), then
/// tells the server, after any refresh in flight so the cookie it sends is
/// the newest one.
pub async fn logout(client: AuthClient, reason: LogoutReason) {
    end_session(client, reason, true);
    let running = inner(client).flight.borrow().clone();
    if let Some(flight) = running {
        let _ = flight.wait().await;
    }
    let _ = with_lock(LOCK_NAME, LOCK_TIMEOUT_MS, || async {
        let _ = Request::post("/api/auth/logout")
            .header("Accept", "application/json")
            .send()
            .await;
    })
    .await;
}
