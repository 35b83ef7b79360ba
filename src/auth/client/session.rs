//! Login, register and logout, and `end_session`, the one place a session
//! ends in this browser (by choice, by a 401 from refresh, or in another tab).

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::{
    browser::inner,
    calls::{self, COOKIE_LOCK, LOCK_WAIT_MS},
    fetch::{self, Outgoing, CREDENTIALS_DEADLINE_MS, LOGOUT_DEADLINE_MS},
    tabs, timeline,
    timeline::log,
    token::{self, Source},
    web_lock::with_lock,
    AuthClient, AuthState, CredentialsError, EventKind, LogoutReason, ServerLogout, HINT_NAME,
};
use crate::auth::model::TokenResponse;

/// Login or register. Runs under the cross-tab lock and after any refresh in
/// flight, so no late refresh answer can overwrite the new cookie.
/// `remember`: "keep me signed in".
pub async fn credentials(
    client: AuthClient,
    path: &'static str,
    email: String,
    password: String,
    remember: bool,
) -> Result<(), CredentialsError> {
    calls::settled(client).await;
    let body = format!(
        "email={}&password={}&remember={}",
        form_value(&email),
        form_value(&password),
        if remember { "1" } else { "0" }
    );
    let answer = with_lock(COOKIE_LOCK, LOCK_WAIT_MS, move || {
        Outgoing::new("POST", path, CREDENTIALS_DEADLINE_MS)
            .form(body)
            .send()
    })
    .await
    .unwrap_or_else(|| Err(fetch::network_error()));

    let answer = answer.map_err(CredentialsError::from)?;
    if !answer.ok() {
        return Err(CredentialsError {
            error: answer.error(),
            retry_after_secs: answer.retry_after_secs(),
        });
    }
    let tokens = answer
        .json::<TokenResponse>()
        .map_err(CredentialsError::from)?;
    // A new session: whatever an earlier logout left unsaid is moot here.
    client.server_logout.set(ServerLogout::Done);
    token::adopt(client, tokens, Source::Credentials);
    Ok(())
}

pub(super) fn form_value(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

/// Forgets the session in every tab at once (the page moves on without
/// waiting), then tells the server and reports whether it heard.
pub async fn logout(client: AuthClient, reason: LogoutReason) {
    end_session(client, reason, true);
    // "Log out everywhere" already ended every session on the server; this
    // request only clears the cookies.
    let ended_on_server = reason == LogoutReason::LoggedOutEverywhere;
    deliver_logout(client, ended_on_server).await;
}

/// The notice's Retry button: sends a logout that did not get through again.
pub async fn retry_logout(client: AuthClient) {
    if client.server_logout.get_untracked() == ServerLogout::StillOpen {
        deliver_logout(client, false).await;
    }
}

async fn deliver_logout(client: AuthClient, ended_on_server: bool) {
    let retrying = client.server_logout.get_untracked() == ServerLogout::StillOpen;
    client.server_logout.set(ServerLogout::Sending);
    // After any refresh in flight, so the cookie it sends is the newest one.
    calls::settled(client).await;
    let answer = with_lock(COOKIE_LOCK, LOCK_WAIT_MS, || {
        // `keepalive`: a logout clicked as the tab closes still arrives.
        Outgoing::new("POST", "/api/auth/logout", LOGOUT_DEADLINE_MS)
            .keepalive()
            .send()
    })
    .await
    .unwrap_or_else(|| Err(fetch::network_error()));

    let failure = match answer {
        Ok(answer) if answer.ok() => None,
        Ok(answer) => Some(answer.error()),
        Err(error) => Some(error),
    };
    let outcome = match failure {
        None => {
            if retrying {
                log(client, EventKind::LoggedOut, "the server ended the session");
            }
            ServerLogout::Done
        }
        Some(error) => {
            // The server would have cleared the hint with the cookie. Without
            // the hint a reload doesn't refresh, so it can't sign back in.
            forget_hint_cookie();
            if ended_on_server {
                ServerLogout::Done
            } else {
                log(
                    client,
                    EventKind::LogoutFailed,
                    format!("{}: the session is still open on the server", error.error),
                );
                ServerLogout::StillOpen
            }
        }
    };
    // A login since then owns the state now.
    if client.user.get_untracked().is_none() {
        client.server_logout.set(outcome);
    }
    tabs::announce_server_logout(client, outcome);
}

/// Expires the non-secret hint cookie the server set at login.
fn forget_hint_cookie() {
    let Some(document) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok())
    else {
        return;
    };
    let secure = web_sys::window()
        .and_then(|w| w.location().protocol().ok())
        .is_some_and(|protocol| protocol == "https:");
    let _ = document.set_cookie(&format!(
        "{HINT_NAME}=; Max-Age=0; Path=/; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    ));
}

/// Ends the session in this tab: token, renewal, backoff, user, state. A
/// refresh answer still on its way is thrown away when it lands.
pub fn end_session(client: AuthClient, reason: LogoutReason, tell_other_tabs: bool) {
    let inner = inner(client);
    inner.token.forget();
    inner.refresh.end_session();
    timeline::token_ended(client);
    client.user.set(None);
    client.state.set(AuthState::LoggedOut { reason });
    log(client, EventKind::LoggedOut, reason.as_str());
    if tell_other_tabs {
        tabs::announce_logout(client, reason);
    }
}
