//! What bounds login from outside: the hashing slots (a 503 when all are
//! busy, which the throttle does not count) and the throttle's memory (an
//! over-long email costs it a bounded key).

mod common;

use axum::http::StatusCode;
use silent_refresh::auth::{password::Slot, validate::EMAIL_KEY_MAX_BYTES};

use common::{unique_email, TestApp, PASSWORD};

/// Takes every hashing slot now free.
async fn hold_every_slot(app: &TestApp) -> Vec<Slot> {
    let passwords = &app.state.auth.service.passwords;
    let mut held = Vec::new();
    while passwords.available_slots() > 0 {
        held.push(passwords.slot().await.unwrap());
    }
    held
}

// Waits out the server's slot wait (5 s): the app offers no way to shorten
// it. The unit tests in password.rs pin the same answer with a short wait.
#[tokio::test]
async fn login_answers_503_with_retry_after_while_every_hashing_slot_is_busy() {
    // One counted failure would lock this pair: the 503 must not count.
    let app = TestApp::with(&[("LOGIN_MAX_FAILURES", "1")]).await;
    let email = unique_email("slots");
    app.register(&email).await;

    let held = hold_every_slot(&app).await;
    let busy = app.login_reply(&email, PASSWORD).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.code(), "unavailable");
    assert_eq!(busy.header("retry-after"), Some("1"));

    drop(held);
    let after = app.login_reply(&email, PASSWORD).await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
}

#[tokio::test]
async fn an_overlong_email_costs_the_throttle_a_bounded_key() {
    let app = TestApp::new().await;
    // Near the 64 KiB body limit, far over any email.
    let email = format!("{}@example.com", "A".repeat(60 * 1024));
    let reply = app.login_reply(&email, "not the password").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.code(), "invalid_credentials");

    let usage = app.state.auth.service.throttle.usage();
    assert_eq!((usage.pairs, usage.emails), (1, 1), "{usage:?}");
    assert!(usage.key_bytes <= 2 * EMAIL_KEY_MAX_BYTES, "{usage:?}");

    // The same email in another case is the same counter.
    app.login_reply(&email.to_lowercase(), "not the password")
        .await;
    let usage = app.state.auth.service.throttle.usage();
    assert_eq!((usage.pairs, usage.emails), (1, 1), "{usage:?}");
}
