//! Every row of the HTTP contract, on the real router and a temporary
//! SQLite file.

mod common;

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use common::*;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::new().await;
    let reply = app.get("/healthz", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app.get("/readyz", None).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn register_returns_tokens_and_a_strict_cookie() {
    let app = TestApp::new().await;
    let email = unique_email("Reg");
    let reply = app.register_reply(&format!("  {email} "), PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(reply.body["user"]["email"], email.as_str());
    assert!(reply.body["user"]["created_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let cookie = reply.refresh_set_cookie().unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/auth",
        "Max-Age=604800",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(
        !cookie.contains("Secure"),
        "development cookies work over http"
    );
    // The hint cookie carries no token.
    let hint = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("signed_in="))
        .unwrap();
    assert!(hint.starts_with("signed_in=1;") && !hint.contains("HttpOnly"));
}

#[tokio::test]
async fn register_rejects_bad_input_and_changes_nothing() {
    let app = TestApp::new().await;
    let cases = [
        credentials("not-an-email", PASSWORD),
        credentials("a@localhost", PASSWORD),
        credentials("a b@example.com", PASSWORD),
        credentials(&format!("{}@example.com", "a".repeat(250)), PASSWORD),
        credentials("ok@example.com", "short"),
        credentials("ok@example.com", &"x".repeat(1025)),
        "email=ok%40example.com".to_string(),
        format!("password={PASSWORD}"),
        String::new(),
    ];
    for body in cases {
        let reply = app.post("/api/auth/register", &body, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:.60}");
        assert_eq!(reply.code(), "invalid_input");
        assert!(reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(reply.refresh_set_cookie().is_none());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn register_twice_is_a_conflict_whatever_the_case() {
    let app = TestApp::new().await;
    let email = unique_email("dup");
    app.register(&email).await;
    let reply = app.register_reply(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "email_taken");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

#[tokio::test]
async fn login_succeeds_case_insensitively() {
    let app = TestApp::new().await;
    let email = unique_email("login");
    app.register(&email).await;
    let reply = app
        .login_reply(&format!(" {} ", email.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.refresh_token().is_some());
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 2);
}

#[tokio::test]
async fn login_missing_field_is_invalid_input() {
    let app = TestApp::new().await;
    for body in ["email=a%40example.com", "password=whatever12345", ""] {
        let reply = app.post("/api/auth/login", body, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), "invalid_input");
    }
    let json = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"email":"a@b.co","password":"x"}"#))
        .unwrap();
    let reply = app.send(json).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = TestApp::new().await;
    let email = unique_email("same");
    app.register(&email).await;
    let wrong = app.login_reply(&email, "not the password at all").await;
    let unknown = app
        .login_reply(&unique_email("nobody"), "not the password at all")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.code(), "invalid_credentials");
    assert!(wrong.refresh_set_cookie().is_none());
}

#[tokio::test]
async fn sixth_failure_is_throttled_even_with_the_right_password() {
    let app = TestApp::new().await;
    let email = unique_email("throttle");
    app.register(&email).await;
    for _ in 0..5 {
        let reply = app.login_reply(&email, "wrong password!").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = app.login_reply(&email, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.code(), "rate_limited");
    let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // Once the oldest failure leaves the 15-minute window, one try is allowed.
    app.advance(Duration::from_secs(15 * 60 + 1));
    let reply = app.login_reply(&email, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn failures_from_one_address_do_not_lock_out_another() {
    let app = TestApp::with(&[("TRUST_X_FORWARDED_FOR", "true")]).await;
    let email = unique_email("victim");
    app.register(&email).await;
    let from = |ip: &str, password: &str| {
        let mut req = TestApp::form("/api/auth/login", &credentials(&email, password), None);
        req.headers_mut()
            .insert("x-forwarded-for", ip.parse().unwrap());
        req
    };
    for _ in 0..5 {
        assert_eq!(
            app.send(from("203.0.113.1", "guess guess")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.send(from("203.0.113.1", PASSWORD)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.send(from("198.51.100.2", PASSWORD)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn per_address_rate_limit() {
    let app = TestApp::with(&[("AUTH_RATE_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        app.login_reply(&unique_email("r"), "whatever123").await;
    }
    let reply = app.register_reply(&unique_email("r"), PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.header("retry-after").is_some());
    app.advance(Duration::from_secs(61));
    assert_eq!(
        app.register_reply(&unique_email("r"), PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn me_and_dashboard_with_a_bearer() {
    let app = TestApp::new().await;
    let email = unique_email("me");
    let login = app.register(&email).await;
    let reply = app.get("/api/me", Some(&login.access)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["email"], email.as_str());
    assert_eq!(reply.body["id"], login.user_id.as_str());

    // The scheme is case-insensitive.
    let req = Request::builder()
        .uri("/api/me")
        .header(header::AUTHORIZATION, format!("bEaReR {}", login.access))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);

    let reply = app.get("/api/dashboard", Some(&login.access)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["user"]["email"], email.as_str());
    assert_eq!(reply.body["session"]["current"], true);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn protected_routes_challenge_as_rfc6750_says() {
    let app = TestApp::new().await;
    let reply = app.get("/api/me", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "invalid_token");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));

    for bad in ["garbage", "a.b.c"] {
        let req = Request::builder()
            .uri("/api/dashboard")
            .header(header::AUTHORIZATION, format!("Bearer {bad}"))
            .body(Body::empty())
            .unwrap();
        let reply = app.send(req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
    }
    let req = Request::builder()
        .uri("/api/me")
        .header(header::AUTHORIZATION, b"Bearer \xff\xfe".as_slice())
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::UNAUTHORIZED);

    // Another scheme sends no bearer token at all: RFC 6750 section 3.1
    // says the challenge then carries no error code.
    for other in ["Basic dXNlcjpwYXNz", "Digest username=\"x\"", "Bearerabc"] {
        let req = Request::builder()
            .uri("/api/me")
            .header(header::AUTHORIZATION, other)
            .body(Body::empty())
            .unwrap();
        let reply = app.send(req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{other}");
        assert_eq!(reply.code(), "invalid_token", "{other}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{other}");
    }
}

#[tokio::test]
async fn expired_access_token_is_token_expired() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("exp")).await;
    app.advance(Duration::from_secs(15 * 60 + 6));
    let reply = app.get("/api/me", Some(&login.access)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "token_expired");
}

#[tokio::test]
async fn refresh_rotates_and_marks_the_old_token_used() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("rot")).await;
    let reply = app.refresh(&login.refresh).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["user"]["id"], login.user_id.as_str());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let next = reply.refresh_token().unwrap();
    assert_ne!(next, login.refresh);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NULL")
            .await,
        1
    );
    let access = reply.access_token();
    assert_eq!(
        app.get("/api/me", Some(&access)).await.status,
        StatusCode::OK
    );
    // And the successor rotates in turn.
    assert_eq!(app.refresh(&next).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_without_a_usable_cookie_is_invalid_token_and_clears_it() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("bad")).await;
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("not-a-token".into()),
        Some("A".repeat(43)),
        Some("%00%ff".into()),
        Some(format!("{}x", login.refresh)),
        // An access token is not a refresh token.
        Some(login.access.clone()),
    ];
    for cookie in cases {
        let reply = app.post("/api/auth/refresh", "", cookie.as_deref()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{cookie:?}");
        assert_eq!(reply.code(), "invalid_token");
        let cleared = reply.refresh_set_cookie().expect("a clearing Set-Cookie");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
    // The real cookie still works: nothing was revoked by the junk.
    assert_eq!(app.refresh(&login.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_cookie_is_not_a_bearer_token() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("swap")).await;
    let reply = app.get("/api/me", Some(&login.refresh)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "invalid_token");
}

#[tokio::test]
async fn replay_after_grace_revokes_the_whole_session() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("reuse")).await;
    let first = app.refresh(&login.refresh).await;
    let current = first.refresh_token().unwrap();
    let access = first.access_token();
    app.advance(Duration::from_secs(11));

    let reply = app.refresh(&login.refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "token_reused");
    assert!(reply.refresh_set_cookie().unwrap().contains("Max-Age=0"));

    // Every member of the family dies, the current one included...
    let reply = app.refresh(&current).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "token_reused");
    // ...and so do the session's access tokens.
    let reply = app.get("/api/me", Some(&access)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "session_revoked");
    let logs = app.logs.text();
    let session: String = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        logs.contains("reuse detected") && logs.contains(&session),
        "{logs}"
    );
}

#[tokio::test]
async fn parent_replayed_inside_grace_gets_the_same_successor() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("grace")).await;
    let first = app.refresh(&login.refresh).await;
    app.advance(Duration::from_secs(5));
    let again = app.refresh(&login.refresh).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.refresh_token(), first.refresh_token());
    assert_ne!(again.access_token(), first.access_token());
    // No second branch was started.
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
    // The successor is still good.
    assert_eq!(
        app.refresh(&first.refresh_token().unwrap()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn grace_does_not_extend_the_session() {
    let app = TestApp::with(&[("REFRESH_TOKEN_TTL", "60s")]).await;
    let login = app.register(&unique_email("grace-idle")).await;
    app.advance(Duration::from_secs(30));
    let first = app.refresh(&login.refresh).await;
    let max_age = |r: &Reply| r.refresh_set_cookie().unwrap().contains("Max-Age=60");
    assert!(max_age(&first));
    app.advance(Duration::from_secs(5));
    let again = app.refresh(&login.refresh).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.refresh_set_cookie().unwrap().contains("Max-Age=55"));
}

#[tokio::test]
async fn parent_replayed_after_its_successor_was_used_is_reuse() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("spent")).await;
    let first = app.refresh(&login.refresh).await;
    let second = app.refresh(&first.refresh_token().unwrap()).await;
    assert_eq!(second.status, StatusCode::OK);
    // Inside the grace window, but the successor is spent: reuse.
    let reply = app.refresh(&login.refresh).await;
    assert_eq!(reply.code(), "token_reused");
    assert_eq!(
        app.refresh(&second.refresh_token().unwrap()).await.code(),
        "token_reused"
    );
}

#[tokio::test]
async fn grandparent_replayed_inside_grace_is_reuse() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("grand")).await;
    let child = app.refresh(&login.refresh).await.refresh_token().unwrap();
    app.refresh(&child).await;
    app.advance(Duration::from_secs(1));
    let reply = app.refresh(&login.refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "token_reused");
}

#[tokio::test]
async fn after_revocation_every_member_fails_even_inside_grace() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("dead")).await;
    let first = app.refresh(&login.refresh).await;
    let logout = app
        .post("/api/auth/logout", "", first.refresh_token().as_deref())
        .await;
    assert_eq!(logout.status, StatusCode::OK);
    for token in [login.refresh.clone(), first.refresh_token().unwrap()] {
        let reply = app.refresh(&token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "session_revoked");
    }
}

#[tokio::test]
async fn zero_grace_makes_any_replay_reuse() {
    let app = TestApp::with(&[("REFRESH_REUSE_GRACE", "0s")]).await;
    let login = app.register(&unique_email("nograce")).await;
    app.refresh(&login.refresh).await;
    assert_eq!(app.refresh(&login.refresh).await.code(), "token_reused");
}

/// Real threads: on a current-thread runtime the 20 calls would take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_end_in_one_lineage() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("race")).await;
    let calls = (0..20).map(|_| {
        let router = app.router.clone();
        let req = TestApp::form("/api/auth/refresh", "", Some(&login.refresh));
        tokio::spawn(async move {
            use tower::ServiceExt;
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let cookie = res
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .find_map(|v| {
                    let v = v.to_str().unwrap();
                    v.strip_prefix("refresh_token=")
                        .map(|rest| rest.split(';').next().unwrap().to_string())
                });
            (status, cookie)
        })
    });
    let results = futures::future::join_all(calls).await;
    let mut successors = std::collections::HashSet::new();
    for (status, cookie) in results.into_iter().map(Result::unwrap) {
        assert_eq!(status, StatusCode::OK, "nobody is logged out, no 5xx");
        successors.insert(cookie.unwrap());
    }
    assert_eq!(successors.len(), 1, "one lineage");
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
    let next = successors.into_iter().next().unwrap();
    assert_eq!(app.refresh(&next).await.status, StatusCode::OK);
}

#[tokio::test]
async fn idle_sessions_expire() {
    let app = TestApp::with(&[("REFRESH_TOKEN_TTL", "1h")]).await;
    let login = app.register(&unique_email("idle")).await;
    app.advance(Duration::from_secs(3600));
    let reply = app.refresh(&login.refresh).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "session_expired");
    assert!(reply.refresh_set_cookie().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn rotation_never_extends_the_absolute_cap() {
    let app = TestApp::with(&[("REFRESH_TOKEN_TTL", "1h"), ("SESSION_MAX_AGE", "3h")]).await;
    let login = app.register(&unique_email("cap")).await;
    let mut token = login.refresh;
    // Refreshes at 50, 100 and 150 minutes keep the session alive, each
    // cookie living the lesser of the idle time and what the cap leaves.
    for (step, cap_left) in [(1u64, 130 * 60u64), (2, 80 * 60), (3, 30 * 60)] {
        app.advance(Duration::from_secs(50 * 60));
        let reply = app.refresh(&token).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "refresh {step} is inside the cap"
        );
        let cookie = reply.refresh_set_cookie().unwrap();
        let max_age: u64 = cookie
            .split("Max-Age=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(max_age, cap_left.min(3600), "refresh {step}");
        token = reply.refresh_token().unwrap();
    }
    // 200 minutes: used 50 minutes ago, so idle is fine, but the cap is past.
    app.advance(Duration::from_secs(50 * 60));
    let reply = app.refresh(&token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "session_expired");
}

#[tokio::test]
async fn logout_revokes_and_clears_and_is_idempotent() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("logout")).await;
    let reply = app.post("/api/auth/logout", "", Some(&login.refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, serde_json::json!({}));
    assert!(reply.refresh_set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(
        app.get("/api/me", Some(&login.access)).await.code(),
        "session_revoked"
    );
    assert_eq!(app.refresh(&login.refresh).await.code(), "session_revoked");
    // Twice, with a dead cookie, with junk, or with none: still fine.
    for cookie in [Some(login.refresh.as_str()), Some("junk"), None] {
        assert_eq!(
            app.post("/api/auth/logout", "", cookie).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn sessions_list_revoke_and_log_out_everywhere() {
    let app = TestApp::new().await;
    let email = unique_email("sessions");
    let first = app.register(&email).await;
    app.advance(Duration::from_secs(1));
    let second = app.login(&email).await;
    let other = app.register(&unique_email("other")).await;

    let reply = app.get("/api/sessions", Some(&second.access)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = reply.body.as_array().unwrap();
    assert_eq!(list.len(), 2, "only this user's sessions");
    assert_eq!(list[0]["current"], true, "newest first, and it's this one");
    assert_eq!(list[1]["current"], false);
    assert_eq!(list[0]["user_agent"], "integration-test");
    let first_id = list[1]["id"].as_str().unwrap().to_string();

    // Another user's session is not found, and stays alive.
    let others: String = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
        .bind(&other.user_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let reply = app
        .bearer_call(
            Method::DELETE,
            &format!("/api/sessions/{others}"),
            Some(&second.access),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    assert_eq!(
        app.get("/api/me", Some(&other.access)).await.status,
        StatusCode::OK
    );
    let reply = app
        .bearer_call(
            Method::DELETE,
            "/api/sessions/no-such-id",
            Some(&second.access),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Revoking the first session kills its tokens at once.
    let reply = app
        .bearer_call(
            Method::DELETE,
            &format!("/api/sessions/{first_id}"),
            Some(&second.access),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/me", Some(&first.access)).await.code(),
        "session_revoked"
    );
    assert_eq!(app.refresh(&first.refresh).await.code(), "session_revoked");
    assert_eq!(
        app.get("/api/sessions", Some(&second.access))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Revoking it again: no longer a live session.
    let reply = app
        .bearer_call(
            Method::DELETE,
            &format!("/api/sessions/{first_id}"),
            Some(&second.access),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Log out everywhere.
    let third = app.login(&email).await;
    let reply = app
        .bearer_call(Method::DELETE, "/api/sessions", Some(&second.access))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for login in [&second, &third] {
        assert_eq!(
            app.get("/api/me", Some(&login.access)).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&login.refresh).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get("/api/me", Some(&other.access)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_need_a_bearer() {
    let app = TestApp::new().await;
    for (method, path) in [
        (Method::GET, "/api/sessions"),
        (Method::DELETE, "/api/sessions"),
        (Method::DELETE, "/api/sessions/x"),
    ] {
        let reply = app.bearer_call(method, path, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn the_database_holds_no_working_token() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("hash")).await;
    app.refresh(&login.refresh).await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&app.db)
        .await
        .unwrap();
    use base64::Engine as _;
    for hash in stored {
        let as_cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash);
        assert_ne!(as_cookie, login.refresh);
        let reply = app.refresh(&as_cookie).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "invalid_token");
    }
    let dump: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(dump
        .iter()
        .all(|h| h.starts_with("$argon2id$") && !h.contains(PASSWORD)));
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("csrf")).await;
    let email = unique_email("csrf-new");
    let hostile = [
        ("origin", "http://evil.test"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ];
    for (name, value) in hostile {
        for path in [
            "/api/auth/register",
            "/api/auth/login",
            "/api/auth/refresh",
            "/api/auth/logout",
        ] {
            let body = if path.ends_with("refresh") || path.ends_with("logout") {
                String::new()
            } else {
                credentials(&email, PASSWORD)
            };
            let mut req = TestApp::form(path, &body, Some(&login.refresh));
            req.headers_mut().insert(name, value.parse().unwrap());
            let reply = app.send(req).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{path} {name}: {value}"
            );
            assert_eq!(reply.code(), "forbidden_origin");
            assert!(reply.set_cookies().is_empty());
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
    // Localhost on our port counts as ours in development.
    let mut req = TestApp::form("/api/auth/refresh", "", Some(&login.refresh));
    req.headers_mut()
        .insert("origin", "http://localhost:3000".parse().unwrap());
    assert_eq!(app.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_without_browser_headers_are_judged_on_the_cookie() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("curl")).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/refresh")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("refresh_token={}", login.refresh))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let app = TestApp::new().await;
    let big = format!("email=a%40b.co&password={}", "x".repeat(70 * 1024));
    for path in ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"] {
        let reply = app.post(path, &big, None).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(reply.code(), "payload_too_large");
    }
    // Without a Content-Length (streamed), the form extractor still stops it.
    let stream = futures_stream(big);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(stream)
        .unwrap();
    let reply = app.send(req).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "payload_too_large");
}

/// The same text as a chunked body with no length, as a streaming client sends it.
fn futures_stream(text: String) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(8192)
        .map(|c| Ok(c.to_vec()))
        .collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::new().await;
    for path in ["/healthz", "/api/me", "/"] {
        let reply = app.get(path, None).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(reply.header("referrer-policy").is_some(), "{path}");
        let csp = reply.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            reply.header("strict-transport-security").is_none(),
            "no HSTS in development"
        );
    }
    let page = app.get("/", None).await;
    let csp = page.header("content-security-policy").unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let html = page.body.as_str().unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "scripts carry the header's nonce"
    );
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
}

#[tokio::test]
async fn logs_never_contain_tokens_or_passwords() {
    let app = TestApp::new().await;
    let email = unique_email("logs");
    let login = app.register(&email).await;
    let wrong = "a wrong password 123";
    app.login_reply(&email, wrong).await;
    let second = app.login(&email).await;
    let rotated = app.refresh(&login.refresh).await;
    app.advance(Duration::from_secs(30));
    app.refresh(&login.refresh).await; // reuse
    app.post("/api/auth/logout", "", Some(&second.refresh))
        .await;
    app.get("/api/me", Some(&login.access)).await;

    let logs = app.logs.text();
    assert!(
        logs.contains("session started"),
        "the capture works: {logs}"
    );
    let secrets = [
        PASSWORD.to_string(),
        wrong.to_string(),
        login.access.clone(),
        login.refresh.clone(),
        second.access.clone(),
        second.refresh.clone(),
        rotated.access_token(),
        rotated.refresh_token().unwrap(),
    ];
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(hashes.iter().all(|h| !logs.contains(h)));
}

#[tokio::test]
async fn a_deleted_sessions_access_token_stops_working() {
    let app = TestApp::new().await;
    let login = app.register(&unique_email("deleted")).await;
    sqlx::query("DELETE FROM sessions")
        .execute(&app.db)
        .await
        .unwrap();
    let reply = app.get("/api/me", Some(&login.access)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "session_revoked");
    assert_eq!(app.refresh(&login.refresh).await.code(), "invalid_token");
}

#[tokio::test]
async fn production_uses_secure_prefixed_cookies_and_hsts() {
    let app = TestApp::with(&[
        ("APP_ENV", "production"),
        ("PUBLIC_ORIGIN", "https://login.example.com"),
    ])
    .await;
    let mut req = TestApp::form(
        "/api/auth/register",
        &credentials(&unique_email("prod"), PASSWORD),
        None,
    );
    req.headers_mut()
        .insert("origin", "https://login.example.com".parse().unwrap());
    let reply = app.send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let cookie = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Secure-refresh_token="))
        .expect("the __Secure- cookie");
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"));
    assert!(reply.header("strict-transport-security").is_some());
    // Localhost is not our origin in production.
    let mut req = TestApp::form("/api/auth/login", &credentials("a@b.co", PASSWORD), None);
    req.headers_mut()
        .insert("origin", "http://127.0.0.1:3000".parse().unwrap());
    assert_eq!(app.send(req).await.status, StatusCode::FORBIDDEN);
}

/// Every `/api/` answer is JSON: unknown paths and wrong methods included.
#[tokio::test]
async fn unknown_api_paths_and_wrong_methods_answer_json() {
    let app = TestApp::new().await;
    for (method, path) in [
        (Method::GET, "/api/nope"),
        (Method::GET, "/api/auth/nope/deeper"),
        (Method::DELETE, "/api/me/extra"),
    ] {
        let reply = app.bearer_call(method.clone(), path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.code(), "not_found", "{method} {path}");
        assert!(reply.body["message"].is_string());
    }
    let reply = app.post("/api/auth/nope", "", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");

    for (method, path, allowed) in [
        (Method::GET, "/api/auth/login", "POST"),
        (Method::PUT, "/api/me", "GET"),
        (Method::GET, "/api/auth/refresh", "POST"),
        (Method::POST, "/api/sessions/some-id", "DELETE"),
    ] {
        let reply = app.bearer_call(method.clone(), path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(reply.code(), "method_not_allowed", "{method} {path}");
        assert!(
            reply.header("allow").is_some_and(|a| a.contains(allowed)),
            "{method} {path}: {:?}",
            reply.header("allow")
        );
        assert!(reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")));
    }
    // Pages are untouched: an unknown page is still the app's HTML.
    let reply = app.get("/no-such-page", None).await;
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
}
