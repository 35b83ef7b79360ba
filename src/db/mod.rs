//! The database connection, by `DATABASE_URL`'s scheme: a SQLite file (the
//! embedded default, one instance) or a PostgreSQL server (any number of
//! instances). Each engine's migrations are applied at start.

pub mod postgres;
pub mod sqlite;

use std::time::Duration;

use crate::config::{DatabaseUrl, Engine};

/// How long a caller waits for the database (a lock, a connection) before
/// the request is answered 503.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected, migrated pool of either engine.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Why the server could not start on its database. Names the place (file
/// or host), never a password.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {source}")]
pub struct ConnectError {
    pub place: String,
    #[source]
    pub source: sqlx::Error,
}

/// Connects and applies the engine's migrations.
pub async fn connect(url: &DatabaseUrl) -> Result<Pool, ConnectError> {
    match url.engine() {
        Engine::Sqlite => sqlite::connect(url.expose())
            .await
            .map(Pool::Sqlite)
            .map_err(|source| ConnectError {
                place: url.redacted(),
                source,
            }),
        Engine::Postgres => postgres::connect(url.expose()).await.map(Pool::Postgres),
    }
}

impl Pool {
    /// Waits for connections in use to come back, then closes them all.
    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}
