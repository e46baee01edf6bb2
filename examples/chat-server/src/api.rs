//! The chat's own HTTP routes: chats, participants, history and receipts. Every read
//! and write goes through the relay, as the WebSocket's do.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing};
use relaywire_chat::http::{
    AddParticipants, ChatList, ChatSummary, CreateChat, MessagePage, ReceiptList,
};
use relaywire_chat::{ChatProtocol, ReadReceipt, ServerMessage, decode_server_message};
use relaywire_protocol::ErrorCode;
use relaywire_server::http::{Admin, ApiJson, ApiQuery, ApiResult, Caller, valid_id};
use relaywire_server::store::{EventCursor, JoinRule, NewRoom, Room, RoomFilter};
use relaywire_server::{Failure, Relay};
use serde::Deserialize;

type State_ = State<Relay<ChatProtocol>>;

/// The largest history page.
const MAX_PAGE: usize = 200;
/// The history page when `limit` is absent.
const DEFAULT_PAGE: usize = 50;

pub(crate) fn routes() -> Router<Relay<ChatProtocol>> {
    Router::new()
        .route("/api/me/chats", routing::get(my_chats))
        .route("/api/chats", routing::get(list_chats).post(create_chat))
        .route("/api/chats/{chat_id}/messages", routing::get(history))
        .route("/api/chats/{chat_id}/receipts", routing::get(receipts))
        .route(
            "/api/chats/{chat_id}/participants",
            routing::post(add_participants),
        )
}

fn summary(room: Room) -> ChatSummary {
    ChatSummary {
        id: room.id,
        title: room.title,
        open: room.open,
        participant_ids: room.members,
        created_at: room.created_at,
    }
}

fn chat_list(rooms: Vec<Room>) -> Json<ChatList> {
    Json(ChatList {
        chats: rooms.into_iter().map(summary).collect(),
    })
}

/// `GET /api/me/chats`: the caller's chats and the open ones they may join.
async fn my_chats(State(relay): State_, caller: Caller) -> ApiResult<Json<ChatList>> {
    let identity = caller.user()?;
    let rooms = relay.rooms(RoomFilter::VisibleTo(identity.user_id)).await?;
    Ok(chat_list(rooms))
}

async fn list_chats(State(relay): State_, _: Admin) -> ApiResult<Json<ChatList>> {
    Ok(chat_list(relay.rooms(RoomFilter::All).await?))
}

async fn create_chat(
    State(relay): State_,
    _: Admin,
    ApiJson(request): ApiJson<CreateChat>,
) -> ApiResult<(StatusCode, Json<ChatSummary>)> {
    if let Some(id) = &request.id {
        valid_id("id", id)?;
    }
    if request.title.trim().is_empty() {
        return Err(Failure::new(
            ErrorCode::ValidationError,
            "`title` must not be empty",
        ));
    }
    for user_id in request.participant_ids.iter().flatten() {
        valid_id("participantIds", user_id)?;
    }
    let room = relay
        .create_room(NewRoom {
            id: request
                .id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            title: request.title,
            open: request.open.unwrap_or(false),
            members: request.participant_ids.unwrap_or_default(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary(room))))
}

async fn add_participants(
    State(relay): State_,
    _: Admin,
    Path(chat_id): Path<String>,
    ApiJson(request): ApiJson<AddParticipants>,
) -> ApiResult<Json<ChatSummary>> {
    for user_id in &request.user_ids {
        valid_id("userIds", user_id)?;
    }
    relay.room(&chat_id).await?;
    for user_id in &request.user_ids {
        relay.join(user_id, &chat_id, JoinRule::Any).await?;
    }
    Ok(Json(summary(relay.room(&chat_id).await?)))
}

/// Participants read a chat; admins read any.
async fn require_reader(
    relay: &Relay<ChatProtocol>,
    caller: Caller,
    chat_id: &str,
) -> ApiResult<()> {
    if caller.is_admin(&relay.config().admin_role) {
        relay.room(chat_id).await?;
        return Ok(());
    }
    let identity = caller.user()?;
    relay.require_member(chat_id, &identity.user_id).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/chats/{chatId}/messages`: a page of history, oldest first. `before` pages
/// back, `after` catches up after a reconnect.
async fn history(
    State(relay): State_,
    caller: Caller,
    Path(chat_id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<MessagePage>> {
    let cursor = match (query.before, query.after) {
        (None, None) => EventCursor::Latest,
        (Some(before), None) => EventCursor::Before(before),
        (None, Some(after)) => EventCursor::After(after),
        (Some(_), Some(_)) => {
            return Err(Failure::new(
                ErrorCode::ValidationError,
                "give `before` or `after`, not both",
            ));
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Failure::new(
            ErrorCode::ValidationError,
            format!("`limit` must be 1 to {MAX_PAGE}"),
        ));
    }
    require_reader(&relay, caller, &chat_id).await?;
    let page = relay
        .events(&chat_id, "chat:message", cursor, limit)
        .await?;
    let messages = page
        .events
        .iter()
        .filter_map(|event| match decode_server_message(&event.frame) {
            Ok(ServerMessage::ChatMessage(created)) => Some(created.message),
            _ => {
                tracing::error!(event = %event.id, "a stored chat message does not decode");
                None
            }
        })
        .collect();
    Ok(Json(MessagePage {
        messages,
        has_more: page.has_more,
    }))
}

/// `GET /api/chats/{chatId}/receipts`: where each participant has read to.
async fn receipts(
    State(relay): State_,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> ApiResult<Json<ReceiptList>> {
    require_reader(&relay, caller, &chat_id).await?;
    let receipts = relay
        .cursors(&chat_id, "read")
        .await?
        .into_iter()
        .map(|cursor| ReadReceipt {
            chat_id: cursor.room_id,
            message_id: cursor.event_id,
            user_id: cursor.user_id,
            read_at: cursor.at,
            seq: None,
        })
        .collect();
    Ok(Json(ReceiptList { receipts }))
}
