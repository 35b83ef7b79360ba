//! Changing the password and deleting the account: the contract's rows,
//! on whichever engine the run asks for (tests/common).

mod common;

use axum::http::{header, HeaderValue, StatusCode};
use common::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// A bearer form POST, with the refresh cookie when given.
async fn account_post(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    login: &Login,
    with_cookie: bool,
) -> Reply {
    let body = serde_urlencoded::to_string(fields).unwrap();
    let mut request = TestApp::form(path, &body, with_cookie.then_some(login.refresh.as_str()));
    request.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", login.access)).unwrap(),
    );
    app.send(request).await
}

async fn change_password(app: &TestApp, login: &Login, current: &str, new: &str) -> Reply {
    account_post(
        app,
        "/api/auth/password",
        &[("current_password", current), ("new_password", new)],
        login,
        true,
    )
    .await
}

async fn delete_account(app: &TestApp, login: &Login, fields: &[(&str, &str)]) -> Reply {
    account_post(app, "/api/account/delete", fields, login, false).await
}

#[tokio::test]
async fn a_new_password_ends_every_other_session_and_rotates_this_one() {
    let app = TestApp::new().await;
    let email = unique_email("change");
    let here = app.register(&email).await;
    let elsewhere = app.login(&email).await;

    let reply = change_password(&app, &here, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["user"]["id"], here.user_id.as_str());
    let rotated = reply
        .refresh_token()
        .expect("this session's cookie rotated");
    assert_ne!(rotated, here.refresh);

    // This session goes on, with the new access token and the new cookie.
    let me = app.get("/api/me", Some(&reply.access_token())).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(app.refresh(&rotated).await.status, StatusCode::OK);

    // The other session is over: its access token on its next request, and
    // its refresh token.
    let me = app.get("/api/me", Some(&elsewhere.access)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.code(), "session_revoked");
    let refresh = app.refresh(&elsewhere.refresh).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh.code(), "session_revoked");

    // The old password no longer works; the new one does.
    let old = app.login_reply(&email, PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = app.login_reply(&email, NEW_PASSWORD).await;
    assert_eq!(new.status, StatusCode::OK, "{:?}", new.body);
}

#[tokio::test]
async fn a_tab_refreshing_at_the_same_moment_gets_the_grace_replay() {
    let app = TestApp::new().await;
    let here = app.register(&unique_email("race")).await;

    // Another tab of this browser refreshed first with the same cookie.
    let other_tab = app.refresh(&here.refresh).await;
    assert_eq!(other_tab.status, StatusCode::OK);
    let reply = change_password(&app, &here, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.refresh_token(), other_tab.refresh_token());

    // And the other way round: the change first, then the tab's refresh.
    let second = Login {
        access: reply.access_token(),
        refresh: reply.refresh_token().unwrap(),
        user_id: here.user_id.clone(),
    };
    let reply = change_password(&app, &second, NEW_PASSWORD, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let other_tab = app.refresh(&second.refresh).await;
    assert_eq!(other_tab.status, StatusCode::OK, "{:?}", other_tab.body);
    assert_eq!(other_tab.refresh_token(), reply.refresh_token());
    assert_eq!(
        app.get("/api/me", Some(&other_tab.access_token()))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_current_password_is_403_and_counts_once_toward_the_lockout() {
    let app = TestApp::new().await;
    let email = unique_email("wrong");
    let here = app.register(&email).await;

    // Four failures: under the lockout (five) only if each counted once.
    for _ in 0..4 {
        let reply = change_password(&app, &here, "not my password", NEW_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        assert_eq!(reply.code(), "invalid_credentials");
        // Not a bearer failure: no challenge, and the cookie stays.
        assert!(reply.header("www-authenticate").is_none());
        assert!(reply.refresh_set_cookie().is_none());
    }
    // The fifth locks the email, for login as for this endpoint.
    let reply = change_password(&app, &here, "not my password", NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = change_password(&app, &here, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.code(), "rate_limited");
    assert!(reply.header("retry-after").is_some());
    let login = app.login_reply(&email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);

    // Nothing changed: the session stands and the password is the old one.
    assert_eq!(
        app.get("/api/me", Some(&here.access)).await.status,
        StatusCode::OK
    );
    app.advance(std::time::Duration::from_secs(15 * 60 + 1));
    assert_eq!(
        app.login_reply(&email, PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn four_wrong_passwords_then_the_right_one_still_changes_it() {
    let app = TestApp::new().await;
    let here = app.register(&unique_email("four")).await;
    for _ in 0..4 {
        let reply = change_password(&app, &here, "not my password", NEW_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let reply = change_password(&app, &here, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

#[tokio::test]
async fn a_bad_new_password_is_400_and_changes_nothing() {
    let app = TestApp::new().await;
    let email = unique_email("badnew");
    let here = app.register(&email).await;
    let too_long = "x".repeat(1025);
    for (current, new) in [
        (PASSWORD, PASSWORD),
        (PASSWORD, "short"),
        (PASSWORD, too_long.as_str()),
        // Same as the current one even if the current one is wrong.
        ("whatever it is", "whatever it is"),
    ] {
        let reply = change_password(&app, &here, current, new).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{new}");
        assert_eq!(reply.code(), "invalid_input");
        assert!(reply.refresh_set_cookie().is_none());
    }
    for fields in [
        vec![("current_password", PASSWORD)],
        vec![("new_password", NEW_PASSWORD)],
        vec![],
    ] {
        let reply = account_post(&app, "/api/auth/password", &fields, &here, true).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert_eq!(reply.code(), "invalid_input");
    }
    assert_eq!(
        app.login_reply(&email, PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/me", Some(&here.access)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn changing_the_password_needs_the_bearer_and_this_sessions_cookie() {
    let app = TestApp::new().await;
    let email = unique_email("cookie");
    let here = app.register(&email).await;
    let elsewhere = app.login(&email).await;
    let fields = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
    ];

    let no_cookie = account_post(&app, "/api/auth/password", &fields, &here, false).await;
    assert_eq!(no_cookie.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_cookie.code(), "invalid_token");

    // Another session's cookie with this session's bearer.
    let mixed = Login {
        access: here.access.clone(),
        refresh: elsewhere.refresh.clone(),
        user_id: here.user_id.clone(),
    };
    let reply = change_password(&app, &mixed, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "invalid_token");

    let body = serde_urlencoded::to_string(fields).unwrap();
    let no_bearer = app
        .post("/api/auth/password", &body, Some(&here.refresh))
        .await;
    assert_eq!(no_bearer.status, StatusCode::UNAUTHORIZED);
    assert!(no_bearer.header("www-authenticate").is_some());

    // Nothing changed.
    assert_eq!(
        app.login_reply(&email, PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/me", Some(&elsewhere.access)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_the_account_removes_everything_and_frees_the_email() {
    let app = TestApp::new().await;
    let email = unique_email("delete");
    let here = app.register(&email).await;
    let elsewhere = app.login(&email).await;
    let bystander = app.register(&unique_email("bystander")).await;

    let reply = delete_account(
        &app,
        &here,
        &[("password", PASSWORD), ("confirm", "delete")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, serde_json::json!({}));
    let cleared = reply
        .refresh_set_cookie()
        .expect("the refresh cookie cleared");
    assert!(reply.refresh_token().is_none(), "{cleared}");
    assert!(reply
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("signed_in=") && c.contains("Max-Age=0")));

    // Every session is over, access and refresh tokens alike.
    for login in [&here, &elsewhere] {
        let me = app.get("/api/me", Some(&login.access)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me.code(), "session_revoked");
        assert_eq!(
            app.refresh(&login.refresh).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // No row of theirs is left; the bystander's are all there.
    let id = &here.user_id;
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM users WHERE id = '{id}'"))
            .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = '{id}'"
        ))
        .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 1);
    assert_eq!(
        app.get("/api/me", Some(&bystander.access)).await.status,
        StatusCode::OK
    );

    // The email can register again, as a new account.
    let again = app.register(&email).await;
    assert_ne!(again.user_id, here.user_id);
}

#[tokio::test]
async fn deleting_without_confirmation_or_with_a_wrong_password_changes_nothing() {
    let app = TestApp::new().await;
    let email = unique_email("keep");
    let here = app.register(&email).await;
    for fields in [
        vec![("password", PASSWORD)],
        vec![("password", PASSWORD), ("confirm", "yes")],
        vec![("password", PASSWORD), ("confirm", "DELETE")],
        vec![("confirm", "delete")],
    ] {
        let reply = delete_account(&app, &here, &fields).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert_eq!(reply.code(), "invalid_input");
    }
    let wrong = delete_account(
        &app,
        &here,
        &[("password", "not my password"), ("confirm", "delete")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.code(), "invalid_credentials");
    assert!(wrong.refresh_set_cookie().is_none());

    let unauthenticated = app
        .post(
            "/api/account/delete",
            "password=x&confirm=delete",
            Some(&here.refresh),
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.get("/api/me", Some(&here.access)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.refresh(&here.refresh).await.status, StatusCode::OK);
}
