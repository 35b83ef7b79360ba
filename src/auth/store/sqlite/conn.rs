//! Direct connections to the database file (rusqlite, the same bundled
//! SQLite as sqlx's): how the writer and the readers open theirs, and how
//! their errors enter the store's error type.
//!
//! sqlx's SQLite driver runs every statement as a round trip to a thread
//! of its own per connection; profiled, those hand-offs were most of the
//! cost of a refresh and of `/api/me`. The pool (sqlx) still opens and
//! migrates the file and answers the readiness probe; the statements the
//! requests run go through these connections.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::super::StoreError;

/// Statements a connection keeps prepared: all of its kind's, with room.
const PREPARED: usize = 64;

/// The file, and how long a writer waits for a write lock that another
/// process holds before it gives up.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

impl Target {
    /// The writer's connection, set as the pool sets its own. The file
    /// exists and is in WAL mode already: the pool made it so.
    pub fn open_for_writes(&self) -> rusqlite::Result<Connection> {
        let conn = self.open()?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(conn)
    }

    /// A reader's connection: it refuses to write. In WAL mode a reader
    /// never waits for the writer, so it gets a short busy timeout: it
    /// runs on the request's own thread, which must not stall.
    pub fn open_for_reads(&self, busy_timeout: Duration) -> rusqlite::Result<Connection> {
        let conn = self.open()?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.set_prepared_statement_cache_capacity(PREPARED);
        Ok(conn)
    }
}

/// The store speaks sqlx's error; a direct connection's failure enters it
/// as a database error that keeps SQLite's message and code, so a unique
/// violation is still recognised as one.
pub fn store_error(error: rusqlite::Error) -> StoreError {
    StoreError::database(DirectError::from(error))
}

/// sqlx's errors can't be cloned; each caller gets one with the same text.
pub fn copy_of(error: &StoreError) -> StoreError {
    match error.as_database_error() {
        Some(e) => StoreError::database(DirectError {
            message: e.message().to_owned(),
            code: e.code().and_then(|c| c.parse().ok()),
        }),
        None => StoreError::Io(std::io::Error::other(error.to_string())),
    }
}

/// True when SQLite gave up waiting for a lock another connection held.
#[cfg(test)]
pub fn is_busy(error: &StoreError) -> bool {
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<i32>().ok());
    code.is_some_and(|c| rusqlite::ffi::Error::new(c).code == rusqlite::ErrorCode::DatabaseBusy)
}

/// A failure as SQLite reported it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct DirectError {
    message: String,
    /// SQLite's extended result code, when SQLite reported the failure.
    code: Option<i32>,
}

impl From<rusqlite::Error> for DirectError {
    fn from(error: rusqlite::Error) -> Self {
        let code = match &error {
            rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
            _ => None,
        };
        Self {
            message: error.to_string(),
            code,
        }
    }
}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|code| Cow::Owned(code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
