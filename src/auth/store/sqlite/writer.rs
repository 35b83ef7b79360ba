//! Group commit: one task owns one SQLite connection and runs every write.
//!
//! Writes queue to the task. It takes the first, then every other write
//! already waiting (up to `MAX_BATCH`), and runs them all in one
//! `BEGIN IMMEDIATE` transaction, each inside a savepoint of its own so
//! that one failing write spoils nothing else. Each caller is answered
//! only once the commit has succeeded; if the commit fails, every write
//! of the batch fails and nothing of it is applied. Under load a batch
//! shares one `BEGIN`, one `COMMIT` and the hand-offs between them; a write
//! that arrives alone waits for nothing and runs without a savepoint. A
//! write that panics (a bug) fails its batch, not the writer.
//!
//! One writer for the whole process also replaces the queue on a mutex
//! that writers used to hold around their pooled transactions: SQLite has
//! one write lock, and waiting for it in SQLite's busy handler (which
//! sleeps in steps of up to 100 ms) made the tail latency of refresh.

use std::{any::Any, future::Future, pin::Pin};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::super::StoreError;

/// The most writes one transaction takes. Enough to empty the queue of a
/// busy server in a few batches; small enough that one batch's commit
/// doesn't keep the first caller waiting long.
const MAX_BATCH: usize = 64;
/// Writes waiting for the writer before callers wait to queue.
const QUEUE: usize = 1024;

type Answer = Result<Box<dyn Any + Send>, StoreError>;

/// A write's future, borrowing the writer's connection for `'c`.
pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// A write as the task runs it: against the connection, inside the batch's
/// transaction.
type Work = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Answer> + Send>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Answer>,
}

/// The handle writes are sent through. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the task; it opens its connection with `options` and opens it
    /// again after a failure.
    pub fn start(options: SqliteConnectOptions) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(options, queue));
        Self { jobs }
    }

    /// Runs `work` in the next batch and answers once that batch committed.
    /// `work` must leave the connection as it found it on success (its
    /// savepoint is released) and may fail (its savepoint is rolled back).
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move {
                let done = work(conn).await?;
                Ok(Box::new(done) as Box<dyn Any + Send>)
            })
        });
        self.jobs
            .send(Job { work, reply })
            .await
            .map_err(|_| StoreError::PoolClosed)?;
        let done = answer.await.map_err(|_| StoreError::PoolClosed)??;
        Ok(*done
            .downcast::<T>()
            .expect("a write is answered with its own type"))
    }
}

async fn run(options: SqliteConnectOptions, mut queue: mpsc::Receiver<Job>) {
    let mut conn: Option<SqliteConnection> = None;
    while let Some(first) = queue.recv().await {
        let mut works = vec![first.work];
        let mut replies = vec![first.reply];
        while works.len() < MAX_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            works.push(job.work);
            replies.push(job.reply);
        }
        let open = match conn.take() {
            Some(open) => Ok(open),
            None => options.connect().await,
        };
        let answers = match open {
            // A task of its own per batch: a write that panics fails its
            // batch, not the writer (the connection, with whatever it
            // began, is dropped with the task, which rolls it back).
            Ok(mut open) => match tokio::spawn(async move {
                let answers = transact(&mut open, works).await;
                (open, answers)
            })
            .await
            {
                Ok((open, answers)) => {
                    // After a failed batch, whatever state the connection
                    // is in, the next batch opens a new one.
                    if answers.is_ok() {
                        conn = Some(open);
                    }
                    answers
                }
                Err(_) => Err(sqlx::Error::WorkerCrashed),
            },
            Err(e) => Err(e),
        };
        match answers {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = replies.len(), "a batch of writes failed");
                for reply in replies {
                    let _ = reply.send(Err(copy_of(&e)));
                }
            }
        }
    }
}

/// Runs `works` in one transaction: each one's answer once it committed,
/// or the error that undid the whole batch.
///
/// Every statement is a round trip to the connection's thread, so each
/// boundary between writes is one command: the end of one write's
/// savepoint and the start of the next one's. A write alone needs no
/// savepoint: the transaction is its own.
async fn transact(
    conn: &mut SqliteConnection,
    works: Vec<Work>,
) -> Result<Vec<Answer>, StoreError> {
    let alone = works.len() == 1;
    let count = works.len();
    let mut answers = Vec::with_capacity(count);
    let mut boundary = if alone {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN IMMEDIATE; SAVEPOINT write"
    };
    for (index, work) in works.into_iter().enumerate() {
        sqlx::query(boundary).execute(&mut *conn).await?;
        let answer = work(conn).await;
        let last = index + 1 == count;
        boundary = match (alone, answer.is_ok(), last) {
            (true, true, _) => "COMMIT",
            (true, false, _) => "ROLLBACK",
            (false, true, false) => "RELEASE write; SAVEPOINT write",
            (false, false, false) => "ROLLBACK TO write; RELEASE write; SAVEPOINT write",
            (false, true, true) => "RELEASE write; COMMIT",
            (false, false, true) => "ROLLBACK TO write; RELEASE write; COMMIT",
        };
        answers.push(answer);
    }
    sqlx::query(boundary).execute(&mut *conn).await?;
    Ok(answers)
}

/// sqlx's errors can't be cloned; each caller gets one with the same text.
fn copy_of(error: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(error.to_string()))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::{Connection, Row};

    use super::*;

    async fn writer_on_a_fresh_file() -> (Writer, SqliteConnectOptions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let options = SqliteConnectOptions::from_str(&url).unwrap();
        let mut setup = options.connect().await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut setup)
            .await
            .unwrap();
        setup.close().await.unwrap();
        (Writer::start(options.clone()), options, dir)
    }

    fn insert(writer: &Writer, id: i64) -> impl Future<Output = Result<u64, StoreError>> + '_ {
        writer.write(move |conn| {
            Box::pin(async move {
                let done = sqlx::query("INSERT INTO t (id) VALUES (?)")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected())
            })
        })
    }

    #[tokio::test]
    async fn one_failing_write_in_a_batch_spoils_nothing_else() {
        let (writer, options, _dir) = writer_on_a_fresh_file().await;
        insert(&writer, 7).await.unwrap();
        // Sent together, these queue while the first runs and share batches;
        // the duplicate of 7 fails alone.
        let ids = [1, 2, 3, 7, 4, 5, 6];
        let answers = futures::future::join_all(ids.map(|id| insert(&writer, id))).await;
        for (id, answer) in ids.iter().zip(&answers) {
            assert_eq!(answer.is_ok(), *id != 7, "{id}: {answer:?}");
        }
        let mut check = options.connect().await.unwrap();
        let rows = sqlx::query("SELECT COUNT(*) FROM t")
            .fetch_one(&mut check)
            .await
            .unwrap();
        assert_eq!(rows.get::<i64, _>(0), 7);
    }

    #[tokio::test]
    async fn a_write_is_answered_with_its_own_result_after_its_commit() {
        let (writer, options, _dir) = writer_on_a_fresh_file().await;
        let answer: String = writer
            .write(|conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (id) VALUES (1)")
                        .execute(&mut *conn)
                        .await?;
                    Ok("done".to_string())
                })
            })
            .await
            .unwrap();
        assert_eq!(answer, "done");
        // Answered means committed: another connection sees the row.
        let mut check = options.connect().await.unwrap();
        let rows = sqlx::query("SELECT COUNT(*) FROM t")
            .fetch_one(&mut check)
            .await
            .unwrap();
        assert_eq!(rows.get::<i64, _>(0), 1);
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_its_batch_and_the_writer_goes_on() {
        let (writer, _options, _dir) = writer_on_a_fresh_file().await;
        let panicked = writer
            .write(|_conn| -> BoxFuture<'_, Result<(), StoreError>> {
                Box::pin(async { panic!("a bug in one write") })
            })
            .await;
        assert!(panicked.is_err());
        assert_eq!(insert(&writer, 1).await.unwrap(), 1);
    }
}
