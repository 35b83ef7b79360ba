//! Paths no request reaches directly: housekeeping's purge of ended
//! sessions and of the login throttle's rows, and a live access token
//! whose session ran out of time.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Purging deletes sessions that ended longer ago than the retention, with
/// their tokens; it keeps recently ended ones and every token of a live
/// session, spent ones included (reuse detection needs them).
#[tokio::test]
async fn purge_removes_only_sessions_ended_before_the_retention() {
    let app = TestApp::with(&[("REFRESH_TOKEN_TTL", "1h"), ("SESSION_MAX_AGE", "3h")]).await;
    let logged_out = app.register(&unique_email("gone")).await;
    let idle = app.register(&unique_email("idle")).await;
    let active = app.register(&unique_email("active")).await;
    let reply = app
        .post("/api/auth/logout", "", Some(&logged_out.refresh))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // `active` refreshes every 50 minutes; `idle` never does and ends at 1h.
    let mut token = active.refresh.clone();
    for _ in 0..3 {
        app.advance(50 * MINUTE);
        let reply = app.refresh(&token).await;
        assert_eq!(reply.status, StatusCode::OK);
        token = reply.refresh_token().unwrap();
    }
    // Now 150 minutes in: the logout is 150 minutes old, the idle end 90.
    let now = app.state.auth.clock.now_ms();
    let purged = app
        .state
        .auth
        .store
        .purge_ended(now, 120 * MINUTE)
        .await
        .unwrap();
    assert_eq!(purged, 1, "only the session that ended over 2h ago");

    let sessions_of =
        |user_id: &str| format!("SELECT COUNT(*) FROM sessions WHERE user_id = '{user_id}'");
    assert_eq!(app.count(&sessions_of(&logged_out.user_id)).await, 0);
    assert_eq!(app.count(&sessions_of(&idle.user_id)).await, 1);
    assert_eq!(app.count(&sessions_of(&active.user_id)).await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refresh_tokens").await,
        1 + 4,
        "the idle session's token and all four of the live one's remain"
    );
    // The kept spent token still trips reuse detection.
    let replay = app.refresh(&active.refresh).await;
    assert_eq!(replay.code(), "token_reused");
}

/// Housekeeping deletes the throttle's rows once they no longer count, and
/// keeps the failures of a lockout that still holds.
#[tokio::test]
async fn purge_removes_only_throttle_rows_that_no_longer_count() {
    let app = TestApp::new().await;
    let email = unique_email("locked");
    app.register(&email).await;
    for _ in 0..5 {
        let reply = app.login_reply(&email, "wrong guess!").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let throttle = &app.state.auth.service.throttle;
    let failures = "SELECT COUNT(*) FROM login_attempts WHERE failed_at IS NOT NULL";
    let addresses = "SELECT COUNT(*) FROM address_attempts";
    assert_eq!(
        (app.count(failures).await, app.count(addresses).await),
        (5, 6)
    );

    // Two minutes on: the address attempts are out of their minute, the
    // failures still lock the pair.
    app.advance(2 * MINUTE);
    let now = app.state.auth.clock.now_ms();
    assert_eq!(throttle.purge(now).await.unwrap(), 6);
    assert_eq!(app.count(failures).await, 5);
    let reply = app.login_reply(&email, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    // Out of the 15-minute window, they go too.
    app.advance(15 * MINUTE);
    let now = app.state.auth.clock.now_ms();
    assert_eq!(throttle.purge(now).await.unwrap(), 5 + 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM login_attempts").await, 0);
    app.login(&email).await;
}

/// An access token can outlive its session's absolute cap by a few
/// minutes; the bearer check then answers `session_expired`.
#[tokio::test]
async fn unexpired_access_token_of_an_expired_session_is_refused() {
    let app = TestApp::with(&[
        ("ACCESS_TOKEN_TTL", "15m"),
        ("REFRESH_TOKEN_TTL", "1h"),
        ("SESSION_MAX_AGE", "1h"),
    ])
    .await;
    let login = app.register(&unique_email("capped")).await;
    app.advance(50 * MINUTE);
    let reply = app.refresh(&login.refresh).await;
    assert_eq!(reply.status, StatusCode::OK);
    let access = reply.access_token();
    assert_eq!(
        app.get("/api/me", Some(&access)).await.status,
        StatusCode::OK
    );

    // 61 minutes: the token has 4 minutes left, the session none.
    app.advance(11 * MINUTE);
    let reply = app.get("/api/me", Some(&access)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "session_expired");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
}
