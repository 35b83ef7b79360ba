//! Reads on the request's own thread: a handful of idle connections, one
//! taken for each read and put back after it. A read is an indexed lookup
//! in pages SQLite has cached, a few microseconds, so running it right
//! where the request is costs less than handing it to another thread and
//! waking up when it is done (what sqlx's driver does for every
//! statement). In WAL mode a reader never waits for the writer.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use super::super::StoreError;
use super::conn::{store_error, Target};

/// Idle connections kept: enough for every worker thread to read at once.
const KEEP: usize = 16;
/// How long a read waits for a lock (in WAL mode only a few rare moments
/// take one, such as recovery after a crash) before it fails with a 503.
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);

pub struct Readers {
    target: Target,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on an idle connection, opening one if none is idle.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let idle = self.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self
                .target
                .open_for_reads(BUSY_TIMEOUT)
                .map_err(store_error)?,
        };
        let done = read(&conn).map_err(store_error)?;
        let mut idle = self.idle();
        if idle.len() < KEEP {
            idle.push(conn);
        }
        Ok(done)
    }

    /// Nothing panics while holding the lock, but a poisoned list of idle
    /// connections would still be a list of idle connections.
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
