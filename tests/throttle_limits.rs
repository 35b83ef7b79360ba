//! What bounds login from outside: the hashing slots (a 503 when all are
//! busy, which the throttle does not count), the throttle's rows (an
//! over-long email costs them a bounded key), and the throttle across
//! server instances on one database (its state is rows, shared by all).

mod common;

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{body::Body, http::Request, http::StatusCode, Router};
use silent_refresh::auth::{
    password::Slot,
    throttle::LEASE,
    validate::{email_key, EMAIL_KEY_MAX_BYTES},
};
use silent_refresh::server::{router, AppState};
use tower::ServiceExt;

use common::{credentials, unique_email, TestApp, PASSWORD};

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

    let rows = "SELECT COUNT(*) FROM login_attempts";
    let keys = "SELECT COUNT(DISTINCT email_key) FROM login_attempts";
    let longest = "SELECT CAST(MAX(LENGTH(email_key)) AS BIGINT) FROM login_attempts";
    assert_eq!((app.count(rows).await, app.count(keys).await), (1, 1));
    assert!(app.count(longest).await as usize <= EMAIL_KEY_MAX_BYTES);

    // The same email in another case is the same counter.
    app.login_reply(&email.to_lowercase(), "not the password")
        .await;
    assert_eq!((app.count(rows).await, app.count(keys).await), (2, 1));
}

/// A throttle that can't reach its rows answers as any database fault
/// does: 503 `unavailable`, never a pass.
#[tokio::test]
async fn login_and_register_answer_503_when_the_throttle_rows_are_out_of_reach() {
    let app = TestApp::new().await;
    let email = unique_email("fault");
    app.register(&email).await;
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    let execute = |sql: String| {
        let db = app.db.clone();
        async move { sqlx::query(&sql).execute(&db).await.unwrap() }
    };

    execute(rename("address_attempts", "address_attempts_away")).await;
    for reply in [
        app.login_reply(&email, PASSWORD).await,
        app.register_reply(&unique_email("fault"), PASSWORD).await,
    ] {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.code(), "unavailable");
        assert!(reply.header("retry-after").is_some());
    }
    execute(rename("address_attempts_away", "address_attempts")).await;

    execute(rename("login_attempts", "login_attempts_away")).await;
    let reply = app.login_reply(&email, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "unavailable");
    execute(rename("login_attempts_away", "login_attempts")).await;

    app.login(&email).await;
}

/// Two server instances on one database: the test's own, and another with
/// its own pool and state (and so its own process-local locks), on the
/// same clock. Both trust `X-Forwarded-For`, so a test picks the address.
struct TwoInstances {
    app: TestApp,
    other: AppState,
    routers: [Router; 2],
}

impl TwoInstances {
    async fn with(vars: &[(&str, &str)]) -> Self {
        let vars = [vars, &[("TRUST_X_FORWARDED_FOR", "true")]].concat();
        let app = TestApp::with(&vars).await;
        let pool = silent_refresh::db::connect(&app.config.database_url)
            .await
            .unwrap();
        let options = leptos::config::LeptosOptions::builder()
            .output_name("silent-refresh")
            .build();
        let other = AppState::new(
            options,
            pool,
            app.config.clone(),
            Arc::new(app.clock.clone()),
        );
        let routers = [app.router.clone(), router(other.clone())];
        Self {
            app,
            other,
            routers,
        }
    }

    /// A login on `instance` (0 or 1) from `address`: the status, and
    /// `Retry-After` if any.
    async fn login(
        &self,
        instance: usize,
        address: &str,
        email: &str,
        password: &str,
    ) -> (StatusCode, Option<String>) {
        let request = self.request("/api/auth/login", address, email, password);
        let response = self.routers[instance]
            .clone()
            .oneshot(request)
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status(), retry_after)
    }

    fn request(&self, path: &str, address: &str, email: &str, password: &str) -> Request<Body> {
        let mut request = TestApp::form(path, &credentials(email, password), None);
        request
            .headers_mut()
            .insert("x-forwarded-for", address.parse().unwrap());
        request
    }
}

#[tokio::test]
async fn five_failures_spread_over_two_instances_lock_the_pair_on_both() {
    let two = TwoInstances::with(&[]).await;
    let email = unique_email("spread");
    two.app.register(&email).await;
    for i in 0..5 {
        let (status, _) = two
            .login(i % 2, "203.0.113.1", &email, "wrong guess!")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for instance in [0, 1] {
        let (status, retry_after) = two.login(instance, "203.0.113.1", &email, PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "instance {instance}");
        let wait: u64 = retry_after.unwrap().parse().unwrap();
        assert!((1..=900).contains(&wait), "{wait}");
    }
    // Another address is not locked out by them.
    let (status, _) = two.login(1, "198.51.100.2", &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // Once the oldest failure leaves the window, either lets one try in.
    two.app.advance(Duration::from_secs(15 * 60 + 1));
    let (status, _) = two.login(1, "203.0.113.1", &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn twenty_failures_spread_over_two_instances_lock_the_email() {
    let two = TwoInstances::with(&[]).await;
    let email = unique_email("spread-email");
    two.app.register(&email).await;
    for i in 0..20 {
        let address = format!("203.0.113.{}", i + 1);
        let (status, _) = two.login(i % 2, &address, &email, "wrong guess!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for instance in [0, 1] {
        let (status, _) = two.login(instance, "198.51.100.9", &email, PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "instance {instance}");
    }
}

#[tokio::test]
async fn the_address_rate_counts_attempts_on_both_instances() {
    let two = TwoInstances::with(&[("AUTH_RATE_PER_MINUTE", "3")]).await;
    for i in 0..3 {
        let (status, _) = two
            .login(i % 2, "203.0.113.7", &unique_email("r"), "whatever123")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for instance in [0, 1] {
        let (status, retry_after) = two
            .login(instance, "203.0.113.7", &unique_email("r"), "whatever123")
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "instance {instance}");
        assert!(retry_after.is_some());
    }
    two.app.advance(Duration::from_secs(61));
    let (status, _) = two
        .login(1, "203.0.113.7", &unique_email("r"), "whatever123")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Attempts in flight on one instance count on the other; when that
/// instance dies mid-check, their leases run out and nothing stays stuck.
#[tokio::test]
async fn attempts_in_flight_on_a_crashed_instance_count_until_their_lease_runs_out() {
    let two = TwoInstances::with(&[]).await;
    let email = unique_email("crash");
    two.app.register(&email).await;
    let address: IpAddr = "203.0.113.5".parse().unwrap();
    let throttle = &two.other.auth.service.throttle;
    let now = two.app.state.auth.clock.now_ms();
    for _ in 0..5 {
        let attempt = throttle
            .begin(&email_key(&email), address, now)
            .await
            .unwrap()
            .expect("room for five");
        // The other instance crashes mid-check: nothing ever ends these.
        std::mem::forget(attempt);
    }
    let (status, retry_after) = two.login(0, "203.0.113.5", &email, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after.as_deref(), Some("1"));

    two.app.advance(LEASE);
    let (status, _) = two.login(0, "203.0.113.5", &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// Parallel guesses get no more places than serial ones, wherever they
/// land: the check and the record are one step per email, across instances.
#[tokio::test]
async fn parallel_attempts_on_two_instances_get_no_more_places_than_the_limit() {
    let two = TwoInstances::with(&[]).await;
    let key = email_key(&unique_email("parallel"));
    let address: IpAddr = "203.0.113.6".parse().unwrap();
    let now = two.app.state.auth.clock.now_ms();
    let throttles = [
        &two.app.state.auth.service.throttle,
        &two.other.auth.service.throttle,
    ];
    // Connections open on both first, so the attempts truly overlap.
    let warm_up = (0..24u8).map(|i| {
        let address = IpAddr::from([198, 51, 100, i]);
        throttles[usize::from(i % 2)].check_rate(address, now)
    });
    for verdict in futures::future::join_all(warm_up).await {
        verdict.unwrap().unwrap();
    }
    let begun =
        futures::future::join_all((0..24).map(|i| throttles[i % 2].begin(&key, address, now)))
            .await;
    let mut admitted = Vec::new();
    for verdict in begun {
        if let Ok(attempt) = verdict.unwrap() {
            admitted.push(attempt);
        }
    }
    assert_eq!(admitted.len(), 5);
    for attempt in admitted {
        attempt.unavailable().await.unwrap();
    }
}

/// The same for the per-address rate.
#[tokio::test]
async fn parallel_attempts_from_one_address_get_no_more_than_its_rate() {
    let two = TwoInstances::with(&[("AUTH_RATE_PER_MINUTE", "3")]).await;
    let address: IpAddr = "203.0.113.8".parse().unwrap();
    let now = two.app.state.auth.clock.now_ms();
    let throttles = [
        &two.app.state.auth.service.throttle,
        &two.other.auth.service.throttle,
    ];
    let checked =
        futures::future::join_all((0..24).map(|i| throttles[i % 2].check_rate(address, now))).await;
    let admitted = checked
        .into_iter()
        .filter(|verdict| verdict.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(admitted, 3);
}
