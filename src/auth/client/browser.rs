//! The browser half of the client: what each tab keeps, and its start-up.
//!
//! One concern per file:
//! - `calls.rs`: a protected call, and where a 401 becomes a refresh (the
//!   single flight, the cross-tab lock, the deadline, the backoff).
//! - `token.rs`: the held token and its proactive renewal.
//! - `session.rs`: login, register, logout, and the one place a session ends.
//! - `tabs.rs`: what the tabs of this browser tell each other.
//! - `wakeups.rs`: renewing when the tab shows or the network returns.
//! - `timeline.rs`: the event log and the token spans the dashboard draws.
//! - `fetch.rs`, `flight.rs`, `web_lock.rs`: deadlines, single flight, the lock.

use std::rc::Rc;

use leptos::{prelude::*, task::spawn_local};

use super::{calls, tabs, timeline, token, wakeups, AuthClient};

/// Everything a tab's client keeps besides its signals, grouped by owner.
#[derive(Default)]
pub struct Inner {
    pub(super) token: token::Holder,
    pub(super) refresh: calls::RefreshState,
    pub(super) tabs: tabs::Channel,
    pub(super) timeline: timeline::Journal,
}

impl Inner {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }
}

pub(super) fn inner(client: AuthClient) -> Rc<Inner> {
    client.inner.get_value()
}

pub fn start(client: AuthClient, probably_signed_in: bool) {
    tabs::listen(client);
    wakeups::listen(client);
    if probably_signed_in {
        // The token died with the last page; the refresh cookie may still live.
        spawn_local(async move {
            let _ = calls::refresh(client, 0, "page load").await;
        });
    }
}
