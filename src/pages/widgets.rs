//! Small pieces several pages share.

use leptos::{prelude::*, task::spawn_local};

use crate::auth::client::{use_auth, AuthEvent, AuthState, LogoutReason, ServerLogout};

/// The live event log, newest first. `limit` keeps short versions short.
#[component]
pub fn EventLog(
    events: Signal<Vec<AuthEvent>>,
    #[prop(optional)] limit: Option<usize>,
) -> impl IntoView {
    let shown = move || {
        let events = events.get();
        let take = limit.unwrap_or(events.len());
        events.into_iter().rev().take(take).collect::<Vec<_>>()
    };
    view! {
        <ol class="event-log" data-testid="event-log" aria-live="polite" aria-relevant="additions">
            <For each=shown key=|event| event.id let:event>
                <li data-testid="event" data-kind=event.kind.as_str() class=event.kind.tone()>
                    <time>{event.clock_time()}</time>
                    <span class="kind">{event.kind.label()}</span>
                    <span class="detail">{event.detail.clone()}</span>
                </li>
            </For>
        </ol>
        <Show when=move || events.with(Vec::is_empty)>
            <p class="muted small">"Nothing yet."</p>
        </Show>
    }
}

/// What the protected pages show while the page-load refresh is on the wire:
/// neither the login page nor any data.
#[component]
pub fn SessionLoading() -> impl IntoView {
    view! {
        <div class="card shell" data-testid="session-loading" aria-busy="true" role="status">
            <span class="spinner" aria-hidden="true"></span>
            <p>"Restoring your session…"</p>
        </div>
    }
}

#[cfg(feature = "hydrate")]
thread_local! {
    static HYDRATION_SETTLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Called once the first page load's hydration has run its effects.
#[cfg(feature = "hydrate")]
pub fn hydration_settled() {
    HYDRATION_SETTLED.with(|settled| settled.set(true));
}

/// A page's main heading. One that appears after the first page load (a
/// navigation within the app, or a protected page once its session is
/// back) takes focus, so a screen reader announces the new page and the
/// keyboard starts there, as after a full page load. `tabindex="-1"`:
/// focusable by script, not a tab stop.
#[component]
pub fn MainHeading(
    #[prop(optional)] id: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    let heading = NodeRef::<leptos::html::H1>::new();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(heading) = heading.get() {
            if HYDRATION_SETTLED.with(std::cell::Cell::get) {
                let _ = heading.focus();
            }
        }
    });
    view! { <h1 id=id tabindex="-1" node_ref=heading>{children()}</h1> }
}

/// The state machine as a badge.
#[component]
pub fn StateBadge(state: Signal<AuthState>) -> impl IntoView {
    let class = move || match state.get() {
        AuthState::Authenticated { .. } => "badge ok",
        AuthState::Refreshing => "badge",
        AuthState::Anonymous => "badge",
        AuthState::LoggedOut { .. } => "badge danger",
    };
    let text = move || match state.get() {
        AuthState::Authenticated { .. } => "authenticated".to_string(),
        AuthState::Refreshing => "refreshing".to_string(),
        AuthState::Anonymous => "anonymous".to_string(),
        AuthState::LoggedOut { reason } => format!("logged out: {}", reason.as_str()),
    };
    view! {
        <span class=class data-testid="auth-state" data-state=move || state.get().as_str()>
            {text}
        </span>
    }
}

/// Why the person was logged out, announced; and, when the server never
/// heard the logout, that the session is still open there, with a Retry.
#[component]
pub fn LogoutNotice(reason: LogoutReason) -> impl IntoView {
    let (class, role) = if reason.is_voluntary() {
        ("alert info", "status")
    } else {
        ("alert error", "alert")
    };
    view! {
        <div class=class role=role data-testid="logout-reason" data-reason=reason.as_str()>
            {reason.message()}
        </div>
        <ServerLogoutNotice />
    }
}

/// Shown only after a logout that did not reach the server (offline, an
/// error, no answer in time). This browser has forgotten the session either
/// way; the person must know it still works for whoever holds the cookie.
#[component]
fn ServerLogoutNotice() -> impl IntoView {
    let auth = use_auth();
    let server = auth.server_logout();
    // Set by this notice's own Retry, so its outcome shows here.
    let retried = RwSignal::new(false);
    let retry = move |_| {
        retried.set(true);
        spawn_local(auth.retry_logout());
    };
    move || match server.get() {
        ServerLogout::Done if retried.get() => view! {
            <div class="alert info" role="status" data-testid="logout-confirmed">
                "The server has now ended this session too."
            </div>
        }
        .into_any(),
        ServerLogout::Done => ().into_any(),
        ServerLogout::Sending if !retried.get() => ().into_any(),
        state => {
            let sending = state == ServerLogout::Sending;
            view! {
                <div class="alert error" role="alert" data-testid="logout-still-open"
                    data-state=state.as_str()>
                    <p>
                        <strong>"Your session is still open on the server."</strong>
                        " The logout did not reach it, so this browser has forgotten the session (a reload won't sign you back in), but the server has not ended it yet."
                    </p>
                    <button class="button small" data-testid="retry-logout"
                        disabled=sending aria-busy=sending.to_string() on:click=retry>
                        {if sending { "Retrying…" } else { "Retry" }}
                    </button>
                </div>
            }
            .into_any()
        }
    }
}

/// An RFC 3339 time in the reader's locale (raw on the server, which never
/// renders protected data anyway).
pub fn local_time(rfc3339: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(rfc3339));
        if date.get_time().is_nan() {
            return rfc3339.to_string();
        }
        wasm_bindgen::JsCast::unchecked_ref::<ReadersDate>(&date).to_locale_string()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        rfc3339.to_string()
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A `Date`, seen through a binding of `toLocaleString()` with no
    /// arguments (js-sys binds it only with a locale, and `""` is no locale).
    type ReadersDate;

    /// In the browser's own locale: the reader's.
    #[wasm_bindgen(method, js_name = toLocaleString)]
    fn to_locale_string(this: &ReadersDate) -> String;
}

/// `now` in milliseconds since the epoch, ticking every `every_ms` while the
/// calling view is mounted (the server renders a fixed value).
pub fn ticking_now(every_ms: u64) -> ReadSignal<f64> {
    let (now, set_now) = signal(current_time());
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || set_now.set(current_time()),
            std::time::Duration::from_millis(every_ms),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    now
}

pub fn current_time() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}
