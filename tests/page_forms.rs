//! `POST /login` and `POST /register`: the pages' own forms, for a browser
//! that posts them itself. Always a 303 to a page, never JSON, never an
//! access token; the cross-site rule with its one `Origin: null` exception.

mod common;

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use common::*;

/// A form navigation as Chromium sends it under `no-referrer`.
fn page_post(
    path: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
    site: &str,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .header(header::USER_AGENT, "integration-test");
    if let Some(origin) = origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    let body = serde_urlencoded::to_string(fields).unwrap();
    builder.body(Body::from(body)).unwrap()
}

fn same_origin(path: &str, fields: &[(&str, &str)]) -> Request<Body> {
    page_post(path, fields, Some("null"), "same-origin")
}

#[tokio::test]
async fn register_and_login_forms_redirect_with_cookies_and_no_token() {
    let app = TestApp::new().await;
    let email = unique_email("form");
    let reply = app
        .send(same_origin(
            "/register",
            &[
                ("email", &email),
                ("password", PASSWORD),
                ("next", "/sessions?tab=1#x"),
            ],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/sessions?tab=1#x"));
    assert!(reply.refresh_token().is_some(), "the refresh cookie is set");
    assert!(reply
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("signed_in=1")));
    assert_eq!(reply.body, serde_json::Value::Null, "no body, no token");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);

    let reply = app
        .send(same_origin(
            "/login",
            &[("email", &email), ("password", PASSWORD)],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/dashboard"));
    let refresh = reply.refresh_token().unwrap();
    // The cookie is a working one: the page's script signs in with it.
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn failures_go_back_to_the_form_with_a_code() {
    let app = TestApp::new().await;
    let email = unique_email("oops");
    app.register(&email).await;

    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Fields, &str)> = vec![
        (
            "/login",
            vec![
                ("email", &email),
                ("password", "wrong password!"),
                ("next", "/sessions"),
            ],
            "/login?error=invalid_credentials&next=%2Fsessions",
        ),
        (
            "/login",
            vec![("password", PASSWORD)],
            "/login?error=invalid_input&field=email",
        ),
        (
            "/register",
            vec![("email", &email), ("password", PASSWORD)],
            "/register?error=email_taken",
        ),
        (
            "/register",
            vec![("email", "not-an-email"), ("password", PASSWORD)],
            "/register?error=invalid_input&field=email",
        ),
        (
            "/register",
            vec![("email", "new@example.com"), ("password", "short")],
            "/register?error=invalid_input&field=password",
        ),
    ];
    for (path, fields, location) in cases {
        let reply = app.send(same_origin(path, &fields)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{location}");
        assert_eq!(reply.header("location"), Some(location));
        assert!(reply.set_cookies().is_empty(), "{location}: no cookie");
        assert_eq!(
            reply.body,
            serde_json::Value::Null,
            "{location}: never JSON"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

#[tokio::test]
async fn the_form_lockout_says_how_long_to_wait() {
    let app = TestApp::new().await;
    let email = unique_email("locked");
    app.register(&email).await;
    for _ in 0..5 {
        let reply = app
            .send(same_origin(
                "/login",
                &[("email", &email), ("password", "wrong guess!")],
            ))
            .await;
        assert_eq!(
            reply.header("location"),
            Some("/login?error=invalid_credentials")
        );
    }
    let reply = app
        .send(same_origin(
            "/login",
            &[("email", &email), ("password", PASSWORD)],
        ))
        .await;
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with("/login?error=rate_limited&wait="),
        "{location}"
    );
    assert!(reply.refresh_token().is_none());
}

#[tokio::test]
async fn next_never_leaves_the_site() {
    let app = TestApp::new().await;
    let email = unique_email("next");
    app.register(&email).await;
    for next in [
        "//evil.example",
        "/\t/evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/%2F/evil.example",
    ] {
        let reply = app
            .send(same_origin(
                "/login",
                &[("email", &email), ("password", PASSWORD), ("next", next)],
            ))
            .await;
        let location = reply.header("location").unwrap();
        assert_eq!(location, "/dashboard", "{next:?}");
    }
}

#[tokio::test]
async fn cross_site_form_posts_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    let refused = [
        (Some("null"), "cross-site"),
        (Some("null"), "none"),
        (Some("http://evil.example"), "cross-site"),
        (Some("http://evil.example"), "same-origin"),
        (None, "same-site"),
    ];
    for (origin, site) in refused {
        let email = unique_email("csrf");
        let fields = [("email", email.as_str()), ("password", PASSWORD)];
        for path in ["/register", "/login"] {
            let reply = app.send(page_post(path, &fields, origin, site)).await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{origin:?} {site}");
            assert_eq!(
                reply.header("location"),
                Some(format!("{path}?error=forbidden_origin").as_str()),
                "{origin:?} {site}"
            );
            assert!(reply.set_cookies().is_empty());
        }
    }
    // A bare `Origin: null` is refused; with same-origin fetch metadata it is
    // the browser's own form navigation and passes (first test above).
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);

    // Our origin, as a fetch would send it, passes too.
    let reply = app
        .send(page_post(
            "/register",
            &[("email", &unique_email("ok")), ("password", PASSWORD)],
            Some(ORIGIN),
            "same-origin",
        ))
        .await;
    assert_eq!(reply.header("location"), Some("/dashboard"));
}

#[tokio::test]
async fn oversized_form_goes_back_with_payload_too_large() {
    let app = TestApp::new().await;
    let big = "x".repeat(70 * 1024);
    let reply = app
        .send(same_origin(
            "/login",
            &[("email", &big), ("password", PASSWORD)],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.header("location"),
        Some("/login?error=payload_too_large")
    );
}

#[tokio::test]
async fn the_pages_still_render_on_get() {
    let app = TestApp::new().await;
    for path in ["/login", "/register"] {
        let reply = app.get(path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let html = reply.body.as_str().unwrap_or_default();
        assert!(html.contains(&format!(r#"action="{path}""#)), "{path}");
        assert!(html.contains(r#"name="next""#), "{path}");
    }
}
