//! The account's own endpoints: change the password, delete the account.
//! Both are bearer calls that ask for the password again. A wrong one is
//! 403, not 401 (a 401 would send the client into a refresh), and counts
//! as one failed login in the throttle, so a stolen access token is no way
//! around the lockout.

use axum::{
    extract::{FromRequest, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Form, Json,
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::bearer::Authenticated;
use super::cookies;
use super::error::Failure;
use super::guard::{too_large, ClientAddress};
use super::handlers::{rotate, throttled_password_check};
use super::history;
use super::model::ErrorCode;
use super::refresh::RefreshToken;
use super::state::AuthContext;
use super::store::UserRow;
use super::validate::check_new_password;

/// The value `confirm` must have for the account to be deleted.
pub const DELETE_CONFIRMATION: &str = "delete";

/// A form body, its missing fields answered as 400 by name.
async fn form_fields<T, S>(req: Request, state: &S) -> Result<T, Failure>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    let Form(raw) =
        Form::<T>::from_request(req, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => too_large(),
                _ => Failure::invalid_input("Send an application/x-www-form-urlencoded form."),
            })?;
    Ok(raw)
}

fn required(field: Option<String>, name: &str) -> Result<String, Failure> {
    field.ok_or_else(|| Failure::invalid_input(format!("The {name} field is missing.")))
}

/// `current_password` and `new_password`.
pub struct PasswordChange {
    current: String,
    new: String,
}

#[derive(Deserialize)]
struct RawPasswordChange {
    current_password: Option<String>,
    new_password: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for PasswordChange {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw: RawPasswordChange = form_fields(req, state).await?;
        Ok(Self {
            current: required(raw.current_password, "current_password")?,
            new: required(raw.new_password, "new_password")?,
        })
    }
}

/// `password` and `confirm`.
pub struct AccountDeletion {
    password: String,
    confirm: Option<String>,
}

#[derive(Deserialize)]
struct RawAccountDeletion {
    password: Option<String>,
    confirm: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for AccountDeletion {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw: RawAccountDeletion = form_fields(req, state).await?;
        Ok(Self {
            password: required(raw.password, "password")?,
            confirm: raw.confirm,
        })
    }
}

/// Checks the signed-in user's password as login would: within the
/// address's rate and the email's lockout, a failure counted once.
async fn reauthenticate(
    state: &AuthContext,
    ClientAddress(address): ClientAddress,
    user: &UserRow,
    password: &str,
) -> Result<(), Failure> {
    match throttled_password_check(state, address, &user.email, password).await? {
        Some(found) if found.id == user.id => Ok(()),
        _ => Err(Failure::wrong_password()),
    }
}

/// `POST /api/auth/password`: a new password; every other session of the
/// user ends at once, and this one's cookie is rotated by the normal rule
/// (a tab of this browser refreshing at the same moment gets the grace
/// replay, so it stays signed in).
pub async fn change_password(
    State(state): State<AuthContext>,
    address: ClientAddress,
    auth: Authenticated,
    jar: CookieJar,
    form: Result<PasswordChange, Failure>,
) -> Result<Response, Failure> {
    let form = form?;
    // The cookie must be this session's: it is what gets rotated.
    let presented = state
        .service
        .cookies
        .read(&jar)
        .and_then(RefreshToken::parse);
    let cookie_session = match &presented {
        Some(token) => state.store.session_of(token).await?,
        None => None,
    };
    if cookie_session.as_deref() != Some(auth.session.id.as_str()) {
        return Err(Failure::new(
            ErrorCode::InvalidToken,
            "Changing the password needs this session's refresh cookie.",
        ));
    }
    check_new_password(&form.new).map_err(Failure::invalid_input)?;
    if form.new == form.current {
        return Err(Failure::invalid_input(
            "Choose a new password that differs from the current one.",
        ));
    }
    reauthenticate(&state, address, &auth.user, &form.current).await?;
    let hash = state.service.passwords.hash(&form.new).await?;
    let now = state.clock.now_ms();
    let ended = state
        .store
        .change_password(&auth.user.id, &hash, &auth.session.id, now)
        .await?;
    history::password_changed(&state, &auth.user.id, &auth.session.id, ended, now).await;
    tracing::info!(user_id = %auth.user.id, session_id = %auth.session.id, sessions_ended = ended, "password changed");
    let (tokens, cookies) = rotate(&state, &jar).await?;
    Ok((cookies::with(jar, cookies), Json(tokens)).into_response())
}

/// `POST /api/account/delete`: the user and everything of theirs removed;
/// every session dies and both cookies are cleared.
pub async fn delete_account(
    State(state): State<AuthContext>,
    address: ClientAddress,
    auth: Authenticated,
    jar: CookieJar,
    form: Result<AccountDeletion, Failure>,
) -> Result<Response, Failure> {
    let form = form?;
    if form.confirm.as_deref() != Some(DELETE_CONFIRMATION) {
        return Err(Failure::invalid_input(format!(
            "Confirm with confirm={DELETE_CONFIRMATION}: deleting the account can't be undone."
        )));
    }
    reauthenticate(&state, address, &auth.user, &form.password).await?;
    state.store.delete_user(&auth.user.id).await?;
    tracing::info!(user_id = %auth.user.id, "account deleted");
    let jar = cookies::with(jar, state.service.cookies.clear());
    Ok((jar, Json(serde_json::json!({}))).into_response())
}
