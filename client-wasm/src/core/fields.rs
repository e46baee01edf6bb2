//! Reading received payloads and outgoing messages: the one place that knows which
//! fields the control messages carry and what their values may be.
//!
//! A driver implements [`Fields`] over its own representation (a JavaScript object in
//! the browser, a `serde_json::Value` natively); the core reads what it needs through
//! it, so both clients decode `connected`, `ack`, `error`, presence and numbered events
//! the same way.

use relaywire_protocol::policy::Descriptor;
use relaywire_protocol::{ErrorCode, Seq};

/// A field the core reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key<'a> {
    /// `id` (of `ack` and `error`).
    Id,
    /// `code` (of `error`).
    Code,
    /// `seq` (of numbered events and `connected`).
    Seq,
    /// `userId`.
    UserId,
    /// `userName` (of `connected`).
    UserName,
    /// `online` (of `user:online`).
    Online,
    /// `chatIds`: the rooms (of `connected`).
    ChatIds,
    /// `onlineUserIds` (of `connected`).
    OnlineUserIds,
    /// `heartbeatIntervalMs` (of `connected`).
    HeartbeatIntervalMs,
    /// `typingTimeoutMs`: the lifetime of ephemeral states (of `connected`).
    TypingTimeoutMs,
    /// `maxMessageBytes` (of `connected`).
    MaxMessageBytes,
    /// `closeCode` (of `error`): the close that follows.
    CloseCode,
    /// A payload field a catalogue names (a state's key, a room field).
    Field(&'a str),
}

impl Key<'_> {
    /// The field's name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Key::Id => "id",
            Key::Code => "code",
            Key::Seq => "seq",
            Key::UserId => "userId",
            Key::UserName => "userName",
            Key::Online => "online",
            Key::ChatIds => "chatIds",
            Key::OnlineUserIds => "onlineUserIds",
            Key::HeartbeatIntervalMs => "heartbeatIntervalMs",
            Key::TypingTimeoutMs => "typingTimeoutMs",
            Key::MaxMessageBytes => "maxMessageBytes",
            Key::CloseCode => "closeCode",
            Key::Field(name) => name,
        }
    }
}

/// Read access to a payload's fields; each returns `None` (or nothing) when the field
/// is missing or of another type.
pub trait Fields {
    /// A string field.
    fn text(&self, key: Key<'_>) -> Option<String>;
    /// A number field.
    fn number(&self, key: Key<'_>) -> Option<f64>;
    /// A boolean field.
    fn flag(&self, key: Key<'_>) -> Option<bool>;
    /// An array of strings; other items are skipped.
    fn texts(&self, key: Key<'_>) -> Vec<String>;
}

/// What the server said in `connected`, as far as the core needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// Their display name.
    pub user_name: Option<String>,
    /// The rooms they belong to (`chatIds`), kept up to date by acknowledged joins and
    /// leaves.
    pub rooms: Vec<String>,
    /// Users sharing a room with them who are online.
    pub online_user_ids: Vec<String>,
    /// The server's heartbeat interval.
    pub heartbeat_interval_ms: Option<u32>,
    /// How long the server keeps an ephemeral state without a renewal.
    pub state_ttl_ms: Option<u32>,
    /// The server's frame limit.
    pub max_message_bytes: Option<u32>,
    /// The user's newest event when the session began.
    pub seq: Option<u64>,
}

/// A received message, as far as the core acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// `connected`.
    Connected(Session),
    /// `ack` of the client message `id`.
    Ack {
        /// The echoed id.
        id: String,
    },
    /// `error`, answering the client message `id` if there is one.
    Error {
        /// The echoed id.
        id: Option<String>,
        /// The error code.
        code: ErrorCode,
        /// The close code the server announced it closes with next.
        close_code: Option<u16>,
    },
    /// `user:online`.
    Presence {
        /// The user.
        user_id: String,
        /// Whether they are online now.
        online: bool,
    },
    /// A numbered event; without a `seq` it cannot be told apart from a replay.
    Numbered {
        /// Its event number.
        seq: Option<u64>,
        /// The client message it acknowledges: the sender's own copy of what its
        /// message stored (protocol 3), set by [`Inbound::answering`].
        answers: Option<String>,
    },
    /// Any other message of a type the protocol knows, `pong` included.
    Other,
    /// A message of a type the protocol does not know (or not a message at all); it
    /// still proves the connection alive.
    Unknown,
}

impl Inbound {
    /// Whether the application's handlers for known types should see it.
    pub fn is_known(&self) -> bool {
        !matches!(self, Inbound::Unknown)
    }

    /// The message as read, acknowledging the client message `id` when it is a numbered
    /// event whose envelope carried an acknowledgement (the `ack` field's `id`, which
    /// the driver reads with [`Key::Id`]); anything else is as it was.
    pub fn answering(self, id: Option<String>) -> Inbound {
        match self {
            Inbound::Numbered { seq, .. } => Inbound::Numbered { seq, answers: id },
            other => other,
        }
    }
}

/// A whole number of milliseconds or bytes that fits in a `u32`.
fn whole_u32(value: f64) -> Option<u32> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX))
        .then_some(value as u32)
}

/// A sequence number: a whole number JavaScript holds exactly.
fn whole_seq(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= Seq::MAX as f64)
        .then_some(value as u64)
}

fn session(payload: &impl Fields) -> Session {
    let number = |key| payload.number(key).and_then(whole_u32);
    Session {
        user_id: payload.text(Key::UserId).unwrap_or_default(),
        user_name: payload.text(Key::UserName),
        rooms: payload.texts(Key::ChatIds),
        online_user_ids: payload.texts(Key::OnlineUserIds),
        heartbeat_interval_ms: number(Key::HeartbeatIntervalMs),
        state_ttl_ms: number(Key::TypingTimeoutMs),
        max_message_bytes: number(Key::MaxMessageBytes),
        seq: payload.number(Key::Seq).and_then(whole_seq),
    }
}

/// Reads a received message of type `type_name` (absent when the frame had none) with
/// its payload, by the protocol's descriptor.
pub fn read(descriptor: &Descriptor, type_name: Option<&str>, payload: &impl Fields) -> Inbound {
    let Some(type_name) = type_name else {
        return Inbound::Unknown;
    };
    match type_name {
        "connected" => Inbound::Connected(session(payload)),
        "ack" => match payload.text(Key::Id) {
            Some(id) => Inbound::Ack { id },
            None => Inbound::Other,
        },
        "error" => Inbound::Error {
            id: payload.text(Key::Id),
            code: ErrorCode::from_wire(&payload.text(Key::Code).unwrap_or_default()),
            close_code: payload
                .number(Key::CloseCode)
                .filter(|code| (1000.0..=4999.0).contains(code))
                .map(|code| code as u16),
        },
        "user:online" => match (payload.text(Key::UserId), payload.flag(Key::Online)) {
            (Some(user_id), Some(online)) => Inbound::Presence { user_id, online },
            _ => Inbound::Other,
        },
        _ => match descriptor.server_policy(type_name) {
            Some(policy) if policy.numbered => Inbound::Numbered {
                seq: payload.number(Key::Seq).and_then(whole_seq),
                answers: None,
            },
            Some(_) => Inbound::Other,
            None => Inbound::Unknown,
        },
    }
}
