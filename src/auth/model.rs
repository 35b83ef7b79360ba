//! Wire types shared by the server and the browser: exactly the JSON bodies
//! of the HTTP API.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    /// RFC 3339
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub user_agent: Option<String>,
    /// The browser and system the user agent names ("Firefox 133 on
    /// Linux"), when it names them.
    pub device: Option<String>,
    /// The address it signed in from.
    pub address: Option<String>,
    /// Started with "keep me signed in" (its cookies outlive the browser).
    pub remembered: bool,
    /// True for the session of the access token that asked.
    pub current: bool,
}

/// What login, register and refresh answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// `GET /api/dashboard`: who is asking, from which session, with what token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    pub user: User,
    pub session: Session,
    /// When the access token used for this call expires (RFC 3339).
    pub access_token_expires_at: String,
    /// The server's clock when it answered (RFC 3339).
    pub server_time: String,
    /// Live sessions of this user.
    pub live_sessions: u32,
}

/// What happened to an account, as its security history shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    SignedIn,
    SignedOut,
    SessionRevoked,
    PasswordChanged,
    /// A refresh token was used twice; the session it belonged to ended.
    TokenReused,
    /// Too many wrong passwords: sign-in was paused.
    LockedOut,
}

impl SecurityEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedIn => "signed_in",
            Self::SignedOut => "signed_out",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::TokenReused => "token_reused",
            Self::LockedOut => "locked_out",
        }
    }

    /// The stored text back; `None` for a kind this version doesn't know.
    pub fn from_stored(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }

    /// How the history names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::SignedIn => "Signed in",
            Self::SignedOut => "Signed out",
            Self::SessionRevoked => "Session ended",
            Self::PasswordChanged => "Password changed",
            Self::TokenReused => "Refresh token used twice",
            Self::LockedOut => "Sign-in paused",
        }
    }
}

/// One line of the security history (`GET /api/account/history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub id: String,
    /// RFC 3339
    pub at: String,
    pub kind: SecurityEventKind,
    pub session_id: Option<String>,
    pub detail: String,
}

/// A page of the history, newest first; `next` is the `before` of the
/// following page, `None` on the last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<SecurityEvent>,
    pub next: Option<String>,
}

/// The query keys of `/login?error=...`: the pages' form endpoints write
/// them (`forms.rs`), the login and register pages read them.
pub mod form_query {
    pub const ERROR: &str = "error";
    pub const FIELD: &str = "field";
    pub const WAIT: &str = "wait";
    pub const NEXT: &str = "next";
}

/// The error codes of the API, as they appear in `{"error": code}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidInput,
    InvalidCredentials,
    EmailTaken,
    RateLimited,
    InvalidToken,
    TokenExpired,
    SessionExpired,
    SessionRevoked,
    TokenReused,
    ForbiddenOrigin,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    Unavailable,
    /// Browser side only: the request never got an answer.
    NetworkError,
    /// Browser side only: an answer this client doesn't understand.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// A refresh that fails with one of these means the session is over;
    /// anything else is worth retrying.
    pub fn ends_session(self) -> bool {
        matches!(
            self,
            Self::InvalidToken | Self::SessionExpired | Self::SessionRevoked | Self::TokenReused
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::InvalidCredentials => "invalid_credentials",
            Self::EmailTaken => "email_taken",
            Self::RateLimited => "rate_limited",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::SessionExpired => "session_expired",
            Self::SessionRevoked => "session_revoked",
            Self::TokenReused => "token_reused",
            Self::ForbiddenOrigin => "forbidden_origin",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unavailable => "unavailable",
            Self::NetworkError => "network_error",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"error": code, "message": text}`: every failure of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {message}")]
pub struct ApiError {
    pub error: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

/// Lets the refresh server function return `ApiError` as its JSON error body.
impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match value {
            E::Request(e) => Self::new(ErrorCode::NetworkError, e),
            E::Deserialization(e) | E::Response(e) => Self::new(ErrorCode::Unknown, e),
            E::Args(e) | E::MissingArg(e) => Self::new(ErrorCode::InvalidInput, e),
            other => Self::new(ErrorCode::Unavailable, other.to_string()),
        }
    }
}
