//! The HTTP API every Relaywire server offers (the Socket.IO service's), with the
//! extractors an app's own routes use: [`Caller`], [`Admin`], [`ApiJson`] and [`ApiQuery`].
//!
//! Admin endpoints need `Authorization: Bearer <service key>` or a token whose roles
//! include the admin role. Every error is a [`Failure`]: an `ApiError` body with the
//! status of its `ErrorCode`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing};
use relaywire_protocol::http::{
    Broadcast, ConnectedUsers, Delivery, DevLogin, Disconnected, NotifyUser, PushToUser,
    PushToUsers, Session, UserStatus,
};
use relaywire_protocol::{CloseCode, ErrorCode, Limits, Protocol, check_id};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::{App, Failure, Server};
use crate::auth::{AuthError, Identity, bearer_token, token_from_cookies};
use crate::connection::Served;
use crate::hub::Reach;
use crate::relay::Relay;

/// How long a dev-login session lasts.
const DEV_SESSION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// An HTTP handler's result.
pub type ApiResult<T> = Result<T, Failure>;

/// `Json<T>` whose rejections are [`Failure`]s.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

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

/// `Query<T>` whose rejections are [`Failure`]s: a bad query string gets the same
/// `{"error": ...}` body as a bad JSON body.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| Failure::new(ErrorCode::ValidationError, rejection.body_text()))
    }
}

/// Checks an id the way the codec does, as an HTTP failure.
pub fn valid_id(field: &'static str, id: &str) -> ApiResult<()> {
    check_id(field, id, &Limits::default()).map_err(Failure::from)
}

/// Who is calling: a service holding a key, or a user holding a token.
#[derive(Debug)]
pub enum Caller {
    /// A service key.
    Service,
    /// A user's token.
    User(Identity),
}

impl Caller {
    /// Whether the caller may use the admin endpoints.
    pub fn is_admin(&self, admin_role: &str) -> bool {
        match self {
            Caller::Service => true,
            Caller::User(identity) => identity.roles.iter().any(|role| role == admin_role),
        }
    }

    /// The user, or `FORBIDDEN` for a service key.
    pub fn user(self) -> ApiResult<Identity> {
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

impl<P: Protocol> FromRequestParts<Relay<P>> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        relay: &Relay<P>,
    ) -> Result<Self, Self::Rejection> {
        let config = relay.config();
        let bearer = bearer_token(&parts.headers);
        if let Some(key) = &bearer
            && config
                .service_keys
                .iter()
                .any(|known| same_secret(known, key))
        {
            return Ok(Caller::Service);
        }
        let token = bearer
            .or_else(|| {
                let cookies = relay
                    .origins()
                    .usable_cookies(&parts.headers, &config.auth_cookies);
                token_from_cookies(&parts.headers, cookies)
            })
            .ok_or(AuthError::Missing)?;
        match relay.verifier().verify(&token).await {
            Ok(identity) => Ok(Caller::User(identity)),
            Err(err) => {
                relay.metrics().auth_failure(err.reason());
                Err(err.into())
            }
        }
    }
}

/// A caller allowed to use the admin endpoints.
#[derive(Debug)]
pub struct Admin;

impl<P: Protocol> FromRequestParts<Relay<P>> for Admin {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        relay: &Relay<P>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, relay).await?;
        if caller.is_admin(&relay.config().admin_role) {
            Ok(Admin)
        } else {
            Err(Failure::new(
                ErrorCode::Forbidden,
                "needs a service key or the admin role",
            ))
        }
    }
}

impl<A: App> FromRequestParts<Served<A>> for Admin {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        served: &Served<A>,
    ) -> Result<Self, Self::Rejection> {
        <Admin as FromRequestParts<Relay<A::Protocol>>>::from_request_parts(parts, &served.relay)
            .await
    }
}

impl<A: App> FromRequestParts<Served<A>> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        served: &Served<A>,
    ) -> Result<Self, Self::Rejection> {
        <Caller as FromRequestParts<Relay<A::Protocol>>>::from_request_parts(parts, &served.relay)
            .await
    }
}

/// The library's routes, for `/ws` and everything but the app's own.
pub(crate) fn routes<A: App>(test_hooks: bool) -> Router<Served<A>> {
    let mut router = Router::new()
        .route("/ws", routing::get(crate::connection::upgrade::<A>))
        .route("/healthz", routing::get(healthz::<A>))
        .route("/readyz", routing::get(readyz::<A>))
        .route("/metrics", routing::get(metrics::<A>))
        .route("/auth/dev-login", routing::post(dev_login::<A>))
        .route("/auth/logout", routing::post(logout))
        .route("/api/me", routing::get(me::<A>))
        .route("/api/messages/user", routing::post(push_to_user::<A>))
        .route("/api/messages/users", routing::post(push_to_users::<A>))
        .route("/api/messages/broadcast", routing::post(broadcast::<A>))
        .route("/api/notifications", routing::post(notify_user::<A>))
        .route("/api/users/connected", routing::get(connected_users::<A>))
        .route(
            "/api/users/{user_id}/status",
            routing::get(user_status::<A>),
        )
        .route(
            "/api/users/{user_id}/connections",
            routing::delete(disconnect_user::<A>),
        );
    if test_hooks {
        router = router
            .route("/test/pongs", routing::post(pause_pongs::<A>))
            .route("/test/acks", routing::post(pause_acks::<A>))
            .route("/test/token", routing::post(test_token::<A>))
            .route("/test/raw", routing::post(test_raw::<A>));
    }
    router
}

async fn healthz<A: App>(State(served): State<Served<A>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "connections": served.relay.hub().connection_count(),
    }))
}

/// Whether this node can take traffic: 200 while the store answers, 503 (and a load
/// balancer sends elsewhere) while it does not. Draining nodes answer 503 too.
async fn readyz<A: App>(State(served): State<Served<A>>) -> impl IntoResponse {
    let relay = &served.relay;
    let draining = *relay.shutting_down().borrow();
    let store = relay.ready().await;
    let ready = store.is_ok() && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "store": if store.is_ok() { "ok" } else { "unavailable" },
        "draining": draining,
        "cluster": relay.cluster().is_some(),
    });
    (status, Json(body))
}

async fn metrics<A: App>(State(served): State<Served<A>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        served.relay.metrics().render(),
    )
}

/// Whether the client reached the server over HTTPS, through a proxy that terminates
/// TLS (`X-Forwarded-Proto`, or `Forwarded: proto=https`).
fn over_https(headers: &axum::http::HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split([';', ','])
                .any(|pair| pair.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

/// The session cookie; `Secure` when the client came over HTTPS, so the browser never
/// sends it over plain HTTP.
fn session_cookie(value: &str, max_age: Duration, secure: bool) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&format!(
        "authToken={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    ))
    .map_err(|_| Failure::new(ErrorCode::InternalError, "cannot build the session cookie"))
}

/// `POST /auth/dev-login`: signs an HS256 token and sets it as the HTTP-only
/// `authToken` cookie, as the Fastify server's login does. Off unless `DEV_LOGIN`.
async fn dev_login<A: App>(
    State(served): State<Served<A>>,
    headers: axum::http::HeaderMap,
    ApiJson(login): ApiJson<DevLogin>,
) -> ApiResult<Response> {
    let relay = &served.relay;
    if !relay.config().dev_login {
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
    let token = relay
        .verifier()
        .sign_dev_token(&user_id, &name, DEV_SESSION)
        .ok_or_else(|| Failure::new(ErrorCode::NotFound, "dev login needs HS256 tokens"))?;
    let cookie = session_cookie(&token, DEV_SESSION, over_https(&headers))?;
    let online = relay.status(&user_id).await.online;
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
async fn logout(headers: axum::http::HeaderMap) -> ApiResult<Response> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cleared = session_cookie("", Duration::ZERO, over_https(&headers))?;
    response.headers_mut().insert(header::SET_COOKIE, cleared);
    Ok(response)
}

async fn me<A: App>(State(served): State<Served<A>>, caller: Caller) -> ApiResult<Json<Session>> {
    let identity = caller.user()?;
    let online = served.relay.status(&identity.user_id).await.online;
    Ok(Json(Session {
        user_id: identity.user_id,
        name: identity.name,
        online,
    }))
}

/// A push body's message, when the app lets admins push it.
fn pushable<A: App>(served: &Served<A>, message: &Server<A>) -> ApiResult<()> {
    if served.app.pushable(message) {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::ValidationError,
            "this message type cannot be pushed through the HTTP API",
        ))
    }
}

fn delivery(reach: Reach) -> Json<Delivery> {
    Json(Delivery {
        users_reached: reach.users,
        connections_reached: reach.connections,
    })
}

/// `ApiJson` of a body generic over the app's server messages.
async fn push_body<A: App, T: DeserializeOwned>(
    request: Request,
    served: &Served<A>,
) -> ApiResult<T> {
    ApiJson::<T>::from_request(request, served)
        .await
        .map(|ApiJson(body)| body)
}

async fn push_to_user<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
    request: Request,
) -> ApiResult<Json<Delivery>> {
    let push: PushToUser<Server<A>> = push_body(request, &served).await?;
    pushable(&served, &push.message)?;
    let reach = served
        .relay
        .send_to_users(std::slice::from_ref(&push.user_id), &push.message);
    Ok(delivery(
        served
            .relay
            .reach_everywhere(Some(&[push.user_id]), reach)
            .await,
    ))
}

async fn push_to_users<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
    request: Request,
) -> ApiResult<Json<Delivery>> {
    let push: PushToUsers<Server<A>> = push_body(request, &served).await?;
    pushable(&served, &push.message)?;
    let mut user_ids = push.user_ids;
    user_ids.sort();
    user_ids.dedup();
    let reach = served.relay.send_to_users(&user_ids, &push.message);
    Ok(delivery(
        served.relay.reach_everywhere(Some(&user_ids), reach).await,
    ))
}

async fn broadcast<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
    request: Request,
) -> ApiResult<Json<Delivery>> {
    let push: Broadcast<Server<A>> = push_body(request, &served).await?;
    pushable(&served, &push.message)?;
    let reach = served.relay.broadcast(&push.message);
    Ok(delivery(served.relay.reach_everywhere(None, reach).await))
}

async fn notify_user<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
    ApiJson(notify): ApiJson<NotifyUser>,
) -> ApiResult<Json<Delivery>> {
    let user_id = notify.user_id.clone();
    let message = served
        .app
        .notification(notify)
        .ok_or_else(|| Failure::new(ErrorCode::NotFound, "this server has no notifications"))?;
    let reach = served
        .relay
        .send_to_users(std::slice::from_ref(&user_id), &message);
    Ok(delivery(
        served.relay.reach_everywhere(Some(&[user_id]), reach).await,
    ))
}

async fn connected_users<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
) -> Json<ConnectedUsers> {
    Json(ConnectedUsers {
        users: served.relay.connected_users().await,
    })
}

async fn user_status<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
    Path(user_id): Path<String>,
) -> Json<UserStatus> {
    Json(served.relay.status(&user_id).await)
}

/// `DELETE /api/users/{userId}/connections`.
async fn disconnect_user<A: App>(
    State(served): State<Served<A>>,
    _: Admin,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Disconnected>> {
    disconnect(&served.relay, &user_id).await
}

/// Closes every connection of the user with 4008, which tells clients not to
/// reconnect; `NOT_FOUND` when they have none. What the admin API's disconnect
/// endpoints answer.
pub async fn disconnect<P: Protocol>(
    relay: &Relay<P>,
    user_id: &str,
) -> ApiResult<Json<Disconnected>> {
    let connections_closed = relay.disconnect(user_id, CloseCode::Kicked).await;
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
async fn pause_pongs<A: App>(
    State(served): State<Served<A>>,
    ApiJson(switch): ApiJson<PauseSwitch>,
) -> StatusCode {
    served
        .relay
        .test_hooks()
        .pongs_paused
        .store(switch.paused, Ordering::Relaxed);
    tracing::warn!(paused = switch.paused, "test hook: pongs");
    StatusCode::NO_CONTENT
}

/// `POST /test/acks {"paused": true}`: handle messages but acknowledge none, so
/// clients' requests time out. Only with `TEST_HOOKS`.
async fn pause_acks<A: App>(
    State(served): State<Served<A>>,
    ApiJson(switch): ApiJson<PauseSwitch>,
) -> StatusCode {
    served
        .relay
        .test_hooks()
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
async fn test_token<A: App>(
    State(served): State<Served<A>>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    valid_id("userId", &request.user_id)?;
    let name = request.name.unwrap_or_else(|| request.user_id.clone());
    let token = served
        .relay
        .verifier()
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
async fn test_raw<A: App>(
    State(served): State<Served<A>>,
    ApiJson(raw): ApiJson<RawFrame>,
) -> Json<Delivery> {
    let reach = served.relay.bus().send(crate::bus::BusMessage::ToUsers {
        users: vec![raw.user_id],
        frame: std::sync::Arc::from(raw.frame.to_string()),
    });
    delivery(reach)
}
