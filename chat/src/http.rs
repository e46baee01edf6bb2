//! Bodies of the reference server's HTTP API, shared with its clients like the messages.
//!
//! Errors come back as [`ApiError`] with the status of [`ErrorCode::http_status`](relaywire_protocol::ErrorCode::http_status):
//!
//! ```json
//! {"error": {"code": "NOT_FOUND", "message": "no chat `support`"}}
//! ```

use serde::{Deserialize, Serialize};

use relaywire_protocol::ErrorPayload;

use crate::{ChatMessage, ReadReceipt, ServerMessage};

/// A chat as the HTTP API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    /// The chat id.
    pub id: String,
    /// Its display title.
    pub title: String,
    /// Whether anyone may join it with `chat:join`.
    pub open: bool,
    /// Its participants.
    pub participant_ids: Vec<String>,
    /// When it was created, RFC 3339 in UTC with milliseconds.
    pub created_at: String,
}

/// Body of `POST /api/chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct CreateChat {
    /// The id to use; the server makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display title.
    pub title: String,
    /// Whether anyone may join it (default: closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// Its first participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_ids: Option<Vec<String>>,
}

/// Response of `GET /api/chats` and `GET /api/me/chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatList {
    /// The chats, oldest first.
    pub chats: Vec<ChatSummary>,
}

/// Body of `POST /api/chats/{chatId}/participants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AddParticipants {
    /// The users to add.
    pub user_ids: Vec<String>,
}

/// Response of `GET /api/chats/{chatId}/receipts`: where each participant has read to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ReceiptList {
    /// The latest receipt of each participant who has read something.
    pub receipts: Vec<ReadReceipt>,
}

/// Response of `GET /api/chats/{chatId}/messages?before=&after=&limit=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Messages in the order they were sent.
    pub messages: Vec<ChatMessage>,
    /// Whether more messages lie beyond this page in the direction asked for.
    pub has_more: bool,
}

/// Body of `POST /auth/dev-login` (local development only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct DevLogin {
    /// The user to sign in as.
    pub user_id: String,
    /// Display name; defaults to the user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Who a session belongs to: the response of `POST /auth/dev-login` and `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The user id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Whether the user has at least one open connection.
    pub online: bool,
}

/// Body of `POST /api/messages/user`: push a message to one user's connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PushToUser {
    /// The recipient.
    pub user_id: String,
    /// A `notification`, `system` or `event` message.
    pub message: ServerMessage,
}

/// Body of `POST /api/messages/users`: push a message to several users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PushToUsers {
    /// The recipients.
    pub user_ids: Vec<String>,
    /// A `notification`, `system` or `event` message.
    pub message: ServerMessage,
}

/// Body of `POST /api/messages/broadcast`: push a message to every connected user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Broadcast {
    /// A `notification`, `system` or `event` message.
    pub message: ServerMessage,
}

/// Body of `POST /api/notifications`: a `notification` for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct NotifyUser {
    /// The recipient.
    pub user_id: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Application data, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
}

/// Response of the push endpoints: how far the message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Recipients with at least one open connection.
    pub users_reached: u32,
    /// Connections the message was queued on.
    pub connections_reached: u32,
}

/// A user's connection status: `GET /api/users/{userId}/status`, and the rows of
/// `GET /api/users/connected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The user.
    pub user_id: String,
    /// Whether they have at least one open connection.
    pub online: bool,
    /// How many connections they have open.
    pub connections: u32,
    /// When their oldest open connection was established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<String>,
}

/// Response of `GET /api/users/connected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ConnectedUsers {
    /// Every user with an open connection.
    pub users: Vec<UserStatus>,
}

/// Response of `DELETE /api/users/{userId}/connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Disconnected {
    /// Connections closed.
    pub connections_closed: u32,
}

/// The body of every HTTP API error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ApiError {
    /// What went wrong.
    pub error: ErrorPayload,
}
