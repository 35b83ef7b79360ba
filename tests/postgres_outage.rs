//! PostgreSQL going away while the server runs: requests that need it get
//! 503 `unavailable` (the refresh cookie is kept: nobody is logged out),
//! `/readyz` says 503, and everything recovers by itself once the database
//! is back, with no restart. A cluster of its own, so stopping it harms no
//! other test.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{postgres::Cluster, unique_email, TestApp};

#[tokio::test]
async fn an_outage_is_503_keeps_everyone_signed_in_and_heals_itself() {
    let cluster = Cluster::start();
    let app = TestApp::on(&cluster.url(), &[]).await;
    let email = unique_email("outage");
    let login = app.register(&email).await;

    cluster.stop();
    // Each waits for a connection until the pool gives up: together.
    let (refresh, me, ready, sign_in) = tokio::join!(
        app.refresh(&login.refresh),
        app.get("/api/me", Some(&login.access)),
        app.get("/readyz", None),
        app.login_reply(&email, common::PASSWORD),
    );
    for (what, reply) in [("refresh", &refresh), ("me", &me), ("login", &sign_in)] {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert_eq!(reply.code(), "unavailable", "{what}: {:?}", reply.body);
    }
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refresh.refresh_set_cookie().is_none(),
        "the refresh cookie is kept through an outage"
    );
    // The healthz liveness probe doesn't need the database.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz", None).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "/readyz never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same cookie and access token work: the outage ended nothing.
    let me = app.get("/api/me", Some(&login.access)).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    let refresh = app.refresh(&login.refresh).await;
    assert_eq!(refresh.status, StatusCode::OK, "{:?}", refresh.body);
    let again = app.login_reply(&email, common::PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
}
