//! What the dashboard draws: the live event log and each access token's
//! life. Details never hold a token.

use std::cell::Cell;

use leptos::prelude::*;

use super::{browser::inner, AuthClient, AuthEvent, EventKind, TokenSpan};

const MAX_EVENTS: usize = 200;
const MAX_SPANS: usize = 30;

#[derive(Default)]
pub struct Journal {
    next_event_id: Cell<u64>,
}

pub fn now() -> f64 {
    js_sys::Date::now()
}

pub fn log(client: AuthClient, kind: EventKind, detail: impl Into<String>) {
    let journal = &inner(client).timeline;
    let id = journal.next_event_id.get();
    journal.next_event_id.set(id + 1);
    let event = AuthEvent {
        id,
        at: now(),
        kind,
        detail: detail.into(),
    };
    client.events.update(|events| {
        events.push(event);
        if events.len() > MAX_EVENTS {
            let excess = events.len() - MAX_EVENTS;
            events.drain(..excess);
        }
    });
}

/// A new token's bar starts; the one before it ends here.
pub fn token_issued(client: AuthClient, expires_at: f64, via: &'static str) {
    let issued_at = now();
    client.spans.update(|spans| {
        end_last(spans, issued_at);
        spans.push(TokenSpan {
            issued_at,
            expires_at,
            replaced_at: None,
            via,
        });
        if spans.len() > MAX_SPANS {
            spans.remove(0);
        }
    });
}

/// The held token is gone (dropped, or the session ended).
pub fn token_ended(client: AuthClient) {
    let at = now();
    client.spans.update(|spans| end_last(spans, at));
}

fn end_last(spans: &mut [TokenSpan], at: f64) {
    if let Some(last) = spans.last_mut() {
        last.replaced_at.get_or_insert(at);
    }
}
