//! The SQLite pool: WAL, a busy timeout so writers queue instead of failing,
//! foreign keys on, and `migrations/sqlite/` applied at start.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::BUSY_TIMEOUT;

/// The migrations in `migrations/sqlite/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    if let Some(dir) = options.get_filename().parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(BUSY_TIMEOUT)
        // A pooled SQLite connection is a file handle, not a socket that can
        // drop: pinging it before every use only adds a round trip to its
        // worker thread (8% of `/api/me`'s CPU in a profile).
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    repair_edited_migrations(&pool).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A migration that was edited after it reached main: its version, the
/// checksum sqlx recorded for the first text, and why the edit is safe to
/// apply in place.
struct EditedMigration {
    version: i64,
    first_checksum: &'static str,
}

/// `20261126120000` gained `AND used_at IS NULL` in its trigger after it
/// had shipped (commit 0e4d45f). A database migrated in between records the
/// first checksum, and sqlx refuses to start on it. The repair recreates the
/// trigger from the current text and records the current checksum, in one
/// transaction: the migration creates nothing else, so the database ends up
/// exactly as if it had run the current file, and the later migrations
/// (`20261201210000` drops the trigger) follow as on any other database.
/// Migrations are never edited again (`migration-checksums.txt` and the
/// test beside it see to that).
const EDITED_MIGRATIONS: &[EditedMigration] = &[EditedMigration {
    version: 20261126120000,
    first_checksum: "44caf5845aed9a6fc8a7d779cee4e5a98b1c56464b4ca0e0f6330836e56dcb7b5ccc796a0a20747e7473341c60e338d7",
}];

async fn repair_edited_migrations(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let has_history: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_history {
        return Ok(());
    }
    for edited in EDITED_MIGRATIONS {
        let recorded: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = ?")
                .bind(edited.version)
                .fetch_optional(pool)
                .await?;
        let is_first_text =
            recorded.is_some_and(|checksum| hex(&checksum) == edited.first_checksum);
        let current = MIGRATOR.iter().find(|m| m.version == edited.version);
        let Some(current) = current.filter(|_| is_first_text) else {
            continue;
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DROP TRIGGER IF EXISTS refresh_tokens_spend_parent")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(&current.sql).execute(&mut *tx).await?;
        sqlx::query("UPDATE _sqlx_migrations SET checksum = ? WHERE version = ?")
            .bind(current.checksum.as_ref())
            .bind(edited.version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::warn!(
            version = edited.version,
            "repaired a database migrated with an edited migration's first text"
        );
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when the database answers and accepts a write transaction.
///
/// The write runs in a `Transaction`, which rolls back when dropped: a probe
/// cancelled while `BEGIN IMMEDIATE` waits on the busy timeout, or one whose
/// statement fails, never hands a connection back to the pool holding the
/// write lock (sqlx rolls back a `BEGIN` whose caller went away).
pub async fn is_ready(pool: &SqlitePool) -> bool {
    async {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT OR REPLACE INTO readiness_probe (id, checked_at) VALUES (1, 0)")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await
    }
    .await
    .map_err(|e: sqlx::Error| tracing::warn!(error = %e, "readiness probe failed"))
    .is_ok()
}
