//! The auth endpoints. Plain axum handlers where the contract needs control
//! over failures before a body runs (a missing form field must be a 400);
//! refresh is the server function in `api.rs`, whose body is here.
//! Every answer gets `Cache-Control: no-store` from the security-headers
//! middleware, like every dynamic response.

use axum::{
    extract::{FromRequest, Path, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Form, Json,
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::clock::rfc3339;

use super::bearer::Authenticated;
use super::cookies;
use super::error::Failure;
use super::guard::{too_large, ClientAddress};
use super::history;
use super::model::{ApiError, Dashboard, ErrorCode, Session, TokenResponse, User};
use super::refresh::RefreshToken;
use super::state::AuthContext;
use super::store::{CreateError, RevokeReason, RotateError, UserRow};
use super::throttle::Attempt;
use super::validate::{check_new_password, email_key, parse_email, PASSWORD_MAX_BYTES};

/// Longest user agent kept with a session.
const USER_AGENT_MAX: usize = 256;

/// `email`, `password` and `remember` from a form body. Missing fields are
/// caught here so they answer 400 rather than failing inside the framework.
pub struct CredentialFields {
    pub email: String,
    pub password: String,
    /// "Keep me signed in" (`remember=1`, or no field: the API's default).
    pub remember: bool,
}

#[derive(Deserialize)]
struct RawCredentials {
    email: Option<String>,
    password: Option<String>,
    remember: Option<String>,
}

/// The API's `remember`: `1` or absent keeps the session across browser
/// restarts, `0` ends it with the browser.
fn parse_remember(value: Option<&str>) -> Result<bool, Failure> {
    match value {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(_) => Err(Failure::invalid_input("The remember field must be 0 or 1.")),
    }
}

impl<S: Send + Sync> FromRequest<S> for CredentialFields {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Form(raw) = Form::<RawCredentials>::from_request(req, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => too_large(),
                _ => Failure::invalid_input(
                    "Send email and password as an application/x-www-form-urlencoded form.",
                ),
            })?;
        let remember = parse_remember(raw.remember.as_deref())?;
        match (raw.email, raw.password) {
            (Some(email), Some(password)) => Ok(Self {
                email,
                password,
                remember,
            }),
            (None, _) => Err(Failure::invalid_input("The email field is missing.")),
            (_, None) => Err(Failure::invalid_input("The password field is missing.")),
        }
    }
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let agent = headers.get(header::USER_AGENT)?.to_str().ok()?.trim();
    (!agent.is_empty()).then(|| agent.chars().take(USER_AGENT_MAX).collect())
}

fn rate_limited(wait: std::time::Duration) -> Failure {
    Failure::new(
        ErrorCode::RateLimited,
        format!(
            "Too many attempts. Try again in {}.",
            humantime::format_duration(std::time::Duration::from_secs(wait.as_secs().max(1)))
        ),
    )
    .retry_after(wait)
}

/// A session just started: the cookies to set and the body the API sends.
/// The pages' forms (`forms.rs`) set the cookies and drop the body.
pub struct SignedIn {
    pub jar: CookieJar,
    pub tokens: TokenResponse,
}

impl IntoResponse for SignedIn {
    fn into_response(self) -> Response {
        (self.jar, Json(self.tokens)).into_response()
    }
}

/// Starts a session: its refresh cookie, hint cookie and access token.
async fn sign_in(
    state: &AuthContext,
    jar: CookieJar,
    user: &UserRow,
    (headers, address): (&HeaderMap, std::net::IpAddr),
    remember: bool,
) -> Result<SignedIn, Failure> {
    let now = state.clock.now_ms();
    let agent = user_agent(headers);
    let from = address.to_string();
    let issued = state
        .store
        .start_session(&user.id, (agent.as_deref(), &from), remember, now)
        .await?;
    history::signed_in(
        state,
        user,
        &issued.session_id,
        agent.as_deref(),
        address,
        remember,
        now,
    )
    .await;
    let access = state
        .service
        .access
        .issue(&user.id, &issued.session_id, now);
    tracing::info!(user_id = %user.id, session_id = %issued.session_id, remember, "session started");
    let jar = cookies::with(
        jar,
        state
            .service
            .cookies
            .issue(issued.token.encode(), issued.cookie_max_age),
    );
    let tokens = TokenResponse {
        access_token: access.token,
        token_type: "Bearer".into(),
        expires_in: access.expires_in,
        user: user.to_user(),
    };
    Ok(SignedIn { jar, tokens })
}

/// What register does first: a well-formed form from an address that is
/// still within its rate (login's check does the same, with the lockout).
async fn admit(
    state: &AuthContext,
    address: std::net::IpAddr,
    form: Result<CredentialFields, Failure>,
) -> Result<(CredentialFields, crate::clock::Millis), Failure> {
    let form = form?;
    let now = state.clock.now_ms();
    state
        .service
        .throttle
        .check_rate(address, now)
        .await?
        .map_err(rate_limited)?;
    Ok((form, now))
}

pub async fn register(
    State(state): State<AuthContext>,
    address: ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<CredentialFields, Failure>,
) -> Result<SignedIn, Failure> {
    create_account(&state, address, &headers, jar, form).await
}

/// Register's rules, shared by the API and the register page's form.
pub async fn create_account(
    state: &AuthContext,
    ClientAddress(address): ClientAddress,
    headers: &HeaderMap,
    jar: CookieJar,
    form: Result<CredentialFields, Failure>,
) -> Result<SignedIn, Failure> {
    let (form, now) = admit(state, address, form).await?;
    let email = parse_email(&form.email).map_err(Failure::invalid_input)?;
    check_new_password(&form.password).map_err(Failure::invalid_input)?;
    let hash = state.service.passwords.hash(&form.password).await?;
    let user = match state.store.create_user(&email, &hash, now).await {
        Ok(user) => user,
        Err(CreateError::EmailTaken) => {
            return Err(Failure::new(
                ErrorCode::EmailTaken,
                "An account with this email already exists. Sign in instead.",
            ))
        }
        Err(CreateError::Database(e)) => return Err(e.into()),
    };
    tracing::info!(user_id = %user.id, "account created");
    sign_in(state, jar, &user, (headers, address), form.remember).await
}

pub async fn login(
    State(state): State<AuthContext>,
    address: ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<CredentialFields, Failure>,
) -> Result<SignedIn, Failure> {
    log_in(&state, address, &headers, jar, form).await
}

/// Login's rules, shared by the API and the login page's form.
pub async fn log_in(
    state: &AuthContext,
    ClientAddress(address): ClientAddress,
    headers: &HeaderMap,
    jar: CookieJar,
    form: Result<CredentialFields, Failure>,
) -> Result<SignedIn, Failure> {
    let form = form?;
    match throttled_password_check(state, address, &form.email, &form.password).await? {
        Some(user) => sign_in(state, jar, &user, (headers, address), form.remember).await,
        None => Err(Failure::new(
            ErrorCode::InvalidCredentials,
            "The email or password is incorrect.",
        )),
    }
}

/// The password check of login, and of the account calls that ask for the
/// password again: within the address's rate and the email's lockout (429
/// otherwise), the verdict counted once in the throttle. The account, or
/// `None` for a wrong password or an unknown email.
pub(super) async fn throttled_password_check(
    state: &AuthContext,
    address: std::net::IpAddr,
    email: &str,
    password: &str,
) -> Result<Option<UserRow>, Failure> {
    let now = state.clock.now_ms();
    state
        .service
        .throttle
        .check_rate(address, now)
        .await?
        .map_err(rate_limited)?;
    let key = email_key(email);
    let mut attempt = state
        .service
        .throttle
        .begin(&key, address, now)
        .await?
        .map_err(rate_limited)?;
    match check_password(state, &key, password, &mut attempt).await {
        Ok(Some(user)) => {
            attempt.succeeded().await?;
            Ok(Some(user))
        }
        Ok(None) => {
            let failed_at = state.clock.now_ms();
            let lockout = attempt.failed(failed_at).await?;
            tracing::info!(%address, "password check failed");
            if let Some(lockout) = lockout {
                history::locked_out(state, &key, address, lockout, failed_at).await;
            }
            Ok(None)
        }
        // A 503 (database, hashing slots), before the check or during it:
        // no verdict, so the attempt counts nothing.
        Err(failure) => {
            if let Err(e) = attempt.unavailable().await {
                tracing::warn!(error = %e, "could not end a login attempt; its lease will run out");
            }
            Err(failure)
        }
    }
}

/// The account whose password this is, if any. Unknown email and wrong
/// password take the same path and time.
async fn check_password(
    state: &AuthContext,
    key: &str,
    password: &str,
    attempt: &mut Attempt,
) -> Result<Option<UserRow>, Failure> {
    let account = state.store.credentials(key).await?;
    let password = if password.len() > PASSWORD_MAX_BYTES {
        ""
    } else {
        password
    };
    let slot = state.service.passwords.slot().await?;
    // From here a request dropped before its verdict counts as a failure.
    attempt.checking(state.clock.now_ms());
    let stored = account.as_ref().map(|a| a.password_hash.as_str());
    let verified = slot.verify(password, stored).await?;
    Ok(account
        .filter(|_| verified && !password.is_empty())
        .map(|account| account.user))
}

/// Revokes the cookie's session (if any) and clears the cookies; always 200
/// unless the database can't be written.
pub async fn logout(State(state): State<AuthContext>, jar: CookieJar) -> Result<Response, Failure> {
    let presented = state
        .service
        .cookies
        .read(&jar)
        .and_then(RefreshToken::parse);
    if let Some(token) = presented {
        if let Some(session_id) = state.store.session_of(&token).await? {
            let now = state.clock.now_ms();
            if state
                .store
                .revoke(&session_id, RevokeReason::Logout, now)
                .await?
            {
                history::signed_out(&state, &session_id, now).await;
            }
            tracing::info!(%session_id, "logged out");
        }
    }
    let jar = cookies::with(jar, state.service.cookies.clear());
    Ok((jar, Json(serde_json::json!({}))).into_response())
}

pub async fn me(auth: Authenticated) -> Json<User> {
    Json(auth.user.to_user())
}

impl Authenticated {
    /// This user's live sessions, newest first, the caller's marked current.
    async fn live_sessions(&self, state: &AuthContext) -> Result<Vec<Session>, Failure> {
        let now = state.clock.now_ms();
        Ok(state
            .store
            .list_live(&self.user.id, &self.session.id, now)
            .await?)
    }
}

/// The session with its browser named from its user agent, for the
/// answers that show it (parsing it costs a few microseconds).
fn with_device(session: Session) -> Session {
    Session {
        device: session
            .user_agent
            .as_deref()
            .and_then(super::device::describe),
        ..session
    }
}

pub async fn dashboard(
    State(state): State<AuthContext>,
    auth: Authenticated,
) -> Result<Json<Dashboard>, Failure> {
    let live_sessions = auth.live_sessions(&state).await?.len() as u32;
    Ok(Json(Dashboard {
        user: auth.user.to_user(),
        session: with_device(auth.session),
        access_token_expires_at: rfc3339(auth.claims.exp * 1000),
        server_time: rfc3339(state.clock.now_ms()),
        live_sessions,
    }))
}

pub async fn list_sessions(
    State(state): State<AuthContext>,
    auth: Authenticated,
) -> Result<Json<Vec<Session>>, Failure> {
    let sessions = auth.live_sessions(&state).await?;
    Ok(Json(sessions.into_iter().map(with_device).collect()))
}

pub async fn revoke_session(
    State(state): State<AuthContext>,
    auth: Authenticated,
    Path(session_id): Path<String>,
) -> Result<StatusCode, Failure> {
    let now = state.clock.now_ms();
    // Another user's session, or a dead one, is simply not found.
    if !state
        .store
        .is_live_of(&auth.user.id, &session_id, now)
        .await?
    {
        return Err(Failure::new(ErrorCode::NotFound, "No such live session."));
    }
    if state
        .store
        .revoke(&session_id, RevokeReason::Revoked, now)
        .await?
    {
        history::session_revoked(&state, &session_id, now).await;
    }
    tracing::info!(%session_id, user_id = %auth.user.id, "session revoked");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_all_sessions(
    State(state): State<AuthContext>,
    auth: Authenticated,
) -> Result<StatusCode, Failure> {
    let now = state.clock.now_ms();
    let count = state.store.revoke_all(&auth.user.id, now).await?;
    history::logged_out_everywhere(&state, &auth.user.id, &auth.session.id, count, now).await;
    tracing::info!(user_id = %auth.user.id, count, "all sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of the refresh server function: rotate the cookie's token.
pub async fn refresh_server_fn() -> Result<TokenResponse, ApiError> {
    use leptos::prelude::expect_context;
    use leptos_axum::ResponseOptions;

    let state = expect_context::<AuthContext>();
    let response = expect_context::<ResponseOptions>();
    let jar: CookieJar = leptos_axum::extract().await.unwrap_or_default();
    let outcome = rotate(&state, &jar).await;

    response.insert_header(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let set_cookies = match &outcome {
        Ok((_, cookies)) => Some(cookies.clone()),
        // The cookie is worthless now: tell the browser to drop it.
        Err(failure) if failure.code.ends_session() => Some(state.service.cookies.clear()),
        // A database fault keeps the cookie: the client retries later.
        Err(_) => None,
    };
    for cookie in set_cookies.into_iter().flatten() {
        if let Ok(value) = header::HeaderValue::from_str(&cookie.to_string()) {
            response.append_header(header::SET_COOKIE, value);
        }
    }
    outcome.map(|(body, _)| body).map_err(|failure| {
        response.set_status(failure.status());
        if let Some(wait) = failure.retry_after {
            response.insert_header(header::RETRY_AFTER, super::error::retry_after_header(wait));
        }
        failure.body()
    })
}

pub(super) type Cookies = [axum_extra::extract::cookie::Cookie<'static>; 2];

pub(super) async fn rotate(
    state: &AuthContext,
    jar: &CookieJar,
) -> Result<(TokenResponse, Cookies), Failure> {
    let invalid = || {
        Failure::new(
            ErrorCode::InvalidToken,
            "No valid refresh token was presented.",
        )
    };
    let presented = state
        .service
        .cookies
        .read(jar)
        .and_then(RefreshToken::parse)
        .ok_or_else(invalid)?;
    let now = state.clock.now_ms();
    let rotated = state.store.rotate(&presented, now).await;
    if let Err(RotateError::Reused {
        session_id,
        just_detected: true,
    }) = &rotated
    {
        history::token_reused(state, session_id, now).await;
    }
    let (issued, user) = rotated.map_err(|e| match e {
            RotateError::Unknown => invalid(),
            RotateError::Expired => Failure::new(
                ErrorCode::SessionExpired,
                "The session has expired; sign in again.",
            ),
            RotateError::Revoked => Failure::new(
                ErrorCode::SessionRevoked,
                "The session has ended; sign in again.",
            ),
            RotateError::Reused { .. } => Failure::new(
                ErrorCode::TokenReused,
                "This refresh token was already used, so the session was ended to protect you. Sign in again.",
            ),
            RotateError::Database(e) => e.into(),
        })?;
    let access = state
        .service
        .access
        .issue(&issued.user_id, &issued.session_id, now);
    let cookies = state
        .service
        .cookies
        .issue(issued.token.encode(), issued.cookie_max_age);
    Ok((
        TokenResponse {
            access_token: access.token,
            token_type: "Bearer".into(),
            expires_in: access.expires_in,
            user: user.to_user(),
        },
        cookies,
    ))
}
