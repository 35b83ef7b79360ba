//! The one extractor every protected route uses: a verified access token
//! whose user and session are still live.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderValue},
    response::{IntoResponse, Response},
};

use crate::server::AppState;

use super::error::Failure;
use super::model::{ErrorCode, Session};
use super::sessions;
use super::tokens::Claims;
use super::users::UserRow;

pub struct Authenticated {
    pub user: UserRow,
    pub session: Session,
    pub claims: Claims,
}

/// A 401 with `WWW-Authenticate` as RFC 6750 describes, or a 503.
pub struct BearerRejection {
    failure: Failure,
    token_sent: bool,
}

impl IntoResponse for BearerRejection {
    fn into_response(self) -> Response {
        let challenge = self.failure.status() == axum::http::StatusCode::UNAUTHORIZED;
        let mut response = self.failure.into_response();
        if challenge {
            let value = if self.token_sent {
                HeaderValue::from_static(r#"Bearer error="invalid_token""#)
            } else {
                HeaderValue::from_static("Bearer")
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

fn reject(code: ErrorCode, token_sent: bool) -> BearerRejection {
    let message = match code {
        ErrorCode::TokenExpired => "The access token has expired.",
        ErrorCode::SessionExpired => "The session has expired; sign in again.",
        ErrorCode::SessionRevoked => "The session has ended; sign in again.",
        _ if token_sent => "The access token is not valid.",
        _ => "This call needs an access token.",
    };
    BearerRejection {
        failure: Failure::new(code, message),
        token_sent,
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = BearerRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(reject(ErrorCode::InvalidToken, false));
        };
        let token = bearer_token(value).ok_or_else(|| reject(ErrorCode::InvalidToken, true))?;
        let now = state.clock.now_ms();
        let claims = state
            .auth
            .access
            .verify(token, now)
            .map_err(|code| reject(code, true))?;
        let lifetimes = state.auth.refresh.lifetimes();
        let live = sessions::live(&state.pool, &claims.sub, &claims.sid, &lifetimes, now)
            .await
            .map_err(|e| BearerRejection {
                failure: e.into(),
                token_sent: true,
            })?
            .map_err(|code| reject(code, true))?;
        Ok(Self {
            user: live.user,
            session: live.session,
            claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let ok = |s: &'static str| bearer_token(&HeaderValue::from_static(s)).map(str::to_owned);
        assert_eq!(ok("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(ok("bearer abc").as_deref(), Some("abc"));
        assert_eq!(ok("BEARER  abc ").as_deref(), Some("abc"));
        assert_eq!(ok("Basic abc"), None);
        assert_eq!(ok("Bearer"), None);
        assert_eq!(ok("Bearer "), None);
        assert_eq!(ok("Bearerabc"), None);
        assert_eq!(
            bearer_token(&HeaderValue::from_bytes(b"Bearer \xff").unwrap()),
            None
        );
    }
}
