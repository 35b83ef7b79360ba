//! Background tabs get their timers throttled, and a laptop lid stops them:
//! check the token again when the tab shows or the network comes back.

use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{prelude::*, JsCast};

use super::{browser::inner, calls, token, AuthClient};

pub fn listen(client: AuthClient) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let on_visibility = Closure::<dyn FnMut()>::new(move || {
        let visible = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
        if visible {
            wake(client);
        }
    });
    let on_online = Closure::<dyn FnMut()>::new(move || wake(client));
    if let Some(document) = window.document() {
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visibility.as_ref().unchecked_ref(),
        );
    }
    let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
    // The client lives as long as the page.
    on_visibility.forget();
    on_online.forget();
}

fn wake(client: AuthClient) {
    let inner = inner(client);
    if client.state.get_untracked().is_signed_out() || inner.refresh.is_running() {
        return;
    }
    if client.user.get_untracked().is_none() || !client.proactive.get_untracked() {
        return;
    }
    if inner.token.is_fresh() {
        token::reschedule(client);
        return;
    }
    let generation = inner.token.generation();
    spawn_local(async move {
        let _ = calls::refresh(client, generation, "tab woke up with a stale token").await;
    });
}
