//! A local API Gateway, for development and tests: a WebSocket API (its `$connect`
//! REQUEST authorizer and its `$connect`, `$disconnect` and `$default` routes), its
//! Management API (`POST`, `GET` and `DELETE /{stage}/@connections/{id}`, 410 for a
//! connection it does not hold), and an HTTP API, each invoking the real Lambda
//! binaries through the Lambda Runtime API, which it serves itself. It sends the event
//! JSON API Gateway sends and keeps API Gateway's limits: frames over 32 KB and
//! messages over 128 KB close the connection (1009), an idle connection closes after
//! 10 minutes and every connection after 2 hours (1001), a Management API close is
//! 1000; all configurable, shorter, for tests. Invocations run side by side, as on
//! AWS, on several processes of each function; [`Faults`] fails them, slows them or
//! throttles posts on purpose.
//!
//! What it does not do, and what differs from AWS, is in `deploy/aws/README.md`.

mod runtime;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use runtime::Function;
pub use runtime::InvokeError;

/// API Gateway's limits, which the simulator enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest frame a client may send (32 KB).
    pub max_frame_bytes: usize,
    /// The largest message a client may send or the Management API may post (128 KB).
    pub max_message_bytes: usize,
    /// A connection with no frame from its client for this long closes (10 minutes).
    pub idle_timeout: Duration,
    /// Every connection closes after this long (2 hours).
    pub max_duration: Duration,
    /// An invocation that takes longer fails (29 seconds).
    pub integration_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
            max_duration: Duration::from_secs(2 * 60 * 60),
            integration_timeout: Duration::from_secs(29),
        }
    }
}

/// The Lambda binaries behind the APIs, and their environment.
#[derive(Debug, Clone)]
pub struct Functions {
    /// The WebSocket routes' function.
    pub websocket: PathBuf,
    /// The `$connect` authorizer, if the API has one.
    pub authorizer: Option<PathBuf>,
    /// The HTTP API's function, if there is one.
    pub http: Option<PathBuf>,
    /// How many processes of each run side by side.
    pub instances: usize,
    /// Their environment (`GATEWAY_ENDPOINT` is set to the simulator's).
    pub env: Vec<(String, String)>,
}

/// Faults injected on purpose, changeable while the simulator runs.
#[derive(Debug, Default)]
pub struct Faults {
    /// Per mille of `$default` invocations failed before the function runs.
    fail_per_mille: AtomicU32,
    /// Each `$default` invocation waits up to this long (uniformly) before it runs.
    max_delay_ms: AtomicU64,
    /// Per mille of Management API posts answered `LimitExceededException` (429).
    throttle_per_mille: AtomicU32,
}

/// A number in `0..bound`, from the OS's randomness (through UUIDs, a dependency
/// already here).
fn random_below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let random = uuid::Uuid::new_v4().as_u128();
    u64::try_from(random % u128::from(bound)).unwrap_or(0)
}

impl Faults {
    /// Fails this many per mille of `$default` invocations (API Gateway then tells the
    /// client `Internal server error`).
    pub fn fail_invocations(&self, per_mille: u32) {
        self.fail_per_mille.store(per_mille, Ordering::Relaxed);
    }

    /// Delays each `$default` invocation by up to `max`.
    pub fn delay_invocations(&self, max: Duration) {
        let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        self.max_delay_ms.store(millis, Ordering::Relaxed);
    }

    /// Throttles this many per mille of Management API posts.
    pub fn throttle_posts(&self, per_mille: u32) {
        self.throttle_per_mille.store(per_mille, Ordering::Relaxed);
    }

    fn roll(per_mille: &AtomicU32) -> bool {
        random_below(1000) < u64::from(per_mille.load(Ordering::Relaxed))
    }
}

/// What the socket of a connection is told to do.
enum Out {
    Text(String),
    Close(u16, &'static str),
    /// Drop the socket, with no close frame.
    Cut,
}

struct Held {
    out: mpsc::UnboundedSender<Out>,
    connected_at_ms: u64,
    last_active_ms: Arc<AtomicU64>,
    source_ip: String,
    user_agent: String,
}

struct Shared {
    stage: String,
    limits: Limits,
    domain: String,
    websocket: Function,
    authorizer: Option<Function>,
    connections: std::sync::Mutex<HashMap<String, Held>>,
    faults: Arc<Faults>,
    serial: AtomicU64,
    accepted: AtomicU64,
    /// Down on purpose: handshakes are refused (503).
    down: std::sync::atomic::AtomicBool,
}

/// A running simulator; dropping it stops the functions.
pub struct Simulator {
    shared: Arc<Shared>,
    /// Kept for its processes, which stop with it.
    _http: Option<Arc<Function>>,
    websocket_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("websocket", &self.websocket_addr)
            .field("http", &self.http_addr)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Headers as API Gateway's event has them: `headers` (last value, lowercase names
/// kept as sent) and `multiValueHeaders`.
fn header_maps(headers: &HeaderMap) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else {
            continue;
        };
        single.insert(name.as_str().to_owned(), json!(value));
        match multi.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(json!(value)),
            _ => {
                multi.insert(name.as_str().to_owned(), json!([value]));
            }
        }
    }
    (single, multi)
}

fn query_maps(query: &[(String, String)]) -> (Value, Value) {
    if query.is_empty() {
        return (Value::Null, Value::Null);
    }
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (key, value) in query {
        single.insert(key.clone(), json!(value));
        match multi.get_mut(key) {
            Some(Value::Array(values)) => values.push(json!(value)),
            _ => {
                multi.insert(key.clone(), json!([value]));
            }
        }
    }
    (Value::Object(single), Value::Object(multi))
}

impl Shared {
    fn request_id(&self) -> String {
        format!("req-{}", self.serial.fetch_add(1, Ordering::Relaxed))
    }

    /// An id like API Gateway's (base64, so it ends in `=` and must be escaped in the
    /// Management API's path).
    fn connection_id(&self) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let random = random_below(u64::MAX);
        format!("{random:016x}{serial:04x}=")
    }

    /// The `requestContext` of a WebSocket route's event.
    fn context(
        &self,
        route: &str,
        event_type: &str,
        connection_id: &str,
        connected_at_ms: u64,
        source: (&str, &str),
    ) -> Map<String, Value> {
        let now = now_ms();
        let mut context = Map::new();
        context.insert("routeKey".into(), json!(route));
        context.insert("eventType".into(), json!(event_type));
        context.insert("messageDirection".into(), json!("IN"));
        context.insert("stage".into(), json!(self.stage));
        context.insert("connectedAt".into(), json!(connected_at_ms));
        context.insert("requestTimeEpoch".into(), json!(now));
        context.insert("requestId".into(), json!(self.request_id()));
        context.insert("extendedRequestId".into(), json!(self.request_id()));
        context.insert("domainName".into(), json!(self.domain));
        context.insert("connectionId".into(), json!(connection_id));
        context.insert("apiId".into(), json!("local"));
        context.insert(
            "identity".into(),
            json!({ "sourceIp": source.0, "userAgent": source.1 }),
        );
        context
    }

    /// Drops every connection's socket, with no close frame.
    fn cut_all(&self) {
        let connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for held in connections.values() {
            let _ = held.out.send(Out::Cut);
        }
    }

    fn post_to(&self, connection_id: &str, out: Out) -> bool {
        let connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connections
            .get(connection_id)
            .is_some_and(|held| held.out.send(out).is_ok())
    }
}

/// The query string as pairs, decoded.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|raw| {
        form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

fn status_of(value: &Value) -> u16 {
    value
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .unwrap_or(200)
}

/// `GET /{stage}`: the authorizer, `$connect`, and the upgrade it allows.
async fn handshake(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if shared.down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"message":"Service Unavailable"}"#,
        )
            .into_response();
    }
    let (mut parts, _) = request.into_parts();
    let headers = parts.headers.clone();
    let query = query_pairs(parts.uri.query());
    let source_ip = "127.0.0.1".to_owned();
    let user_agent = headers
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let connection_id = shared.connection_id();
    let connected_at_ms = now_ms();
    let (single, multi) = header_maps(&headers);
    let (query_single, query_multi) = query_maps(&query);
    let mut authorizer_fields = Map::new();
    if let Some(authorizer) = &shared.authorizer {
        let mut context = shared.context(
            "$connect",
            "CONNECT",
            &connection_id,
            connected_at_ms,
            (&source_ip, &user_agent),
        );
        context.remove("connectedAt");
        let event = json!({
            "type": "REQUEST",
            "methodArn": format!("arn:aws:execute-api:us-east-1:000000000000:local/{}/$connect", shared.stage),
            "headers": single,
            "multiValueHeaders": multi,
            "queryStringParameters": query_single,
            "multiValueQueryStringParameters": query_multi,
            "stageVariables": {},
            "requestContext": context,
        });
        let allowed = match authorizer.invoke(event).await {
            Ok(policy) => policy,
            Err(err) => {
                tracing::warn!(error = %err, "the authorizer failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, "authorizer failed").into_response();
            }
        };
        let effect = allowed
            .pointer("/policyDocument/Statement/0/Effect")
            .and_then(Value::as_str);
        if effect != Some("Allow") {
            return (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#).into_response();
        }
        if let Some(Value::Object(context)) = allowed.get("context") {
            authorizer_fields.extend(context.clone());
        }
        if let Some(principal) = allowed.get("principalId") {
            authorizer_fields.insert("principalId".into(), principal.clone());
        }
    }
    let mut context = shared.context(
        "$connect",
        "CONNECT",
        &connection_id,
        connected_at_ms,
        (&source_ip, &user_agent),
    );
    context.insert(
        "authorizer".into(),
        Value::Object(authorizer_fields.clone()),
    );
    let event = json!({
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    let answer = match shared.websocket.invoke(event).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(error = %err, "$connect failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "$connect failed").into_response();
        }
    };
    let status = status_of(&answer);
    if !(200..300).contains(&status) {
        let body = answer
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        return (status, body).into_response();
    }
    let chosen = answer
        .pointer("/headers/sec-websocket-protocol")
        .or_else(|| answer.pointer("/headers/Sec-WebSocket-Protocol"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match chosen {
        Some(chosen) => upgrade.protocols([chosen]),
        None => upgrade,
    };
    let limits = shared.limits.clone();
    upgrade
        .max_frame_size(limits.max_frame_bytes)
        .max_message_size(limits.max_message_bytes)
        .on_upgrade(move |socket| async move {
            let held = Held {
                out: mpsc::unbounded_channel().0,
                connected_at_ms,
                last_active_ms: Arc::new(AtomicU64::new(connected_at_ms)),
                source_ip,
                user_agent,
            };
            serve(shared, socket, connection_id, held, authorizer_fields).await;
        })
}

/// One connection: its frames become `$default` invocations (side by side), the
/// Management API's posts become its frames, and its end a `$disconnect`.
async fn serve(
    shared: Arc<Shared>,
    socket: WebSocket,
    connection_id: String,
    mut held: Held,
    authorizer: Map<String, Value>,
) {
    let (out, mut outbound) = mpsc::unbounded_channel();
    held.out = out;
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    let connected_at_ms = held.connected_at_ms;
    let last_active = Arc::clone(&held.last_active_ms);
    let source = (held.source_ip.clone(), held.user_agent.clone());
    shared
        .connections
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(connection_id.clone(), held);
    let (mut sink, mut stream) = socket.split();
    let limits = shared.limits.clone();
    let ends_at = tokio::time::Instant::now() + limits.max_duration;
    let mut idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
    let mut disconnect_code = 1000u16;
    let mut closing: Option<(u16, &'static str)> = None;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => Some((text.to_string(), false)),
                    Some(Ok(Message::Binary(bytes))) => {
                        use base64::Engine as _;
                        Some((base64::engine::general_purpose::STANDARD.encode(&bytes), true))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(frame))) => {
                        disconnect_code = frame.map_or(1005, |frame| frame.code);
                        break;
                    }
                    Some(Err(err)) => {
                        let too_big = std::error::Error::source(&err)
                            .and_then(|source| source.downcast_ref::<tungstenite::Error>())
                            .is_some_and(|err| matches!(err, tungstenite::Error::Capacity(_)));
                        if too_big {
                            closing = Some((1009, "Message too big"));
                            disconnect_code = 1009;
                        } else {
                            disconnect_code = 1006;
                        }
                        break;
                    }
                    None => {
                        disconnect_code = 1006;
                        break;
                    }
                };
                idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
                last_active.store(now_ms(), Ordering::Relaxed);
                if let Some((body, binary)) = text {
                    let shared = Arc::clone(&shared);
                    let connection_id = connection_id.clone();
                    let authorizer = authorizer.clone();
                    let source = source.clone();
                    tokio::spawn(async move {
                        message(shared, connection_id, connected_at_ms, authorizer, source, body, binary).await;
                    });
                }
            }
            out = outbound.recv() => match out {
                Some(Out::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        disconnect_code = 1006;
                        break;
                    }
                }
                Some(Out::Close(code, reason)) => {
                    closing = Some((code, reason));
                    disconnect_code = code;
                    break;
                }
                Some(Out::Cut) => {
                    disconnect_code = 1006;
                    break;
                }
                None => break,
            },
            _ = tokio::time::sleep_until(idle_deadline) => {
                closing = Some((1001, "Going away"));
                disconnect_code = 1001;
                break;
            }
            _ = tokio::time::sleep_until(ends_at) => {
                closing = Some((1001, "Going away"));
                disconnect_code = 1001;
                break;
            }
        }
    }
    shared
        .connections
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&connection_id);
    if let Some((code, reason)) = closing {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    let mut context = shared.context(
        "$disconnect",
        "DISCONNECT",
        &connection_id,
        connected_at_ms,
        (&source.0, &source.1),
    );
    context.insert("authorizer".into(), Value::Object(authorizer));
    context.insert("disconnectStatusCode".into(), json!(disconnect_code));
    context.insert("disconnectReason".into(), json!(""));
    let event = json!({ "requestContext": context, "isBase64Encoded": false });
    if let Err(err) = shared.websocket.invoke(event).await {
        tracing::warn!(error = %err, "$disconnect failed");
    }
}

/// A `$default` invocation for one client frame; a failure is told to the client as
/// API Gateway tells it.
async fn message(
    shared: Arc<Shared>,
    connection_id: String,
    connected_at_ms: u64,
    authorizer: Map<String, Value>,
    source: (String, String),
    body: String,
    binary: bool,
) {
    let faults = Arc::clone(&shared.faults);
    let delay = random_below(
        faults
            .max_delay_ms
            .load(Ordering::Relaxed)
            .saturating_add(1),
    );
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut context = shared.context(
        "$default",
        "MESSAGE",
        &connection_id,
        connected_at_ms,
        (&source.0, &source.1),
    );
    context.insert("authorizer".into(), Value::Object(authorizer));
    context.insert("messageId".into(), json!(shared.request_id()));
    let request_id = context.get("requestId").cloned().unwrap_or(Value::Null);
    let event = json!({
        "requestContext": context,
        "body": body,
        "isBase64Encoded": binary,
    });
    let result = if Faults::roll(&faults.fail_per_mille) {
        Err(InvokeError::Injected)
    } else {
        shared.websocket.invoke(event).await
    };
    if let Err(err) = result {
        tracing::info!(error = %err, connection_id, "$default failed");
        let told = json!({
            "message": "Internal server error",
            "connectionId": connection_id,
            "requestId": request_id,
        });
        shared.post_to(&connection_id, Out::Text(told.to_string()));
    }
}

/// The Management API's error answer, as AWS's REST-JSON protocol has it.
fn aws_error(status: StatusCode, kind: &str) -> Response {
    let mut response = (status, json!({ "message": kind }).to_string()).into_response();
    if let Ok(kind) = HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-errortype"), kind);
    }
    response
}

fn iso(ms: u64) -> String {
    relaywire_server::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

/// `/{stage}/@connections/{id}`: post, read or close one connection.
async fn management(
    State(shared): State<Arc<Shared>>,
    Path((stage, connection_id)): Path<(String, String)>,
    method: Method,
    body: Bytes,
) -> Response {
    if stage != shared.stage {
        return aws_error(StatusCode::NOT_FOUND, "NotFoundException");
    }
    match method {
        Method::POST => {
            if body.len() > shared.limits.max_message_bytes {
                return aws_error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeException");
            }
            if Faults::roll(&shared.faults.throttle_per_mille) {
                return aws_error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException");
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            if shared.post_to(&connection_id, Out::Text(text)) {
                StatusCode::OK.into_response()
            } else {
                aws_error(StatusCode::GONE, "GoneException")
            }
        }
        Method::DELETE => {
            if shared.post_to(&connection_id, Out::Close(1000, "")) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                aws_error(StatusCode::GONE, "GoneException")
            }
        }
        Method::GET => {
            let connections = shared
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match connections.get(&connection_id) {
                Some(held) => axum::Json(json!({
                    "connectedAt": iso(held.connected_at_ms),
                    "lastActiveAt": iso(held.last_active_ms.load(Ordering::Relaxed)),
                    "identity": { "sourceIp": held.source_ip, "userAgent": held.user_agent },
                }))
                .into_response(),
                None => aws_error(StatusCode::GONE, "GoneException"),
            }
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Any request to the HTTP API: an API Gateway HTTP API (payload 2.0) event.
async fn http_api(State(function): State<Arc<Function>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 10 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else {
            continue;
        };
        if name == "cookie" {
            cookies.extend(value.split(';').map(|cookie| json!(cookie.trim())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), json!(value));
            }
        }
    }
    let now = now_ms();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "cookies": cookies,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": format!("http-{now}"),
            "routeKey": "$default",
            "stage": "$default",
            "time": iso(now),
            "timeEpoch": now,
        },
        "body": if body_text.is_empty() { Value::Null } else { json!(body_text) },
        "isBase64Encoded": false,
    });
    let answer = match function.invoke(event).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(error = %err, "the HTTP API's function failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"Internal Server Error"}"#,
            )
                .into_response();
        }
    };
    let status = StatusCode::from_u16(status_of(&answer)).unwrap_or(StatusCode::OK);
    let text = answer
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut response = (status, text).into_response();
    if let Some(Value::Object(headers)) = answer.get("headers") {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    if let Some(Value::Array(cookies)) = answer.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            if let Ok(cookie) = HeaderValue::from_str(cookie) {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, cookie);
            }
        }
    }
    response
}

/// What the simulator serves beyond the APIs: a site on the HTTP API's port, as a
/// custom domain puts an app, its HTTP API and its WebSocket API (at `/ws`) on one
/// origin, so the browser sends its cookie with the handshake.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The app's files, served before the HTTP API is asked.
    pub static_dir: Option<PathBuf>,
    /// Its port on 127.0.0.1 (0: a free one).
    pub port: u16,
}

/// `POST /_simulator/{action}` on the site: `cut` every connection, take the gateway
/// down (`kill`: connections cut, handshakes refused) or bring it back (`start`).
async fn control(State(shared): State<Arc<Shared>>, Path(action): Path<String>) -> StatusCode {
    match action.as_str() {
        "cut" => {}
        "kill" => shared.down.store(true, Ordering::Relaxed),
        "start" => {
            shared.down.store(false, Ordering::Relaxed);
            return StatusCode::NO_CONTENT;
        }
        _ => return StatusCode::NOT_FOUND,
    }
    shared.cut_all();
    StatusCode::NO_CONTENT
}

impl Simulator {
    /// Starts the APIs on free ports of 127.0.0.1, and the functions against them.
    pub async fn start(stage: &str, limits: Limits, functions: Functions) -> std::io::Result<Self> {
        Self::start_with_site(stage, limits, functions, None).await
    }

    /// Like [`Simulator::start`], with a site on the HTTP API's port (which needs the
    /// HTTP API's function).
    pub async fn start_with_site(
        stage: &str,
        limits: Limits,
        functions: Functions,
        site: Option<Site>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let websocket_addr = listener.local_addr()?;
        let domain = websocket_addr.to_string();
        let mut env = functions.env.clone();
        env.push((
            "GATEWAY_ENDPOINT".to_owned(),
            format!("http://{domain}/{stage}"),
        ));
        let timeout = limits.integration_timeout;
        let websocket = Function::start(
            "websocket",
            &functions.websocket,
            &env,
            functions.instances,
            timeout,
        )
        .await?;
        let authorizer = match &functions.authorizer {
            Some(binary) => Some(Function::start("authorizer", binary, &env, 1, timeout).await?),
            None => None,
        };
        let http = match &functions.http {
            Some(binary) => Some(Arc::new(
                Function::start("http", binary, &env, functions.instances, timeout).await?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            stage: stage.to_owned(),
            limits,
            domain,
            websocket,
            authorizer,
            connections: std::sync::Mutex::new(HashMap::new()),
            faults: Arc::new(Faults::default()),
            serial: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let router = Router::new()
            .route(&format!("/{stage}"), get(handshake))
            .route("/{stage}/@connections/{id}", any(management))
            .route("/{stage}/%40connections/{id}", any(management))
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http_addr = match &http {
            Some(function) => {
                let port = site.as_ref().map_or(0, |site| site.port);
                let listener = TcpListener::bind(("127.0.0.1", port)).await?;
                let addr = listener.local_addr()?;
                let api = any(http_api).with_state(Arc::clone(function));
                let router = match site {
                    None => Router::new().fallback_service(api),
                    Some(site) => {
                        let site_routes = Router::new()
                            .route("/ws", get(handshake))
                            .route("/_simulator/{action}", axum::routing::post(control))
                            .with_state(Arc::clone(&shared));
                        match site.static_dir {
                            Some(dir) => site_routes.fallback_service(
                                tower_http::services::ServeDir::new(dir)
                                    .call_fallback_on_method_not_allowed(true)
                                    .fallback(api),
                            ),
                            None => site_routes.fallback_service(api),
                        }
                    }
                };
                tokio::spawn(async move {
                    let _ = axum::serve(listener, router).await;
                });
                Some(addr)
            }
            None => None,
        };

        Ok(Self {
            shared,
            _http: http,
            websocket_addr,
            http_addr,
        })
    }

    /// The WebSocket API's URL (`ws://127.0.0.1:{port}/{stage}`).
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{}", self.websocket_addr, self.shared.stage)
    }

    /// The HTTP API's URL, if it has one.
    pub fn http_url(&self) -> Option<String> {
        self.http_addr.map(|addr| format!("http://{addr}"))
    }

    /// The Management API's endpoint (`http://127.0.0.1:{port}/{stage}`).
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", self.websocket_addr, self.shared.stage)
    }

    /// The faults to inject.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// How many connections it holds.
    pub fn connections(&self) -> usize {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Stops the functions' processes (dropping the simulator does).
    fn stop(&self) {
        self.shared.websocket.stop();
        if let Some(authorizer) = &self.shared.authorizer {
            authorizer.stop();
        }
        if let Some(http) = &self._http {
            http.stop();
        }
    }

    /// How many connections it accepted since it started.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Cuts every connection, as a network failure would (no close frame: 1006).
    pub fn cut_all(&self) {
        self.shared.cut_all();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}
