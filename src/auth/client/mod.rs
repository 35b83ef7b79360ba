//! The browser's side of silent refresh: one `AuthClient`, provided as
//! context, holds the access token in memory (never in storage or a
//! readable cookie) and is the only way a protected call leaves the browser.
//!
//! Its state and event log are signals, so views read them and never poll.
//! Everything that touches the browser exists only in the WASM build
//! (`browser.rs` lists where each concern lives; a 401 becomes a refresh in
//! `calls.rs`); the server render sees the same signals with their initial
//! values, so hydration matches.

mod events;
mod state;

#[cfg(feature = "hydrate")]
mod account;
#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "hydrate")]
mod calls;
#[cfg(feature = "hydrate")]
mod fetch;
#[cfg(feature = "hydrate")]
mod flight;
#[cfg(feature = "hydrate")]
mod session;
#[cfg(feature = "hydrate")]
mod tabs;
#[cfg(feature = "hydrate")]
mod timeline;
#[cfg(feature = "hydrate")]
mod token;
#[cfg(feature = "hydrate")]
mod wakeups;
#[cfg(feature = "hydrate")]
mod web_lock;

use leptos::prelude::*;
use serde::de::DeserializeOwned;

pub use events::{clock_time, AuthEvent, EventKind, TokenSpan};
// Shared with the server's form endpoints; re-exported for the pages.
pub use crate::auth::next::safe_next;
pub use state::{AuthState, LogoutReason, ServerLogout};

use super::model::{ApiError, User};

/// Name of the non-secret cookie the server sets while a session is probably live.
const HINT_NAME: &str = "signed_in";

/// A failed login or register: the API error plus how long to wait after a 429.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsError {
    pub error: ApiError,
    pub retry_after_secs: Option<u64>,
}

/// An error with nothing to wait for.
impl From<ApiError> for CredentialsError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            retry_after_secs: None,
        }
    }
}

/// Cheap to copy: signals plus, in the browser, a handle to the token holder.
#[derive(Clone, Copy)]
pub struct AuthClient {
    state: RwSignal<AuthState>,
    user: RwSignal<Option<User>>,
    events: RwSignal<Vec<AuthEvent>>,
    spans: RwSignal<Vec<TokenSpan>>,
    proactive: RwSignal<bool>,
    server_logout: RwSignal<ServerLogout>,
    #[cfg(feature = "hydrate")]
    inner: StoredValue<std::rc::Rc<browser::Inner>, LocalStorage>,
}

/// Creates the client, makes it available to every view, and (in the
/// browser) starts it: one refresh at page load when the hint cookie says a
/// session is probably live.
pub fn provide_auth_client() -> AuthClient {
    let probably_signed_in = signed_in_hint();
    let client = AuthClient {
        state: RwSignal::new(if probably_signed_in {
            AuthState::Refreshing
        } else {
            AuthState::Anonymous
        }),
        user: RwSignal::new(None),
        events: RwSignal::new(Vec::new()),
        spans: RwSignal::new(Vec::new()),
        proactive: RwSignal::new(true),
        server_logout: RwSignal::new(ServerLogout::Done),
        #[cfg(feature = "hydrate")]
        inner: StoredValue::new_local(browser::Inner::new()),
    };
    provide_context(client);
    #[cfg(feature = "hydrate")]
    browser::start(client, probably_signed_in);
    client
}

pub fn use_auth() -> AuthClient {
    expect_context::<AuthClient>()
}

/// The hint cookie, read from the request on the server and from
/// `document.cookie` in the browser, so both renders start alike.
fn signed_in_hint() -> bool {
    #[cfg(feature = "ssr")]
    {
        use_context::<axum::http::request::Parts>()
            .map(|parts| {
                parts
                    .headers
                    .get_all(axum::http::header::COOKIE)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .any(has_hint)
            })
            .unwrap_or(false)
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        use wasm_bindgen::JsCast;
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok())
            .and_then(|d| d.cookie().ok())
            .is_some_and(|cookies| has_hint(&cookies))
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        false
    }
}

#[cfg_attr(not(any(feature = "ssr", feature = "hydrate")), allow(dead_code))]
fn has_hint(cookie_header: &str) -> bool {
    cookie_header
        .split(';')
        .any(|c| c.trim().strip_prefix(HINT_NAME) == Some("=1"))
}

#[cfg(not(feature = "hydrate"))]
fn browser_only() -> ApiError {
    ApiError::new(
        super::model::ErrorCode::Unknown,
        "This runs in the browser only.",
    )
}

impl AuthClient {
    pub fn state(&self) -> Signal<AuthState> {
        self.state.into()
    }

    pub fn user(&self) -> Signal<Option<User>> {
        self.user.into()
    }

    /// Newest last; capped so a long-open tab doesn't grow without end.
    pub fn events(&self) -> Signal<Vec<AuthEvent>> {
        self.events.into()
    }

    /// The last few access tokens' lifetimes, oldest first.
    pub fn spans(&self) -> Signal<Vec<TokenSpan>> {
        self.spans.into()
    }

    /// Whether the client renews the token ahead of expiry (a demo switch:
    /// off, calls meet expired tokens and take the refresh-on-demand path).
    pub fn proactive(&self) -> Signal<bool> {
        self.proactive.into()
    }

    pub fn set_proactive(&self, on: bool) {
        self.proactive.set(on);
        #[cfg(feature = "hydrate")]
        token::reschedule(*self);
    }

    /// Whether the server has heard the last logout (the token is gone from
    /// this browser either way).
    pub fn server_logout(&self) -> Signal<ServerLogout> {
        self.server_logout.into()
    }

    /// Forgets the access token (as a reload would); the next call refreshes first.
    pub fn drop_token(&self) {
        #[cfg(feature = "hydrate")]
        token::drop_token(*self);
    }

    /// Swaps the held token for a well-formed one the server rejects, so the
    /// next call runs the 401 -> refresh -> retry path.
    pub fn make_token_stale(&self) {
        #[cfg(feature = "hydrate")]
        token::make_token_stale(*self);
    }

    /// `remember`: "keep me signed in" (otherwise the session ends with
    /// the browser, or after the shorter idle limit).
    pub async fn login(
        self,
        email: String,
        password: String,
        remember: bool,
    ) -> Result<(), CredentialsError> {
        #[cfg(feature = "hydrate")]
        {
            session::credentials(self, "/api/auth/login", email, password, remember).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (email, password, remember);
            Err(browser_only().into())
        }
    }

    /// `remember`: "keep me signed in" (otherwise the session ends with
    /// the browser, or after the shorter idle limit).
    pub async fn register(
        self,
        email: String,
        password: String,
        remember: bool,
    ) -> Result<(), CredentialsError> {
        #[cfg(feature = "hydrate")]
        {
            session::credentials(self, "/api/auth/register", email, password, remember).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (email, password, remember);
            Err(browser_only().into())
        }
    }

    /// Changes the password: every other session of this user ends at once;
    /// this one goes on, with a rotated cookie and a new access token that
    /// every tab of this browser adopts. A wrong current password is a 403
    /// `invalid_credentials` (counted as a failed login).
    pub async fn change_password(
        self,
        current: String,
        new: String,
    ) -> Result<(), CredentialsError> {
        #[cfg(feature = "hydrate")]
        {
            account::change_password(self, current, new).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (current, new);
            Err(browser_only().into())
        }
    }

    /// Deletes the account and everything of it on the server; then the
    /// session ends in every tab, with [`LogoutReason::AccountDeleted`].
    pub async fn delete_account(self, password: String) -> Result<(), CredentialsError> {
        #[cfg(feature = "hydrate")]
        {
            account::delete_account(self, password).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = password;
            Err(browser_only().into())
        }
    }

    /// Ends this session everywhere in this browser at once, then on the
    /// server; [`Self::server_logout`] says whether the server heard it.
    pub async fn logout(self) {
        #[cfg(feature = "hydrate")]
        session::logout(self, LogoutReason::UserLoggedOut).await;
    }

    /// Sends again a logout the server never confirmed.
    pub async fn retry_logout(self) {
        #[cfg(feature = "hydrate")]
        session::retry_logout(self).await;
    }

    /// Ends every session of this user, then this one.
    pub async fn logout_everywhere(self) -> Result<(), ApiError> {
        self.delete("/api/sessions").await?;
        #[cfg(feature = "hydrate")]
        session::logout(self, LogoutReason::LoggedOutEverywhere).await;
        Ok(())
    }

    /// A protected `GET` through the refresh machinery.
    pub async fn get_json<T: DeserializeOwned + 'static>(self, path: &str) -> Result<T, ApiError> {
        #[cfg(feature = "hydrate")]
        {
            calls::get_json(self, path).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = path;
            Err(browser_only())
        }
    }

    /// A protected `DELETE` through the refresh machinery.
    pub async fn delete(self, path: &str) -> Result<(), ApiError> {
        #[cfg(feature = "hydrate")]
        {
            calls::delete(self, path).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = path;
            Err(browser_only())
        }
    }
}

/// Percent-encodes a query value (for `/login?next=...`).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Same header and claims, signature of zero bytes: still a JWT, never valid.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn with_blank_signature(jwt: &str) -> String {
    match jwt.rsplit_once('.') {
        Some((signed_part, signature)) => {
            format!("{signed_part}.{}", "A".repeat(signature.len().max(43)))
        }
        None => jwt.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::model::ErrorCode;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query_value("/sessions?a=1&b"),
            "/sessions%3Fa%3D1%26b"
        );
    }

    #[test]
    fn blank_signature_keeps_shape() {
        let stale = with_blank_signature("aaa.bbb.ccc");
        assert!(stale.starts_with("aaa.bbb."));
        assert_eq!(stale.split('.').count(), 3);
        assert_ne!(stale, "aaa.bbb.ccc");
    }

    #[test]
    fn hint_cookie_is_found_among_others() {
        assert!(has_hint("a=b; signed_in=1"));
        assert!(!has_hint("signed_in=0; x=signed_in=1"));
    }

    #[test]
    fn reasons_follow_codes() {
        assert_eq!(
            LogoutReason::from_code(ErrorCode::TokenReused),
            LogoutReason::TokenReused
        );
        assert_eq!(
            LogoutReason::from_code(ErrorCode::InvalidToken),
            LogoutReason::SessionInvalid
        );
    }
}
