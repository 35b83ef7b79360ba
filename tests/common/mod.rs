//! A test harness: the real router on a fresh database, a clock that moves
//! only when told, and a log capture to prove secrets never reach it.
//!
//! The database is a temporary SQLite file, or, when `TEST_POSTGRES_URL`
//! names a PostgreSQL server (scripts/test.sh starts a private one), a
//! fresh schema on it: the same tests run on both engines.

#![allow(dead_code)]

pub mod binary;
pub mod postgres;

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    http::{header, HeaderMap, Method, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use serde_json::Value;
use silent_refresh::{
    clock::ManualClock,
    config::Config,
    server::{router, AppState},
};
use sqlx::AnyPool;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";
pub const ORIGIN: &str = "http://127.0.0.1:3000";

pub struct TestApp {
    pub router: Router,
    /// The state behind the router, for what only housekeeping calls.
    pub state: AppState,
    pub clock: ManualClock,
    /// The test's own database, for what only SQL can check. Queries use
    /// `$1` placeholders, which both engines read.
    pub db: AnyPool,
    pub config: Config,
    pub logs: LogCapture,
    _log_guard: tracing::subscriber::DefaultGuard,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The refresh cookie this reply set, with its attributes.
    pub fn refresh_set_cookie(&self) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with("refresh_token="))
    }

    /// The refresh token value this reply set (None when cleared or absent).
    pub fn refresh_token(&self) -> Option<String> {
        let cookie = self.refresh_set_cookie()?;
        let value = cookie
            .split(';')
            .next()?
            .trim_start_matches("refresh_token=");
        (!value.is_empty()).then(|| value.to_string())
    }

    pub fn access_token(&self) -> String {
        self.body["access_token"].as_str().unwrap().to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A signed-in client: its access token and refresh cookie.
#[derive(Debug, Clone)]
pub struct Login {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    /// On the engine the run asks for (see the module comment).
    pub async fn with(vars: &[(&str, &str)]) -> Self {
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(server) if !server.is_empty() => {
                let url = postgres::fresh_schema(&server).await;
                Self::on(&url, vars).await
            }
            _ => Self::on_sqlite(vars).await,
        }
    }

    /// On SQLite whatever the run asks for: for tests of SQLite's own faults.
    pub async fn on_sqlite(vars: &[(&str, &str)]) -> Self {
        Self::on("", vars).await
    }

    /// On `database_url`, or on a temporary SQLite file when it is empty.
    pub async fn on(database_url: &str, vars: &[(&str, &str)]) -> Self {
        Self::with_options(database_url, vars, |_| {}).await
    }

    /// On SQLite, with the site's files in `site_root` (the static-file
    /// tests) and whatever else `adjust` sets in the Leptos options.
    pub async fn with_site(
        site_root: &std::path::Path,
        adjust: impl FnOnce(&mut leptos::config::LeptosOptions),
    ) -> Self {
        let site_root = site_root.to_string_lossy().into_owned();
        Self::with_options("", &[], move |options| {
            options.site_root = site_root.into();
            adjust(options);
        })
        .await
    }

    async fn with_options(
        database_url: &str,
        vars: &[(&str, &str)],
        adjust: impl FnOnce(&mut leptos::config::LeptosOptions),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match database_url {
            "" => format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display()),
            url => url.to_string(),
        };
        let mut env: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), database_url),
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
        sqlx::any::install_default_drivers();
        let db = AnyPool::connect(config.database_url.expose())
            .await
            .unwrap();
        let clock = ManualClock::starting_now();
        let mut options = leptos::config::LeptosOptions::builder()
            .output_name("silent-refresh")
            .build();
        adjust(&mut options);
        let state = AppState::new(
            options,
            pool.clone(),
            config.clone(),
            Arc::new(clock.clone()),
        );
        let logs = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        Self {
            router: router(state.clone()),
            state,
            clock,
            db,
            config,
            logs,
            _log_guard: tracing::subscriber::set_default(subscriber),
            _dir: dir,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A same-origin form POST, as the browser app sends it.
    pub fn form(path: &str, body: &str, refresh: Option<&str>) -> Request<Body> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, ORIGIN)
            .header("sec-fetch-site", "same-origin")
            .header(header::USER_AGENT, "integration-test");
        if let Some(token) = refresh {
            builder = builder.header(header::COOKIE, format!("refresh_token={token}"));
        }
        builder.body(Body::from(body.to_string())).unwrap()
    }

    pub async fn post(&self, path: &str, body: &str, refresh: Option<&str>) -> Reply {
        self.send(Self::form(path, body, refresh)).await
    }

    pub async fn register_reply(&self, email: &str, password: &str) -> Reply {
        self.post("/api/auth/register", &credentials(email, password), None)
            .await
    }

    pub async fn login_reply(&self, email: &str, password: &str) -> Reply {
        self.post("/api/auth/login", &credentials(email, password), None)
            .await
    }

    pub async fn register(&self, email: &str) -> Login {
        let reply = self.register_reply(email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        login_of(&reply)
    }

    pub async fn login(&self, email: &str) -> Login {
        let reply = self.login_reply(email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        login_of(&reply)
    }

    pub async fn refresh(&self, token: &str) -> Reply {
        self.post("/api/auth/refresh", "", Some(token)).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.bearer_call(Method::GET, path, bearer).await
    }

    pub async fn bearer_call(&self, method: Method, path: &str, bearer: Option<&str>) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(builder.body(Body::empty()).unwrap()).await
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }
}

pub fn credentials(email: &str, password: &str) -> String {
    serde_urlencoded::to_string([("email", email), ("password", password)]).unwrap()
}

pub fn login_of(reply: &Reply) -> Login {
    Login {
        access: reply.access_token(),
        refresh: reply.refresh_token().expect("a refresh cookie"),
        user_id: reply.body["user"]["id"].as_str().unwrap().to_string(),
    }
}

pub fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Collects everything the app logs during a test.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
