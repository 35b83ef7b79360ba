//! What the tabs of this browser tell each other over a BroadcastChannel: a
//! rotated token (so a waiting tab adopts it instead of spending the cookie
//! again), a logout, and whether the server has heard that logout.

use std::cell::RefCell;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{prelude::*, JsCast};
use web_sys::{BroadcastChannel, MessageEvent};

use super::{
    browser::inner,
    session,
    timeline::now,
    token::{self, Source},
    AuthClient, LogoutReason, ServerLogout,
};
use crate::auth::model::User;

const CHANNEL_NAME: &str = "silent-refresh:auth";

#[derive(Default)]
pub struct Channel {
    channel: RefCell<Option<BroadcastChannel>>,
}

/// Carries an access token between same-origin tabs of one browser, in
/// memory only.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TabMessage {
    Rotated {
        access_token: String,
        expires_at: f64,
        lifetime: f64,
        user: User,
    },
    LoggedOut {
        reason: LogoutReason,
    },
    ServerLogout {
        outcome: ServerLogout,
    },
}

pub fn listen(client: AuthClient) {
    let Ok(channel) = BroadcastChannel::new(CHANNEL_NAME) else {
        return;
    };
    let handler = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            return;
        };
        if let Ok(message) = serde_json::from_str::<TabMessage>(&text) {
            on_message(client, message);
        }
    });
    channel.set_onmessage(Some(handler.as_ref().unchecked_ref()));
    // The client lives as long as the page.
    handler.forget();
    *inner(client).tabs.channel.borrow_mut() = Some(channel);
}

pub fn announce_rotation(
    client: AuthClient,
    access_token: &str,
    expires_at: f64,
    lifetime: f64,
    user: &User,
) {
    broadcast(
        client,
        &TabMessage::Rotated {
            access_token: access_token.to_string(),
            expires_at,
            lifetime,
            user: user.clone(),
        },
    );
}

pub fn announce_logout(client: AuthClient, reason: LogoutReason) {
    broadcast(client, &TabMessage::LoggedOut { reason });
}

pub fn announce_server_logout(client: AuthClient, outcome: ServerLogout) {
    broadcast(client, &TabMessage::ServerLogout { outcome });
}

fn broadcast(client: AuthClient, message: &TabMessage) {
    if let (Some(channel), Ok(text)) = (
        inner(client).tabs.channel.borrow().as_ref(),
        serde_json::to_string(message),
    ) {
        let _ = channel.post_message(&JsValue::from_str(&text));
    }
}

fn on_message(client: AuthClient, message: TabMessage) {
    match message {
        TabMessage::Rotated {
            access_token,
            expires_at,
            lifetime,
            user,
        } => {
            let newer = inner(client)
                .token
                .expires_at()
                .is_none_or(|held| expires_at > held);
            if newer && expires_at > now() {
                token::hold(
                    client,
                    access_token,
                    expires_at,
                    lifetime,
                    user,
                    Source::OtherTab,
                );
            }
        }
        TabMessage::LoggedOut { reason } => {
            if !client.state.get_untracked().is_signed_out() {
                // A deleted account is said as such in every tab; any other
                // choice made in another tab is "you logged out there".
                let reason = match reason {
                    LogoutReason::AccountDeleted => reason,
                    chosen if chosen.is_voluntary() => LogoutReason::OtherTab,
                    imposed => imposed,
                };
                session::end_session(client, reason, false);
            }
        }
        TabMessage::ServerLogout { outcome } => {
            // Only a tab that is logged out itself has that session to speak of.
            if client.user.get_untracked().is_none() {
                client.server_logout.set(outcome);
            }
        }
    }
}
