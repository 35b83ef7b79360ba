//! The refresh server function: callable from the browser as a plain async
//! function, answered at `POST /api/auth/refresh`.

use leptos::prelude::*;

use super::model::{ApiError, TokenResponse};

/// Rotates the refresh cookie and returns a fresh access token.
#[server(prefix = "/api/auth", endpoint = "refresh")]
pub async fn refresh() -> Result<TokenResponse, ApiError> {
    super::handlers::refresh_server_fn().await
}
