//! The store: the truth every delivery comes from.
//!
//! It holds users, rooms and their members, the events the server stores (each with
//! its frame), every user's numbered stream (the `seq` of each event they receive),
//! the answers given to durable messages (for deduplication), and per-user cursors in
//! rooms (read positions). Nothing is delivered or acknowledged before the write that
//! holds it is committed: each operation runs a follow-up after its commit, which is
//! where the server hands the change to the bus.
//!
//! [`Store`] is the seam a backend implements; [`sqlite::SqliteStore`] is the embedded
//! one.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod postgres;
pub(crate) mod schema;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod tests;

use futures_util::future::BoxFuture;
use relaywire_protocol::{ErrorCode, Seq};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The room does not exist.
    #[error("no room `{0}`")]
    RoomNotFound(String),
    /// The event does not exist in that room.
    #[error("no event `{0}` in this room")]
    EventNotFound(String),
    /// The user is not a member of the room.
    #[error("not a member of room `{0}`")]
    NotMember(String),
    /// The room is closed: only members add people.
    #[error("room `{0}` is closed")]
    RoomClosed(String),
    /// A room with that id exists already.
    #[error("room `{0}` exists already")]
    RoomExists(String),
    /// An event with that id exists already.
    #[error("event `{0}` exists already")]
    EventExists(String),
    /// The backend failed; the detail goes to the log, never to clients.
    #[error("store backend: {0}")]
    Backend(String),
    /// The store has stopped (the server is shutting down).
    #[error("the store is shut down")]
    Closed,
    /// The batch holding this write failed to commit; nothing of it was stored.
    #[error("the write could not be committed")]
    NotCommitted,
    /// The store cannot be reached now (the database is down or unreachable, or every
    /// connection to it is busy); the operation did nothing and may be tried again.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The client id was used before for a different message.
    #[error("the id `{0}` was used before for a different message: give a new message a new id")]
    IdReused(String),
}

impl StoreError {
    /// The error code a client is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::RoomNotFound(_) | StoreError::EventNotFound(_) => ErrorCode::NotFound,
            StoreError::NotMember(_) => ErrorCode::NotParticipant,
            StoreError::RoomClosed(_) => ErrorCode::Forbidden,
            StoreError::RoomExists(_) | StoreError::EventExists(_) => ErrorCode::ValidationError,
            StoreError::IdReused(_) => ErrorCode::IdReused,
            StoreError::Backend(_)
            | StoreError::Closed
            | StoreError::NotCommitted
            | StoreError::Unavailable(_) => ErrorCode::InternalError,
        }
    }

    /// The message a client sees: internal details stay in the logs.
    pub fn public_message(&self) -> String {
        if self.is_transient() {
            return "the store is unavailable: try again shortly".to_owned();
        }
        match self.code() {
            ErrorCode::InternalError => "the server could not complete this".to_owned(),
            _ => self.to_string(),
        }
    }
}

impl StoreError {
    /// Whether trying again later may succeed: nothing was stored, and a client keeps
    /// its message to send it again.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::NotCommitted)
    }
}

/// A store operation's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// A room as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its id.
    pub id: String,
    /// Its display title.
    pub title: String,
    /// Whether anyone may join it.
    pub open: bool,
    /// When it was created, RFC 3339.
    pub created_at: String,
    /// Its members, in the order they joined.
    pub members: Vec<String>,
}

/// A room to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// Its id.
    pub id: String,
    /// Its display title.
    pub title: String,
    /// Whether anyone may join it.
    pub open: bool,
    /// Its first members.
    pub members: Vec<String>,
}

/// Which rooms to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomFilter {
    /// Every room.
    All,
    /// The user's rooms and the open ones they may join.
    VisibleTo(String),
}

/// Who may join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRule {
    /// Only an open room (a user joining by themselves).
    OpenOnly,
    /// Any room (an admin adding people).
    Any,
}

/// Who receives a numbered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every member of the room, as the store has them when the event is stored.
    Room(String),
    /// These users, each numbered once however often they are listed.
    Users(Vec<String>),
}

/// A durable message's key: what it is deduplicated by, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerKey {
    /// The sender.
    pub user_id: String,
    /// The message's client-assigned id.
    pub client_id: String,
    /// A digest of the message itself (type and payload): a resend under the same id
    /// has the same one; another message under a used id does not, and is refused
    /// with [`StoreError::IdReused`].
    pub fingerprint: String,
}

/// A user's forward-only position in a room, e.g. how far they have read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorMove {
    /// The room.
    pub room_id: String,
    /// The user.
    pub user_id: String,
    /// What the cursor is, e.g. `read`.
    pub kind: String,
    /// The event it moves to; it only ever moves to a later one.
    pub event_id: String,
}

/// Where a cursor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The room.
    pub room_id: String,
    /// The user.
    pub user_id: String,
    /// What the cursor is.
    pub kind: String,
    /// The event it is at.
    pub event_id: String,
    /// When it moved there, RFC 3339.
    pub at: String,
}

/// An event to store and deliver, numbered, to its audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Its id, unique among events (the app's, e.g. a chat message's id).
    pub event_id: String,
    /// The room it belongs to, for history and membership checks.
    pub room_id: Option<String>,
    /// Its wire type.
    pub kind: String,
    /// Its frame without `seq`: each recipient's copy gets theirs.
    pub frame: String,
    /// Who caused it.
    pub sender_id: Option<String>,
    /// When it happened, RFC 3339.
    pub at: String,
    /// Who receives it.
    pub audience: Audience,
    /// Store it only if this user is a member of `room_id`.
    pub require_member: Option<String>,
    /// Store it only once under this key; a second publish finds the first.
    pub answer_key: Option<AnswerKey>,
    /// Store it only if this cursor moves forward (it moves with it).
    pub cursor: Option<CursorMove>,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Stored and numbered for every recipient.
    Stored {
        /// The event's id.
        event_id: String,
        /// Each recipient and the event's number in their stream.
        recipients: Vec<(String, Seq)>,
        /// The frame without `seq`.
        frame: String,
    },
    /// A message with the same answer key was stored before: nothing new.
    Duplicate {
        /// The answer given then (the event's id).
        answer: Option<String>,
    },
    /// The cursor was already at or past the event: nothing new.
    CursorUnchanged(Cursor),
}

/// What a connecting user needs: their rooms, their stream's head, and what they
/// missed since the event they saw last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    /// The rooms they belong to.
    pub rooms: Vec<String>,
    /// The number of their newest event (0 before any).
    pub head: Seq,
    /// The events after the resume point, numbered, oldest first: (seq, frame with seq).
    pub missed: Vec<(Seq, String)>,
    /// More were missed than `missed` holds.
    pub truncated: bool,
}

/// A stored event, as history reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id.
    pub id: String,
    /// Its room.
    pub room_id: Option<String>,
    /// Its wire type.
    pub kind: String,
    /// Its frame without `seq`.
    pub frame: String,
    /// When it was stored.
    pub at: String,
}

/// Which page of a room's events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventCursor {
    /// The most recent.
    Latest,
    /// Older than the event with this id.
    Before(String),
    /// Newer than the event with this id.
    After(String),
}

/// A page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// Whether more lie beyond, in the direction asked for.
    pub has_more: bool,
}

/// A follow-up: runs once its operation is committed, with what it returns. Backends
/// that commit in order run follow-ups in that order too.
pub type FollowUp<T> = Box<dyn FnOnce(&T) + Send>;

/// A store backend. Every operation is atomic; none is visible to readers, delivered
/// or acknowledged before it is committed.
pub trait Store: Send + Sync + 'static {
    /// Records the user (and their name), reads their rooms and head, and what they
    /// missed after `resume_after` (at most `replay_limit` events); `then` runs after.
    fn open_session(
        &self,
        user_id: String,
        name: String,
        resume_after: Option<Seq>,
        replay_limit: usize,
        then: FollowUp<SessionStart>,
    ) -> BoxFuture<'static, StoreResult<SessionStart>>;

    /// The user's events numbered after `after` up to `up_to`, with their `seq`: what a
    /// connection missed between two it received.
    fn events_between(
        &self,
        user_id: String,
        after: Seq,
        up_to: Seq,
    ) -> BoxFuture<'static, StoreResult<Vec<(Seq, String)>>>;

    /// Stores an event and numbers it for its audience; `then` runs after the commit.
    fn publish(
        &self,
        publish: Publish,
        then: FollowUp<Published>,
    ) -> BoxFuture<'static, StoreResult<Published>>;

    /// The answer recorded for a durable message's key, if it was handled before;
    /// [`StoreError::IdReused`] when the id was used for a different message.
    fn answer(&self, key: AnswerKey) -> BoxFuture<'static, StoreResult<Option<Option<String>>>>;

    /// Forgets the answers recorded before `before` (RFC 3339): their ids may be used
    /// again. Returns how many were forgotten.
    fn forget_answers(&self, before: String) -> BoxFuture<'static, StoreResult<usize>>;

    /// Records the answer to a durable message whose handler stored no event.
    fn record_answer(
        &self,
        key: AnswerKey,
        answer: Option<String>,
    ) -> BoxFuture<'static, StoreResult<()>>;

    /// Creates a room with its first members.
    fn create_room(&self, room: NewRoom) -> BoxFuture<'static, StoreResult<Room>>;

    /// Adds a user to a room; whether they were new.
    fn join(
        &self,
        room_id: String,
        user_id: String,
        rule: JoinRule,
    ) -> BoxFuture<'static, StoreResult<bool>>;

    /// Removes a member from a room.
    fn leave(&self, room_id: String, user_id: String) -> BoxFuture<'static, StoreResult<()>>;

    /// A room.
    fn room(&self, room_id: String) -> BoxFuture<'static, StoreResult<Room>>;

    /// Rooms, oldest first.
    fn rooms(&self, filter: RoomFilter) -> BoxFuture<'static, StoreResult<Vec<Room>>>;

    /// A page of a room's events of one kind.
    fn events(
        &self,
        room_id: String,
        kind: String,
        cursor: EventCursor,
        limit: usize,
    ) -> BoxFuture<'static, StoreResult<EventPage>>;

    /// Every user's cursor of one kind in a room.
    fn cursors(
        &self,
        room_id: String,
        kind: String,
    ) -> BoxFuture<'static, StoreResult<Vec<Cursor>>>;

    /// The rooms a user belongs to.
    fn user_rooms(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>>;

    /// Everyone who shares a room with the user, by id.
    fn peers(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>>;

    /// Whether the store answers now (readiness).
    fn ping(&self) -> BoxFuture<'static, StoreResult<()>>;

    /// Whether follow-ups run in the order their operations committed (one writer, as
    /// in SQLite). When they may not, a new connection checks the store once it is
    /// registered, for what was committed while it registered.
    fn orders_follow_ups(&self) -> bool {
        true
    }
}

/// `frame` (`{"type":...,"payload":{...}}`) with `"seq":n` as its payload's last field,
/// as serde writes a numbered payload whose `seq` is set. Encoding once and splicing per
/// recipient is what lets one event reach many users, each with their own number.
///
/// ```
/// use relaywire_protocol::Seq;
/// use relaywire_server::store::with_seq;
///
/// let seq = Seq::new(7).unwrap();
/// assert_eq!(with_seq(r#"{"type":"t","payload":{"a":1}}"#, seq), r#"{"type":"t","payload":{"a":1,"seq":7}}"#);
/// assert_eq!(with_seq(r#"{"type":"t","payload":{}}"#, seq), r#"{"type":"t","payload":{"seq":7}}"#);
/// ```
pub fn with_seq(frame: &str, seq: Seq) -> String {
    let cut = frame.len().saturating_sub(2);
    let (Some(body), Some(end)) = (frame.get(..cut), frame.get(cut..)) else {
        return frame.to_owned();
    };
    let separator = if body.ends_with('{') { "" } else { "," };
    // Written piece by piece rather than with `format!`: this runs once per delivery,
    // and the formatting machinery was most of its time in `cargo xtask bench`'s
    // fan-out profile.
    let mut number = itoa::Buffer::new();
    let number = number.format(seq.get());
    let mut spliced = String::with_capacity(frame.len() + separator.len() + 6 + number.len());
    spliced.push_str(body);
    spliced.push_str(separator);
    spliced.push_str("\"seq\":");
    spliced.push_str(number);
    spliced.push_str(end);
    spliced
}
