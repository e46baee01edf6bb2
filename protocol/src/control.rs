//! The control messages every protocol carries besides its own: authentication,
//! heartbeat, the session's start, answers to requests, and presence.
//!
//! [`catalogue!`](crate::catalogue) adds them to every catalogue, so an application
//! never defines them: `auth` and `ping` to its client messages; `connected`, `ack`,
//! `error`, `pong` and `user:online` to its server messages.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, Seq};

/// The wire types of the control messages a client sends.
pub const CLIENT_CONTROL_TYPES: &[&str] = &["auth", "ping"];

/// The wire types of the control messages a server sends.
pub const SERVER_CONTROL_TYPES: &[&str] = &["connected", "ack", "error", "pong", "user:online"];

/// Payload of `auth`: the token that proves who the client is.
///
/// ```json
/// {"type": "auth", "payload": {"token": "eyJhbGciOi..."}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Authenticate {
    /// A JWT, as issued by the identity provider.
    pub token: String,
}

/// Payload of `ping`: empty. The server answers with `pong`.
///
/// ```json
/// {"type": "ping", "payload": {}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Ping {}

/// Payload of `connected`: who the client is and how to talk to this server; the first
/// message of every session.
///
/// Every field after `chat_ids` is optional so that minimal servers stay valid; the
/// Relaywire server sends them all.
///
/// ```json
/// {"type": "connected", "payload": {"userId": "user-uuid", "chatIds": ["chat-uuid-1", "chat-uuid-2"]}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    /// The authenticated user.
    pub user_id: String,
    /// The rooms the user belongs to (the chat protocol's chats; the wire name is the
    /// chat server's).
    pub chat_ids: Vec<String>,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Users sharing a room with this user who are online now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_user_ids: Option<Vec<String>>,
    /// How often the client should `ping`, in milliseconds; wins over the client's option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u32>,
    /// The server closes a connection silent for this long, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_timeout_ms: Option<u32>,
    /// The server ends an ephemeral state (a typing indicator) after this long without a
    /// renewal, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_timeout_ms: Option<u32>,
    /// The largest text frame the server accepts, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u32>,
    /// The protocol version the server speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// The user's newest event when the session began; events after it come live. A
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

/// Payload of `pong`, the heartbeat reply to `ping`.
///
/// ```json
/// {"type": "pong", "payload": {"timestamp": "2024-01-01T12:00:00.000Z"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    /// Server time, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
}

/// Payload of `ack`: the client message with this `id` was accepted.
///
/// ```json
/// {"type": "ack", "payload": {"id": "k3f9-1", "messageId": "message-uuid"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The `id` of the client message accepted.
    pub id: String,
    /// The id the server assigned to what the message created, e.g. the stored chat message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Payload of `error`: something went wrong; `id` names the client message this
/// answers, if any.
///
/// ```json
/// {"type": "error", "payload": {"code": "AUTH_FAILED", "message": "Invalid token", "details": {}}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
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
    /// The close code the server closes the connection with right after this error.
    /// Sent where the socket's own close cannot carry it (a gateway's close is always
    /// 1000): the client acts on this code's policy instead of the close's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_code: Option<u16>,
}

impl ErrorPayload {
    /// An error with no details that answers no particular message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            id: None,
            close_code: None,
        }
    }

    /// Announces that the connection closes with `code` next.
    pub fn closing(mut self, code: crate::CloseCode) -> Self {
        self.close_code = Some(code.code());
        self
    }

    /// Names the client message this error answers.
    pub fn answering(mut self, id: Option<String>) -> Self {
        self.id = id;
        self
    }
}

/// Payload of `user:online`: a user who shares a room with the client came online or
/// went offline.
///
/// ```json
/// {"type": "user:online", "payload": {"userId": "user-uuid", "online": true}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PresenceChange {
    /// The user whose presence changed.
    pub user_id: String,
    /// `true` when their first connection opened, `false` when their last one closed.
    pub online: bool,
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

/// A client's control message, as a catalogue's enum holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientControl<'a> {
    /// `auth`.
    Auth(&'a Authenticate),
    /// `ping`.
    Ping,
}

/// A server's control message, as a catalogue's enum holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServerControl<'a> {
    /// `connected`.
    Connected(&'a Connected),
    /// `ack`.
    Ack(&'a Ack),
    /// `error`.
    Error(&'a ErrorPayload),
    /// `pong`.
    Pong(&'a Pong),
    /// `user:online`.
    Presence(&'a PresenceChange),
}
