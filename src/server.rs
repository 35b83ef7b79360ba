//! Assembles the server: state, routes, middleware, and a graceful serve loop.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, FromRef, Request},
    handler::Handler as _,
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{any, delete, get, post},
    Json, Router,
};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::app::{shell, App};
use crate::auth::{
    account, error::Failure, forms, guard, handlers, history, model::ErrorCode, state::AuthContext,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{fill_development_secrets, Config, ConfigError};

/// Everything a handler or server function may need. Axum clones the state
/// for every request, so it is one shared pointer. Each feature's handlers
/// extract their own share of it through `FromRef`.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

pub struct SharedState {
    pub leptos_options: LeptosOptions,
    pub config: Config,
    pub auth: AuthContext,
}

impl AppState {
    pub fn new(
        leptos_options: LeptosOptions,
        pool: crate::db::Pool,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let auth = AuthContext::new(&config, pool.into(), clock);
        Self(Arc::new(SharedState {
            leptos_options,
            config,
            auth,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for AuthContext {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuration: Cargo.toml [package.metadata.leptos]: {0}")]
    Leptos(String),
    #[error("database: {0}")]
    Database(#[from] crate::db::ConnectError),
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serve: {0}")]
    Serve(std::io::Error),
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Err(_) => EnvFilter::new("info"),
        Ok(value) => EnvFilter::try_new(&value).unwrap_or_else(|e| {
            eprintln!("configuration: RUST_LOG: {e}");
            std::process::exit(1);
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run() -> Result<(), StartError> {
    return_large_blocks_to_the_os();
    let mut config = Config::from_env()?;
    fill_development_secrets(&mut config)?;
    let pool = crate::db::connect(&config.database_url).await?;

    let mut leptos_options = leptos::config::get_configuration(None)
        .map_err(|e| StartError::Leptos(e.to_string()))?
        .leptos_options;
    leptos_options.site_addr = config.site_addr;
    crate::assets::locate_hash_file(&mut leptos_options).map_err(StartError::Leptos)?;
    crate::assets::prepare(&leptos_options).await;

    let addr = config.site_addr;
    let state = AppState::new(leptos_options, pool.clone(), config, Arc::new(SystemClock));
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!("listening on http://{addr}");

    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(StartError::Serve)?;

    housekeeping.abort();
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// argon2 takes 19 MiB per hash on whichever blocking thread runs it. glibc
/// raises its mmap threshold after such a block is freed, so later ones stay
/// in per-thread arenas and memory climbs with each new thread (hundreds of
/// MiB after a burst of logins). A fixed threshold hands them back at once.
fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it takes its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// The whole application: API routes, server functions and pages.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    // Files under the site root; any other path is the app's own 404 page.
    let context_state = state.clone();
    let context_auth = state.auth.clone();
    // The 404 page is a page like the others: the same context, and the
    // request's nonce on its hydration scripts (without it the policy
    // blocks them and the page never hydrates).
    let not_found_context = {
        let (state, auth) = (state.clone(), state.auth.clone());
        move || {
            provide_context(state.clone());
            provide_context(auth.clone());
            provide_request_nonce();
        }
    };
    let site_files = crate::assets::site_files(
        &state.leptos_options,
        leptos_axum::file_and_error_handler_with_context::<AppState, _>(not_found_context, shell)
            .with_state(state.clone()),
    );

    let api = Router::new()
        .route("/api/auth/register", post(handlers::register))
        .route("/api/auth/login", post(handlers::login))
        .route("/api/auth/logout", post(handlers::logout))
        .route("/api/auth/password", post(account::change_password))
        .route("/api/account/delete", post(account::delete_account))
        .route("/api/account/history", get(history::history))
        .route("/api/me", get(handlers::me))
        .route("/api/dashboard", get(handlers::dashboard))
        .route(
            "/api/sessions",
            get(handlers::list_sessions).delete(handlers::revoke_all_sessions),
        )
        .route("/api/sessions/{id}", delete(handlers::revoke_session))
        // Static routes win over this one, the refresh server function's too.
        .route("/api/{*unknown}", any(unknown_api_path))
        .layer(DefaultBodyLimit::max(guard::MAX_BODY_BYTES));

    // The pages' own form posts; Leptos adds `GET` for the same paths.
    let page_forms = Router::new()
        .route("/login", post(forms::login))
        .route("/register", post(forms::register))
        .layer(DefaultBodyLimit::max(guard::MAX_BODY_BYTES));

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(page_forms)
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(context_state.clone());
                provide_context(context_auth.clone());
                provide_request_nonce();
            },
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback_service(site_files)
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            guard::auth_post_guard,
        ))
        .layer(middleware::from_fn(api_answers_in_json))
        .layer(middleware::from_fn_with_state(
            state.config.is_production(),
            security_headers,
        ))
        .layer(crate::assets::html_compression())
        .with_state(state)
}

async fn unknown_api_path() -> Failure {
    Failure::new(ErrorCode::NotFound, "There is no such API endpoint.")
}

/// Every `/api/` answer is JSON, the router's own 405 (an empty body)
/// included. Its `Allow` header is kept.
async fn api_answers_in_json(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let response = next.run(req).await;
    if !is_api || response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut json = Failure::new(
        ErrorCode::MethodNotAllowed,
        "This endpoint does not accept that method.",
    )
    .into_response();
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
}

/// The per-request nonce that the page's inline scripts carry and its
/// Content-Security-Policy names.
#[derive(Clone)]
struct CspNonce(Arc<str>);

impl CspNonce {
    fn generate() -> Self {
        use base64::Engine as _;
        use rand_core::RngCore as _;
        let mut bytes = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }
}

/// Hands the middleware's nonce to the render, so Leptos's hydration
/// scripts carry the nonce the header allows.
fn provide_request_nonce() {
    use leptos::prelude::use_context;
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
    if let Some(CspNonce(value)) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(value));
    }
}

fn page_policy(nonce: &str, production: bool) -> String {
    // Live reload (development only) talks over a websocket.
    let connect = if production { "'self'" } else { "'self' ws:" };
    // Style attributes rendered on the server can't carry a nonce; styles
    // can't run code, so they are allowed inline.
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src {connect}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Headers every response carries. Pages get a nonce-based CSP; everything
/// else one that allows nothing at all.
async fn security_headers(
    axum::extract::State(production): axum::extract::State<bool>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let dynamic = !path.starts_with("/pkg/");
    // Only a page render can use a nonce; the API, probes and assets skip
    // the random draw.
    let page = req.method() == axum::http::Method::GET
        && dynamic
        && !path.starts_with("/api/")
        && path != "/healthz"
        && path != "/readyz";
    let nonce = page.then(CspNonce::generate);
    if let Some(nonce) = &nonce {
        req.extensions_mut().insert(nonce.clone());
    }
    let mut response = next.run(req).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    let policy = nonce
        .filter(|_| is_html)
        .and_then(|nonce| HeaderValue::from_str(&page_policy(&nonce.0, production)).ok());
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        policy.unwrap_or(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        )),
    );
    // Pages and API answers are per person. Only the site's files say how
    // long they may be kept (src/assets.rs); anything else, a 404 for a
    // missing file included, is not kept at all.
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    if production {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    response
}

/// Deletes sessions that ended over a week ago, and the throttle's rows
/// that no longer count.
async fn housekeeping(state: AppState) {
    const RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 86400);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = state.auth.clock.now_ms();
        if let Err(e) = state.auth.service.throttle.purge(now).await {
            tracing::warn!(error = %e, "housekeeping of the login throttle failed");
        }
        match state.auth.store.purge_ended(now, RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "purged ended sessions"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        let history = state.config.security_history_retention;
        match state.auth.store.purge_history(now, history).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "purged old security events"),
            Err(e) => tracing::warn!(error = %e, "housekeeping of the security history failed"),
        }
    }
}

/// The benchmark floor: proves the process serves, touches nothing.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(
    axum::extract::State(auth): axum::extract::State<AuthContext>,
) -> impl IntoResponse {
    if auth.store.is_ready().await {
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready" })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({ "error": "unavailable", "message": "The database is not accepting writes." }),
            ),
        )
    }
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
