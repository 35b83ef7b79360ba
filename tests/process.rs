//! The real binary: a bad setting stops the start with one line, a restart
//! or a crash logs nobody out, and SIGTERM lets in-flight requests finish.

mod common;

use std::{process::Command, time::Duration};

use common::binary::{form, free_addr, http, Server, BIN};
use common::PASSWORD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("ACCESS_TOKEN_TTL", "soon"),
        ("LEPTOS_SITE_ADDR", "nowhere"),
        ("APP_ENV", "production"),
    ] {
        let output = Command::new(BIN)
            .env_clear()
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display()),
            )
            .env(var, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{var}={value} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        let named = if var == "APP_ENV" {
            "JWT_ACCESS_SECRET"
        } else {
            var
        };
        assert!(lines[0].contains(named), "{stderr}");
    }
}

#[test]
fn an_unreachable_postgres_stops_the_start_with_one_line_naming_the_host() {
    let closed = free_addr();
    let password = "pa55-never-printed";
    let output = Command::new(BIN)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("postgres://app:{password}@{closed}/auth?password={password}"),
        )
        .env("JWT_ACCESS_SECRET", "a".repeat(40))
        .env("REFRESH_TOKEN_SECRET", "r".repeat(40))
        .output()
        .unwrap();
    assert!(!output.status.success(), "started without its database");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&closed.to_string()), "{stderr}");
    assert!(lines[0].contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains(password), "{stderr}");
}

#[tokio::test]
async fn restarts_and_crashes_log_nobody_out_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let origin = ("Origin", format!("http://{addr}"));

    let server = Server::start(dir.path(), addr, &[]).await;
    let body = format!(
        "email=crash%40example.com&password={}",
        PASSWORD.replace(' ', "+")
    );
    let reply = http(
        addr,
        "POST",
        "/api/auth/register",
        &[form(), origin.clone()],
        &body,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let access = reply.json()["access_token"].as_str().unwrap().to_string();
    let mut refresh = reply.cookie("refresh_token").unwrap();

    // A crash: no shutdown at all. Development secrets were kept in the
    // data folder, so tokens issued before still work after.
    drop(server);
    let server = Server::start(dir.path(), addr, &[]).await;
    let me = http(
        addr,
        "GET",
        "/api/me",
        &[("Authorization", format!("Bearer {access}"))],
        "",
    )
    .await
    .unwrap();
    assert_eq!(me.status, 200, "{}", me.body);
    let cookie = ("Cookie", format!("refresh_token={refresh}"));
    let reply = http(
        addr,
        "POST",
        "/api/auth/refresh",
        &[form(), origin.clone(), cookie],
        "",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    refresh = reply.cookie("refresh_token").unwrap();

    // SIGTERM while a login is provably in flight: the request asks for
    // `100 Continue`, which the server sends only once a handler reads the
    // body; the signal goes after that, the body after the signal. The
    // server can't have answered before the signal, and must answer after.
    let body = format!(
        "email=crash%40example.com&password={}",
        PASSWORD.replace(' ', "+")
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nOrigin: {}\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        origin.1,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    server.signal("-TERM");
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let answer = String::from_utf8_lossy(&raw);
    assert!(
        answer.trim_start().starts_with("HTTP/1.1 200"),
        "the in-flight request finished: {answer}"
    );
    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "graceful exit: {status:?}");

    // A normal restart: the latest cookie rotates again.
    let _server = Server::start(dir.path(), addr, &[]).await;
    let cookie = ("Cookie", format!("refresh_token={refresh}"));
    let reply = http(
        addr,
        "POST",
        "/api/auth/refresh",
        &[form(), origin, cookie],
        "",
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}
