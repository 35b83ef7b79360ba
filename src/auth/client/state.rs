//! The client's state machine and why a session ended.

use serde::{Deserialize, Serialize};

use crate::auth::model::ErrorCode;

/// Where the browser stands. Views match on this; nothing polls.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthState {
    /// Nobody is logged in, and nobody was.
    Anonymous,
    /// A refresh is on the wire: at page load (who is this?) or to renew a
    /// token. Protected pages keep showing what they have.
    Refreshing,
    /// An access token is held (or was just dropped on purpose); `expires_at`
    /// is in milliseconds since the epoch, by this browser's clock.
    Authenticated { expires_at: f64 },
    /// The session ended; the login page says why.
    LoggedOut { reason: LogoutReason },
}

impl AuthState {
    /// Short machine name, for `data-state` attributes and badges.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Refreshing => "refreshing",
            Self::Authenticated { .. } => "authenticated",
            Self::LoggedOut { .. } => "logged_out",
        }
    }

    /// Anonymous or logged out: a protected page must send the visitor to login.
    pub fn is_signed_out(&self) -> bool {
        matches!(self, Self::Anonymous | Self::LoggedOut { .. })
    }
}

/// Why a session ended, as the person should hear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoutReason {
    /// They pressed "log out".
    UserLoggedOut,
    /// They pressed "log out everywhere".
    LoggedOutEverywhere,
    /// Another tab of this browser logged out.
    OtherTab,
    /// The session was revoked (from the sessions page, or by reuse detection).
    SessionRevoked,
    /// The session reached its idle or absolute limit.
    SessionExpired,
    /// A refresh token was presented twice: the server killed the session.
    TokenReused,
    /// The refresh cookie is missing or unknown.
    SessionInvalid,
    /// They deleted their account (in this tab or another).
    AccountDeleted,
}

impl LogoutReason {
    /// The reason a refresh failure with a session-ending code stands for.
    pub fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::SessionRevoked => Self::SessionRevoked,
            ErrorCode::SessionExpired => Self::SessionExpired,
            ErrorCode::TokenReused => Self::TokenReused,
            _ => Self::SessionInvalid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserLoggedOut => "user_logged_out",
            Self::LoggedOutEverywhere => "logged_out_everywhere",
            Self::OtherTab => "other_tab",
            Self::SessionRevoked => "session_revoked",
            Self::SessionExpired => "session_expired",
            Self::TokenReused => "token_reused",
            Self::SessionInvalid => "session_invalid",
            Self::AccountDeleted => "account_deleted",
        }
    }

    /// The person chose this; nothing went wrong.
    pub fn is_voluntary(self) -> bool {
        matches!(
            self,
            Self::UserLoggedOut | Self::LoggedOutEverywhere | Self::AccountDeleted
        )
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::UserLoggedOut => "You have logged out.",
            Self::LoggedOutEverywhere => "You have logged out on every device.",
            Self::OtherTab => "You logged out in another tab.",
            Self::SessionRevoked => {
                "Your session was revoked (from the sessions page, another device, or after a stolen token was detected). Please log in again."
            }
            Self::SessionExpired => "Your session has expired. Please log in again.",
            Self::TokenReused => {
                "A refresh token of this session was used twice, which looks like theft: the session was ended on every device. Please log in again."
            }
            Self::SessionInvalid => "Your session is no longer valid. Please log in again.",
            Self::AccountDeleted => "Your account was deleted.",
        }
    }
}

/// Whether the server has heard this browser's last logout. The token is
/// gone from every tab either way; until the server hears it, the refresh
/// cookie (which script can't touch) still opens the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerLogout {
    /// No logout to deliver, or the server confirmed it.
    Done,
    /// On its way (or waiting for a refresh in flight to land first).
    Sending,
    /// It never arrived (offline, an error, no answer in time): the session
    /// is still open on the server until a retry gets through or it expires.
    StillOpen,
}

impl ServerLogout {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Sending => "sending",
            Self::StillOpen => "still_open",
        }
    }
}
