//! Messages the server sends to clients.
//!
//! ```
//! use relaywire_protocol::{PresenceChange, ServerMessage};
//!
//! let message = ServerMessage::from(PresenceChange { user_id: "u1".into(), online: true });
//! assert_eq!(message.type_name(), "user:online");
//! ```

use serde::{Deserialize, Serialize};

use crate::catalogue::message_enum;
use crate::{ErrorCode, Seq};

message_enum! {
    /// A message the server sends to a client.
    ///
    /// On the wire each message is a JSON text frame `{"type": "...", "payload": {...}}`.
    /// A type this version does not know decodes to `Unknown` (Rust only) instead of
    /// failing, so older clients keep working when servers add messages.
    pub enum ServerMessage {
        /// Authentication succeeded; the first message of every session.
        ///
        /// ```json
        /// {"type": "connected", "payload": {"userId": "user-uuid", "chatIds": ["chat-uuid-1", "chat-uuid-2"]}}
        /// ```
        "connected" => Connected(Connected),
        /// A new message in one of the client's chats.
        ///
        /// ```json
        /// {"type": "chat:message", "payload": {"chatId": "chat-uuid", "message": {"id": "message-uuid",
        ///  "chatId": "chat-uuid", "senderId": "user-uuid", "senderName": "John Doe",
        ///  "content": "Hello!", "createdAt": "2024-01-01T12:00:00.000Z"}}}
        /// ```
        "chat:message" => ChatMessage(MessageCreated),
        /// A participant read a message.
        ///
        /// ```json
        /// {"type": "chat:read", "payload": {"chatId": "chat-uuid", "messageId": "message-uuid",
        ///  "userId": "user-uuid", "readAt": "2024-01-01T12:01:00.000Z"}}
        /// ```
        "chat:read" => ChatRead(ReadReceipt),
        /// A participant started or stopped typing.
        ///
        /// ```json
        /// {"type": "chat:typing", "payload": {"chatId": "chat-uuid", "userId": "user-uuid",
        ///  "userName": "John Doe", "isTyping": true}}
        /// ```
        "chat:typing" => ChatTyping(TypingIndicator),
        /// A user who shares a chat with the client came online or went offline.
        ///
        /// ```json
        /// {"type": "user:online", "payload": {"userId": "user-uuid", "online": true}}
        /// ```
        "user:online" => UserOnline(PresenceChange),
        /// Heartbeat reply to `ping`.
        ///
        /// ```json
        /// {"type": "pong", "payload": {"timestamp": "2024-01-01T12:00:00.000Z"}}
        /// ```
        "pong" => Pong(Pong),
        /// A notification for the user, e.g. sent through the HTTP API.
        ///
        /// ```json
        /// {"type": "notification", "payload": {"title": "New Message", "body": "You have a new message"}}
        /// ```
        "notification" => Notification(Notification),
        /// A system notice, e.g. planned maintenance.
        ///
        /// ```json
        /// {"type": "system", "payload": {"message": "Maintenance at 02:00 UTC", "level": "warning"}}
        /// ```
        "system" => System(SystemNotice),
        /// An application-defined event carrying arbitrary JSON.
        ///
        /// ```json
        /// {"type": "event", "payload": {"name": "order:shipped", "data": {"orderId": 42}}}
        /// ```
        "event" => Event(AppEvent),
        /// The client message with this `id` was accepted.
        ///
        /// ```json
        /// {"type": "ack", "payload": {"id": "k3f9-1", "messageId": "message-uuid"}}
        /// ```
        "ack" => Ack(Ack),
        /// Something went wrong; `id` names the client message this answers, if any.
        ///
        /// ```json
        /// {"type": "error", "payload": {"code": "AUTH_FAILED", "message": "Invalid token", "details": {}}}
        /// ```
        "error" => Error(ErrorPayload),
    }
    unknown {
        /// A message of a type this version does not know, kept whole.
        Unknown(UnknownMessage)
    }
}

impl ServerMessage {
    /// The types that carry a `seq`: the stored events a server replays after a
    /// reconnect, which a client drops when it has seen them already.
    pub const NUMBERED_TYPES: &'static [&'static str] = &["chat:message", "chat:read"];

    /// The `seq` of a stored event (one of [`Self::NUMBERED_TYPES`]), when it has one.
    ///
    /// ```
    /// use relaywire_protocol::{PresenceChange, ReadReceipt, Seq, ServerMessage};
    ///
    /// let receipt = ServerMessage::from(ReadReceipt {
    ///     chat_id: "c".into(),
    ///     message_id: "m".into(),
    ///     user_id: "u".into(),
    ///     read_at: "2024-01-01T12:01:00.000Z".into(),
    ///     seq: Some(Seq::new(7).unwrap()),
    /// });
    /// assert_eq!(receipt.seq(), Some(Seq::new(7).unwrap()));
    /// assert!(ServerMessage::NUMBERED_TYPES.contains(&receipt.type_name()));
    ///
    /// let presence = ServerMessage::from(PresenceChange { user_id: "u".into(), online: true });
    /// assert_eq!(presence.seq(), None);
    /// assert!(!ServerMessage::NUMBERED_TYPES.contains(&presence.type_name()));
    /// ```
    pub fn seq(&self) -> Option<Seq> {
        match self {
            ServerMessage::ChatMessage(created) => created.seq,
            ServerMessage::ChatRead(receipt) => receipt.seq,
            _ => None,
        }
    }
}

/// Payload of `connected`: who the client is and how to talk to this server.
///
/// Every field after `chat_ids` is optional so that minimal servers stay valid; the
/// reference server sends them all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    /// The authenticated user.
    pub user_id: String,
    /// The chats the user participates in.
    pub chat_ids: Vec<String>,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Users sharing a chat with this user who are online now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_user_ids: Option<Vec<String>>,
    /// How often the client should `ping`, in milliseconds; wins over the client's option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u32>,
    /// The server closes a connection silent for this long, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout_ms: Option<u32>,
    /// The server ends a typing indicator after this long without a stop, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_timeout_ms: Option<u32>,
    /// The largest text frame the server accepts, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u32>,
    /// The protocol version the server speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// The newest stored event when the session began; events after it come live. A
    /// client remembers the last `seq` it saw and resumes from it on reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// How many missed events follow this message, replayed in order before anything new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u32>,
    /// More events were missed than the server replays: reload history over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_truncated: Option<bool>,
}

/// Payload of server `chat:message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
#[serde(rename_all = "camelCase")]
pub struct MessageCreated {
    /// The chat the message was posted in.
    pub chat_id: String,
    /// The stored message.
    pub message: ChatMessage,
    /// Its event number; a client that saw it already drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Server-assigned id.
    pub id: String,
    /// The chat it belongs to.
    pub chat_id: String,
    /// The author.
    pub sender_id: String,
    /// The author's display name when the message was sent.
    pub sender_name: String,
    /// The text.
    pub content: String,
    /// When the server stored it, RFC 3339 in UTC with milliseconds.
    pub created_at: String,
}

/// Payload of server `chat:read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    /// The chat the message belongs to.
    pub chat_id: String,
    /// The message read.
    pub message_id: String,
    /// The reader.
    pub user_id: String,
    /// When it was read, RFC 3339 in UTC with milliseconds.
    pub read_at: String,
    /// Its event number; a client that saw it already drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

/// Payload of server `chat:typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct TypingIndicator {
    /// The chat being typed in.
    pub chat_id: String,
    /// Who is typing.
    pub user_id: String,
    /// Their display name.
    pub user_name: String,
    /// `false` when they stopped, or when the server expired the indicator.
    pub is_typing: bool,
}

/// Payload of `user:online`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChange {
    /// The user whose presence changed.
    pub user_id: String,
    /// `true` when their first connection opened, `false` when their last one closed.
    pub online: bool,
}

/// Payload of `pong`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    /// Server time, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
}

/// Payload of `notification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Short title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Application data, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
}

/// Payload of `system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct SystemNotice {
    /// The notice.
    pub message: String,
    /// How serious it is.
    pub level: SystemLevel,
}

/// Severity of a `SystemNotice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "lowercase")]
pub enum SystemLevel {
    /// For information.
    Info,
    /// Something the user should know about.
    Warning,
    /// Something failed.
    Error,
}

/// Payload of `event`: an application-defined event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct AppEvent {
    /// The application's event name, e.g. `"order:shipped"`.
    pub name: String,
    /// Any JSON.
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: serde_json::Value,
}

/// Payload of `ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The `id` of the client message accepted.
    pub id: String,
    /// The id the server assigned to what the message created, e.g. the stored chat message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Payload of `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPayload {
    /// What went wrong, machine-readable.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Extra context, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub details: Option<serde_json::Value>,
    /// The `id` of the client message this error answers, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ErrorPayload {
    /// An error with no details that answers no particular message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            id: None,
        }
    }

    /// Names the client message this error answers.
    pub fn answering(mut self, id: Option<String>) -> Self {
        self.id = id;
        self
    }
}

/// A server message of a type this version does not know, kept whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownMessage {
    /// The wire `type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The payload as received (`null` when absent).
    pub payload: serde_json::Value,
}
