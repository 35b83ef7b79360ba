//! The security history on the sessions page, and the notice a sign-in
//! shows after reuse detection ended a session since the one before.

use leptos::{prelude::*, task::spawn_local};

use super::widgets::local_time;
use crate::auth::{
    client::{encode_query_value, use_auth},
    model::{ApiError, History, SecurityEvent, SecurityEventKind},
};

/// The reuse detection this sign-in hasn't been told of: a `token_reused`
/// event between `session_id`'s own sign-in and the sign-in before it.
/// `events` newest first, as the API pages them.
pub fn reuse_since_last_sign_in<'a>(
    events: &'a [SecurityEvent],
    session_id: &str,
) -> Option<&'a SecurityEvent> {
    let mine = events.iter().position(|e| {
        e.kind == SecurityEventKind::SignedIn && e.session_id.as_deref() == Some(session_id)
    })?;
    events[mine + 1..]
        .iter()
        .take_while(|e| e.kind != SecurityEventKind::SignedIn)
        .find(|e| e.kind == SecurityEventKind::TokenReused)
}

/// After a sign-in that follows a reuse detection: what happened and what
/// to do. `session_id` is this session's.
#[component]
pub fn ReuseNotice(session_id: String) -> impl IntoView {
    let auth = use_auth();
    let found = RwSignal::new(None::<SecurityEvent>);
    let dismissed = RwSignal::new(false);
    Effect::new(move |_| {
        let session_id = session_id.clone();
        spawn_local(async move {
            if let Ok(page) = auth.get_json::<History>("/api/account/history").await {
                let event = reuse_since_last_sign_in(&page.events, &session_id).cloned();
                found.try_set(event);
            }
        });
    });
    move || {
        found.get().filter(|_| !dismissed.get()).map(|event| {
            view! {
                <div class="alert error reuse-notice" role="alert" data-testid="reuse-notice">
                    <p><strong>"A session of yours was ended to protect you."</strong></p>
                    <p>
                        "On " {local_time(&event.at)}
                        ", a refresh token was used a second time. Each one is good for one use, so a second use means someone may have a copy of it (from a stolen cookie or a compromised device). That session was ended on every device, which is why you had to sign in again."
                    </p>
                    <p>
                        "If that wasn't you (two tabs or a restored browser can look like it, rarely), "
                        <a href="/account">"change your password"</a>
                        ": it ends every other session at once. The sessions page shows where you are signed in."
                    </p>
                    <button class="button small secondary" data-testid="dismiss-reuse-notice"
                        on:click=move |_| dismissed.set(true)>
                        "Got it"
                    </button>
                </div>
            }
        })
    }
}

/// The caller's security history, newest first, 50 at a time.
#[component]
pub fn SecurityHistory() -> impl IntoView {
    let auth = use_auth();
    let events = RwSignal::new(Vec::<SecurityEvent>::new());
    let next = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<ApiError>);
    let loaded = RwSignal::new(false);
    let busy = RwSignal::new(false);

    let load = move |before: Option<String>| {
        busy.set(true);
        spawn_local(async move {
            let path = match &before {
                Some(id) => format!("/api/account/history?before={}", encode_query_value(id)),
                None => "/api/account/history".to_string(),
            };
            match auth.get_json::<History>(&path).await {
                Ok(page) => {
                    events.try_update(|list| {
                        if before.is_none() {
                            list.clear();
                        }
                        list.extend(page.events);
                    });
                    next.try_set(page.next);
                    error.try_set(None);
                }
                Err(e) => {
                    error.try_set(Some(e));
                }
            }
            loaded.try_set(true);
            busy.try_set(false);
        });
    };
    Effect::new(move |_| load(None));

    let rows = move || {
        events
            .get()
            .into_iter()
            .map(|event| {
                let tone = match event.kind {
                    SecurityEventKind::TokenReused | SecurityEventKind::LockedOut => "danger",
                    SecurityEventKind::SessionRevoked | SecurityEventKind::PasswordChanged => {
                        "warn"
                    }
                    _ => "",
                };
                view! {
                    <li data-testid="history-event" data-kind=event.kind.as_str()>
                        <time datetime=event.at.clone()>{local_time(&event.at)}</time>
                        <span class=format!("badge {tone}")>{event.kind.label()}</span>
                        <span class="detail">{event.detail.clone()}</span>
                    </li>
                }
            })
            .collect_view()
    };

    view! {
        <section class="card" aria-labelledby="history-title">
            <h2 id="history-title">"Security history"</h2>
            <p class="muted small">
                "Sign-ins, sign-outs, ended sessions, password changes and anything the server stopped, newest first."
            </p>
            {move || error.get().map(|e| view! {
                <div class="alert error" role="alert">{e.message}</div>
            })}
            {move || (!loaded.get()).then(|| view! { <p class="muted" role="status">"Loading…"</p> })}
            <ol class="history" data-testid="history">{rows}</ol>
            {move || next.get().map(|before| view! {
                <button class="button small secondary" data-testid="history-more"
                    disabled=move || busy.get()
                    on:click=move |_| load(Some(before.clone()))>
                    "Show older events"
                </button>
            })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: SecurityEventKind, session: &str) -> SecurityEvent {
        SecurityEvent {
            id: String::new(),
            at: "2026-12-01T10:00:00Z".into(),
            kind,
            session_id: Some(session.into()),
            detail: String::new(),
        }
    }

    #[test]
    fn reuse_counts_only_between_this_sign_in_and_the_one_before() {
        use SecurityEventKind::*;
        let newest_first = [
            event(SignedIn, "other-device"),
            event(SignedIn, "this"),
            event(SignedOut, "a"),
            event(TokenReused, "old"),
            event(SignedIn, "old"),
        ];
        assert!(reuse_since_last_sign_in(&newest_first, "this").is_some());
        // A sign-in since the reuse has been told already.
        assert!(reuse_since_last_sign_in(&newest_first[..], "other-device").is_none());
        let told_before = [
            event(SignedIn, "this"),
            event(SignedIn, "between"),
            event(TokenReused, "old"),
        ];
        assert!(reuse_since_last_sign_in(&told_before, "this").is_none());
        // This session's sign-in not on the page: nothing to say.
        assert!(reuse_since_last_sign_in(&told_before, "elsewhere").is_none());
    }
}
