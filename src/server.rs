//! Assembles the server: state, routes, middleware, and a graceful serve loop.

use std::{net::SocketAddr, sync::Arc};

use axum::{extract::FromRef, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sqlx::SqlitePool;

use crate::app::{shell, App};
use crate::clock::{Clock, SystemClock};
use crate::config::{fill_development_secrets, Config, ConfigError};

/// Everything a handler or server function may need, cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    pub fn new(
        leptos_options: LeptosOptions,
        pool: SqlitePool,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            leptos_options,
            pool,
            config: Arc::new(config),
            clock,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuration: Cargo.toml [package.metadata.leptos]: {0}")]
    Leptos(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
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
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

pub async fn run() -> Result<(), StartError> {
    let mut config = Config::from_env()?;
    fill_development_secrets(&mut config)?;
    let pool = crate::db::connect(&config.database_url).await?;

    let mut leptos_options = leptos::config::get_configuration(None)
        .map_err(|e| StartError::Leptos(e.to_string()))?
        .leptos_options;
    leptos_options.site_addr = config.site_addr;

    let addr = config.site_addr;
    let state = AppState::new(leptos_options, pool.clone(), config, Arc::new(SystemClock));
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

    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The whole application: API routes, server functions and pages.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context_state = state.clone();

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(context_state.clone()),
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

/// The benchmark floor: proves the process serves, touches nothing.
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(axum::extract::State(pool): axum::extract::State<SqlitePool>) -> impl IntoResponse {
    if crate::db::is_ready(&pool).await {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": "unavailable", "message": "The database is not accepting writes." })),
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
