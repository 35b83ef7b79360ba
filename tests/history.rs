//! The security history (`GET /api/account/history`): what is recorded,
//! paging, whose events show, retention. On whichever engine the run asks
//! for (tests/common).

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::Value;

async fn history(app: &TestApp, login: &Login, query: &str) -> Reply {
    app.get(&format!("/api/account/history{query}"), Some(&login.access))
        .await
}

/// The kinds of a page, newest first.
fn kinds(reply: &Reply) -> Vec<String> {
    events(reply)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn events(reply: &Reply) -> Vec<Value> {
    reply.body["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn sign_ins_sign_outs_revocations_and_password_changes_are_recorded_newest_first() {
    let app = TestApp::new().await;
    let email = unique_email("history");
    let here = app.register(&email).await;
    let second = app.login(&email).await;
    let third = app.login(&email).await;

    // Log out the second; revoke the third from here.
    let reply = app
        .post("/api/auth/logout", "", Some(&second.refresh))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let third_id = app
        .get("/api/sessions", Some(&third.access))
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = app
        .bearer_call(
            Method::DELETE,
            &format!("/api/sessions/{third_id}"),
            Some(&here.access),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let reply = history(&app, &here, "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        kinds(&reply),
        [
            "session_revoked",
            "signed_out",
            "signed_in",
            "signed_in",
            "signed_in"
        ]
    );
    let list = events(&reply);
    assert_eq!(list[0]["session_id"], third_id.as_str());
    assert!(list[4]["detail"]
        .as_str()
        .unwrap()
        .contains("integration-test"));
    assert_eq!(reply.body["next"], Value::Null);
    // Ids are strings, strictly decreasing; times are RFC 3339.
    let ids: Vec<i64> = list
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(list[0]["at"].as_str().unwrap().ends_with('Z'));

    // Log out everywhere: one event for all of them.
    let reply = app
        .bearer_call(Method::DELETE, "/api/sessions", Some(&here.access))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let fresh = app.login(&email).await;
    let reply = history(&app, &fresh, "").await;
    assert_eq!(kinds(&reply)[..2], ["signed_in", "session_revoked"]);
    assert!(events(&reply)[1]["detail"]
        .as_str()
        .unwrap()
        .contains("everywhere"));
}

#[tokio::test]
async fn a_password_change_is_recorded_with_the_sessions_it_ended() {
    let app = TestApp::new().await;
    let email = unique_email("pwhistory");
    let here = app.register(&email).await;
    app.login(&email).await;
    let body = serde_urlencoded::to_string([
        ("current_password", PASSWORD),
        ("new_password", "another long passphrase"),
    ])
    .unwrap();
    let mut request = TestApp::form("/api/auth/password", &body, Some(&here.refresh));
    request.headers_mut().insert(
        axum::http::header::AUTHORIZATION,
        format!("Bearer {}", here.access).parse().unwrap(),
    );
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = history(&app, &login_of(&reply), "").await;
    let latest = &events(&reply)[0];
    assert_eq!(latest["kind"], "password_changed");
    assert!(latest["detail"].as_str().unwrap().contains("1 other"));
}

#[tokio::test]
async fn reuse_detection_is_recorded_once_with_the_session_it_ended() {
    let app = TestApp::new().await;
    let email = unique_email("reuse");
    let victim = app.register(&email).await;
    let rotated = app.refresh(&victim.refresh).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let session_id = app.get("/api/sessions", Some(&victim.access)).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Past the grace window, the spent token comes back: reuse.
    app.advance(Duration::from_secs(11));
    let reuse = app.refresh(&victim.refresh).await;
    assert_eq!(reuse.code(), "token_reused");
    // Presented again, and the successor too: refused, not recorded again.
    assert_eq!(app.refresh(&victim.refresh).await.code(), "token_reused");
    let successor = rotated.refresh_token().unwrap();
    assert_eq!(app.refresh(&successor).await.code(), "token_reused");

    let next = app.login(&email).await;
    let reply = history(&app, &next, "").await;
    assert_eq!(kinds(&reply), ["signed_in", "token_reused", "signed_in"]);
    let reused = &events(&reply)[1];
    assert_eq!(reused["session_id"], session_id.as_str());
    assert!(reused["detail"]
        .as_str()
        .unwrap()
        .contains("change your password"));
}

#[tokio::test]
async fn a_lockout_is_recorded_once_and_an_unknown_email_records_nothing() {
    let app = TestApp::new().await;
    let email = unique_email("locked");
    app.register(&email).await;
    for _ in 0..5 {
        let reply = app.login_reply(&email, "not the password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // Refused while locked: no more events.
    for _ in 0..3 {
        let reply = app.login_reply(&email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    }
    for _ in 0..5 {
        app.login_reply(&unique_email("nobody"), "not the password")
            .await;
    }
    app.advance(Duration::from_secs(15 * 60 + 1));
    let back = app.login(&email).await;
    let reply = history(&app, &back, "").await;
    assert_eq!(kinds(&reply), ["signed_in", "locked_out", "signed_in"]);
    assert!(events(&reply)[1]["detail"]
        .as_str()
        .unwrap()
        .contains("Too many wrong passwords"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM security_events WHERE kind = 'locked_out'")
            .await,
        1
    );
}

#[tokio::test]
async fn pages_of_fifty_follow_next_and_show_only_the_callers_events() {
    let app = TestApp::new().await;
    let email = unique_email("pages");
    let mut login = app.register(&email).await;
    let stranger = app.register(&unique_email("stranger")).await;
    for _ in 0..60 {
        login = app.login(&email).await;
    }
    // 61 sign-ins: 50, then 11.
    let first = history(&app, &login, "").await;
    assert_eq!(events(&first).len(), 50);
    let next = first.body["next"].as_str().unwrap().to_string();
    assert_eq!(next, events(&first)[49]["id"].as_str().unwrap());
    let second = history(&app, &login, &format!("?before={next}")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(events(&second).len(), 11);
    assert_eq!(second.body["next"], Value::Null);

    // The stranger sees their one sign-in, never this user's.
    let theirs = history(&app, &stranger, "").await;
    assert_eq!(kinds(&theirs), ["signed_in"]);
    let their_id = events(&theirs)[0]["id"].as_str().unwrap().to_string();
    let theirs_before = history(&app, &stranger, &format!("?before={next}")).await;
    assert_eq!(kinds(&theirs_before), ["signed_in"]);
    assert_eq!(events(&theirs_before)[0]["id"], their_id.as_str());

    for bad in [
        "?before=abc",
        "?before=",
        "?before=1.5",
        "?before=99999999999999999999",
    ] {
        let reply = history(&app, &login, bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.code(), "invalid_input");
    }
    let reply = app.get("/api/account/history", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn housekeeping_drops_events_past_the_retention_and_deleting_the_account_drops_them_all() {
    let app = TestApp::with(&[
        ("SECURITY_HISTORY_RETENTION", "1d"),
        ("SESSION_MAX_AGE", "30d"),
    ])
    .await;
    let email = unique_email("retention");
    app.register(&email).await;
    app.advance(Duration::from_secs(2 * 86400));
    let recent = app.login(&email).await;
    let now = app.state.auth.clock.now_ms();
    let purged = app
        .state
        .auth
        .store
        .purge_history(now, app.config.security_history_retention)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(kinds(&history(&app, &recent, "").await), ["signed_in"]);

    let body =
        serde_urlencoded::to_string([("password", PASSWORD), ("confirm", "delete")]).unwrap();
    let mut request = TestApp::form("/api/account/delete", &body, None);
    request.headers_mut().insert(
        axum::http::header::AUTHORIZATION,
        format!("Bearer {}", recent.access).parse().unwrap(),
    );
    assert_eq!(app.send(request).await.status, StatusCode::OK);
    assert_eq!(app.count("SELECT COUNT(*) FROM security_events").await, 0);
}

#[tokio::test]
async fn a_lockout_reached_by_parallel_guesses_is_still_recorded() {
    let app = TestApp::new().await;
    let email = unique_email("parallel");
    app.register(&email).await;
    // Five wrong passwords at once: every check is in flight before any
    // failure is written, so none of them could know it was the fifth.
    let guesses = (0..5).map(|_| app.login_reply(&email, "not the password"));
    for reply in futures::future::join_all(guesses).await {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.login_reply(&email, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Counted after each failure is written, the one that made five says
    // so (on PostgreSQL two that finish together may both count five).
    let recorded = app
        .count("SELECT COUNT(*) FROM security_events WHERE kind = 'locked_out'")
        .await;
    assert!((1..=2).contains(&recorded), "{recorded}");
}
