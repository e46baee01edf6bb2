//! The shared store: PostgreSQL, for many nodes behind one load balancer.
//!
//! A room's publishes take its row's lock first, so its events are positioned, and
//! numbered for every member, in one order: the order of its history.
//!
//! Every operation runs in its own transaction on a pooled connection
//! (`deadpool-postgres`, statements prepared once per connection). Numbering is the
//! per-user `heads` row, incremented inside the publishing transaction: its row lock
//! orders two publishes to the same user, so the store, not a node, assigns every
//! `seq`, and when number `n` is committed so is every number below it. Locks on
//! `heads` are taken in user order, so concurrent fan-outs do not deadlock; a
//! serialization failure or deadlock still met is retried. A follow-up runs after its
//! transaction commits. Unlike SQLite's, follow-ups of concurrent transactions may run
//! in any order: a connection puts its stream back in order by `seq`, fetching from
//! the store what it has not seen (see the bus).

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_protocol::Seq;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{
    AnswerKey, Audience, Cursor, EventCursor, EventPage, FollowUp, JoinRule, NewRoom, Publish,
    Published, Room, RoomFilter, SessionStart, Store, StoreError, StoreResult, StoredEvent, schema,
    sql, with_seq,
};
use crate::time::now_rfc3339;

/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;
/// How long an operation waits for a pooled connection, or for a new one, before it
/// fails as [`StoreError::Unavailable`].
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How often a transaction that lost a serialization race is run again.
const CONFLICT_RETRIES: u32 = 5;

/// Why a statement failed: a lost race (run the transaction again) or for good.
enum Fail {
    Conflict(String),
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(err: StoreError) -> Self {
        Fail::Store(err)
    }
}

type Result<T> = std::result::Result<T, Fail>;

fn pg(err: tokio_postgres::Error) -> Fail {
    match err.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Fail::Conflict(err.to_string())
        }
        // The server refused to go on (shutting down, out of connections, ...).
        Some(code) if code.code().starts_with("57") || code.code().starts_with("08") => {
            Fail::Store(StoreError::Unavailable(err.to_string()))
        }
        Some(_) => Fail::Store(StoreError::Backend(err.to_string())),
        // No SQL state: the connection itself failed.
        None => Fail::Store(StoreError::Unavailable(err.to_string())),
    }
}

fn seq_of(value: i64) -> Result<Seq> {
    u64::try_from(value)
        .ok()
        .and_then(|n| Seq::new(n).ok())
        .ok_or_else(|| {
            Fail::Store(StoreError::Backend(format!(
                "event number {value} is out of range"
            )))
        })
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, libpq's
    /// parameters such as `options` allowed) and brings the schema up to date. Fails
    /// when the server cannot be reached or its schema is not one this server knows.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|err| StoreError::Backend(format!("DATABASE_URL: {err}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|err| StoreError::Backend(err.to_string()))?;
        let mut client = pool.get().await.map_err(pool_error)?;
        schema::migrate_postgres(&mut client).await?;
        Ok(Self { pool })
    }

    /// Runs `SELECT 1`: whether the database answers now.
    pub async fn ping(&self) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|err| match pg(err) {
                Fail::Store(err) => err,
                Fail::Conflict(detail) => StoreError::Backend(detail),
            })
    }
}

fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Runs `$body` in a transaction on a pooled connection (`$tx` names it) and commits;
/// runs it again when it lost a serialization race.
macro_rules! transaction {
    ($pool:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome: Result<_> = async {
                let mut client = $pool.get().await.map_err(pool_error)?;
                let $tx = client.transaction().await.map_err(pg)?;
                let value = $body;
                $tx.commit().await.map_err(pg)?;
                Ok(value)
            }
            .await;
            match outcome {
                Ok(value) => break Ok(value),
                Err(Fail::Conflict(detail)) if attempt < CONFLICT_RETRIES => {
                    tracing::debug!(
                        detail,
                        attempt,
                        "a transaction lost a race; running it again"
                    );
                }
                Err(Fail::Conflict(detail)) => break Err(StoreError::Backend(detail)),
                Err(Fail::Store(err)) => break Err(err),
            }
        }
    }};
}

mod queries {
    //! Every operation's statements, on a transaction.

    use super::*;

    type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

    async fn rows(
        tx: &Transaction<'_>,
        text: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let statement = tx.prepare_cached(text).await.map_err(pg)?;
        tx.query(&statement, params).await.map_err(pg)
    }

    async fn row(
        tx: &Transaction<'_>,
        text: &str,
        params: Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>> {
        let statement = tx.prepare_cached(text).await.map_err(pg)?;
        tx.query_opt(&statement, params).await.map_err(pg)
    }

    async fn execute(tx: &Transaction<'_>, text: &str, params: Params<'_>) -> Result<u64> {
        let statement = tx.prepare_cached(text).await.map_err(pg)?;
        tx.execute(&statement, params).await.map_err(pg)
    }

    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        index: usize,
    ) -> Result<T> {
        row.try_get(index)
            .map_err(|err| Fail::Store(StoreError::Backend(err.to_string())))
    }

    pub(super) async fn room_is_open(tx: &Transaction<'_>, room_id: &str) -> Result<bool> {
        match row(tx, sql::ROOM_OPEN, &[&room_id]).await? {
            Some(found) => get(&found, 0),
            None => Err(StoreError::RoomNotFound(room_id.to_owned()).into()),
        }
    }

    async fn is_member(tx: &Transaction<'_>, room_id: &str, user_id: &str) -> Result<bool> {
        Ok(row(tx, sql::IS_MEMBER, &[&room_id, &user_id])
            .await?
            .is_some())
    }

    async fn require_member(tx: &Transaction<'_>, room_id: &str, user_id: &str) -> Result<()> {
        room_is_open(tx, room_id).await?;
        if is_member(tx, room_id, user_id).await? {
            Ok(())
        } else {
            Err(StoreError::NotMember(room_id.to_owned()).into())
        }
    }

    async fn strings(tx: &Transaction<'_>, text: &str, params: Params<'_>) -> Result<Vec<String>> {
        rows(tx, text, params)
            .await?
            .iter()
            .map(|found| get(found, 0))
            .collect()
    }

    async fn add_member(tx: &Transaction<'_>, room_id: &str, user_id: &str) -> Result<bool> {
        let inserted = execute(tx, sql::ADD_MEMBER, &[&room_id, &user_id, &now_rfc3339()]).await?;
        Ok(inserted == 1)
    }

    async fn room_of(tx: &Transaction<'_>, found: &tokio_postgres::Row) -> Result<Room> {
        let id: String = get(found, 0)?;
        Ok(Room {
            members: strings(tx, sql::MEMBERS, &[&id]).await?,
            title: get(found, 1)?,
            open: get(found, 2)?,
            created_at: get(found, 3)?,
            id,
        })
    }

    pub(super) async fn rooms(tx: &Transaction<'_>, filter: &RoomFilter) -> Result<Vec<Room>> {
        let found = match filter {
            RoomFilter::All => rows(tx, sql::ALL_ROOMS, &[]).await?,
            RoomFilter::VisibleTo(user_id) => rows(tx, sql::VISIBLE_ROOMS, &[user_id]).await?,
        };
        let mut rooms = Vec::with_capacity(found.len());
        for found in &found {
            rooms.push(room_of(tx, found).await?);
        }
        Ok(rooms)
    }

    pub(super) async fn room(tx: &Transaction<'_>, room_id: &str) -> Result<Room> {
        match row(tx, sql::ROOM, &[&room_id]).await? {
            Some(found) => room_of(tx, &found).await,
            None => Err(StoreError::RoomNotFound(room_id.to_owned()).into()),
        }
    }

    pub(super) async fn create_room(tx: &Transaction<'_>, room: &NewRoom) -> Result<Room> {
        let inserted = execute(
            tx,
            sql::CREATE_ROOM,
            &[&room.id, &room.title, &room.open, &now_rfc3339()],
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::RoomExists(room.id.clone()).into());
        }
        for user_id in &room.members {
            add_member(tx, &room.id, user_id).await?;
        }
        self::room(tx, &room.id).await
    }

    pub(super) async fn join(
        tx: &Transaction<'_>,
        room_id: &str,
        user_id: &str,
        rule: JoinRule,
    ) -> Result<bool> {
        let open = room_is_open(tx, room_id).await?;
        if is_member(tx, room_id, user_id).await? {
            return Ok(false);
        }
        if !open && rule == JoinRule::OpenOnly {
            return Err(StoreError::RoomClosed(room_id.to_owned()).into());
        }
        add_member(tx, room_id, user_id).await
    }

    pub(super) async fn leave(tx: &Transaction<'_>, room_id: &str, user_id: &str) -> Result<()> {
        require_member(tx, room_id, user_id).await?;
        execute(tx, sql::LEAVE, &[&room_id, &user_id]).await?;
        Ok(())
    }

    async fn head(tx: &Transaction<'_>, user_id: &str) -> Result<Seq> {
        let head: i64 = match row(tx, sql::HEAD, &[&user_id]).await? {
            Some(found) => get(&found, 0)?,
            None => 0,
        };
        seq_of(head)
    }

    pub(super) async fn numbered(
        tx: &Transaction<'_>,
        user_id: &str,
        after: Seq,
        up_to: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<(Seq, String)>> {
        let after = count(after.get() as usize);
        let up_to = up_to.map_or(i64::MAX, |seq| count(seq.get() as usize));
        let limit = count(limit);
        let found = rows(tx, sql::NUMBERED, &[&user_id, &after, &up_to, &limit]).await?;
        found
            .iter()
            .map(|found| {
                let seq = seq_of(get(found, 0)?)?;
                let frame: String = get(found, 1)?;
                Ok((seq, with_seq(&frame, seq)))
            })
            .collect()
    }

    pub(super) async fn open_session(
        tx: &Transaction<'_>,
        user_id: &str,
        name: &str,
        resume_after: Option<Seq>,
        replay_limit: usize,
    ) -> Result<SessionStart> {
        execute(tx, sql::UPSERT_USER, &[&user_id, &name, &now_rfc3339()]).await?;
        let rooms = strings(tx, sql::USER_ROOMS, &[&user_id]).await?;
        let head = head(tx, user_id).await?;
        let mut missed = match resume_after {
            Some(after) => {
                numbered(tx, user_id, after, None, replay_limit.saturating_add(1)).await?
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

    pub(super) async fn user_rooms(tx: &Transaction<'_>, user_id: &str) -> Result<Vec<String>> {
        strings(tx, sql::USER_ROOMS, &[&user_id]).await
    }

    pub(super) async fn peers(tx: &Transaction<'_>, user_id: &str) -> Result<Vec<String>> {
        strings(tx, sql::PEERS, &[&user_id]).await
    }

    pub(super) async fn answer(
        tx: &Transaction<'_>,
        key: &AnswerKey,
    ) -> Result<Option<Option<String>>> {
        let Some(found) = row(tx, sql::ANSWER, &[&key.user_id, &key.client_id]).await? else {
            return Ok(None);
        };
        let answer: Option<String> = get(&found, 0)?;
        let fingerprint: String = get(&found, 1)?;
        if !fingerprint.is_empty() && fingerprint != key.fingerprint {
            return Err(StoreError::IdReused(key.client_id.clone()).into());
        }
        Ok(Some(answer))
    }

    pub(super) async fn forget_answers(tx: &Transaction<'_>, before: &str) -> Result<usize> {
        let forgotten = execute(tx, sql::FORGET_ANSWERS, &[&before]).await?;
        Ok(usize::try_from(forgotten).unwrap_or(usize::MAX))
    }

    pub(super) async fn record_answer(
        tx: &Transaction<'_>,
        key: &AnswerKey,
        answer: Option<&str>,
    ) -> Result<()> {
        execute(
            tx,
            sql::RECORD_ANSWER,
            &[
                &key.user_id,
                &key.client_id,
                &key.fingerprint,
                &answer,
                &now_rfc3339(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn event_position(tx: &Transaction<'_>, room_id: &str, event_id: &str) -> Result<i64> {
        match row(tx, sql::EVENT_POSITION, &[&event_id, &room_id]).await? {
            Some(found) => get(&found, 0),
            None => Err(StoreError::EventNotFound(event_id.to_owned()).into()),
        }
    }

    async fn cursor(
        tx: &Transaction<'_>,
        room_id: &str,
        kind: &str,
        user_id: &str,
    ) -> Result<Option<(i64, Cursor)>> {
        let Some(found) = row(tx, sql::CURSOR, &[&room_id, &kind, &user_id]).await? else {
            return Ok(None);
        };
        Ok(Some((
            get(&found, 0)?,
            Cursor {
                room_id: room_id.to_owned(),
                user_id: user_id.to_owned(),
                kind: kind.to_owned(),
                event_id: get(&found, 1)?,
                at: get(&found, 2)?,
            },
        )))
    }

    pub(super) async fn publish(tx: &Transaction<'_>, publish: &Publish) -> Result<Published> {
        if let Some(room_id) = &publish.room_id {
            row(tx, sql::LOCK_ROOM, &[room_id]).await?;
        }
        if let (Some(user_id), Some(room_id)) = (&publish.require_member, &publish.room_id) {
            require_member(tx, room_id, user_id).await?;
        }
        if let Some(key) = &publish.answer_key
            && let Some(answer) = answer(tx, key).await?
        {
            return Ok(Published::Duplicate { answer });
        }
        let mut moved_to = None;
        if let Some(cursor_move) = &publish.cursor {
            let position = event_position(tx, &cursor_move.room_id, &cursor_move.event_id).await?;
            if let Some((current, cursor)) = cursor(
                tx,
                &cursor_move.room_id,
                &cursor_move.kind,
                &cursor_move.user_id,
            )
            .await?
                && current >= position
            {
                return Ok(Published::CursorUnchanged(cursor));
            }
            moved_to = Some(position);
        }
        let inserted = row(
            tx,
            sql::INSERT_EVENT,
            &[
                &publish.event_id,
                &publish.room_id,
                &publish.kind,
                &publish.sender_id,
                &publish.frame,
                &publish.at,
            ],
        )
        .await?;
        let Some(inserted) = inserted else {
            // A concurrent resend under the same key may have stored it first.
            if let Some(key) = &publish.answer_key
                && let Some(answer) = answer(tx, key).await?
            {
                return Ok(Published::Duplicate { answer });
            }
            return Err(StoreError::EventExists(publish.event_id.clone()).into());
        };
        let position: i64 = get(&inserted, 0)?;
        let recipients = match &publish.audience {
            Audience::Room(room_id) => {
                let numbered = rows(tx, sql::NUMBER_AND_FILE_ROOM, &[room_id, &position]).await?;
                numbered
                    .iter()
                    .map(|found| Ok((get::<String>(found, 0)?, seq_of(get(found, 1)?)?)))
                    .collect::<Result<Vec<_>>>()?
            }
            Audience::Users(users) => {
                // In user order, like a room's: one lock order for every publish.
                let mut users = users.clone();
                users.sort();
                users.dedup();
                let mut recipients = Vec::with_capacity(users.len());
                for user_id in users {
                    let numbered = row(tx, sql::NUMBER_USER, &[&user_id]).await?;
                    let seq: i64 = match numbered {
                        Some(found) => get(&found, 0)?,
                        None => return Err(StoreError::Backend("no number".to_owned()).into()),
                    };
                    execute(tx, sql::FILE_USER, &[&user_id, &seq, &position]).await?;
                    recipients.push((user_id, seq_of(seq)?));
                }
                recipients
            }
        };
        if let Some(key) = &publish.answer_key {
            record_answer(tx, key, Some(&publish.event_id)).await?;
        }
        if let (Some(cursor_move), Some(position)) = (&publish.cursor, moved_to) {
            execute(
                tx,
                sql::MOVE_CURSOR,
                &[
                    &cursor_move.room_id,
                    &cursor_move.kind,
                    &cursor_move.user_id,
                    &position,
                    &cursor_move.event_id,
                    &publish.at,
                ],
            )
            .await?;
        }
        Ok(Published::Stored {
            event_id: publish.event_id.clone(),
            recipients,
            frame: publish.frame.clone(),
        })
    }

    pub(super) async fn events(
        tx: &Transaction<'_>,
        room_id: &str,
        kind: &str,
        cursor: &EventCursor,
        limit: usize,
    ) -> Result<EventPage> {
        room_is_open(tx, room_id).await?;
        let fetch = count(limit).saturating_add(1);
        let (text, anchor) = match cursor {
            EventCursor::Latest => (sql::EVENTS_BEFORE, i64::MAX),
            EventCursor::Before(id) => (sql::EVENTS_BEFORE, event_position(tx, room_id, id).await?),
            EventCursor::After(id) => (sql::EVENTS_AFTER, event_position(tx, room_id, id).await?),
        };
        let found = rows(tx, text, &[&room_id, &kind, &anchor, &fetch]).await?;
        let mut events = found
            .iter()
            .map(|found| {
                Ok(StoredEvent {
                    id: get(found, 0)?,
                    room_id: get(found, 1)?,
                    kind: get(found, 2)?,
                    frame: get(found, 3)?,
                    at: get(found, 4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let has_more = events.len() > limit;
        events.truncate(limit);
        if !matches!(cursor, EventCursor::After(_)) {
            events.reverse();
        }
        Ok(EventPage { events, has_more })
    }

    pub(super) async fn cursors(
        tx: &Transaction<'_>,
        room_id: &str,
        kind: &str,
    ) -> Result<Vec<Cursor>> {
        room_is_open(tx, room_id).await?;
        rows(tx, sql::CURSORS, &[&room_id, &kind])
            .await?
            .iter()
            .map(|found| {
                Ok(Cursor {
                    room_id: room_id.to_owned(),
                    user_id: get(found, 0)?,
                    kind: kind.to_owned(),
                    event_id: get(found, 1)?,
                    at: get(found, 2)?,
                })
            })
            .collect()
    }
}

impl Store for PostgresStore {
    fn open_session(
        &self,
        user_id: String,
        name: String,
        resume_after: Option<Seq>,
        replay_limit: usize,
        then: FollowUp<SessionStart>,
    ) -> BoxFuture<'static, StoreResult<SessionStart>> {
        let pool = self.pool.clone();
        async move {
            let start = transaction!(pool, |tx| queries::open_session(
                &tx,
                &user_id,
                &name,
                resume_after,
                replay_limit
            )
            .await?)?;
            then(&start);
            Ok(start)
        }
        .boxed()
    }

    fn events_between(
        &self,
        user_id: String,
        after: Seq,
        up_to: Seq,
    ) -> BoxFuture<'static, StoreResult<Vec<(Seq, String)>>> {
        let pool = self.pool.clone();
        async move {
            transaction!(pool, |tx| queries::numbered(
                &tx,
                &user_id,
                after,
                Some(up_to),
                usize::MAX
            )
            .await?)
        }
        .boxed()
    }

    fn publish(
        &self,
        publish: Publish,
        then: FollowUp<Published>,
    ) -> BoxFuture<'static, StoreResult<Published>> {
        let pool = self.pool.clone();
        async move {
            let published = transaction!(pool, |tx| queries::publish(&tx, &publish).await?)?;
            then(&published);
            Ok(published)
        }
        .boxed()
    }

    fn answer(&self, key: AnswerKey) -> BoxFuture<'static, StoreResult<Option<Option<String>>>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::answer(&tx, &key).await?) }.boxed()
    }

    fn forget_answers(&self, before: String) -> BoxFuture<'static, StoreResult<usize>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::forget_answers(&tx, &before).await?) }.boxed()
    }

    fn record_answer(
        &self,
        key: AnswerKey,
        answer: Option<String>,
    ) -> BoxFuture<'static, StoreResult<()>> {
        let pool = self.pool.clone();
        async move {
            transaction!(pool, |tx| queries::record_answer(
                &tx,
                &key,
                answer.as_deref()
            )
            .await?)
        }
        .boxed()
    }

    fn create_room(&self, room: NewRoom) -> BoxFuture<'static, StoreResult<Room>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::create_room(&tx, &room).await?) }.boxed()
    }

    fn join(
        &self,
        room_id: String,
        user_id: String,
        rule: JoinRule,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        let pool = self.pool.clone();
        async move {
            transaction!(pool, |tx| queries::join(&tx, &room_id, &user_id, rule)
                .await?)
        }
        .boxed()
    }

    fn leave(&self, room_id: String, user_id: String) -> BoxFuture<'static, StoreResult<()>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::leave(&tx, &room_id, &user_id).await?) }
            .boxed()
    }

    fn room(&self, room_id: String) -> BoxFuture<'static, StoreResult<Room>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::room(&tx, &room_id).await?) }.boxed()
    }

    fn rooms(&self, filter: RoomFilter) -> BoxFuture<'static, StoreResult<Vec<Room>>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::rooms(&tx, &filter).await?) }.boxed()
    }

    fn events(
        &self,
        room_id: String,
        kind: String,
        cursor: EventCursor,
        limit: usize,
    ) -> BoxFuture<'static, StoreResult<EventPage>> {
        let pool = self.pool.clone();
        async move {
            transaction!(pool, |tx| queries::events(
                &tx, &room_id, &kind, &cursor, limit
            )
            .await?)
        }
        .boxed()
    }

    fn cursors(
        &self,
        room_id: String,
        kind: String,
    ) -> BoxFuture<'static, StoreResult<Vec<Cursor>>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::cursors(&tx, &room_id, &kind).await?) }
            .boxed()
    }

    fn user_rooms(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::user_rooms(&tx, &user_id).await?) }.boxed()
    }

    fn peers(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>> {
        let pool = self.pool.clone();
        async move { transaction!(pool, |tx| queries::peers(&tx, &user_id).await?) }.boxed()
    }

    fn ping(&self) -> BoxFuture<'static, StoreResult<()>> {
        let store = self.clone();
        async move { PostgresStore::ping(&store).await }.boxed()
    }

    fn orders_follow_ups(&self) -> bool {
        false
    }
}
