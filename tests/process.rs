//! The real binary: a bad setting stops the start with one line, a restart
//! or a crash logs nobody out, and SIGTERM lets in-flight requests finish.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_silent-refresh");
const PASSWORD: &str = "correct horse battery staple";

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            if !key.eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let value = value.trim().strip_prefix(&format!("{name}="))?;
            Some(value.split(';').next()?.to_string())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A minimal HTTP/1.1 exchange: enough for a test, no client library needed.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<Reply> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn form() -> (&'static str, String) {
    (
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )
}

struct Server {
    child: Child,
}

impl Server {
    async fn start(data: &Path, addr: SocketAddr) -> Self {
        let child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", data.join("app.db").display()),
            )
            .env("LEPTOS_SITE_ADDR", addr.to_string())
            .env("LEPTOS_SITE_ROOT", data.join("site"))
            .env("RUST_LOG", "warn")
            .current_dir(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http(addr, "GET", "/healthz", &[], "")
                .await
                .is_ok_and(|r| r.status == 200)
            {
                return Self { child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not start");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

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

#[tokio::test]
async fn restarts_and_crashes_log_nobody_out_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let origin = ("Origin", format!("http://{addr}"));

    let server = Server::start(dir.path(), addr).await;
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
    let server = Server::start(dir.path(), addr).await;
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
    let _server = Server::start(dir.path(), addr).await;
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
