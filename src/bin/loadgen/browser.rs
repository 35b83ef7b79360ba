//! One browser as the server sees it: a connection pool and a cookie jar,
//! sending the same requests the app's `AuthClient` sends.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use reqwest::{
    cookie::{CookieStore, Jar},
    header, Client, RequestBuilder, Response, StatusCode, Url,
};
use serde::Deserialize;

use crate::Target;

/// Long enough for a login queued behind argon2; short enough to bound a run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the requests go, each address checked to be loopback. With more
/// than one address (instances of one service behind a load balancer that
/// isn't there), requests take turns, and one whose connection is refused
/// is sent to the next address instead, as a load balancer would.
#[derive(Debug)]
pub struct Server {
    bases: Vec<Url>,
    origin: String,
    turn: AtomicUsize,
    failovers: AtomicU64,
}

impl Server {
    /// `origin` must equal the server's `PUBLIC_ORIGIN` (defaults to
    /// `base`, the first address); `peers` are the other instances.
    pub fn new(target: &Target) -> Result<Self, String> {
        let bases = std::iter::once(("--base", &target.base))
            .chain(target.peers.iter().map(|peer| ("--peer", peer)))
            .map(|(flag, base)| loopback_url(flag, base))
            .collect::<Result<Vec<_>, _>>()?;
        let default_origin = bases[0].origin().ascii_serialization();
        Ok(Self {
            origin: target.origin.clone().unwrap_or(default_origin),
            bases,
            turn: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
        })
    }

    /// `path` at the first address.
    pub fn url(&self, path: &str) -> Url {
        self.url_at(0, path)
    }

    fn url_at(&self, index: usize, path: &str) -> Url {
        self.bases[index % self.bases.len()]
            .join(path)
            .expect("a fixed path joins a base URL")
    }

    pub fn addresses(&self) -> usize {
        self.bases.len()
    }

    /// Requests whose connection was refused (or timed out) at one address
    /// and that were sent to the next.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Sends the request `build` makes for `path` to the address whose turn
    /// it is, and to the next one while connecting fails.
    async fn send(
        &self,
        path: &str,
        build: impl Fn(Url) -> RequestBuilder,
    ) -> Result<Response, reqwest::Error> {
        let first = if self.bases.len() > 1 {
            self.turn.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let mut tried = 0;
        loop {
            let result = build(self.url_at(first + tried, path)).send().await;
            tried += 1;
            match result {
                // Nothing reached that address: the next one may take it.
                Err(e) if e.is_connect() && tried < self.bases.len() => {
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                }
                result => return result,
            }
        }
    }
}

fn loopback_url(flag: &str, base: &str) -> Result<Url, String> {
    let url = Url::parse(base).map_err(|e| format!("{flag} {base}: {e}"))?;
    let host = url.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback || url.scheme() != "http" {
        return Err(format!(
            "{flag} {url}: only http:// on a loopback address is allowed"
        ));
    }
    Ok(url)
}

/// What came back, reduced to what the load generator judges.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// The contract's `error` code, when the body is an error.
    pub code: String,
    /// Present on a `TokenResponse`; kept in memory only, never printed.
    pub access_token: Option<String>,
    pub expires_in: u64,
    /// The rotated refresh cookie's value, to compare duplicate answers.
    pub refresh_cookie: Option<String>,
    /// A 5xx whose body talks about a busy or locked database.
    pub mentions_busy: bool,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

/// A failed exchange: the request or its answer never completed.
pub type Outcome = Result<Answer, reqwest::Error>;

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: u64,
}

/// One row of `GET /api/sessions`, as far as the load generator reads it.
#[derive(Deserialize)]
struct SessionRow {
    id: String,
    current: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

pub struct Browser {
    http: Client,
    jar: Arc<Jar>,
    server: Arc<Server>,
}

impl Browser {
    pub fn new(server: Arc<Server>) -> Self {
        let jar = Arc::new(Jar::default());
        let http = Client::builder()
            .cookie_provider(jar.clone())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent("silent-refresh-loadgen")
            .build()
            .expect("an HTTP client without TLS builds");
        Self { http, jar, server }
    }

    /// True while the jar holds a refresh cookie (sent on `/api/auth/*`).
    pub fn has_refresh_cookie(&self) -> bool {
        self.jar
            .cookies(&self.server.url("/api/auth/refresh"))
            .and_then(|v| v.to_str().ok().map(|s| s.contains("refresh_token=")))
            .unwrap_or(false)
    }

    pub async fn healthz(&self) -> Outcome {
        let response = self
            .server
            .send("/healthz", |url| self.http.get(url))
            .await?;
        finish(response, false).await
    }

    /// A protected `GET` with the bearer token, as `AuthClient` sends it.
    pub async fn get_protected(&self, path: &str, access_token: &str) -> Outcome {
        let response = self
            .server
            .send(path, |url| self.http.get(url).bearer_auth(access_token))
            .await?;
        finish(response, false).await
    }

    /// A protected `DELETE` with the bearer token (revoking sessions).
    pub async fn delete_protected(&self, path: &str, access_token: &str) -> Outcome {
        let response = self
            .server
            .send(path, |url| self.http.delete(url).bearer_auth(access_token))
            .await?;
        finish(response, false).await
    }

    /// The ids of the user's live sessions other than the bearer's own.
    pub async fn other_sessions(&self, access_token: &str) -> Result<Vec<String>, String> {
        let response = self
            .server
            .send("/api/sessions", |url| {
                self.http.get(url).bearer_auth(access_token)
            })
            .await
            .map_err(|e| format!("GET /api/sessions: {e}"))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("GET /api/sessions answered {status}"));
        }
        let sessions: Vec<SessionRow> = response
            .json()
            .await
            .map_err(|e| format!("GET /api/sessions: {e}"))?;
        Ok(sessions
            .into_iter()
            .filter(|s| !s.current)
            .map(|s| s.id)
            .collect())
    }

    pub async fn register(&self, email: &str, password: &str) -> Outcome {
        self.auth_post("register", &[("email", email), ("password", password)])
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Outcome {
        self.auth_post("login", &[("email", email), ("password", password)])
            .await
    }

    /// Rotates the jar's refresh cookie; the jar takes the successor.
    pub async fn refresh(&self) -> Outcome {
        self.auth_post("refresh", &[]).await
    }

    pub async fn logout(&self) -> Outcome {
        self.auth_post("logout", &[]).await
    }

    /// A same-origin form POST, like the browser app's.
    ///
    /// Its cookies are read from the jar once, before the first attempt:
    /// a request that fails over to the next address carries the same
    /// cookies, as a load balancer resends the same request. (Read again,
    /// the jar could hold a successor that the other half of a duplicate
    /// refresh brought back meanwhile. A `Cookie` header set here keeps the
    /// client from adding the jar's.)
    async fn auth_post(&self, endpoint: &str, form: &[(&str, &str)]) -> Outcome {
        let path = format!("/api/auth/{endpoint}");
        let cookies = self.jar.cookies(&self.server.url(&path));
        let response = self
            .server
            .send(&path, |url| {
                let request = self
                    .http
                    .post(url)
                    .header(header::ORIGIN, &self.server.origin)
                    .header("sec-fetch-site", "same-origin")
                    .form(form);
                match &cookies {
                    Some(cookies) => request.header(header::COOKIE, cookies.clone()),
                    None => request,
                }
            })
            .await?;
        finish(response, true).await
    }
}

/// Reads the body; parses it only where the answer carries something we use.
async fn finish(response: reqwest::Response, token_expected: bool) -> Outcome {
    let status = response.status();
    let refresh_cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("refresh_token="))
        .and_then(|v| v.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let bytes = response.bytes().await?;
    let mut answer = Answer {
        status: status.as_u16(),
        refresh_cookie,
        ..Answer::default()
    };
    if status == StatusCode::OK && token_expected {
        if let Ok(body) = serde_json::from_slice::<TokenBody>(&bytes) {
            answer.access_token = Some(body.access_token);
            answer.expires_in = body.expires_in;
        }
    } else if !status.is_success() {
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
            answer.code = body.error;
        }
        if status.is_server_error() {
            let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
            answer.mentions_busy = text.contains("busy") || text.contains("locked");
        }
    }
    Ok(answer)
}
