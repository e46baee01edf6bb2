//! Persistence in SQLite: chats, participants, messages and read receipts.
//!
//! One thread owns the one connection and runs jobs in the order they arrive, so
//! writes are serialized. Jobs that queued up while the thread was busy run as one
//! batch in one transaction (group commit): under load the cost of a commit is shared
//! by the batch instead of paid by every message. A job's follow-up (delivering what
//! it wrote to the hub, answering its caller) runs only after its batch is committed,
//! in job order, before the next batch starts: nothing is delivered or acknowledged
//! before it is stored, and what clients receive is in the order it was stored. The
//! database runs in WAL mode with `synchronous = NORMAL`, so a committed write
//! survives the process being killed.

pub(crate) mod queries;
mod schema;

use std::sync::mpsc;
use std::thread::JoinHandle;

use relaywire_protocol::ErrorCode;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::config::Database;

pub use queries::{HistoryCursor, Posted, StoredRead};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The chat does not exist.
    #[error("no chat `{0}`")]
    ChatNotFound(String),
    /// The message does not exist in that chat.
    #[error("no message `{0}` in this chat")]
    MessageNotFound(String),
    /// The user is not a participant of the chat.
    #[error("not a participant of chat `{0}`")]
    NotParticipant(String),
    /// The chat is closed: only its participants add people.
    #[error("chat `{0}` is closed")]
    ChatClosed(String),
    /// A chat with that id exists already.
    #[error("chat `{0}` exists already")]
    ChatExists(String),
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file cannot be created.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The store thread has stopped (the server is shutting down).
    #[error("the store is shut down")]
    Closed,
    /// The batch holding this write failed to commit; nothing of it was stored.
    #[error("the write could not be committed")]
    NotCommitted,
}

impl StoreError {
    /// The error code a client is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::ChatNotFound(_) | StoreError::MessageNotFound(_) => ErrorCode::NotFound,
            StoreError::NotParticipant(_) => ErrorCode::NotParticipant,
            StoreError::ChatClosed(_) => ErrorCode::Forbidden,
            StoreError::ChatExists(_) => ErrorCode::ValidationError,
            StoreError::Sqlite(_)
            | StoreError::Open(_)
            | StoreError::Closed
            | StoreError::NotCommitted => ErrorCode::InternalError,
        }
    }

    /// The message a client sees: internal details stay in the logs.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::InternalError => "the server could not complete this".to_owned(),
            _ => self.to_string(),
        }
    }
}

/// What a job leaves for after its batch: told whether the batch committed, it
/// delivers and replies.
type FollowUp = Box<dyn FnOnce(bool) + Send>;
/// A job returns whether it succeeded (a failed job's writes are rolled back) and its
/// follow-up.
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, FollowUp) + Send>;

/// Jobs committed together at most, so the first of a long queue is not kept waiting.
const MAX_BATCH: usize = 512;

/// A handle on the store thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

/// Owns the store thread; dropping it without [`StoreThread::shut_down`] leaves the
/// thread to finish on its own once every [`Store`] handle is gone.
#[derive(Debug)]
pub struct StoreThread {
    handle: JoinHandle<()>,
}

impl StoreThread {
    /// Waits until every job sent so far has run and the database is closed.
    ///
    /// Every [`Store`] handle must have been dropped, or this waits for them.
    pub fn shut_down(self) {
        let _ = self.handle.join();
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the store thread.
    pub fn open(database: &Database) -> Result<(Store, StoreThread), StoreError> {
        let mut connection = match database {
            Database::Memory => Connection::open_in_memory()?,
            Database::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|err| StoreError::Open(format!("{}: {err}", parent.display())))?;
                }
                Connection::open(path)?
            }
        };
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut connection)?;

        let (jobs, receiver) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("relaywire-store".to_owned())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    run_batch(&mut connection, batch);
                }
                if let Err((_, err)) = connection.close() {
                    tracing::error!(error = %err, "closing the database failed");
                }
            })
            .map_err(|err| StoreError::Open(format!("cannot start the store thread: {err}")))?;
        Ok((Store { jobs }, StoreThread { handle }))
    }

    /// Runs `job` on the store thread and returns its result once its batch is
    /// committed.
    ///
    /// Jobs run one at a time, in the order they were sent.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_then(job, |value| value).await
    }

    /// Runs `job`, then, once its batch is committed and before any later job's
    /// follow-up, `then` on what it returned (still on the store thread): this is where
    /// a write is handed to the hub, so deliveries follow stored order.
    pub async fn run_then<T, U, F, G>(&self, job: F, then: G) -> Result<U, StoreError>
    where
        T: Send + 'static,
        U: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        G: FnOnce(T) -> U + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move |connection| {
                let outcome = job(connection);
                let succeeded = outcome.is_ok();
                let follow_up: FollowUp = Box::new(move |committed| {
                    let outcome = match outcome {
                        Ok(value) if committed => Ok(then(value)),
                        Ok(_) => Err(StoreError::NotCommitted),
                        Err(err) => Err(err),
                    };
                    let _ = reply.send(outcome);
                });
                (succeeded, follow_up)
            }))
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs a batch of jobs in one transaction, each in a savepoint so a job that fails
/// leaves nothing behind, then their follow-ups in order.
fn run_batch(connection: &mut Connection, batch: Vec<Job>) {
    // Without a transaction (it cannot start) each job's writes commit on their own.
    let in_transaction = match connection.execute_batch("BEGIN") {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(error = %err, "cannot begin a batch; running it unbatched");
            false
        }
    };
    let mut follow_ups = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = in_transaction && connection.execute_batch("SAVEPOINT job").is_ok();
        // A failing job must not take the store down with it.
        let run = std::panic::AssertUnwindSafe(|| job(connection));
        let (succeeded, follow_up) = match std::panic::catch_unwind(run) {
            Ok((succeeded, follow_up)) => (succeeded, Some(follow_up)),
            Err(_) => {
                tracing::error!("a store job panicked; the store keeps running");
                (false, None)
            }
        };
        if savepoint {
            let end = if succeeded {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(err) = connection.execute_batch(end) {
                tracing::error!(error = %err, "cannot end a job's savepoint");
            }
        }
        follow_ups.extend(follow_up);
    }
    let committed = !in_transaction
        || match connection.execute_batch("COMMIT") {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(error = %err, jobs = follow_ups.len(), "a batch failed to commit");
                let _ = connection.execute_batch("ROLLBACK");
                false
            }
        };
    for follow_up in follow_ups {
        let run = std::panic::AssertUnwindSafe(|| follow_up(committed));
        if std::panic::catch_unwind(run).is_err() {
            tracing::error!("a store follow-up panicked; the store keeps running");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{Store, StoreError, queries};
    use crate::config::Database;

    fn users(db: &rusqlite::Connection) -> i64 {
        db.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))
            .unwrap_or(-1)
    }

    #[tokio::test]
    async fn a_batch_commits_together_and_a_failing_job_leaves_nothing() {
        let (store, thread) = Store::open(&Database::Memory).expect("an in-memory store");
        let order = Arc::new(Mutex::new(Vec::new()));
        // Sent without waiting in between, so the store thread finds them queued
        // together and runs them as batches.
        let jobs: Vec<_> = (0..200)
            .map(|i| {
                let order = Arc::clone(&order);
                store.run_then(
                    move |db| {
                        queries::upsert_user(db, &format!("user-{i}"), "name")?;
                        if i % 10 == 0 {
                            // Fails after writing: the write must be rolled back.
                            return Err(StoreError::NotCommitted);
                        }
                        Ok(i)
                    },
                    move |i| {
                        order.lock().expect("not poisoned").push(i);
                        i
                    },
                )
            })
            .collect();
        let results = futures_util::future::join_all(jobs).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 20);
        let stored = store.run(|db| Ok(users(db))).await.expect("a count");
        assert_eq!(
            stored, 180,
            "the failed jobs' users are rolled back, no others"
        );
        let order = order.lock().expect("not poisoned").clone();
        let expected: Vec<i32> = (0..200).filter(|i| i % 10 != 0).collect();
        assert_eq!(order, expected, "follow-ups run in job order");
        drop(store);
        thread.shut_down();
    }
}
