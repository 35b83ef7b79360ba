//! One place that turns an auth failure into the contract's status code,
//! headers and `{"error", "message"}` body.

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use super::model::{ApiError, ErrorCode};

/// A failed API call, ready to become a response.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
    /// Set when the code's usual status would mislead: a wrong password
    /// on a bearer call is 403, since a 401 there would send the client
    /// into a refresh.
    status: Option<StatusCode>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            status: None,
        }
    }

    /// A password check that failed on a call already authenticated by its
    /// bearer token (changing the password, deleting the account).
    pub fn wrong_password() -> Self {
        Self {
            status: Some(StatusCode::FORBIDDEN),
            ..Self::new(ErrorCode::InvalidCredentials, "The password is incorrect.")
        }
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The service can't complete this right now; try again shortly.",
        )
        .retry_after(Duration::from_secs(1))
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| status_of(self.code))
    }

    pub fn body(&self) -> ApiError {
        ApiError::new(self.code, self.message.clone())
    }
}

/// Database errors are logged here (never with request data) and answered
/// as 503: the client keeps its session and retries.
impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database call failed");
        Failure::unavailable()
    }
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidCredentials
        | ErrorCode::InvalidToken
        | ErrorCode::TokenExpired
        | ErrorCode::SessionExpired
        | ErrorCode::SessionRevoked
        | ErrorCode::TokenReused => StatusCode::UNAUTHORIZED,
        ErrorCode::EmailTaken => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NetworkError | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whole seconds, rounded up, at least one: what `Retry-After` says.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

pub fn retry_after_header(wait: Duration) -> HeaderValue {
    HeaderValue::from(retry_after_secs(wait))
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_header(wait));
        }
        response
    }
}
