//! Every request this client sends has a deadline. A fetch that never
//! answers would otherwise hold the Web Lock and the single flight, and
//! every call in every tab would wait on it for ever.
//!
//! Plain calls go through [`Outgoing`]: an `AbortController` aborts the fetch
//! (and the reading of its body) when the deadline passes, or when the
//! caller goes away. The refresh server function carries its own
//! `AbortController`, which aborts when its future is dropped; [`within`]
//! drops it at the deadline.

use std::{cell::Cell, future::Future, pin::pin, rc::Rc, task::Poll};

use gloo_timers::{callback::Timeout, future::TimeoutFuture};
use js_sys::futures::JsFuture;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, Headers, RequestInit, Response};

use crate::auth::model::{ApiError, ErrorCode};

/// A protected call (`GET /api/me`, `DELETE /api/sessions/…`).
pub const CALL_DEADLINE_MS: u32 = 15_000;
/// Login and register: the password check may queue behind others.
pub const CREDENTIALS_DEADLINE_MS: u32 = 30_000;
/// Refresh: past the server's 5 s database busy timeout, and short enough
/// that the retry after a lost answer still lands in the reuse grace window.
pub const REFRESH_DEADLINE_MS: u32 = 8_000;
/// Logout: the person is waiting to hear whether it reached the server.
pub const LOGOUT_DEADLINE_MS: u32 = 8_000;

/// What came back, body read in full (within the deadline).
pub struct Answer {
    status: u16,
    retry_after_secs: Option<u64>,
    body: String,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Retry-After` in seconds, when the server sent one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_str(&self.body).map_err(|_| {
            ApiError::new(ErrorCode::Unknown, "The server's answer could not be read.")
        })
    }

    /// The API's `{error, message}` body, or a plain description of the status.
    pub fn error(&self) -> ApiError {
        serde_json::from_str(&self.body).unwrap_or_else(|_| {
            ApiError::new(
                ErrorCode::Unknown,
                format!(
                    "The server answered {} without a usable error.",
                    self.status
                ),
            )
        })
    }
}

/// One request to the API. Not `Debug`: it may carry the access token.
pub struct Outgoing {
    method: &'static str,
    path: String,
    bearer: Option<String>,
    form: Option<String>,
    keepalive: bool,
    deadline_ms: u32,
}

impl Outgoing {
    pub fn new(method: &'static str, path: &str, deadline_ms: u32) -> Self {
        Self {
            method,
            path: path.to_string(),
            bearer: None,
            form: None,
            keepalive: false,
            deadline_ms,
        }
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(format!("Bearer {token}"));
        self
    }

    /// An `application/x-www-form-urlencoded` body, already encoded.
    pub fn form(mut self, body: String) -> Self {
        self.form = Some(body);
        self
    }

    /// The browser finishes sending it even if the page goes away meanwhile
    /// (a logout clicked as the tab closes).
    pub fn keepalive(mut self) -> Self {
        self.keepalive = true;
        self
    }

    pub async fn send(self) -> Result<Answer, ApiError> {
        let deadline = Deadline::start(self.deadline_ms)?;
        let init = self.init(&deadline).map_err(|_| network_error())?;
        let window = web_sys::window().ok_or_else(network_error)?;
        let exchange = async {
            let response: Response =
                JsFuture::from(window.fetch_with_str_and_init(&self.path, &init))
                    .await?
                    .dyn_into()?;
            let retry_after_secs = response
                .headers()
                .get("Retry-After")
                .ok()
                .flatten()
                .and_then(|value| value.trim().parse::<u64>().ok());
            let body = JsFuture::from(response.text()?)
                .await?
                .as_string()
                .unwrap_or_default();
            Ok::<_, JsValue>(Answer {
                status: response.status(),
                retry_after_secs,
                body,
            })
        };
        exchange.await.map_err(|_| deadline.failure())
    }

    fn init(&self, deadline: &Deadline) -> Result<RequestInit, JsValue> {
        let headers = Headers::new()?;
        headers.set("Accept", "application/json")?;
        if let Some(bearer) = &self.bearer {
            headers.set("Authorization", bearer)?;
        }
        let init = RequestInit::new();
        init.set_method(self.method);
        if let Some(form) = &self.form {
            headers.set("Content-Type", "application/x-www-form-urlencoded")?;
            init.set_body(&JsValue::from_str(form));
        }
        init.set_headers(&headers);
        init.set_signal(Some(&deadline.controller.signal()));
        if self.keepalive {
            // Not in web-sys's `RequestInit` yet; it is a plain dictionary member.
            js_sys::Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE)?;
        }
        Ok(init)
    }
}

/// Aborts the request when the time is up, or when dropped before that
/// (the caller went away: nobody will read the answer).
struct Deadline {
    controller: AbortController,
    expired: Rc<Cell<bool>>,
    ms: u32,
    _timer: Timeout,
}

impl Deadline {
    fn start(ms: u32) -> Result<Self, ApiError> {
        let controller = AbortController::new().map_err(|_| network_error())?;
        let expired = Rc::new(Cell::new(false));
        let timer = {
            let (controller, expired) = (controller.clone(), expired.clone());
            Timeout::new(ms, move || {
                expired.set(true);
                controller.abort();
            })
        };
        Ok(Self {
            controller,
            expired,
            ms,
            _timer: timer,
        })
    }

    /// Why the exchange failed: our deadline, or the network.
    fn failure(&self) -> ApiError {
        if self.expired.get() {
            timed_out(self.ms)
        } else {
            network_error()
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        // A no-op once the body has been read.
        self.controller.abort();
    }
}

/// Runs `work` for at most `ms`; `None` when time ran out (and `work`,
/// dropped, is cancelled).
pub async fn within<T>(ms: u32, work: impl Future<Output = T>) -> Option<T> {
    let mut work = pin!(work);
    let mut timer = pin!(TimeoutFuture::new(ms));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

pub fn network_error() -> ApiError {
    ApiError::new(
        ErrorCode::NetworkError,
        "The server could not be reached. Check your connection and try again.",
    )
}

const NO_ANSWER: &str = "The server did not answer within";

/// A transient failure like any network error: the session is not judged by it.
pub fn timed_out(ms: u32) -> ApiError {
    ApiError::new(
        ErrorCode::NetworkError,
        format!(
            "{NO_ANSWER} {} s. Try again in a moment.",
            ms.div_ceil(1000)
        ),
    )
}

pub fn is_timeout(error: &ApiError) -> bool {
    error.error == ErrorCode::NetworkError && error.message.starts_with(NO_ANSWER)
}
