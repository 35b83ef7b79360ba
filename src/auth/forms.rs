//! The login and register pages' own form endpoints, `POST /login` and
//! `POST /register`. They serve a browser that posts the form itself:
//! JavaScript off, or a submit before the WASM has loaded. The answer is
//! always a 303 to a page, never JSON, and never carries the access token
//! (the page that loads next gets one with its page-load refresh).
//!
//! Success goes to the form's `next` (same origin only) with the cookies
//! set; failure goes back to the form with `?error=<code>`, which the page
//! turns into the same message the script path shows. Only codes travel in
//! the URL, never text, so nobody can make the page say what they like.

use axum::{
    extract::{FromRequest, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Form,
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::error::{retry_after_secs, Failure};
use super::guard::{is_cross_site_page_form, ClientAddress};
use super::handlers::{self, CredentialFields, SignedIn};
use super::model::{form_query, ErrorCode};
use super::next::safe_next;
use super::state::AuthContext;

#[derive(Clone, Copy)]
enum Page {
    Login,
    Register,
}

impl Page {
    fn path(self) -> &'static str {
        match self {
            Self::Login => "/login",
            Self::Register => "/register",
        }
    }
}

/// Every field optional: a missing one is a message on the page, not a 4xx.
#[derive(Deserialize, Default)]
struct PageForm {
    email: Option<String>,
    password: Option<String>,
    next: Option<String>,
    /// The "keep me signed in" checkbox: a browser sends `remember=1` when
    /// it is ticked and nothing when it isn't, so here (unlike the API,
    /// where no field keeps the old default) no field means "don't".
    remember: Option<String>,
}

pub async fn login(
    State(state): State<AuthContext>,
    address: ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    req: Request,
) -> Response {
    submit(Page::Login, state, address, headers, jar, req).await
}

pub async fn register(
    State(state): State<AuthContext>,
    address: ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    req: Request,
) -> Response {
    submit(Page::Register, state, address, headers, jar, req).await
}

async fn submit(
    page: Page,
    state: AuthContext,
    address: ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    req: Request,
) -> Response {
    // Refused before the body is read: another site's form changes nothing.
    if is_cross_site_page_form(&headers, &state.service.allowed_origins) {
        return back_to(page, None, &Failure::new(ErrorCode::ForbiddenOrigin, ""));
    }
    let form = match Form::<PageForm>::from_request(req, &state).await {
        Ok(Form(form)) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return back_to(page, None, &Failure::new(ErrorCode::PayloadTooLarge, ""))
        }
        Err(_) => PageForm::default(),
    };
    let next = safe_next(form.next.clone());
    let remember = form.remember.as_deref() == Some("1");
    let fields = match (form.email, form.password) {
        (Some(email), Some(password)) => Ok(CredentialFields {
            email,
            password,
            remember,
        }),
        (None, _) => Err(Failure::invalid_input("The email field is missing.")),
        (_, None) => Err(Failure::invalid_input("The password field is missing.")),
    };
    let outcome = match page {
        Page::Login => handlers::log_in(&state, address, &headers, jar, fields).await,
        Page::Register => handlers::create_account(&state, address, &headers, jar, fields).await,
    };
    match outcome {
        Ok(SignedIn { jar, .. }) => (jar, see_other(&next)).into_response(),
        Err(failure) => back_to(page, Some(&next), &failure),
    }
}

/// A 303 to `location`, which is always a path of this site.
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Back to the form page with the failure's code (and what the page needs
/// to explain it), keeping where the person was going.
fn back_to(page: Page, next: Option<&str>, failure: &Failure) -> Response {
    let mut query = vec![(form_query::ERROR, failure.code.as_str().to_string())];
    if failure.code == ErrorCode::InvalidInput {
        let message = failure.message.to_lowercase();
        let field = if message.contains("password") {
            "password"
        } else {
            "email"
        };
        query.push((form_query::FIELD, field.to_string()));
    }
    if let Some(wait) = failure.retry_after {
        query.push((form_query::WAIT, retry_after_secs(wait).to_string()));
    }
    if let Some(next) = next.filter(|next| *next != safe_next(None)) {
        query.push((form_query::NEXT, next.to_string()));
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    see_other(&format!("{}?{query}", page.path()))
}
