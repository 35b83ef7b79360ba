//! "Keep me signed in": `remember=0` gives session cookies and the shorter
//! idle limit (`BROWSER_SESSION_IDLE`); `remember=1` or no field, the
//! cookies and limits of before. On whichever engine the run asks for.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;

fn with_remember(email: &str, remember: &str) -> String {
    serde_urlencoded::to_string([
        ("email", email),
        ("password", PASSWORD),
        ("remember", remember),
    ])
    .unwrap()
}

/// Both cookies a sign-in or refresh set, as `Set-Cookie` lines.
fn session_cookies(reply: &Reply) -> Vec<String> {
    let cookies: Vec<String> = reply
        .set_cookies()
        .into_iter()
        .filter(|c| c.starts_with("refresh_token=") || c.starts_with("signed_in="))
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    cookies
}

fn lasts_past_the_browser(cookie: &str) -> bool {
    cookie.contains("Max-Age=") || cookie.contains("Expires=")
}

#[tokio::test]
async fn remember_0_gives_session_cookies_and_rotation_keeps_them() {
    let app = TestApp::new().await;
    let email = unique_email("browser");
    let reply = app
        .post("/api/auth/register", &with_remember(&email, "0"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    for cookie in session_cookies(&reply) {
        assert!(!lasts_past_the_browser(&cookie), "{cookie}");
    }
    let refreshed = app.refresh(&reply.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    for cookie in session_cookies(&refreshed) {
        assert!(!lasts_past_the_browser(&cookie), "{cookie}");
    }

    let login = app
        .post("/api/auth/login", &with_remember(&email, "0"), None)
        .await;
    assert_eq!(login.status, StatusCode::OK);
    for cookie in session_cookies(&login) {
        assert!(!lasts_past_the_browser(&cookie), "{cookie}");
    }
}

#[tokio::test]
async fn remember_1_or_no_field_keeps_the_cookies_of_before() {
    let app = TestApp::new().await;
    let email = unique_email("kept");
    let registered = app.register_reply(&email, PASSWORD).await;
    let remembered = app
        .post("/api/auth/login", &with_remember(&email, "1"), None)
        .await;
    for reply in [&registered, &remembered] {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        for cookie in session_cookies(reply) {
            assert!(cookie.contains("Max-Age=604800"), "{cookie}");
        }
    }
    let refreshed = app.refresh(&remembered.refresh_token().unwrap()).await;
    for cookie in session_cookies(&refreshed) {
        assert!(lasts_past_the_browser(&cookie), "{cookie}");
    }
}

#[tokio::test]
async fn a_session_not_remembered_ends_after_the_browser_idle_limit() {
    // Access tokens outlive the test, so the session alone decides.
    let app = TestApp::with(&[("BROWSER_SESSION_IDLE", "1h"), ("ACCESS_TOKEN_TTL", "3h")]).await;
    let email = unique_email("idle");
    app.register(&email).await;
    let browser_only = login_of(
        &app.post("/api/auth/login", &with_remember(&email, "0"), None)
            .await,
    );
    let kept = app.login(&email).await;

    // Used within the hour, it goes on; the hour counts from the last use.
    app.advance(Duration::from_secs(50 * 60));
    let refreshed = app.refresh(&browser_only.refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let browser_only = login_of(&refreshed);
    app.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        app.get("/api/me", Some(&browser_only.access)).await.status,
        StatusCode::OK
    );

    // An hour unused: over, for its refresh token as for its access token.
    app.advance(Duration::from_secs(10 * 60 + 1));
    let me = app.get("/api/me", Some(&browser_only.access)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.code(), "session_expired");
    let refresh = app.refresh(&browser_only.refresh).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh.code(), "session_expired");

    // The remembered session, unused all that time, still stands.
    assert_eq!(app.refresh(&kept.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_sessions_list_says_which_kind_each_session_is() {
    let app = TestApp::new().await;
    let email = unique_email("kinds");
    let kept = app.register(&email).await;
    app.post("/api/auth/login", &with_remember(&email, "0"), None)
        .await;
    let list = app.get("/api/sessions", Some(&kept.access)).await;
    assert_eq!(list.status, StatusCode::OK);
    let mut kinds: Vec<(bool, bool)> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["current"].as_bool().unwrap(),
                s["remembered"].as_bool().unwrap(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec![(false, false), (true, true)]);
}

#[tokio::test]
async fn a_remember_field_other_than_0_or_1_is_invalid_input() {
    let app = TestApp::new().await;
    let email = unique_email("badremember");
    for value in ["yes", "", "2", "true"] {
        let reply = app
            .post("/api/auth/register", &with_remember(&email, value), None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value:?}");
        assert_eq!(reply.code(), "invalid_input");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn the_page_form_remembers_only_when_the_box_is_ticked() {
    let app = TestApp::new().await;
    let email = unique_email("pageform");
    app.register(&email).await;
    let unticked =
        serde_urlencoded::to_string([("email", email.as_str()), ("password", PASSWORD)]).unwrap();
    let reply = app.post("/login", &unticked, None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    for cookie in session_cookies(&reply) {
        assert!(!lasts_past_the_browser(&cookie), "{cookie}");
    }
    let reply = app.post("/login", &with_remember(&email, "1"), None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    for cookie in session_cookies(&reply) {
        assert!(lasts_past_the_browser(&cookie), "{cookie}");
    }
}

#[tokio::test]
async fn each_session_shows_its_browser_and_the_address_it_signed_in_from() {
    let app = TestApp::new().await;
    let email = unique_email("device");
    let plain = app.register(&email).await;
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let mut request = TestApp::form("/api/auth/login", &credentials(&email, PASSWORD), None);
    request
        .headers_mut()
        .insert(axum::http::header::USER_AGENT, chrome.parse().unwrap());
    assert_eq!(app.send(request).await.status, StatusCode::OK);

    let list = app.get("/api/sessions", Some(&plain.access)).await.body;
    let sessions = list.as_array().unwrap();
    let by_agent = |agent: &str| {
        sessions
            .iter()
            .find(|s| s["user_agent"] == agent)
            .unwrap()
            .clone()
    };
    assert_eq!(by_agent(chrome)["device"], "Chrome 131 on Windows 10");
    // An agent the parser doesn't know is shown as sent, by the page.
    assert_eq!(
        by_agent("integration-test")["device"],
        serde_json::Value::Null
    );
    for session in sessions {
        assert!(
            session["address"].as_str().is_some_and(|a| !a.is_empty()),
            "{session}"
        );
    }
}
