//! Messages a client sends to the server.
//!
//! ```
//! use relaywire_protocol::{ClientEnvelope, ClientMessage, SendMessage, encode};
//!
//! let message = ClientMessage::from(SendMessage {
//!     chat_id: "chat-uuid".into(),
//!     content: "Hello, world!".into(),
//! });
//! assert_eq!(message.type_name(), "chat:message");
//! assert_eq!(
//!     encode(&ClientEnvelope::with_id("c1", message))?,
//!     r#"{"id":"c1","type":"chat:message","payload":{"chatId":"chat-uuid","content":"Hello, world!"}}"#,
//! );
//! # Ok::<(), relaywire_protocol::EncodeError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::catalogue::message_enum;

message_enum! {
    /// A message a client sends to the server.
    ///
    /// On the wire each message is a JSON text frame `{"type": "...", "payload": {...}}`;
    /// a `ClientEnvelope` adds the optional client-assigned `id` the server echoes in
    /// its `ack` or `error`.
    pub enum ClientMessage {
        /// Authenticates the connection, or refreshes the token of an authenticated one.
        ///
        /// ```json
        /// {"type": "auth", "payload": {"token": "eyJhbGciOi..."}}
        /// ```
        "auth" => Auth(Authenticate),
        /// Sends a chat message.
        ///
        /// ```json
        /// {"type": "chat:message", "id": "k3f9-1", "payload": {"chatId": "chat-uuid", "content": "Hello, world!"}}
        /// ```
        "chat:message" => ChatMessage(SendMessage),
        /// Marks a message as read.
        ///
        /// ```json
        /// {"type": "chat:read", "payload": {"chatId": "chat-uuid", "messageId": "message-uuid"}}
        /// ```
        "chat:read" => ChatRead(MarkRead),
        /// Starts or stops the typing indicator in a chat.
        ///
        /// ```json
        /// {"type": "chat:typing", "payload": {"chatId": "chat-uuid", "isTyping": true}}
        /// ```
        "chat:typing" => ChatTyping(SetTyping),
        /// Joins an open chat.
        ///
        /// ```json
        /// {"type": "chat:join", "payload": {"chatId": "chat-uuid"}}
        /// ```
        "chat:join" => ChatJoin(JoinChat),
        /// Leaves a chat.
        ///
        /// ```json
        /// {"type": "chat:leave", "payload": {"chatId": "chat-uuid"}}
        /// ```
        "chat:leave" => ChatLeave(LeaveChat),
        /// Heartbeat; the server answers with `pong`.
        ///
        /// ```json
        /// {"type": "ping", "payload": {}}
        /// ```
        "ping" => Ping(Ping),
    }
}

/// A `ClientMessage` as it travels: the message plus an optional client-assigned `id`.
///
/// When `id` is present the server answers with an `ack` (or an `error`) carrying the
/// same `id`, which is how requests are matched to their replies.
///
/// ```json
/// {"type": "chat:join", "id": "k3f9-2", "payload": {"chatId": "general"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts", optional_fields)
)]
pub struct ClientEnvelope {
    /// Client-assigned id, unique per connection at least; echoed by `ack` and `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The message itself.
    #[serde(flatten)]
    pub message: ClientMessage,
}

impl ClientEnvelope {
    /// Wraps a message that needs no reply.
    pub fn new(message: impl Into<ClientMessage>) -> Self {
        Self {
            id: None,
            message: message.into(),
        }
    }

    /// Wraps a message whose `ack` or `error` the sender waits for.
    pub fn with_id(id: impl Into<String>, message: impl Into<ClientMessage>) -> Self {
        Self {
            id: Some(id.into()),
            message: message.into(),
        }
    }
}

/// Payload of `auth`: the token that proves who the client is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct Authenticate {
    /// A JWT, as issued by the identity provider.
    pub token: String,
}

/// Payload of client `chat:message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// The chat to post in; the sender must be a participant.
    pub chat_id: String,
    /// The text; not empty, at most `Limits::max_content_chars` characters.
    pub content: String,
}

/// Payload of client `chat:read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct MarkRead {
    /// The chat the message belongs to.
    pub chat_id: String,
    /// The message read; earlier messages count as read too.
    pub message_id: String,
}

/// Payload of client `chat:typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct SetTyping {
    /// The chat being typed in.
    pub chat_id: String,
    /// `true` when typing starts; the server expires it after the typing timeout.
    pub is_typing: bool,
}

/// Payload of client `chat:join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct JoinChat {
    /// An open chat.
    pub chat_id: String,
}

/// Payload of client `chat:leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
#[serde(rename_all = "camelCase")]
pub struct LeaveChat {
    /// A chat the client participates in.
    pub chat_id: String,
}

/// Payload of `ping`: empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(export_to = "protocol.ts")
)]
pub struct Ping {}
