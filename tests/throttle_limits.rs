//! What bounds login from outside: the hashing slots (a 503 when all are
//! busy, which the throttle does not count) and the throttle's memory (an
//! over-long email costs it a bounded key).

mod common;

use std::{collections::HashMap, sync::Arc};

use axum::{http::StatusCode, Router};
use http_body_util::BodyExt;
use serde_json::Value;
use silent_refresh::{
    auth::validate::EMAIL_KEY_MAX_BYTES,
    clock::ManualClock,
    config::Config,
    server::{router, AppState},
};
use tower::ServiceExt;

use common::{credentials, unique_email, Reply, TestApp, PASSWORD};

/// The app with its state in reach, which `TestApp` does not offer.
struct App {
    router: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl App {
    async fn with(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let mut env: HashMap<String, String> = HashMap::from([
            (
                "DATABASE_URL".into(),
                format!("sqlite://{}?mode=rwc", db.display()),
            ),
            (
                "JWT_ACCESS_SECRET".into(),
                "test access secret, thirty-two bytes or more".into(),
            ),
            (
                "REFRESH_TOKEN_SECRET".into(),
                "test refresh secret, thirty-two bytes or more".into(),
            ),
            ("AUTH_RATE_PER_MINUTE".into(), "1000".into()),
        ]);
        for (k, v) in vars {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
        let pool = silent_refresh::db::connect(&config.database_url)
            .await
            .unwrap();
        let options = leptos::config::LeptosOptions::builder()
            .output_name("silent-refresh")
            .build();
        let state = AppState::new(options, pool, config, Arc::new(ManualClock::starting_now()));
        Self {
            router: router(state.clone()),
            state,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(TestApp::form(path, body, None))
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/api/auth/login", &credentials(email, password))
            .await
    }
}

/// Takes every hashing slot now free.
async fn hold_every_slot(app: &App) -> Vec<silent_refresh::auth::password::Slot> {
    let passwords = &app.state.auth.passwords;
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
    let app = App::with(&[("LOGIN_MAX_FAILURES", "1")]).await;
    let email = unique_email("slots");
    let registered = app
        .post("/api/auth/register", &credentials(&email, PASSWORD))
        .await;
    assert_eq!(registered.status, StatusCode::OK, "{:?}", registered.body);

    let held = hold_every_slot(&app).await;
    let busy = app.login(&email, PASSWORD).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.code(), "unavailable");
    assert_eq!(busy.header("retry-after"), Some("1"));

    drop(held);
    let after = app.login(&email, PASSWORD).await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
}

#[tokio::test]
async fn an_overlong_email_costs_the_throttle_a_bounded_key() {
    let app = App::with(&[]).await;
    // Near the 64 KiB body limit, far over any email.
    let email = format!("{}@example.com", "A".repeat(60 * 1024));
    let reply = app.login(&email, "not the password").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.code(), "invalid_credentials");

    let usage = app.state.auth.throttle.usage();
    assert_eq!((usage.pairs, usage.emails), (1, 1), "{usage:?}");
    assert!(usage.key_bytes <= 2 * EMAIL_KEY_MAX_BYTES, "{usage:?}");

    // The same email in another case is the same counter.
    app.login(&email.to_lowercase(), "not the password").await;
    let usage = app.state.auth.throttle.usage();
    assert_eq!((usage.pairs, usage.emails), (1, 1), "{usage:?}");
}
