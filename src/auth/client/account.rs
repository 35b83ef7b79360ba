//! Changing the password and deleting the account, in the browser. Both
//! answers touch the refresh cookie, so both go through
//! `calls::post_under_cookie_lock`.

use super::{
    calls::post_under_cookie_lock,
    fetch::Answer,
    session::{end_session, form_value},
    token::{self, Source},
    AuthClient, CredentialsError, LogoutReason,
};
use crate::auth::model::TokenResponse;

/// The answer, or the error it carries with its `Retry-After`.
async fn post(
    client: AuthClient,
    path: &'static str,
    body: String,
) -> Result<Answer, CredentialsError> {
    let answer = post_under_cookie_lock(client, path, body)
        .await
        .map_err(CredentialsError::from)?;
    if answer.ok() {
        Ok(answer)
    } else {
        Err(CredentialsError {
            error: answer.error(),
            retry_after_secs: answer.retry_after_secs(),
        })
    }
}

/// A new password. The answer carries this session's next token (its
/// cookie was rotated), which every tab of this browser adopts.
pub async fn change_password(
    client: AuthClient,
    current: String,
    new: String,
) -> Result<(), CredentialsError> {
    let body = format!(
        "current_password={}&new_password={}",
        form_value(&current),
        form_value(&new)
    );
    let answer = post(client, "/api/auth/password", body).await?;
    let tokens = answer
        .json::<TokenResponse>()
        .map_err(CredentialsError::from)?;
    token::adopt(client, tokens, Source::PasswordChange);
    Ok(())
}

/// Deletes the account; every tab of this browser then ends its session.
pub async fn delete_account(client: AuthClient, password: String) -> Result<(), CredentialsError> {
    let body = format!("password={}&confirm=delete", form_value(&password));
    post(client, "/api/account/delete", body).await?;
    end_session(client, LogoutReason::AccountDeleted, true);
    Ok(())
}
