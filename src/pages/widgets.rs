//! Small pieces several pages share.

use leptos::prelude::*;

use crate::auth::client::{AuthEvent, AuthState, LogoutReason};

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

/// Why the person was logged out, announced.
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
        String::from(date.to_locale_string("en-GB", &wasm_bindgen::JsValue::UNDEFINED))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        rfc3339.to_string()
    }
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
