//! The PostgreSQL pool: `migrations/postgres/` applied at start. Instances
//! that start together against an empty database don't race: sqlx's
//! migrator holds a PostgreSQL advisory lock while it migrates, so the
//! second waits and then finds every migration applied.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::{ConnectError, BUSY_TIMEOUT};

/// The migrations in `migrations/postgres/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections per instance. Several instances share one server, whose
/// default `max_connections` is 100.
const MAX_CONNECTIONS: u32 = 16;

pub async fn connect(url: &str) -> Result<PgPool, ConnectError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| ConnectError {
        place: "PostgreSQL".into(),
        source,
    })?;
    // Where, for the one line a failed start prints: host, port, database
    // and user, never the password.
    let place = format!(
        "PostgreSQL at {}:{} (database {}, user {})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username(),
    );
    let fail = |source| ConnectError {
        place: place.clone(),
        source,
    };
    // One plain connection first: a pool that can't connect reports only
    // that it timed out, while this says why (refused, unknown host, auth).
    options
        .connect()
        .await
        .map_err(fail)?
        .close()
        .await
        .map_err(fail)?;
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        // A request waits this long for a connection while the server is
        // away, then gets a 503; the pool reconnects by itself once it is
        // back (a connection is pinged before use, so dead ones are
        // replaced rather than handed out).
        .acquire_timeout(BUSY_TIMEOUT)
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .map_err(fail)?;
    MIGRATOR.run(&pool).await.map_err(|e| fail(e.into()))?;
    Ok(pool)
}

/// True when the server answers and accepts a write transaction (rolled
/// back: the probe leaves nothing behind).
pub async fn is_ready(pool: &PgPool) -> bool {
    async {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, 0)
             ON CONFLICT (id) DO UPDATE SET checked_at = 0",
        )
        .execute(&mut *tx)
        .await?;
        tx.rollback().await
    }
    .await
    .map_err(|e: sqlx::Error| tracing::warn!(error = %e, "readiness probe failed"))
    .is_ok()
}
