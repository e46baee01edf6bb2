//! The HTTP API: the Socket.IO service's endpoints under `/api`, the user's own
//! endpoints, dev login, health and metrics.
//!
//! Admin endpoints need `Authorization: Bearer <service key>` or a token whose roles
//! include the admin role. Every error is an [`ApiError`] body with the status of its
//! [`ErrorCode`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use relaywire_chat::http::{
    AddParticipants, ApiError, Broadcast, ChatList, ChatSummary, ConnectedUsers, CreateChat,
    Delivery, DevLogin, Disconnected, MessagePage, NotifyUser, PushToUser, PushToUsers,
    ReceiptList, Session, UserStatus,
};
use relaywire_chat::{Notification, ServerMessage};
use relaywire_protocol::{CloseCode, ErrorCode, ErrorPayload, MAX_ID_BYTES};
use serde::Deserialize;

use crate::app::App;
use crate::auth::{AuthError, Identity, bearer_token, token_from_cookies};
use crate::hub::frame;
use crate::store::queries;
use crate::store::{HistoryCursor, StoreError};

/// How long a dev-login session lasts.
const DEV_SESSION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The largest history page.
const MAX_PAGE: usize = 200;
/// The history page when `limit` is absent.
const DEFAULT_PAGE: usize = 50;

/// The routes, to be merged with `/ws` and the static files.
pub(crate) fn routes(app: &App) -> Router<App> {
    let mut router = Router::new()
        .route("/healthz", routing::get(healthz))
        .route("/metrics", routing::get(metrics))
        .route("/auth/dev-login", routing::post(dev_login))
        .route("/auth/logout", routing::post(logout))
        .route("/api/me", routing::get(me))
        .route("/api/me/chats", routing::get(my_chats))
        .route("/api/chats", routing::get(list_chats).post(create_chat))
        .route("/api/chats/{chat_id}/messages", routing::get(history))
        .route("/api/chats/{chat_id}/receipts", routing::get(receipts))
        .route(
            "/api/chats/{chat_id}/participants",
            routing::post(add_participants),
        )
        .route("/api/messages/user", routing::post(push_to_user))
        .route("/api/messages/users", routing::post(push_to_users))
        .route("/api/messages/broadcast", routing::post(broadcast))
        .route("/api/notifications", routing::post(notify_user))
        .route("/api/users/connected", routing::get(connected_users))
        .route("/api/users/{user_id}/status", routing::get(user_status))
        .route(
            "/api/users/{user_id}/connections",
            routing::delete(disconnect_user),
        );
    if app.config.test_hooks {
        router = router
            .route("/test/pongs", routing::post(pause_pongs))
            .route("/test/acks", routing::post(pause_acks))
            .route("/test/token", routing::post(test_token))
            .route("/test/raw", routing::post(test_raw));
    }
    router
}

/// An API error response.
#[derive(Debug)]
pub(crate) struct Failure(ErrorPayload);

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorPayload::new(code, message))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ApiError { error: self.0 })).into_response()
    }
}

impl From<AuthError> for Failure {
    fn from(err: AuthError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        if err.code() == ErrorCode::InternalError {
            tracing::error!(error = %err, "store operation failed");
        }
        Self::new(err.code(), err.public_message())
    }
}

type ApiResult<T> = Result<T, Failure>;

/// `Json<T>` whose rejections are [`ApiError`] bodies.
pub(crate) struct ApiJson<T>(T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(|rejection| Failure::new(ErrorCode::ValidationError, rejection.body_text()))
    }
}

/// Who is calling: a service holding a key, or a user holding a token.
pub(crate) enum Caller {
    Service,
    User(Identity),
}

impl Caller {
    fn is_admin(&self, admin_role: &str) -> bool {
        match self {
            Caller::Service => true,
            Caller::User(identity) => identity.roles.iter().any(|role| role == admin_role),
        }
    }

    fn user(self) -> ApiResult<Identity> {
        match self {
            Caller::User(identity) => Ok(identity),
            Caller::Service => Err(Failure::new(
                ErrorCode::Forbidden,
                "this endpoint is for users, not service keys",
            )),
        }
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequestParts<App> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let bearer = bearer_token(&parts.headers);
        if let Some(key) = &bearer
            && app
                .config
                .service_keys
                .iter()
                .any(|known| same_secret(known, key))
        {
            return Ok(Caller::Service);
        }
        let token = bearer
            .or_else(|| token_from_cookies(&parts.headers, &app.config.auth_cookies))
            .ok_or(AuthError::Missing)?;
        match app.verifier.verify(&token).await {
            Ok(identity) => Ok(Caller::User(identity)),
            Err(err) => {
                app.metrics.auth_failure(err.reason());
                Err(err.into())
            }
        }
    }
}

/// A caller allowed to use the admin endpoints.
pub(crate) struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, app).await?;
        if caller.is_admin(&app.config.admin_role) {
            Ok(Admin)
        } else {
            Err(Failure::new(
                ErrorCode::Forbidden,
                "needs a service key or the admin role",
            ))
        }
    }
}

fn valid_id(field: &str, id: &str) -> ApiResult<()> {
    if id.trim().is_empty() || id.len() > MAX_ID_BYTES {
        return Err(Failure::new(
            ErrorCode::ValidationError,
            format!("`{field}` must be 1 to {MAX_ID_BYTES} bytes"),
        ));
    }
    Ok(())
}

async fn healthz(State(app): State<App>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "connections": app.hub.connection_count(),
    }))
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

fn session_cookie(value: &str, max_age: Duration) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&format!(
        "authToken={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}",
        max_age.as_secs()
    ))
    .map_err(|_| Failure::new(ErrorCode::InternalError, "cannot build the session cookie"))
}

/// `POST /auth/dev-login`: signs an HS256 token and sets it as the HTTP-only
/// `authToken` cookie, as the Fastify server's login does. Off unless `DEV_LOGIN`.
async fn dev_login(
    State(app): State<App>,
    ApiJson(login): ApiJson<DevLogin>,
) -> ApiResult<Response> {
    if !app.config.dev_login {
        return Err(Failure::new(ErrorCode::NotFound, "dev login is disabled"));
    }
    let user_id = login.user_id.trim().to_owned();
    valid_id("userId", &user_id)?;
    if user_id.contains(|c: char| c.is_control()) {
        return Err(Failure::new(
            ErrorCode::ValidationError,
            "`userId` has control characters",
        ));
    }
    let name = login
        .name
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| user_id.clone());
    let token = app
        .verifier
        .sign_dev_token(&user_id, &name, DEV_SESSION)
        .ok_or_else(|| Failure::new(ErrorCode::NotFound, "dev login needs HS256 tokens"))?;
    let cookie = session_cookie(&token, DEV_SESSION)?;
    let online = app.hub.status(&user_id).online;
    tracing::info!(%user_id, "dev login");
    let mut response = Json(Session {
        user_id,
        name,
        online,
    })
    .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `POST /auth/logout`: clears the session cookie.
async fn logout() -> ApiResult<Response> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", Duration::ZERO)?);
    Ok(response)
}

async fn me(State(app): State<App>, caller: Caller) -> ApiResult<Json<Session>> {
    let identity = caller.user()?;
    let online = app.hub.status(&identity.user_id).online;
    Ok(Json(Session {
        user_id: identity.user_id,
        name: identity.name,
        online,
    }))
}

/// `GET /api/me/chats`: the caller's chats and the open ones they may join.
async fn my_chats(State(app): State<App>, caller: Caller) -> ApiResult<Json<ChatList>> {
    let identity = caller.user()?;
    let chats = app
        .store
        .run(move |db| queries::visible_chats(db, &identity.user_id))
        .await?;
    Ok(Json(ChatList { chats }))
}

async fn list_chats(State(app): State<App>, _: Admin) -> ApiResult<Json<ChatList>> {
    let chats = app.store.run(|db| queries::all_chats(db)).await?;
    Ok(Json(ChatList { chats }))
}

async fn create_chat(
    State(app): State<App>,
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
    let chat = app.create_chat(request).await?;
    Ok((StatusCode::CREATED, Json(chat)))
}

async fn add_participants(
    State(app): State<App>,
    _: Admin,
    Path(chat_id): Path<String>,
    ApiJson(request): ApiJson<AddParticipants>,
) -> ApiResult<Json<ChatSummary>> {
    for user_id in &request.user_ids {
        valid_id("userIds", user_id)?;
    }
    Ok(Json(app.add_participants(chat_id, request.user_ids).await?))
}

/// Participants read a chat; admins read any.
async fn require_reader(app: &App, caller: Caller, chat_id: &str) -> ApiResult<()> {
    if caller.is_admin(&app.config.admin_role) {
        let chat_id = chat_id.to_owned();
        app.store.run(move |db| queries::chat(db, &chat_id)).await?;
        return Ok(());
    }
    let identity = caller.user()?;
    let chat_id = chat_id.to_owned();
    app.store
        .run(move |db| queries::require_participant(db, &chat_id, &identity.user_id))
        .await?;
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
    State(app): State<App>,
    caller: Caller,
    Path(chat_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<MessagePage>> {
    let cursor = match (query.before, query.after) {
        (None, None) => HistoryCursor::Latest,
        (Some(before), None) => HistoryCursor::Before(before),
        (None, Some(after)) => HistoryCursor::After(after),
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
    require_reader(&app, caller, &chat_id).await?;
    let page = app
        .store
        .run(move |db| queries::history(db, &chat_id, &cursor, limit))
        .await?;
    Ok(Json(page))
}

async fn receipts(
    State(app): State<App>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> ApiResult<Json<ReceiptList>> {
    require_reader(&app, caller, &chat_id).await?;
    let receipts = app
        .store
        .run(move |db| queries::read_receipts(db, &chat_id))
        .await?;
    Ok(Json(ReceiptList { receipts }))
}

/// Only these reach clients from outside: chat traffic comes from the chats.
fn pushable(message: &ServerMessage) -> ApiResult<()> {
    match message {
        ServerMessage::Notification(_) | ServerMessage::System(_) | ServerMessage::Event(_) => {
            Ok(())
        }
        _ => Err(Failure::new(
            ErrorCode::ValidationError,
            "only `notification`, `system` and `event` messages can be pushed",
        )),
    }
}

fn deliver_to_users<'a>(
    app: &App,
    user_ids: impl IntoIterator<Item = &'a String>,
    message: &ServerMessage,
) -> Delivery {
    let frame = frame(message);
    let mut delivery = Delivery {
        users_reached: 0,
        connections_reached: 0,
    };
    for user_id in user_ids {
        let reached = app.hub.send_to_user(user_id, &frame);
        delivery.users_reached += u32::from(reached > 0);
        delivery.connections_reached += reached;
    }
    delivery
}

async fn push_to_user(
    State(app): State<App>,
    _: Admin,
    ApiJson(push): ApiJson<PushToUser>,
) -> ApiResult<Json<Delivery>> {
    pushable(&push.message)?;
    Ok(Json(deliver_to_users(&app, [&push.user_id], &push.message)))
}

async fn push_to_users(
    State(app): State<App>,
    _: Admin,
    ApiJson(push): ApiJson<PushToUsers>,
) -> ApiResult<Json<Delivery>> {
    pushable(&push.message)?;
    let mut user_ids = push.user_ids;
    user_ids.sort();
    user_ids.dedup();
    Ok(Json(deliver_to_users(&app, &user_ids, &push.message)))
}

async fn broadcast(
    State(app): State<App>,
    _: Admin,
    ApiJson(push): ApiJson<Broadcast>,
) -> ApiResult<Json<Delivery>> {
    pushable(&push.message)?;
    let (users_reached, connections_reached) = app.hub.broadcast(&frame(&push.message));
    Ok(Json(Delivery {
        users_reached,
        connections_reached,
    }))
}

async fn notify_user(
    State(app): State<App>,
    _: Admin,
    ApiJson(notify): ApiJson<NotifyUser>,
) -> ApiResult<Json<Delivery>> {
    let message = ServerMessage::Notification(Notification {
        title: notify.title,
        body: notify.body,
        data: notify.data,
    });
    Ok(Json(deliver_to_users(&app, [&notify.user_id], &message)))
}

async fn connected_users(State(app): State<App>, _: Admin) -> Json<ConnectedUsers> {
    Json(ConnectedUsers {
        users: app.hub.connected_users(),
    })
}

async fn user_status(
    State(app): State<App>,
    _: Admin,
    Path(user_id): Path<String>,
) -> Json<UserStatus> {
    Json(app.hub.status(&user_id))
}

/// `DELETE /api/users/{userId}/connections`: closes every connection of the user with
/// 4008, which tells clients not to reconnect.
async fn disconnect_user(
    State(app): State<App>,
    _: Admin,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Disconnected>> {
    let connections_closed = app.hub.close_user(&user_id, CloseCode::Kicked);
    if connections_closed == 0 {
        return Err(Failure::new(
            ErrorCode::NotFound,
            format!("user `{user_id}` is not connected"),
        ));
    }
    tracing::info!(%user_id, connections_closed, "disconnected a user");
    Ok(Json(Disconnected { connections_closed }))
}

#[derive(Debug, Deserialize)]
struct PauseSwitch {
    paused: bool,
}

/// `POST /test/pongs {"paused": true}`: stop answering pings, so clients see a
/// connection that is open but dead. Only with `TEST_HOOKS`.
async fn pause_pongs(State(app): State<App>, ApiJson(switch): ApiJson<PauseSwitch>) -> StatusCode {
    app.test_hooks
        .pongs_paused
        .store(switch.paused, Ordering::Relaxed);
    tracing::warn!(paused = switch.paused, "test hook: pongs");
    StatusCode::NO_CONTENT
}

/// `POST /test/acks {"paused": true}`: handle messages but acknowledge none, so
/// clients' requests time out. Only with `TEST_HOOKS`.
async fn pause_acks(State(app): State<App>, ApiJson(switch): ApiJson<PauseSwitch>) -> StatusCode {
    app.test_hooks
        .acks_paused
        .store(switch.paused, Ordering::Relaxed);
    tracing::warn!(paused = switch.paused, "test hook: acks");
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    user_id: String,
    #[serde(default)]
    name: Option<String>,
    /// Lifetime in seconds; negative for a token that has already expired.
    ttl_secs: i64,
}

/// `POST /test/token {"userId", "name"?, "ttlSecs"}`: an HS256 token for browser tests,
/// which cannot sign tokens themselves. Only with `TEST_HOOKS`.
async fn test_token(
    State(app): State<App>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    valid_id("userId", &request.user_id)?;
    let name = request.name.unwrap_or_else(|| request.user_id.clone());
    let token = app
        .verifier
        .sign_token(&request.user_id, &name, request.ttl_secs)
        .ok_or_else(|| Failure::new(ErrorCode::NotFound, "test tokens need HS256"))?;
    Ok(Json(serde_json::json!({ "token": token })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFrame {
    user_id: String,
    frame: serde_json::Value,
}

/// `POST /test/raw {"userId", "frame"}`: sends any JSON as a frame, to test how clients
/// take messages a newer server might send. Only with `TEST_HOOKS`.
async fn test_raw(State(app): State<App>, ApiJson(raw): ApiJson<RawFrame>) -> Json<Delivery> {
    let frame = crate::hub::Frame::from(raw.frame.to_string());
    let reached = app.hub.send_to_user(&raw.user_id, &frame);
    Json(Delivery {
        users_reached: u32::from(reached > 0),
        connections_reached: reached,
    })
}
