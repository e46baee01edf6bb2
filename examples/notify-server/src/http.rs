//! The Socket.IO service's HTTP API under `/websocket/`: messages and notifications
//! without a WebSocket, and who is connected. Messages and notifications are stored and
//! numbered like those sent over a socket; a recipient who is offline gets them later.
//!
//! Sending messages needs any valid token (the message is `from` its user) or a service
//! key (`from` is absent); broadcasts, notifications and the connection endpoints need a
//! service key or the admin role.

use axum::extract::{Path, State};
use axum::{Json, Router, routing};
use relaywire_protocol::http::{ConnectedUsers, Disconnected, NotifyUser, UserStatus};
use relaywire_protocol::{ErrorCode, Limits, check_ids, check_text};
use relaywire_server::http::{Admin, ApiJson, ApiResult, Caller, valid_id};
use relaywire_server::store::Published;
use relaywire_server::{Event, Failure, Relay, now_rfc3339};
use serde::{Deserialize, Serialize};

use crate::{MAX_RECIPIENTS, Notification, NotifyProtocol, NotifyServer, message_event};

type Served = State<Relay<NotifyProtocol>>;

/// Body of `POST /websocket/message/user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct SendToUser {
    /// The recipient.
    pub user_id: String,
    /// The app's own message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The app's data, any JSON (`null` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
}

/// Body of `POST /websocket/message/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct SendToUsers {
    /// The recipients: one to 100.
    pub user_ids: Vec<String>,
    /// The app's own message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The app's data, any JSON (`null` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
}

/// Body of `POST /websocket/message/broadcast`. (`POST /websocket/notification` takes
/// the library's [`NotifyUser`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastMessage {
    /// The app's own message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The app's data, any JSON (`null` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
}

/// Response of the sending endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    /// The stored message's id; absent when a broadcast found nobody connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Recipients it was stored for.
    pub recipients: u32,
    /// Recipients online when it was stored, who have it now; the others get it when
    /// they come back.
    pub online: u32,
}

pub(crate) fn routes() -> Router<Relay<NotifyProtocol>> {
    Router::new()
        .route("/websocket/message/user", routing::post(to_user))
        .route("/websocket/message/users", routing::post(to_users))
        .route("/websocket/message/broadcast", routing::post(broadcast))
        .route("/websocket/notification", routing::post(notify))
        .route("/websocket/users/connected", routing::get(connected))
        .route("/websocket/users/{user_id}/status", routing::get(status))
        .route(
            "/websocket/users/{user_id}/disconnect",
            routing::delete(disconnect),
        )
        .route("/websocket/me/status", routing::get(my_status))
}

fn check(result: Result<(), relaywire_protocol::DecodeErrorKind>) -> ApiResult<()> {
    result.map_err(Failure::from)
}

/// Publishes the event and says whom it reached.
async fn publish(
    relay: &Relay<NotifyProtocol>,
    event: Event<NotifyServer>,
) -> ApiResult<Json<Sent>> {
    match relay.publish(event).await? {
        Published::Stored {
            event_id,
            recipients,
            ..
        } => {
            let users: Vec<String> = recipients
                .iter()
                .map(|(user_id, _)| user_id.clone())
                .collect();
            let online = relay.online_among(&users).await.len();
            Ok(Json(Sent {
                message_id: Some(event_id),
                recipients: u32::try_from(recipients.len()).unwrap_or(u32::MAX),
                online: u32::try_from(online).unwrap_or(u32::MAX),
            }))
        }
        // HTTP sends carry no client id, so they are never duplicates, and no cursor.
        Published::Duplicate { .. } | Published::CursorUnchanged(_) => Err(Failure::new(
            ErrorCode::InternalError,
            "the message was not stored",
        )),
    }
}

/// The sender of an HTTP message: the token's user, or nobody for a service key.
fn sender(caller: Caller) -> Option<String> {
    match caller {
        Caller::User(identity) => Some(identity.user_id),
        Caller::Service => None,
    }
}

async fn to_user(
    State(relay): Served,
    caller: Caller,
    ApiJson(body): ApiJson<SendToUser>,
) -> ApiResult<Json<Sent>> {
    valid_id("userId", &body.user_id)?;
    valid_id("type", &body.kind)?;
    let from = sender(caller);
    let event = message_event(from.as_deref(), vec![body.user_id], body.kind, body.data);
    publish(&relay, event).await
}

async fn to_users(
    State(relay): Served,
    caller: Caller,
    ApiJson(body): ApiJson<SendToUsers>,
) -> ApiResult<Json<Sent>> {
    check(check_ids(
        "userIds",
        &body.user_ids,
        MAX_RECIPIENTS,
        &Limits::default(),
    ))?;
    valid_id("type", &body.kind)?;
    let from = sender(caller);
    let event = message_event(from.as_deref(), body.user_ids, body.kind, body.data);
    publish(&relay, event).await
}

/// To everyone connected now, stored for each: one whose connection drops meanwhile
/// gets it when it resumes.
async fn broadcast(
    State(relay): Served,
    _: Admin,
    ApiJson(body): ApiJson<BroadcastMessage>,
) -> ApiResult<Json<Sent>> {
    valid_id("type", &body.kind)?;
    let users: Vec<String> = relay
        .connected_users()
        .await
        .into_iter()
        .map(|status| status.user_id)
        .collect();
    if users.is_empty() {
        return Ok(Json(Sent {
            message_id: None,
            recipients: 0,
            online: 0,
        }));
    }
    publish(&relay, message_event(None, users, body.kind, body.data)).await
}

async fn notify(
    State(relay): Served,
    _: Admin,
    ApiJson(body): ApiJson<NotifyUser>,
) -> ApiResult<Json<Sent>> {
    let limits = Limits::default();
    valid_id("userId", &body.user_id)?;
    check(check_text("title", &body.title, &limits))?;
    check(check_text("body", &body.body, &limits))?;
    let id = uuid::Uuid::now_v7().to_string();
    let notification = Notification {
        id: id.clone(),
        title: body.title,
        body: body.body,
        data: body.data,
        timestamp: now_rfc3339(),
        seq: None,
    };
    publish(
        &relay,
        Event::to_users(vec![body.user_id], id, notification),
    )
    .await
}

async fn connected(State(relay): Served, _: Admin) -> Json<ConnectedUsers> {
    Json(ConnectedUsers {
        users: relay.connected_users().await,
    })
}

async fn status(State(relay): Served, _: Admin, Path(user_id): Path<String>) -> Json<UserStatus> {
    Json(relay.status(&user_id).await)
}

/// Closes the user's connection with 4008, which tells clients not to reconnect; 404
/// when they are not connected.
async fn disconnect(
    State(relay): Served,
    _: Admin,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Disconnected>> {
    relaywire_server::http::disconnect(&relay, &user_id).await
}

async fn my_status(State(relay): Served, caller: Caller) -> ApiResult<Json<UserStatus>> {
    Ok(Json(relay.status(&caller.user()?.user_id).await))
}
