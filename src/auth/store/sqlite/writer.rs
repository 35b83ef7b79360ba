//! Group commit: one thread owns one SQLite connection and runs every write.
//!
//! Writes queue to the thread. It takes the first, then every other write
//! already waiting (up to `MAX_BATCH`), and runs them all in one
//! `BEGIN IMMEDIATE` transaction, each inside a savepoint of its own so
//! that one failing write spoils nothing else. Each caller is answered
//! only once the commit has succeeded; if the commit fails, every write
//! of the batch fails and nothing of it is applied. Under load a batch
//! shares one `BEGIN`, one `COMMIT` and the hand-offs between them; a write
//! that arrives alone waits for nothing and runs without a savepoint. A
//! write that panics (a bug) fails its batch, not the writer.
//!
//! The thread calls SQLite directly (rusqlite, with cached prepared
//! statements), so a write's statements are function calls rather than
//! round trips: a write costs one hand-off to the thread and one back,
//! however many statements it runs, and fewer under load, when it shares
//! its batch. sqlx's SQLite driver, which the pooled reads and the
//! migrations use, runs each statement as a round trip to a thread of its
//! own; profiled, those hand-offs were most of a refresh's cost.
//!
//! One writer for the whole process also replaces the queue on a mutex
//! that writers used to hold around their pooled transactions: SQLite has
//! one write lock, and waiting for it in SQLite's busy handler (which
//! sleeps in steps of up to 100 ms) made the tail latency of refresh.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::super::StoreError;
use super::conn::{copy_of, store_error, Target};

/// The most writes one transaction takes. Enough to empty the queue of a
/// busy server in a few batches; small enough that one batch's commit
/// doesn't keep the first caller waiting long.
const MAX_BATCH: usize = 64;
/// Writes waiting for the writer before callers wait to queue.
const QUEUE: usize = 1024;

type Answer = Result<Box<dyn Any + Send>, StoreError>;

/// A write as the thread runs it: against the connection, inside the
/// batch's transaction.
type Work = Box<dyn FnOnce(&Connection) -> Answer + Send>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Answer>,
}

/// The handle writes are sent through. Cheap to clone; the thread ends
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread; it opens its connection to `target` and opens it
    /// again after a failed batch.
    pub fn start(target: Target) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&target, queue))
            .expect("the operating system starts a thread");
        Self { jobs }
    }

    /// Runs `work` in the next batch and answers once that batch committed.
    /// If `work` fails, what it did is rolled back and the rest of the
    /// batch goes on.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn| match work(conn) {
            Ok(done) => Ok(Box::new(done) as Box<dyn Any + Send>),
            Err(e) => Err(store_error(e)),
        });
        self.jobs
            .send(Job { work, reply })
            .await
            .map_err(|_| StoreError::WorkerCrashed)?;
        let done = answer.await.map_err(|_| StoreError::WorkerCrashed)??;
        Ok(*done
            .downcast::<T>()
            .expect("a write is answered with its own type"))
    }
}

fn run(target: &Target, mut queue: mpsc::Receiver<Job>) {
    let mut conn: Option<Connection> = None;
    while let Some(first) = queue.blocking_recv() {
        let mut works = vec![first.work];
        let mut replies = vec![first.reply];
        while works.len() < MAX_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            works.push(job.work);
            replies.push(job.reply);
        }
        let answers = match conn.take().map_or_else(|| target.open_for_writes(), Ok) {
            Ok(open) => {
                // A write that panics fails its batch; the connection, with
                // whatever it began, is dropped, which rolls it back.
                match catch_unwind(AssertUnwindSafe(|| transact(&open, works))) {
                    Ok(Ok(answers)) => {
                        conn = Some(open);
                        Ok(answers)
                    }
                    // After a failed batch, whatever state the connection
                    // is in, the next batch opens a new one.
                    Ok(Err(e)) => Err(store_error(e)),
                    Err(_) => Err(StoreError::WorkerCrashed),
                }
            }
            Err(e) => Err(store_error(e)),
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
/// or the error that undid the whole batch. A write alone needs no
/// savepoint: the transaction is its own.
fn transact(conn: &Connection, works: Vec<Work>) -> rusqlite::Result<Vec<Answer>> {
    let run = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    run("BEGIN IMMEDIATE")?;
    if works.len() == 1 {
        let answers: Vec<Answer> = works.into_iter().map(|work| work(conn)).collect();
        run(if answers[0].is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        })?;
        return Ok(answers);
    }
    let mut answers = Vec::with_capacity(works.len());
    for work in works {
        run("SAVEPOINT write")?;
        let answer = work(conn);
        if answer.is_err() {
            run("ROLLBACK TO write")?;
        }
        run("RELEASE write")?;
        answers.push(answer);
    }
    run("COMMIT")?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::conn::is_busy;
    use super::*;

    fn writer_on_a_fresh_file() -> (Writer, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        let target = Target {
            path: path.clone(),
            busy_timeout: Duration::from_millis(200),
        };
        (Writer::start(target), path, dir)
    }

    fn insert(
        writer: &Writer,
        id: i64,
    ) -> impl std::future::Future<Output = Result<usize, StoreError>> + '_ {
        writer.write(move |conn| conn.execute("INSERT INTO t (id) VALUES (?1)", [id]))
    }

    fn count(path: &PathBuf) -> i64 {
        let check = Connection::open(path).unwrap();
        check
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn one_failing_write_in_a_batch_spoils_nothing_else() {
        let (writer, path, _dir) = writer_on_a_fresh_file();
        insert(&writer, 7).await.unwrap();
        // Sent together, these queue while the first runs and share batches;
        // the duplicate of 7 fails alone, as the unique violation it is.
        let ids = [1, 2, 3, 7, 4, 5, 6];
        let answers = futures::future::join_all(ids.map(|id| insert(&writer, id))).await;
        for (id, answer) in ids.iter().zip(&answers) {
            assert_eq!(answer.is_ok(), *id != 7, "{id}: {answer:?}");
        }
        let Some(Err(StoreError::Database(duplicate))) = answers.get(3) else {
            panic!("the duplicate fails as a database error");
        };
        assert!(duplicate.is_unique_violation());
        assert_eq!(count(&path), 7);
    }

    #[tokio::test]
    async fn a_write_is_answered_with_its_own_result_after_its_commit() {
        let (writer, path, _dir) = writer_on_a_fresh_file();
        let answer: String = writer
            .write(|conn| {
                conn.execute("INSERT INTO t (id) VALUES (1)", [])?;
                Ok("done".to_string())
            })
            .await
            .unwrap();
        assert_eq!(answer, "done");
        // Answered means committed: another connection sees the row.
        assert_eq!(count(&path), 1);
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_its_batch_and_the_writer_goes_on() {
        let (writer, path, _dir) = writer_on_a_fresh_file();
        let panicked = writer
            .write(|conn| -> rusqlite::Result<()> {
                conn.execute("INSERT INTO t (id) VALUES (1)", [])?;
                panic!("a bug in one write")
            })
            .await;
        assert!(panicked.is_err());
        assert_eq!(count(&path), 0, "what the batch began is rolled back");
        assert_eq!(insert(&writer, 1).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_fails_the_batch_until_it_goes() {
        let (writer, path, _dir) = writer_on_a_fresh_file();
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let refused = insert(&writer, 1).await.unwrap_err();
        assert!(is_busy(&refused), "{refused}");
        holder.execute_batch("ROLLBACK").unwrap();
        assert_eq!(insert(&writer, 1).await.unwrap(), 1);
    }
}
