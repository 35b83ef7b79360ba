//! The PostgreSQL pool: `migrations/postgres/` applied at start. Instances
//! that start together against an empty database don't race: sqlx's
//! migrator holds a PostgreSQL advisory lock while it migrates, so the
//! second waits and then finds every migration applied.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::{ConnectError, BUSY_TIMEOUT};

/// The migrations in `migrations/postgres/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections per instance. Several instances share one server, whose
/// default `max_connections` is 100.
const MAX_CONNECTIONS: u32 = 16;

/// How long a pooled connection may sit unused before it is pinged again
/// before use. It was alive when it came back (sqlx pings it then), so
/// under a second later it almost surely still is; an outage lasts longer.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

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
        // back.
        .acquire_timeout(BUSY_TIMEOUT)
        // sqlx pings each connection as it comes back to the pool. One that
        // then sat idle is pinged again before use, so one that died with
        // the server (a restart, an outage) is replaced rather than handed
        // out; one in steady use isn't, since a ping on every hand-out was a
        // round trip on the request's path as dear as the query itself.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
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
