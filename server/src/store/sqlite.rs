//! The embedded store: SQLite, one file, one process.
//!
//! One thread owns the one connection and runs jobs in the order they arrive, so
//! writes are serialized. Jobs that queued up while the thread was busy run as one
//! batch in one transaction (group commit): under load the cost of a commit is shared
//! by the batch instead of paid by every message. A job's follow-up (handing what it
//! wrote to the bus, answering its caller) runs only after its batch is committed, in
//! job order, before the next batch starts: nothing is delivered or acknowledged
//! before it is stored, and what clients receive is in the order it was stored. The
//! database runs in WAL mode with `synchronous = NORMAL`, so a committed write
//! survives the process being killed.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_protocol::Seq;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    AnswerKey, Audience, Cursor, EventCursor, EventPage, FollowUp, JoinRule, NewRoom, Publish,
    Published, Room, RoomFilter, SessionStart, Store, StoreError, StoreResult, StoredEvent, schema,
    sql,
};
use crate::time::now_rfc3339;

/// Where the SQLite store keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file (created, with its folder, when missing).
    File(PathBuf),
    /// Memory, lost at exit.
    Memory,
}

type SqlFollowUp = Box<dyn FnOnce(bool) + Send>;
/// A job returns whether it succeeded (a failed job's writes are rolled back) and its
/// follow-up, told whether the batch committed.
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, SqlFollowUp) + Send>;

mod streams;

/// Jobs committed together at most, so the first of a long queue is not kept waiting.
const MAX_BATCH: usize = 512;

fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// The SQLite store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

/// Owns the store thread: [`StoreThread::shut_down`] waits until every job sent has run
/// and the database is closed.
#[derive(Debug)]
pub struct StoreThread {
    handle: JoinHandle<()>,
}

impl StoreThread {
    /// Waits until every job sent so far has run and the database is closed. Every
    /// [`SqliteStore`] handle must have been dropped, or this waits for them.
    pub fn shut_down(self) {
        let _ = self.handle.join();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database, and starts the store thread.
    pub fn open(location: &Location) -> StoreResult<(SqliteStore, StoreThread)> {
        let mut connection = match location {
            Location::Memory => Connection::open_in_memory().map_err(backend)?,
            Location::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|err| {
                        StoreError::Backend(format!("{}: {err}", parent.display()))
                    })?;
                }
                Connection::open(path).map_err(backend)?
            }
        };
        // The file belongs to this process: its store thread is the one writer, and
        // numbers fan-outs from its own copy of the members' runs (`streams`), which a
        // second writer would leave stale. Held from the first access, before WAL, so
        // a second server on the file fails here instead. It also spares every
        // transaction the WAL's shared-memory index: in `cargo xtask bench`'s fan-out
        // the store thread's CPU per delivery went from 0.9–1.2 µs to 0.7–0.9.
        connection
            .pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(backend)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|err| match err.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    StoreError::Backend(
                        "the SQLite file is held by another process: a SQLite store belongs to one server (point DATABASE_URL elsewhere, or at PostgreSQL to share a store)"
                            .to_owned(),
                    )
                }
                _ => backend(err),
            })?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        // SQLite copies the WAL into the database inside the commit that takes it past
        // this many pages. A fan-out that ends its members' runs (`streams`) dirties a
        // page per member, as every fan-out did when each delivery had a row: at
        // SQLite's 1,000 that copy then ran every few batches and was a third of the
        // store thread's commit time; less often, a page changed many times is copied
        // once. Fan-out to 200 went up by about a fifth in `cargo xtask bench`; the
        // WAL may reach 40 MB. (A checkpoint on a thread of its own
        // was measured too: on two cores its copying competed with the clients, and
        // the WAL restarts only after a checkpoint the writer sees complete.)
        connection
            .pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(backend)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        // The query planner stability guarantee: a statement keeps its plan whatever is
        // bound to it. Without it this build of SQLite (STAT4) prepares a cached
        // statement again whenever a parameter compared with an indexed column is
        // bound anew, which was a quarter of the store thread's time under load
        // (`perf` on `cargo xtask bench`'s throughput scenario).
        connection
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(backend)?;
        // A statement that changes many rows keeps what it changed in a statement
        // journal, a temporary file unless temporary storage is in memory.
        connection
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(backend)?;
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
            .map_err(|err| StoreError::Backend(format!("cannot start the store thread: {err}")))?;
        Ok((SqliteStore { jobs }, StoreThread { handle }))
    }

    /// Runs `job` on the store thread; once its batch is committed and before any later
    /// job's follow-up, `then` sees what it returned (still on the store thread).
    fn run<T, F>(&self, job: F, then: FollowUp<T>) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let sent = self.jobs.send(Box::new(move |connection| {
            let outcome = job(connection);
            let succeeded = outcome.is_ok();
            let follow_up: SqlFollowUp = Box::new(move |committed| {
                let outcome = match outcome {
                    Ok(value) if committed => {
                        then(&value);
                        Ok(value)
                    }
                    Ok(_) => Err(StoreError::NotCommitted),
                    Err(err) => Err(err),
                };
                let _ = reply.send(outcome);
            });
            (succeeded, follow_up)
        }));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            result.await.map_err(|_| StoreError::Closed)?
        }
        .boxed()
    }

    fn read<T, F>(&self, job: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        self.run(job, Box::new(|_| {}))
    }
}

/// Runs `sql` (transaction control, without parameters) through the statement cache:
/// `execute_batch` would parse it again each time, once per job of every batch.
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs a batch of jobs in one transaction, then their follow-ups in order.
///
/// A job that fails before writing anything (most failures: a refused message, a
/// missing room) changes nothing, and the batch goes on. A job that fails after a
/// write would leave half its change: the transaction is rolled back instead, the jobs
/// before it in the batch learn theirs was not committed (their callers treat it as
/// a transient failure and their clients send again), and the jobs after it start a new
/// transaction. That case is rare, and it saves every job a savepoint: the savepoints
/// and the statement journal they keep were a quarter of the store thread's time under
/// load (`perf` on `cargo xtask bench`'s throughput scenario).
fn run_batch(connection: &mut Connection, batch: Vec<Job>) {
    let mut jobs = batch.into_iter().peekable();
    while jobs.peek().is_some() {
        if let Err(err) = control(connection, "BEGIN") {
            // Nothing could be all or nothing: the jobs fail unrun (their callers get
            // `Closed`, as when the store stops).
            tracing::error!(error = %err, jobs = jobs.len(), "cannot begin a batch; its jobs fail");
            return;
        }
        let mut follow_ups = Vec::new();
        let mut half_written = false;
        for job in jobs.by_ref() {
            let before = connection.total_changes();
            // A failing job must not take the store down with it.
            let run = std::panic::AssertUnwindSafe(|| job(connection));
            let succeeded = match std::panic::catch_unwind(run) {
                Ok((succeeded, follow_up)) => {
                    follow_ups.push(follow_up);
                    succeeded
                }
                Err(_) => {
                    tracing::error!("a store job panicked; the store keeps running");
                    false
                }
            };
            if !succeeded && connection.total_changes() != before {
                half_written = true;
                break;
            }
        }
        let committed = if half_written {
            tracing::error!(
                jobs = follow_ups.len(),
                "a store job failed halfway; its batch is rolled back"
            );
            let _ = control(connection, "ROLLBACK");
            false
        } else {
            match control(connection, "COMMIT") {
                Ok(()) => true,
                Err(err) => {
                    tracing::error!(error = %err, jobs = follow_ups.len(), "a batch failed to commit");
                    let _ = control(connection, "ROLLBACK");
                    false
                }
            }
        };
        if !committed {
            // What the batch's fan-outs cached is not what the database holds now.
            streams::forget_live_rooms();
        }
        for follow_up in follow_ups {
            let run = std::panic::AssertUnwindSafe(|| follow_up(committed));
            if std::panic::catch_unwind(run).is_err() {
                tracing::error!("a store follow-up panicked; the store keeps running");
            }
        }
    }
}

fn seq_of(value: i64) -> StoreResult<Seq> {
    u64::try_from(value)
        .ok()
        .and_then(|n| Seq::new(n).ok())
        .ok_or_else(|| StoreError::Backend(format!("event number {value} is out of range")))
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

mod queries {
    //! The SQL behind every operation, as plain functions on a connection.

    use super::*;

    pub(super) fn room_is_open(db: &Connection, room_id: &str) -> StoreResult<bool> {
        db.prepare_cached(sql::ROOM_OPEN)
            .map_err(backend)?
            .query_row([room_id], |row| row.get::<_, bool>(0))
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::RoomNotFound(room_id.to_owned()))
    }

    pub(super) fn is_member(db: &Connection, room_id: &str, user_id: &str) -> StoreResult<bool> {
        db.prepare_cached(sql::IS_MEMBER)
            .map_err(backend)?
            .exists(params![room_id, user_id])
            .map_err(backend)
    }

    /// The room exists and the user is a member.
    pub(super) fn require_member(db: &Connection, room_id: &str, user_id: &str) -> StoreResult<()> {
        room_is_open(db, room_id)?;
        if is_member(db, room_id, user_id)? {
            Ok(())
        } else {
            Err(StoreError::NotMember(room_id.to_owned()))
        }
    }

    pub(super) fn members(db: &Connection, room_id: &str) -> StoreResult<Vec<String>> {
        let mut statement = db.prepare_cached(sql::MEMBERS).map_err(backend)?;
        let ids = statement
            .query_map([room_id], |row| row.get(0))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        Ok(ids)
    }

    pub(super) fn add_member(db: &Connection, room_id: &str, user_id: &str) -> StoreResult<bool> {
        streams::forget_live_rooms();
        let inserted = db
            .prepare_cached(sql::ADD_MEMBER)
            .map_err(backend)?
            .execute(params![room_id, user_id, now_rfc3339()])
            .map_err(backend)?;
        Ok(inserted == 1)
    }

    pub(super) fn rooms(db: &Connection, filter: &RoomFilter) -> StoreResult<Vec<Room>> {
        let map = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(String, String, bool, String)> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        };
        let rows: Vec<_> = match filter {
            RoomFilter::All => db
                .prepare_cached(sql::ALL_ROOMS)
                .map_err(backend)?
                .query_map([], map)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?,
            RoomFilter::VisibleTo(user_id) => db
                .prepare_cached(sql::VISIBLE_ROOMS)
                .map_err(backend)?
                .query_map([user_id], map)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?,
        };
        rows.into_iter()
            .map(|(id, title, open, created_at)| {
                Ok(Room {
                    members: members(db, &id)?,
                    id,
                    title,
                    open,
                    created_at,
                })
            })
            .collect()
    }

    pub(super) fn room(db: &Connection, room_id: &str) -> StoreResult<Room> {
        let found = db
            .prepare_cached(sql::ROOM)
            .map_err(backend)?
            .query_row([room_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()
            .map_err(backend)?;
        let Some((id, title, open, created_at)) = found else {
            return Err(StoreError::RoomNotFound(room_id.to_owned()));
        };
        Ok(Room {
            members: members(db, &id)?,
            id,
            title,
            open,
            created_at,
        })
    }

    pub(super) fn create_room(db: &Connection, room: &NewRoom) -> StoreResult<Room> {
        let inserted = db
            .prepare_cached(sql::CREATE_ROOM)
            .map_err(backend)?
            .execute(params![room.id, room.title, room.open, now_rfc3339()])
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::RoomExists(room.id.clone()));
        }
        for user_id in &room.members {
            add_member(db, &room.id, user_id)?;
        }
        self::room(db, &room.id)
    }

    pub(super) fn join(
        db: &Connection,
        room_id: &str,
        user_id: &str,
        rule: JoinRule,
    ) -> StoreResult<bool> {
        let open = room_is_open(db, room_id)?;
        if is_member(db, room_id, user_id)? {
            return Ok(false);
        }
        if !open && rule == JoinRule::OpenOnly {
            return Err(StoreError::RoomClosed(room_id.to_owned()));
        }
        add_member(db, room_id, user_id)
    }

    pub(super) fn leave(db: &Connection, room_id: &str, user_id: &str) -> StoreResult<()> {
        require_member(db, room_id, user_id)?;
        streams::leave_room(db, room_id, user_id)?;
        db.prepare_cached(sql::LEAVE)
            .map_err(backend)?
            .execute(params![room_id, user_id])
            .map_err(backend)?;
        Ok(())
    }

    pub(super) fn head(db: &Connection, user_id: &str) -> StoreResult<Seq> {
        let head: Option<i64> = db
            .prepare_cached(streams::HEAD)
            .map_err(backend)?
            .query_row([user_id], |row| row.get(0))
            .optional()
            .map_err(backend)?;
        seq_of(head.unwrap_or(0))
    }

    pub(super) fn open_session(
        db: &Connection,
        user_id: &str,
        name: &str,
        resume_after: Option<Seq>,
        replay_limit: usize,
    ) -> StoreResult<SessionStart> {
        db.prepare_cached(sql::UPSERT_USER)
            .map_err(backend)?
            .execute(params![user_id, name, now_rfc3339()])
            .map_err(backend)?;
        let mut statement = db.prepare_cached(sql::USER_ROOMS).map_err(backend)?;
        let rooms = statement
            .query_map([user_id], |row| row.get(0))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let head = head(db, user_id)?;
        let mut missed = match resume_after {
            Some(after) => {
                streams::numbered(db, user_id, after, None, replay_limit.saturating_add(1))?
            }
            None => Vec::new(),
        };
        let truncated = missed.len() > replay_limit;
        missed.truncate(replay_limit);
        Ok(SessionStart {
            rooms,
            head,
            missed,
            truncated,
        })
    }

    pub(super) fn strings(db: &Connection, text: &str, user_id: &str) -> StoreResult<Vec<String>> {
        let mut statement = db.prepare_cached(text).map_err(backend)?;
        let found = statement
            .query_map([user_id], |row| row.get(0))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        Ok(found)
    }

    pub(super) fn answer(db: &Connection, key: &AnswerKey) -> StoreResult<Option<Option<String>>> {
        let found: Option<(Option<String>, String)> = db
            .prepare_cached(sql::ANSWER)
            .map_err(backend)?
            .query_row(params![key.user_id, key.client_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(backend)?;
        match found {
            // An answer recorded before digests were kept (empty) matches any resend.
            Some((_, fingerprint)) if !fingerprint.is_empty() && fingerprint != key.fingerprint => {
                Err(StoreError::IdReused(key.client_id.clone()))
            }
            found => Ok(found.map(|(answer, _)| answer)),
        }
    }

    pub(super) fn forget_answers(db: &Connection, before: &str) -> StoreResult<usize> {
        db.prepare_cached(sql::FORGET_ANSWERS)
            .map_err(backend)?
            .execute([before])
            .map_err(backend)
    }

    pub(super) fn record_answer(
        db: &Connection,
        key: &AnswerKey,
        answer: Option<&str>,
    ) -> StoreResult<()> {
        db.prepare_cached(sql::RECORD_ANSWER)
            .map_err(backend)?
            .execute(params![
                key.user_id,
                key.client_id,
                key.fingerprint,
                answer,
                now_rfc3339()
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn event_position(db: &Connection, room_id: &str, event_id: &str) -> StoreResult<i64> {
        db.prepare_cached(sql::EVENT_POSITION)
            .map_err(backend)?
            .query_row(params![event_id, room_id], |row| row.get(0))
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::EventNotFound(event_id.to_owned()))
    }

    fn cursor(
        db: &Connection,
        room_id: &str,
        kind: &str,
        user_id: &str,
    ) -> StoreResult<Option<(i64, Cursor)>> {
        db.prepare_cached(sql::CURSOR)
            .map_err(backend)?
            .query_row(params![room_id, kind, user_id], |row| {
                Ok((
                    row.get(0)?,
                    Cursor {
                        room_id: room_id.to_owned(),
                        user_id: user_id.to_owned(),
                        kind: kind.to_owned(),
                        event_id: row.get(1)?,
                        at: row.get(2)?,
                    },
                ))
            })
            .optional()
            .map_err(backend)
    }

    /// Stores an event; all or nothing, as every job is ([`run_batch`]).
    pub(super) fn publish(db: &Connection, publish: &Publish) -> StoreResult<Published> {
        if let (Some(user_id), Some(room_id)) = (&publish.require_member, &publish.room_id) {
            require_member(db, room_id, user_id)?;
        }
        if let Some(key) = &publish.answer_key
            && let Some(answer) = answer(db, key)?
        {
            return Ok(Published::Duplicate { answer });
        }
        let mut moved_to = None;
        if let Some(cursor_move) = &publish.cursor {
            let position = event_position(db, &cursor_move.room_id, &cursor_move.event_id)?;
            if let Some((current, cursor)) = cursor(
                db,
                &cursor_move.room_id,
                &cursor_move.kind,
                &cursor_move.user_id,
            )? && current >= position
            {
                return Ok(Published::CursorUnchanged(cursor));
            }
            moved_to = Some(position);
        }
        let fans_out_to = match &publish.audience {
            Audience::Room(room_id) => Some(room_id),
            Audience::Users(_) => None,
        };
        let position: i64 = db
            .prepare_cached(streams::INSERT_EVENT)
            .map_err(backend)?
            .query_row(
                params![
                    publish.event_id,
                    publish.room_id,
                    publish.kind,
                    publish.sender_id,
                    publish.frame,
                    publish.at,
                    fans_out_to,
                ],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::EventExists(publish.event_id.clone()))?;
        let recipients = match &publish.audience {
            Audience::Room(room_id) => streams::number_room(db, room_id, position)?,
            Audience::Users(users) => {
                let users: std::collections::BTreeSet<&String> = users.iter().collect();
                let mut recipients = Vec::with_capacity(users.len());
                for user_id in users {
                    let seq = streams::number_user(db, user_id, position)?;
                    recipients.push((user_id.clone(), seq));
                }
                recipients
            }
        };
        if let Some(key) = &publish.answer_key {
            record_answer(db, key, Some(&publish.event_id))?;
        }
        if let (Some(cursor_move), Some(position)) = (&publish.cursor, moved_to) {
            db.prepare_cached(sql::MOVE_CURSOR)
                .map_err(backend)?
                .execute(params![
                    cursor_move.room_id,
                    cursor_move.kind,
                    cursor_move.user_id,
                    position,
                    cursor_move.event_id,
                    publish.at,
                ])
                .map_err(backend)?;
        }
        Ok(Published::Stored {
            event_id: publish.event_id.clone(),
            recipients,
            frame: publish.frame.clone(),
        })
    }

    pub(super) fn events(
        db: &Connection,
        room_id: &str,
        kind: &str,
        cursor: &EventCursor,
        limit: usize,
    ) -> StoreResult<EventPage> {
        room_is_open(db, room_id)?;
        let fetch = count(limit).saturating_add(1);
        let (sql_text, anchor) = match cursor {
            EventCursor::Latest => (sql::EVENTS_BEFORE, i64::MAX),
            EventCursor::Before(id) => (sql::EVENTS_BEFORE, event_position(db, room_id, id)?),
            EventCursor::After(id) => (sql::EVENTS_AFTER, event_position(db, room_id, id)?),
        };
        let mut events: Vec<StoredEvent> = db
            .prepare_cached(sql_text)
            .map_err(backend)?
            .query_map(params![room_id, kind, anchor, fetch], |row| {
                Ok(StoredEvent {
                    id: row.get(0)?,
                    room_id: row.get(1)?,
                    kind: row.get(2)?,
                    frame: row.get(3)?,
                    at: row.get(4)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let has_more = events.len() > limit;
        events.truncate(limit);
        if !matches!(cursor, EventCursor::After(_)) {
            events.reverse();
        }
        Ok(EventPage { events, has_more })
    }

    pub(super) fn cursors(db: &Connection, room_id: &str, kind: &str) -> StoreResult<Vec<Cursor>> {
        room_is_open(db, room_id)?;
        let mut statement = db.prepare_cached(sql::CURSORS).map_err(backend)?;
        let cursors = statement
            .query_map(params![room_id, kind], |row| {
                Ok(Cursor {
                    room_id: room_id.to_owned(),
                    user_id: row.get(0)?,
                    kind: kind.to_owned(),
                    event_id: row.get(1)?,
                    at: row.get(2)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        Ok(cursors)
    }
}

impl Store for SqliteStore {
    fn open_session(
        &self,
        user_id: String,
        name: String,
        resume_after: Option<Seq>,
        replay_limit: usize,
        then: FollowUp<SessionStart>,
    ) -> BoxFuture<'static, StoreResult<SessionStart>> {
        self.run(
            move |db| queries::open_session(db, &user_id, &name, resume_after, replay_limit),
            then,
        )
    }

    fn events_between(
        &self,
        user_id: String,
        after: Seq,
        up_to: Seq,
    ) -> BoxFuture<'static, StoreResult<Vec<(Seq, String)>>> {
        self.read(move |db| streams::numbered(db, &user_id, after, Some(up_to), usize::MAX))
    }

    fn publish(
        &self,
        publish: Publish,
        then: FollowUp<Published>,
    ) -> BoxFuture<'static, StoreResult<Published>> {
        self.run(move |db| queries::publish(db, &publish), then)
    }

    fn answer(&self, key: AnswerKey) -> BoxFuture<'static, StoreResult<Option<Option<String>>>> {
        self.read(move |db| queries::answer(db, &key))
    }

    fn record_answer(
        &self,
        key: AnswerKey,
        answer: Option<String>,
    ) -> BoxFuture<'static, StoreResult<()>> {
        self.read(move |db| queries::record_answer(db, &key, answer.as_deref()))
    }

    fn forget_answers(&self, before: String) -> BoxFuture<'static, StoreResult<usize>> {
        self.read(move |db| queries::forget_answers(db, &before))
    }

    fn create_room(&self, room: NewRoom) -> BoxFuture<'static, StoreResult<Room>> {
        // The room and its members are one change, as every job is ([`run_batch`]).
        self.read(move |db| queries::create_room(db, &room))
    }

    fn join(
        &self,
        room_id: String,
        user_id: String,
        rule: JoinRule,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        self.read(move |db| queries::join(db, &room_id, &user_id, rule))
    }

    fn leave(&self, room_id: String, user_id: String) -> BoxFuture<'static, StoreResult<()>> {
        self.read(move |db| queries::leave(db, &room_id, &user_id))
    }

    fn room(&self, room_id: String) -> BoxFuture<'static, StoreResult<Room>> {
        self.read(move |db| queries::room(db, &room_id))
    }

    fn rooms(&self, filter: RoomFilter) -> BoxFuture<'static, StoreResult<Vec<Room>>> {
        self.read(move |db| queries::rooms(db, &filter))
    }

    fn events(
        &self,
        room_id: String,
        kind: String,
        cursor: EventCursor,
        limit: usize,
    ) -> BoxFuture<'static, StoreResult<EventPage>> {
        self.read(move |db| queries::events(db, &room_id, &kind, &cursor, limit))
    }

    fn cursors(
        &self,
        room_id: String,
        kind: String,
    ) -> BoxFuture<'static, StoreResult<Vec<Cursor>>> {
        self.read(move |db| queries::cursors(db, &room_id, &kind))
    }

    fn user_rooms(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>> {
        self.read(move |db| queries::strings(db, sql::USER_ROOMS, &user_id))
    }

    fn peers(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>> {
        self.read(move |db| queries::strings(db, sql::PEERS, &user_id))
    }

    fn ping(&self) -> BoxFuture<'static, StoreResult<()>> {
        self.read(|_| Ok(()))
    }
}

#[cfg(test)]
mod tests;
