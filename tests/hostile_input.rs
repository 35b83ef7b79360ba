//! Hostile input: arbitrary bodies, cookies and bearer headers get a 4xx,
//! never a 5xx or a panic, and a rejected request changes nothing.

mod common;

use axum::{
    body::Body,
    http::{header, HeaderValue, Method, Request},
};
use common::*;
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Strings that have broken parsers before.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("' OR 1=1 --".to_string()),
        Just("\"; DROP TABLE users; --".to_string()),
        Just("a\u{0}b@example.com".to_string()),
        Just("admin@exаmple.com".to_string()), // Cyrillic а
        Just("%00%ff%fe".to_string()),
        Just("x".repeat(5000)),
        any::<String>(),
        "[ -~]{0,64}",
    ]
}

fn form_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (nasty_text(), nasty_text()).prop_map(|(e, p)| credentials(&e, &p).into_bytes()),
        (nasty_text(), nasty_text())
            .prop_map(|(e, p)| format!("email={e}&password={p}").into_bytes()),
        nasty_text().prop_map(|e| format!("email={e}&email={e}&password=x").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn forms_never_cause_a_server_error(body in form_body(), register in any::<bool>()) {
        runtime().block_on(async {
            let app = TestApp::new().await;
            let path = if register { "/api/auth/register" } else { "/api/auth/login" };
            let mut req = TestApp::form(path, "", None);
            *req.body_mut() = Body::from(body);
            let reply = app.send(req).await;
            prop_assert!(reply.status.as_u16() < 500, "{} on {path}", reply.status);
            if !reply.status.is_success() {
                prop_assert!(reply.body["error"].is_string());
                prop_assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
                prop_assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 0);
            }
            Ok(())
        })?;
    }

    #[test]
    fn cookies_never_cause_a_server_error(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        runtime().block_on(async {
            let app = TestApp::new().await;
            let login = app.register(&unique_email("cookie")).await;
            for path in ["/api/auth/refresh", "/api/auth/logout"] {
                let mut req = TestApp::form(path, "", None);
                if let Ok(value) = HeaderValue::from_bytes(&raw) {
                    req.headers_mut().insert(header::COOKIE, value);
                }
                let reply = app.send(req).await;
                prop_assert!(reply.status.as_u16() < 500, "{} on {path}", reply.status);
            }
            // The real session is untouched by whatever was sent.
            prop_assert_eq!(app.refresh(&login.refresh).await.status.as_u16(), 200);
            Ok(())
        })?;
    }

    #[test]
    fn bearer_headers_never_cause_a_server_error(raw in proptest::collection::vec(any::<u8>(), 0..300), prefix in any::<bool>()) {
        runtime().block_on(async {
            let app = TestApp::new().await;
            let mut value = if prefix { b"Bearer ".to_vec() } else { Vec::new() };
            value.extend_from_slice(&raw);
            let mut req = Request::builder().method(Method::GET).uri("/api/me").body(Body::empty()).unwrap();
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                req.headers_mut().insert(header::AUTHORIZATION, value);
            }
            let reply = app.send(req).await;
            prop_assert_eq!(reply.status.as_u16(), 401);
            prop_assert!(reply.header("www-authenticate").is_some());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn look_alike_emails_are_other_accounts() {
    let app = TestApp::new().await;
    app.register("admin@example.com").await;
    // Cyrillic "а" in place of the Latin "a": not the same account.
    let reply = app.login_reply("аdmin@example.com", PASSWORD).await;
    assert_eq!(reply.status.as_u16(), 401);
    let reply = app.login_reply("admin@example.com\u{0}", PASSWORD).await;
    assert_eq!(reply.status.as_u16(), 401);
}

#[tokio::test]
async fn sql_in_fields_is_just_text() {
    let app = TestApp::new().await;
    // Spaces make this one invalid: 400, and nothing is run.
    let email = "o'brien+\"; DROP TABLE users; --@example.com";
    let reply = app.register_reply(email, PASSWORD).await;
    assert_eq!(reply.status.as_u16(), 400);
    // No whitespace, one @, a dotted domain: a valid (if odd) address.
    let email = "o'brien+--;DROP@example.com";
    app.register(email).await;
    let reply = app.login_reply("' OR '1'='1", "' OR '1'='1").await;
    assert_eq!(reply.status.as_u16(), 401);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}
