//! Database faults: a database locked beyond the busy timeout gives a clear
//! 503 (never a panic, never a half-applied change), the refresh cookie is
//! kept, and everything recovers when the lock goes.

mod common;

use axum::http::StatusCode;
use common::*;
use sqlx::{Connection, SqliteConnection};

/// Another process holding the write lock, as a second writer would.
async fn hold_write_lock(app: &TestApp) -> SqliteConnection {
    let mut holder = SqliteConnection::connect(app.config.database_url.expose())
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

async fn release(mut holder: SqliteConnection) {
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
}

#[tokio::test]
async fn locked_database_is_503_then_recovers() {
    let app = TestApp::on_sqlite(&[]).await;
    let login = app.register(&unique_email("lock")).await;

    // Another process holds the write lock past the 5 s busy timeout.
    let holder = hold_write_lock(&app).await;

    let (ready, refresh) = tokio::join!(app.get("/readyz", None), app.refresh(&login.refresh));
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.code(), "unavailable");
    assert_eq!(refresh.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refresh.code(), "unavailable");
    assert!(refresh.header("retry-after").is_some());
    assert!(
        refresh.set_cookies().is_empty(),
        "a fault keeps the cookie: the client retries and stays signed in"
    );
    // The liveness probe never touches the database.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);

    release(holder).await;

    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    let reply = app.refresh(&login.refresh).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the same cookie works after the fault"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refresh_tokens").await,
        2,
        "nothing was half-applied"
    );
}

/// A readiness probe cancelled while it waits for the write lock (a load
/// balancer's probe timing out) must not leave its connection holding the
/// lock once the database frees up: every later write would then fail.
#[tokio::test]
async fn cancelled_readiness_probe_leaves_no_lock_behind() {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::{str::FromStr, time::Duration};

    let app = TestApp::on_sqlite(&[]).await;
    let login = app.register(&unique_email("probe")).await;

    let holder = hold_write_lock(&app).await;
    // The probe waits on the 5 s busy timeout; its caller gives up first.
    let probe = tokio::time::timeout(Duration::from_millis(300), app.get("/readyz", None)).await;
    assert!(probe.is_err(), "the probe was still waiting for the lock");
    release(holder).await;
    // The cancelled probe's BEGIN sits in its connection's worker thread,
    // retrying every few milliseconds; give it time to get the lock if it
    // is going to keep it.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An outside writer gets the lock at once: nobody kept it.
    let options = SqliteConnectOptions::from_str(app.config.database_url.expose())
        .unwrap()
        .busy_timeout(Duration::from_millis(500));
    let mut outsider = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut outsider)
        .await
        .expect("no pooled connection holds the write lock");
    sqlx::query("ROLLBACK")
        .execute(&mut outsider)
        .await
        .unwrap();

    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&login.refresh).await.status, StatusCode::OK);
}
