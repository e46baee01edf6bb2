//! The chat protocol of Relaywire's reference apps, as one catalogue: every message of
//! the Bun chat server's documentation (seed 002) with its wire form unchanged, the
//! notification, system and custom events of the Socket.IO service (seed 003), and the
//! bodies of the chat server's HTTP API ([`http`]).
//!
//! It is an ordinary Relaywire catalogue, defined with
//! [`relaywire_protocol::catalogue!`] like any application's:
//!
//! ```
//! use relaywire_chat::{ClientEnvelope, ClientMessage, SendMessage};
//! use relaywire_protocol::{ClientMessages, Messages, encode};
//!
//! let message = ClientMessage::from(SendMessage {
//!     chat_id: "chat-uuid".into(),
//!     content: "Hello, world!".into(),
//! });
//! assert_eq!(message.type_name(), "chat:message");
//! assert!(message.policy().delivery.is_deduplicated());
//! assert_eq!(
//!     encode(&ClientEnvelope::with_id("c1", message))?,
//!     r#"{"id":"c1","type":"chat:message","payload":{"chatId":"chat-uuid","content":"Hello, world!"}}"#,
//! );
//! # Ok::<(), relaywire_protocol::EncodeError>(())
//! ```

pub mod http;

use relaywire_protocol::{
    DecodeErrorKind, Limits, Seq, Validate, catalogue, check_id, check_text, numbered,
};
use serde::{Deserialize, Serialize};

catalogue! {
    /// The chat protocol: `RelaywireClient<ChatProtocol>` in TypeScript, and the
    /// messages of the reference chat server.
    pub protocol ChatProtocol;

    /// A message a chat client sends to the server.
    ///
    /// On the wire each message is a JSON text frame `{"type": "...", "payload": {...}}`;
    /// a `ClientEnvelope` adds the optional client-assigned `id` the server echoes in
    /// its `ack` or `error`.
    pub client ClientMessage {
        /// Sends a chat message; stored exactly once, however often it is sent.
        ///
        /// ```json
        /// {"type": "chat:message", "id": "k3f9-1", "payload": {"chatId": "chat-uuid", "content": "Hello, world!"}}
        /// ```
        "chat:message" => ChatMessage(SendMessage) as durable,
        /// Marks a message (and those before it) as read.
        ///
        /// ```json
        /// {"type": "chat:read", "payload": {"chatId": "chat-uuid", "messageId": "message-uuid"}}
        /// ```
        "chat:read" => ChatRead(MarkRead) as request,
        /// Starts or stops the typing indicator in a chat.
        ///
        /// ```json
        /// {"type": "chat:typing", "payload": {"chatId": "chat-uuid", "isTyping": true}}
        /// ```
        "chat:typing" => ChatTyping(SetTyping) as ephemeral { key: "chatId", active: "isTyping" },
        /// Joins an open chat.
        ///
        /// ```json
        /// {"type": "chat:join", "payload": {"chatId": "chat-uuid"}}
        /// ```
        "chat:join" => ChatJoin(JoinChat) as request { joins: "chatId" },
        /// Leaves a chat.
        ///
        /// ```json
        /// {"type": "chat:leave", "payload": {"chatId": "chat-uuid"}}
        /// ```
        "chat:leave" => ChatLeave(LeaveChat) as request { leaves: "chatId" },
    }

    /// A message the chat server sends to a client.
    ///
    /// On the wire each message is a JSON text frame `{"type": "...", "payload": {...}}`.
    /// A type this version does not know decodes to `Unknown` (Rust only) instead of
    /// failing, so older clients keep working when servers add messages.
    pub server ServerMessage {
        /// A new message in one of the client's chats.
        ///
        /// ```json
        /// {"type": "chat:message", "payload": {"chatId": "chat-uuid", "message": {"id": "message-uuid",
        ///  "chatId": "chat-uuid", "senderId": "user-uuid", "senderName": "John Doe",
        ///  "content": "Hello!", "createdAt": "2024-01-01T12:00:00.000Z"}}}
        /// ```
        "chat:message" => ChatMessage(MessageCreated) as numbered,
        /// A participant read a message.
        ///
        /// ```json
        /// {"type": "chat:read", "payload": {"chatId": "chat-uuid", "messageId": "message-uuid",
        ///  "userId": "user-uuid", "readAt": "2024-01-01T12:01:00.000Z"}}
        /// ```
        "chat:read" => ChatRead(ReadReceipt) as numbered,
        /// A participant started or stopped typing.
        ///
        /// ```json
        /// {"type": "chat:typing", "payload": {"chatId": "chat-uuid", "userId": "user-uuid",
        ///  "userName": "John Doe", "isTyping": true}}
        /// ```
        "chat:typing" => ChatTyping(TypingIndicator) as live,
        /// A notification for the user, e.g. sent through the HTTP API.
        ///
        /// ```json
        /// {"type": "notification", "payload": {"title": "New Message", "body": "You have a new message"}}
        /// ```
        "notification" => Notification(Notification) as live,
        /// A system notice, e.g. planned maintenance.
        ///
        /// ```json
        /// {"type": "system", "payload": {"message": "Maintenance at 02:00 UTC", "level": "warning"}}
        /// ```
        "system" => System(SystemNotice) as live,
        /// An application-defined event carrying arbitrary JSON.
        ///
        /// ```json
        /// {"type": "event", "payload": {"name": "order:shipped", "data": {"orderId": 42}}}
        /// ```
        "event" => Event(AppEvent) as live,
    }
}

/// Payload of client `chat:message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// The chat to post in; the sender must be a participant.
    pub chat_id: String,
    /// The text; not empty, at most `Limits::max_content_chars` characters.
    pub content: String,
}

impl Validate for SendMessage {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("chatId", &self.chat_id, limits)?;
        check_text("content", &self.content, limits)
    }
}

/// Payload of client `chat:read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MarkRead {
    /// The chat the message belongs to.
    pub chat_id: String,
    /// The message read; earlier messages count as read too.
    pub message_id: String,
}

impl Validate for MarkRead {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("chatId", &self.chat_id, limits)?;
        check_id("messageId", &self.message_id, limits)
    }
}

/// Payload of client `chat:typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SetTyping {
    /// The chat being typed in.
    pub chat_id: String,
    /// `true` when typing starts; the server expires it after the typing timeout.
    pub is_typing: bool,
}

impl Validate for SetTyping {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("chatId", &self.chat_id, limits)
    }
}

/// Payload of client `chat:join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct JoinChat {
    /// An open chat.
    pub chat_id: String,
}

impl Validate for JoinChat {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("chatId", &self.chat_id, limits)
    }
}

/// Payload of client `chat:leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct LeaveChat {
    /// A chat the client participates in.
    pub chat_id: String,
}

impl Validate for LeaveChat {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("chatId", &self.chat_id, limits)
    }
}

/// Payload of server `chat:message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
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

numbered!(MessageCreated);

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
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
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
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

numbered!(ReadReceipt);

/// Payload of server `chat:typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
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

/// Payload of `notification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
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
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SystemNotice {
    /// The notice.
    pub message: String,
    /// How serious it is.
    pub level: SystemLevel,
}

/// Severity of a `SystemNotice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
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
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AppEvent {
    /// The application's event name, e.g. `"order:shipped"`.
    pub name: String,
    /// Any JSON.
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: serde_json::Value,
}

/// The chat protocol's TypeScript: every message, payload, error code and HTTP API
/// body, the protocol type and its descriptor (`bindings/chat.ts`).
#[cfg(feature = "typescript")]
pub fn typescript() -> String {
    use http::*;
    relaywire_protocol::typescript::Bindings::of::<ChatProtocol>()
        .with_server_api()
        .with::<AddParticipants>()
        .with::<ChatList>()
        .with::<CreateChat>()
        .with::<MessagePage>()
        .with::<ReceiptList>()
        .render()
}

/// A chat client message as it travels, with its optional `id`.
pub type ClientEnvelope = relaywire_protocol::ClientEnvelope<ClientMessage>;

/// [`relaywire_protocol::decode_client_message`] for chat client messages.
pub fn decode_client_message(
    text: &str,
    limits: &Limits,
) -> Result<ClientEnvelope, relaywire_protocol::DecodeError> {
    relaywire_protocol::decode_client_message(text, limits)
}

/// [`relaywire_protocol::decode_server_message`] for chat server messages.
pub fn decode_server_message(text: &str) -> Result<ServerMessage, relaywire_protocol::DecodeError> {
    relaywire_protocol::decode_server_message(text)
}

/// Compiles the Rust examples of the workspace README, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;

/// Compiles the Rust example of this crate's README.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadme;
