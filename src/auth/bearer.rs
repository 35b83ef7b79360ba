//! The one extractor every protected route uses: a verified access token
//! whose user and session are still live.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts, HeaderValue},
    response::{IntoResponse, Response},
};

use super::error::Failure;
use super::model::{ErrorCode, Session};
use super::state::AuthContext;
use super::store::{Ended, UserRow};
use super::tokens::Claims;

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

/// What an `Authorization` header holds, as RFC 6750 tells them apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Bearer <token>` (scheme case-insensitive).
    Bearer(&'a str),
    /// The bearer scheme with no usable token after it.
    MalformedBearer,
    /// Another scheme (`Basic ...`): no bearer token was sent at all.
    OtherScheme,
}

pub fn credentials(value: &HeaderValue) -> Credentials<'_> {
    let Ok(text) = value.to_str() else {
        return Credentials::MalformedBearer;
    };
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::OtherScheme;
    }
    match token.trim() {
        "" => Credentials::MalformedBearer,
        token => Credentials::Bearer(token),
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    AuthContext: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BearerRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // RFC 6750 section 3.1: no error code unless a bearer token was sent.
        let token = match parts.headers.get(header::AUTHORIZATION).map(credentials) {
            Some(Credentials::Bearer(token)) => token,
            Some(Credentials::MalformedBearer) => {
                return Err(reject(ErrorCode::InvalidToken, true))
            }
            Some(Credentials::OtherScheme) | None => {
                return Err(reject(ErrorCode::InvalidToken, false))
            }
        };
        let state = AuthContext::from_ref(state);
        let now = state.clock.now_ms();
        let claims = state
            .service
            .access
            .verify(token, now)
            .map_err(|code| reject(code, true))?;
        let live = state
            .store
            .live(&claims.sub, &claims.sid, now)
            .await
            .map_err(|e| BearerRejection {
                failure: e.into(),
                token_sent: true,
            })?
            .map_err(|ended| {
                let code = match ended {
                    Ended::Expired => ErrorCode::SessionExpired,
                    Ended::Revoked => ErrorCode::SessionRevoked,
                };
                reject(code, true)
            })?;
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
        // What the header reads as, as text (the parse borrows the header).
        let read = |value: HeaderValue| format!("{:?}", credentials(&value));
        let text = |s: &'static str| read(HeaderValue::from_static(s));
        assert_eq!(text("Bearer abc"), r#"Bearer("abc")"#);
        assert_eq!(text("bearer abc"), r#"Bearer("abc")"#);
        assert_eq!(text("BEARER  abc "), r#"Bearer("abc")"#);
        assert_eq!(text("Basic abc"), "OtherScheme");
        assert_eq!(text("Bearerabc"), "OtherScheme");
        assert_eq!(text("Bearer"), "MalformedBearer");
        assert_eq!(text("Bearer "), "MalformedBearer");
        assert_eq!(
            read(HeaderValue::from_bytes(b"Bearer \xff").unwrap()),
            "MalformedBearer"
        );
    }
}
