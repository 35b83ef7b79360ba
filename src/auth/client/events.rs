//! The live log of auth events the dashboard shows.

/// What happened. `as_str` is stable (tests and CSS read it); `label` is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Call,
    Unauthorized,
    RefreshStarted,
    RefreshDone,
    RefreshFailed,
    Retry,
    /// Another tab rotated the refresh cookie; this tab adopted its token.
    Rotated,
    ReuseDetected,
    LoggedIn,
    LoggedOut,
    /// A logout the server did not confirm: its session is still open there.
    LogoutFailed,
    TokenDropped,
    TokenStale,
    /// This session changed the password; every other session ended.
    PasswordChanged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Unauthorized => "401",
            Self::RefreshStarted => "refresh-started",
            Self::RefreshDone => "refresh-done",
            Self::RefreshFailed => "refresh-failed",
            Self::Retry => "retry",
            Self::Rotated => "rotated",
            Self::ReuseDetected => "reuse-detected",
            Self::LoggedIn => "logged-in",
            Self::LoggedOut => "logged-out",
            Self::LogoutFailed => "logout-failed",
            Self::TokenDropped => "token-dropped",
            Self::TokenStale => "token-stale",
            Self::PasswordChanged => "password-changed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Unauthorized => "401",
            Self::RefreshStarted => "refresh started",
            Self::RefreshDone => "refresh done",
            Self::RefreshFailed => "refresh failed",
            Self::Retry => "retry",
            Self::Rotated => "rotated",
            Self::ReuseDetected => "reuse detected",
            Self::LoggedIn => "logged in",
            Self::LoggedOut => "logged out",
            Self::LogoutFailed => "logout not confirmed",
            Self::TokenDropped => "token dropped",
            Self::TokenStale => "token made stale",
            Self::PasswordChanged => "password changed",
        }
    }

    /// Colour hint for the log: "ok", "warn", "danger" or "".
    pub fn tone(self) -> &'static str {
        match self {
            Self::RefreshDone | Self::Rotated | Self::LoggedIn | Self::PasswordChanged => "ok",
            Self::Unauthorized | Self::RefreshFailed | Self::TokenDropped | Self::TokenStale => {
                "warn"
            }
            Self::ReuseDetected | Self::LoggedOut | Self::LogoutFailed => "danger",
            _ => "",
        }
    }
}

/// One line of the log. Details never hold a token.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthEvent {
    pub id: u64,
    /// Milliseconds since the epoch.
    pub at: f64,
    pub kind: EventKind,
    pub detail: String,
}

impl AuthEvent {
    /// `HH:MM:SS.mmm` in the browser's time zone.
    pub fn clock_time(&self) -> String {
        clock_time(self.at)
    }
}

#[cfg(feature = "hydrate")]
pub fn clock_time(ms: f64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds(),
        date.get_milliseconds()
    )
}

/// The server never renders events (the log starts empty); UTC is enough here.
#[cfg(not(feature = "hydrate"))]
pub fn clock_time(ms: f64) -> String {
    let total = ms as u64;
    let (secs, millis) = (total / 1000, total % 1000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        millis
    )
}

/// One access token's life, for the dashboard's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpan {
    pub issued_at: f64,
    pub expires_at: f64,
    /// When a newer token (or a logout) took its place.
    pub replaced_at: Option<f64>,
    /// "refresh", "login", "other-tab" or "password-change".
    pub via: &'static str,
}
