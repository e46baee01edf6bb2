//! Persistence in SQLite: chats, participants, messages and read receipts.
//!
//! One thread owns the one connection and runs jobs in the order they arrive. Writes
//! are therefore serialized, and a job may deliver what it wrote (to the hub) before
//! the next job runs: what clients receive is in the order it was stored. The
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
}

impl StoreError {
    /// The error code a client is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::ChatNotFound(_) | StoreError::MessageNotFound(_) => ErrorCode::NotFound,
            StoreError::NotParticipant(_) => ErrorCode::NotParticipant,
            StoreError::ChatClosed(_) => ErrorCode::Forbidden,
            StoreError::ChatExists(_) => ErrorCode::ValidationError,
            StoreError::Sqlite(_) | StoreError::Open(_) | StoreError::Closed => {
                ErrorCode::InternalError
            }
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

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

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
                while let Ok(job) = receiver.recv() {
                    // A failing job must not take the store down with it.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut connection));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a store job panicked; the store keeps running");
                    }
                }
                if let Err((_, err)) = connection.close() {
                    tracing::error!(error = %err, "closing the database failed");
                }
            })
            .map_err(|err| StoreError::Open(format!("cannot start the store thread: {err}")))?;
        Ok((Store { jobs }, StoreThread { handle }))
    }

    /// Runs `job` on the store thread and returns its result.
    ///
    /// Jobs run one at a time, in the order they were sent.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move |connection| {
                let _ = reply.send(job(connection));
            }))
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }
}
