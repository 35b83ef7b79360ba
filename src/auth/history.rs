//! The security history: what the endpoints record (one function per kind
//! of event, so every detail reads alike) and `GET /api/account/history`.
//! Details are for the person to read: never a token, a password or a hash.

use std::net::IpAddr;

use axum::{
    extract::{Query, State},
    Json,
};
use serde::Deserialize;

use crate::clock::Millis;

use super::bearer::Authenticated;
use super::error::Failure;
use super::model::{History, SecurityEventKind};
use super::state::AuthContext;
use super::store::{EventSubject, NewEvent, UserRow};
use super::throttle::Lockout;

/// Longest piece of a user agent a detail quotes.
const AGENT_IN_DETAIL: usize = 120;

async fn record(
    state: &AuthContext,
    subject: EventSubject<'_>,
    kind: SecurityEventKind,
    session_id: Option<&str>,
    detail: &str,
    at: Millis,
) {
    state
        .store
        .record(NewEvent {
            subject,
            at,
            kind,
            session_id,
            detail,
        })
        .await;
}

pub async fn signed_in(
    state: &AuthContext,
    user: &UserRow,
    session_id: &str,
    user_agent: Option<&str>,
    address: IpAddr,
    remembered: bool,
    at: Millis,
) {
    // The parsed name, else the user agent as sent (shortened).
    let device = match user_agent {
        Some(agent) => super::device::describe(agent)
            .unwrap_or_else(|| agent.chars().take(AGENT_IN_DETAIL).collect()),
        None => "a device that didn't say what it is".to_string(),
    };
    let kept = if remembered {
        "kept signed in"
    } else {
        "until the browser closes"
    };
    let detail = format!("From {address}, {kept}: {device}");
    let subject = EventSubject::User(&user.id);
    let kind = SecurityEventKind::SignedIn;
    record(state, subject, kind, Some(session_id), &detail, at).await;
}

pub async fn signed_out(state: &AuthContext, session_id: &str, at: Millis) {
    let detail = "Logged out in that browser.";
    let subject = EventSubject::Session(session_id);
    let kind = SecurityEventKind::SignedOut;
    record(state, subject, kind, Some(session_id), detail, at).await;
}

pub async fn session_revoked(state: &AuthContext, session_id: &str, at: Millis) {
    let detail = "Ended from another session's sessions page.";
    let subject = EventSubject::Session(session_id);
    let kind = SecurityEventKind::SessionRevoked;
    record(state, subject, kind, Some(session_id), detail, at).await;
}

pub async fn logged_out_everywhere(
    state: &AuthContext,
    user_id: &str,
    from_session: &str,
    ended: u64,
    at: Millis,
) {
    let detail = format!("Logged out everywhere: {ended} session(s) ended.");
    let subject = EventSubject::User(user_id);
    let kind = SecurityEventKind::SessionRevoked;
    record(state, subject, kind, Some(from_session), &detail, at).await;
}

pub async fn password_changed(
    state: &AuthContext,
    user_id: &str,
    from_session: &str,
    ended: u64,
    at: Millis,
) {
    let detail = format!("Changed here; {ended} other session(s) ended.");
    let subject = EventSubject::User(user_id);
    let kind = SecurityEventKind::PasswordChanged;
    record(state, subject, kind, Some(from_session), &detail, at).await;
}

pub async fn token_reused(state: &AuthContext, session_id: &str, at: Millis) {
    let detail = "A refresh token of this session was used a second time, so someone may hold a copy of it: the session was ended on every device. If you don't know why, change your password.";
    let subject = EventSubject::Session(session_id);
    let kind = SecurityEventKind::TokenReused;
    record(state, subject, kind, Some(session_id), detail, at).await;
}

pub async fn locked_out(
    state: &AuthContext,
    email_key: &str,
    address: IpAddr,
    lockout: Lockout,
    at: Millis,
) {
    let pause = humantime::format_duration(state.service.throttle.lockout());
    let detail = match lockout {
        Lockout::Pair => format!(
            "Too many wrong passwords from {address}: sign-in from there is paused for up to {pause}."
        ),
        Lockout::Email => format!(
            "Too many wrong passwords from several addresses (the last from {address}): sign-in is paused everywhere for up to {pause}."
        ),
    };
    let subject = EventSubject::Email(email_key);
    let kind = SecurityEventKind::LockedOut;
    record(state, subject, kind, None, &detail, at).await;
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<String>,
}

/// `GET /api/account/history?before=<id>`: a page of the caller's history,
/// newest first.
pub async fn history(
    State(state): State<AuthContext>,
    auth: Authenticated,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<History>, Failure> {
    let bad = || Failure::invalid_input("before must be the id of an event (a whole number).");
    let Query(query) = query.map_err(|_| bad())?;
    let before = match query.before.as_deref() {
        None => None,
        Some(id) => Some(id.parse::<i64>().map_err(|_| bad())?),
    };
    let (events, next) = state.store.history(&auth.user.id, before).await?;
    Ok(Json(History {
        events,
        next: next.map(|id| id.to_string()),
    }))
}
