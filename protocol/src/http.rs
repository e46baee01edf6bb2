//! Bodies of the HTTP API every Relaywire server offers (the Socket.IO service's):
//! pushes to users and broadcasts, notifications, connection status, disconnects, and
//! the dev login. Pushes carry a message of the app's own protocol, `S`.
//!
//! Errors come back as [`ApiError`] with the status of [`ErrorCode::http_status`](crate::ErrorCode::http_status):
//!
//! ```json
//! {"error": {"code": "NOT_FOUND", "message": "user `bob` is not connected"}}
//! ```

use serde::{Deserialize, Serialize};

use crate::ErrorPayload;

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
pub struct PushToUser<S> {
    /// The recipient.
    pub user_id: String,
    /// A message the app lets admins push (for the chat server: `notification`,
    /// `system` or `event`).
    pub message: S,
}

/// Body of `POST /api/messages/users`: push a message to several users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PushToUsers<S> {
    /// The recipients.
    pub user_ids: Vec<String>,
    /// A message the app lets admins push.
    pub message: S,
}

/// Body of `POST /api/messages/broadcast`: push a message to every connected user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Broadcast<S> {
    /// A message the app lets admins push.
    pub message: S,
}

/// Body of `POST /api/notifications`: a notification for one user, in the message the
/// app builds from it.
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
