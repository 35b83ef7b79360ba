//! The refresh cookie (HttpOnly, `Path=/api/auth`, `SameSite=Strict`) and a
//! harmless hint cookie that tells the server-side render someone is
//! probably signed in. Built and parsed with the `cookie` crate.
//!
//! The hint is `SameSite=Lax`: it must reach the server on a top-level
//! arrival from another site (a link in webmail), or the server renders the
//! signed-out shell while the browser, which reads the hint from
//! `document.cookie`, hydrates the signed-in one, and hydration fails.

use std::time::Duration;

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

/// Readable by scripts and the server render; holds no token, only "1".
pub const HINT_COOKIE: &str = "signed_in";
pub const REFRESH_PATH: &str = "/api/auth";

#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Production: `Secure` cookies and the `__Secure-` name prefix.
    pub secure: bool,
}

impl CookiePolicy {
    pub fn refresh_name(&self) -> &'static str {
        if self.secure {
            "__Secure-refresh_token"
        } else {
            "refresh_token"
        }
    }

    /// The presented refresh token, if the request carries the cookie.
    pub fn read<'a>(&self, jar: &'a CookieJar) -> Option<&'a str> {
        jar.get(self.refresh_name()).map(Cookie::value)
    }

    /// The refresh cookie and the hint, both living `max_age`; with `None`,
    /// session cookies that go when the browser closes (a session started
    /// without "keep me signed in").
    pub fn issue(&self, token: String, max_age: Option<Duration>) -> [Cookie<'static>; 2] {
        let mut refresh = self.base(self.refresh_name(), token, REFRESH_PATH, true);
        let mut hint = self.base(HINT_COOKIE, "1".into(), "/", false);
        if let Some(max_age) = max_age {
            let max_age = cookie::time::Duration::seconds(max_age.as_secs() as i64);
            refresh.set_max_age(max_age);
            hint.set_max_age(max_age);
        }
        [refresh, hint]
    }

    /// Expired copies of both cookies: the browser drops them.
    pub fn clear(&self) -> [Cookie<'static>; 2] {
        let mut refresh = self.base(self.refresh_name(), String::new(), REFRESH_PATH, true);
        refresh.make_removal();
        let mut hint = self.base(HINT_COOKIE, String::new(), "/", false);
        hint.make_removal();
        [refresh, hint]
    }

    fn base(
        &self,
        name: &'static str,
        value: String,
        path: &'static str,
        http_only: bool,
    ) -> Cookie<'static> {
        Cookie::build((name, value))
            .path(path)
            .http_only(http_only)
            // Only the HttpOnly refresh cookie carries a secret.
            .same_site(if http_only {
                SameSite::Strict
            } else {
                SameSite::Lax
            })
            .secure(self.secure)
            .build()
    }
}

/// Adds cookies to a jar, for handlers that answer with `(CookieJar, ...)`.
pub fn with(jar: CookieJar, cookies: [Cookie<'static>; 2]) -> CookieJar {
    cookies.into_iter().fold(jar, CookieJar::add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_cookie_attributes() {
        let [refresh, hint] =
            CookiePolicy { secure: false }.issue("tok".into(), Some(Duration::from_secs(90)));
        let text = refresh.to_string();
        for part in [
            "refresh_token=tok",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/api/auth",
            "Max-Age=90",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Secure"));
        let hint = hint.to_string();
        assert!(
            hint.contains("signed_in=1") && hint.contains("Path=/") && !hint.contains("HttpOnly")
        );
        assert!(hint.contains("SameSite=Lax"), "{hint}");

        let [refresh, _] =
            CookiePolicy { secure: true }.issue("tok".into(), Some(Duration::from_secs(90)));
        let text = refresh.to_string();
        assert!(text.starts_with("__Secure-refresh_token=tok") && text.contains("Secure"));
    }

    #[test]
    fn a_session_not_remembered_gets_session_cookies() {
        let policy = CookiePolicy { secure: false };
        for cookie in policy.issue("tok".into(), None) {
            let text = cookie.to_string();
            assert!(
                !text.contains("Max-Age") && !text.contains("Expires"),
                "{text}"
            );
        }
    }

    #[test]
    fn clearing_expires_both() {
        for cookie in (CookiePolicy { secure: false }).clear() {
            let text = cookie.to_string();
            assert!(text.contains("Max-Age=0"), "{text}");
        }
    }
}
