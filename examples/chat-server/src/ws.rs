//! One WebSocket connection: the handshake checks, authentication, then a read loop
//! that handles client messages and a writer task that drains the connection's queue.

use relaywire_protocol::Messages as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use relaywire_chat::{ClientEnvelope, ClientMessage, ServerMessage, decode_client_message};
use relaywire_protocol::{
    AUTH_BY_MESSAGE, Ack, CloseCode, ErrorCode, ErrorPayload, Pong, RESUME_PARAM, SUBPROTOCOL,
    SUPPORTED_SUBPROTOCOLS, Seq,
};
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;

use crate::app::App;
use crate::auth::{AuthError, Identity, token_from_handshake};
use crate::hub::{ConnId, frame};
use crate::rate_limit::RateLimiter;
use crate::shutdown::TaskGuard;
use crate::store::StoreError;
use crate::time::now_rfc3339;

/// A sink write that takes longer than this means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the client's answer to our close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);
/// The socket's read buffer to start with.
const READ_BUFFER: usize = 4 * 1024;
/// What the socket writes out at once; every frame is flushed as it is sent anyway.
const WRITE_BUFFER: usize = 4 * 1024;
/// Frames written before one flush.
const MAX_WRITE_BATCH: usize = 64;
/// Messages read ahead while earlier ones wait for the store. Their writes then share
/// a commit, and a client's burst costs one store round trip instead of one each.
const MAX_IN_FLIGHT: usize = 64;
/// How long the answers still pending may take once the server decides to close.
const FLUSH_ANSWERS: Duration = Duration::from_secs(2);

/// Whether the handshake's `Origin` may connect. Requests without one do not come from
/// a browser, so there is no cross-site page to protect against.
pub(crate) fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    allowed
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
}

/// The subprotocols the client offered, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|protocol| protocol.trim().to_owned())
        .filter(|protocol| !protocol.is_empty())
        .collect()
}

/// `GET /ws`: checks the origin and the protocol version, finds a token in the
/// handshake, and upgrades.
pub(crate) async fn upgrade(
    State(app): State<App>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&app.config.allowed_origins, &headers) {
        app.metrics.auth_failure("origin");
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "refused a WebSocket from a disallowed origin");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let offered = offered_protocols(&headers);
    let chosen = SUPPORTED_SUBPROTOCOLS
        .iter()
        .find(|supported| offered.iter().any(|p| p == *supported));
    let supported = offered.is_empty() || chosen.is_some();
    // Echo what the client offered even when it is unsupported, so the handshake
    // completes and the client can read the 4005 close code.
    let upgrade = match chosen {
        Some(chosen) => upgrade.protocols([*chosen]),
        None => upgrade.protocols(offered),
    };
    let resume_after = query
        .iter()
        .find(|(key, _)| key == RESUME_PARAM)
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .and_then(|value| Seq::new(value).ok());
    let query_token = query
        .iter()
        .find(|(key, value)| key == "token" && !value.is_empty())
        .map(|(_, value)| value.clone());
    // A client that will send an `auth` message means it: a cookie the browser sends
    // along must not make it someone else.
    let (param, by_message) = AUTH_BY_MESSAGE;
    let token = if query
        .iter()
        .any(|(key, value)| key == param && value == by_message)
    {
        None
    } else {
        query_token.or_else(|| token_from_handshake(&headers, None, &app.config.auth_cookies))
    };
    // Frames up to the limit are decoded; larger ones up to this cap get a
    // MESSAGE_TOO_LARGE error and the connection stays; beyond it, the socket closes 1009.
    let hard_cap = (app.config.limits.max_message_bytes * 4).max(64 * 1024);
    let guard = app.tracker.enter();
    upgrade
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        // tungstenite allocates its read buffer up front (128 KiB by default): most of
        // an idle connection's memory. Frames here are small; the buffer grows for the
        // rare large one.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let _guard: TaskGuard = guard;
            run(app, socket, token, supported, resume_after).await;
        })
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(code.reason()),
    }))
}

/// Sends an `error` and closes: how a connection that never authenticated ends.
async fn reject(sink: &mut Sink, error: ErrorPayload, code: CloseCode) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        sink.send(Message::Text(frame(&ServerMessage::Error(error))))
            .await?;
        sink.send(close_message(code)).await
    })
    .await;
}

async fn run(
    app: App,
    socket: WebSocket,
    token: Option<String>,
    version_supported: bool,
    resume_after: Option<Seq>,
) {
    let (mut sink, mut stream) = socket.split();
    if !version_supported {
        let error = ErrorPayload::new(
            ErrorCode::InvalidMessage,
            format!("this server speaks {SUBPROTOCOL}"),
        );
        reject(&mut sink, error, CloseCode::UnsupportedVersion).await;
        return;
    }
    let identity = match authenticate(&app, &mut stream, token).await {
        Ok(identity) => identity,
        Err(failure) => {
            app.metrics.auth_failure(failure.error.reason());
            app.metrics.error(failure.error.code().as_str());
            tracing::info!(reason = failure.error.reason(), "authentication failed");
            let error = ErrorPayload::new(failure.error.code(), failure.error.to_string())
                .answering(failure.id);
            reject(
                &mut sink,
                error,
                failure.error.close_code(app.config.auth_close_code),
            )
            .await;
            return;
        }
    };

    let (frames, outbound) = mpsc::channel(app.config.outbound_queue);
    let (close, closing) = watch::channel(None);
    let close = Arc::new(close);
    let conn_id = match app
        .connect(&identity, frames, Arc::clone(&close), resume_after)
        .await
    {
        Ok(id) => id,
        Err(err) => {
            tracing::error!(error = %err, "registering a connection failed");
            let error = ErrorPayload::new(err.code(), err.public_message());
            reject(&mut sink, error, CloseCode::InternalError).await;
            return;
        }
    };
    app.metrics.connection_opened();
    tracing::info!(user_id = %identity.user_id, conn_id, "user connected");
    let started = Instant::now();

    let writer = tokio::spawn(write_loop(
        sink,
        outbound,
        closing.clone(),
        app.config.heartbeat_interval,
    ));
    let reason = Connection {
        app: app.clone(),
        identity,
        conn_id,
        limiter: RateLimiter::new(app.config.rate_limit_per_sec, app.config.rate_limit_burst),
    }
    .read_loop(&mut stream, closing)
    .await;
    if let Some(code) = reason {
        close.send_replace(Some(code));
    }
    app.hub.unregister(conn_id);
    if tokio::time::timeout(WRITE_TIMEOUT, writer).await.is_err() {
        tracing::warn!(conn_id, "writer did not finish in time");
    }
    // Finish the closing handshake: the client answers our close frame (the socket
    // replies to its close by itself), then the TCP connection can go.
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    app.metrics.connection_closed();
    tracing::info!(
        conn_id,
        duration_ms = started.elapsed().as_millis() as u64,
        close_code = reason.map(CloseCode::code),
        "user disconnected"
    );
}

/// An authentication failure and the `id` of the `auth` message it answers, if any.
struct AuthFailure {
    error: AuthError,
    id: Option<String>,
}

impl From<AuthError> for AuthFailure {
    fn from(error: AuthError) -> Self {
        Self { error, id: None }
    }
}

/// Verifies the handshake's token, or waits for a first `auth` message. Nothing else
/// is processed before this succeeds.
async fn authenticate(
    app: &App,
    stream: &mut Stream,
    token: Option<String>,
) -> Result<Identity, AuthFailure> {
    if let Some(token) = token {
        return Ok(app.verifier.verify(&token).await?);
    }
    let deadline = tokio::time::Instant::now() + app.config.auth_timeout;
    let mut shutting_down = app.shutting_down.clone();
    loop {
        let message = tokio::select! {
            message = tokio::time::timeout_at(deadline, stream.next()) => {
                message.map_err(|_| AuthError::Missing)?
            }
            _ = shutting_down.wait_for(|stopping| *stopping) => {
                return Err(AuthError::Unavailable("the server is shutting down".to_owned()).into());
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return Err(AuthError::Missing.into()),
        };
        return match decode_client_message(&text, &app.config.limits) {
            Ok(ClientEnvelope {
                id,
                message: ClientMessage::Auth(auth),
            }) => app
                .verifier
                .verify(&auth.token)
                .await
                .map_err(|error| AuthFailure { error, id }),
            Ok(envelope) => Err(AuthFailure {
                error: AuthError::Missing,
                id: envelope.id,
            }),
            Err(err) => Err(AuthFailure {
                error: AuthError::Invalid(format!("expected an auth message: {err}")),
                id: err.id().map(str::to_owned),
            }),
        };
    }
}

/// Writes one message; `false` when the socket failed or stayed blocked too long.
async fn send(sink: &mut Sink, message: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

/// Writes `first` and whatever else is queued behind it (up to [`MAX_WRITE_BATCH`]),
/// then flushes once: under fan-out, one write call carries many frames.
async fn send_queued(
    sink: &mut Sink,
    first: Utf8Bytes,
    outbound: &mut mpsc::Receiver<Utf8Bytes>,
) -> bool {
    let write = async {
        sink.feed(Message::Text(first)).await?;
        for _ in 1..MAX_WRITE_BATCH {
            let Ok(frame) = outbound.try_recv() else {
                break;
            };
            sink.feed(Message::Text(frame)).await?;
        }
        sink.flush().await
    };
    matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
}

/// Drains the connection's queue into the socket, pings, and sends the close frame
/// when asked to close.
async fn write_loop(
    mut sink: Sink,
    mut outbound: mpsc::Receiver<Utf8Bytes>,
    mut closing: watch::Receiver<Option<CloseCode>>,
    heartbeat: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        tokio::select! {
            biased;
            changed = closing.changed() => {
                let code = if changed.is_ok() { *closing.borrow() } else { Some(CloseCode::GoingAway) };
                let Some(code) = code else { continue };
                // What was queued before the close (e.g. the error that explains it)
                // still goes out, unless the client is too slow to read it.
                if code != CloseCode::SlowConsumer {
                    while let Ok(frame) = outbound.try_recv() {
                        if !send(&mut sink, Message::Text(frame)).await {
                            return;
                        }
                    }
                }
                let _ = send(&mut sink, close_message(code)).await;
                return;
            }
            frame = outbound.recv() => {
                let Some(frame) = frame else { return };
                if !send_queued(&mut sink, frame, &mut outbound).await {
                    return;
                }
            }
            _ = ping.tick() => {
                if !send(&mut sink, Message::Ping(Default::default())).await {
                    return;
                }
            }
        }
    }
}

/// An authenticated connection's read side.
struct Connection {
    app: App,
    identity: Identity,
    conn_id: ConnId,
    limiter: RateLimiter,
}

/// How one client message was answered.
type Reply = Result<Option<ServerMessage>, ErrorPayload>;

/// A reply and the id of the message it answers.
struct Answer {
    id: Option<String>,
    reply: Reply,
}

/// Answers in the order their messages arrived; some still wait for the store.
type Pending = FuturesOrdered<BoxFuture<'static, Answer>>;

/// A message handled at once, or one whose answer waits for the store.
enum Handled {
    Now(Reply),
    Later(BoxFuture<'static, Reply>),
}

fn store_error(err: StoreError) -> ErrorPayload {
    if err.code() == ErrorCode::InternalError {
        tracing::error!(error = %err, "store operation failed");
    }
    ErrorPayload::new(err.code(), err.public_message())
}

fn ack(id: Option<String>, message_id: Option<String>) -> Option<ServerMessage> {
    id.map(|id| ServerMessage::Ack(Ack { id, message_id }))
}

/// The instant a token expires, on tokio's clock.
fn deadline_of(expires_at: Option<SystemTime>) -> Option<tokio::time::Instant> {
    let expires_at = expires_at?;
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(tokio::time::Instant::now() + left)
}

impl Connection {
    /// Reads until the connection ends; returns the close code to send, if the server
    /// is the one closing. Messages are read ahead of their answers (up to
    /// [`MAX_IN_FLIGHT`]); answers go out in the order the messages came.
    async fn read_loop(
        mut self,
        stream: &mut Stream,
        closing: watch::Receiver<Option<CloseCode>>,
    ) -> Option<CloseCode> {
        let mut pending = Pending::new();
        let reason = self.read_until_closed(stream, closing, &mut pending).await;
        if reason.is_some() {
            // The server is closing: what was read still gets its answer first.
            let flush = async {
                while let Some(answer) = pending.next().await {
                    self.deliver(answer);
                }
            };
            let _ = tokio::time::timeout(FLUSH_ANSWERS, flush).await;
        }
        reason
    }

    async fn read_until_closed(
        &mut self,
        stream: &mut Stream,
        mut closing: watch::Receiver<Option<CloseCode>>,
        pending: &mut Pending,
    ) -> Option<CloseCode> {
        let idle_timeout = self.app.config.connection_timeout;
        let mut idle_deadline = tokio::time::Instant::now() + idle_timeout;
        let far_future = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut token_deadline = deadline_of(self.identity.expires_at);
        let mut shutting_down = self.app.shutting_down.clone();
        loop {
            let message = tokio::select! {
                Some(answer) = pending.next(), if !pending.is_empty() => {
                    self.deliver(answer);
                    continue;
                }
                message = stream.next(), if pending.len() < MAX_IN_FLIGHT => message,
                _ = closing.changed() => return None,
                _ = shutting_down.wait_for(|stopping| *stopping) => return Some(CloseCode::GoingAway),
                _ = sleep_until(idle_deadline) => return Some(CloseCode::IdleTimeout),
                _ = sleep_until(token_deadline.unwrap_or(far_future)) => {
                    let error = ErrorPayload::new(ErrorCode::AuthFailed, "token expired: send a fresh token in an auth message");
                    self.answer(pending, None, Err(error));
                    return Some(CloseCode::TokenExpired);
                }
            };
            idle_deadline = tokio::time::Instant::now() + idle_timeout;
            match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(code) = self.on_text(&text, &mut token_deadline, pending).await {
                        return Some(code);
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    self.app.metrics.message_in("binary");
                    let error = ErrorPayload::new(
                        ErrorCode::InvalidMessage,
                        "binary frames are not supported: send JSON text",
                    );
                    self.answer(pending, None, Err(error));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Err(err)) => {
                    let too_big = std::error::Error::source(&err)
                        .map(|source| source.to_string())
                        .unwrap_or_else(|| err.to_string());
                    if too_big.contains("too long") || too_big.contains("Space limit") {
                        return Some(CloseCode::MessageTooBig);
                    }
                    tracing::debug!(error = %err, "socket error");
                    return None;
                }
            }
        }
    }

    /// Sends an answer now when nothing is pending before it, else queues it behind.
    fn answer(&self, pending: &mut Pending, id: Option<String>, reply: Reply) {
        let answer = Answer { id, reply };
        if pending.is_empty() {
            self.deliver(answer);
        } else {
            pending.push_back(std::future::ready(answer).boxed());
        }
    }

    fn deliver(&self, answer: Answer) {
        match answer.reply {
            Ok(Some(ServerMessage::Ack(_))) if self.app.acks_paused() => {}
            Ok(Some(reply)) => self.send(&reply),
            Ok(None) => {}
            Err(error) => self.error(error.answering(answer.id)),
        }
    }

    fn send(&self, message: &ServerMessage) {
        self.app.hub.send_to_conn(self.conn_id, &frame(message));
    }

    fn error(&self, error: ErrorPayload) {
        self.app.metrics.error(error.code.as_str());
        self.send(&ServerMessage::Error(error));
    }

    /// Handles one text frame; returns a close code when the connection must end.
    async fn on_text(
        &mut self,
        text: &str,
        token_deadline: &mut Option<tokio::time::Instant>,
        pending: &mut Pending,
    ) -> Option<CloseCode> {
        let decoded = decode_client_message(text, &self.app.config.limits);
        let id = match &decoded {
            Ok(envelope) => envelope.id.clone(),
            Err(err) => err.id().map(str::to_owned),
        };
        if let Err(retry_after) = self.limiter.check(Instant::now()) {
            self.app.metrics.message_in("rate_limited");
            let mut error =
                ErrorPayload::new(ErrorCode::RateLimited, "too many messages: slow down");
            error.details =
                Some(serde_json::json!({ "retryAfterMs": retry_after.as_millis() as u64 }));
            self.answer(pending, id, Err(error));
            return self.limiter.is_abusive().then_some(CloseCode::RateLimited);
        }
        let envelope = match decoded {
            Ok(envelope) => envelope,
            Err(err) => {
                self.app.metrics.message_in("invalid");
                self.answer(pending, id, Err(err.to_error_payload()));
                return None;
            }
        };
        self.app.metrics.message_in(envelope.message.type_name());
        match self.handle(envelope, token_deadline).await {
            Handled::Now(reply) => self.answer(pending, id, reply),
            Handled::Later(reply) => {
                pending.push_back(reply.map(move |reply| Answer { id, reply }).boxed());
            }
        }
        None
    }

    async fn handle(
        &mut self,
        envelope: ClientEnvelope,
        token_deadline: &mut Option<tokio::time::Instant>,
    ) -> Handled {
        let id = envelope.id;
        // What waits for the store owns its own handles, so more can be read meanwhile.
        let app = self.app.clone();
        let identity = self.identity.clone();
        match envelope.message {
            ClientMessage::Auth(auth) => {
                Handled::Now(self.reauthenticate(&auth.token, id, token_deadline).await)
            }
            ClientMessage::ChatMessage(message) => Handled::Later(
                async move {
                    let posted = app
                        .post_message(&identity, message.chat_id, message.content, id.clone())
                        .await
                        .map_err(store_error)?;
                    Ok(ack(id, Some(posted.message.id)))
                }
                .boxed(),
            ),
            ClientMessage::ChatRead(read) => Handled::Later(
                async move {
                    app.mark_read(&identity, read.chat_id, read.message_id)
                        .await
                        .map_err(store_error)?;
                    Ok(ack(id, None))
                }
                .boxed(),
            ),
            ClientMessage::ChatTyping(typing) => Handled::Now(
                app.set_typing(&identity, &typing.chat_id, typing.is_typing)
                    .map(|()| ack(id, None))
                    .map_err(store_error),
            ),
            ClientMessage::ChatJoin(join) => Handled::Later(
                async move {
                    app.join(&identity, join.chat_id)
                        .await
                        .map_err(store_error)?;
                    Ok(ack(id, None))
                }
                .boxed(),
            ),
            ClientMessage::ChatLeave(leave) => Handled::Later(
                async move {
                    app.leave(&identity, leave.chat_id)
                        .await
                        .map_err(store_error)?;
                    Ok(ack(id, None))
                }
                .boxed(),
            ),
            ClientMessage::Ping(_) => {
                if app.pongs_paused() {
                    return Handled::Now(Ok(None));
                }
                self.send(&ServerMessage::Pong(Pong {
                    timestamp: now_rfc3339(),
                }));
                // Like every message, a ping with an id is acknowledged too.
                Handled::Now(Ok(ack(id, None)))
            }
        }
    }

    /// A fresh token on an open connection: same user, new expiry.
    async fn reauthenticate(
        &mut self,
        token: &str,
        id: Option<String>,
        token_deadline: &mut Option<tokio::time::Instant>,
    ) -> Reply {
        let app = &self.app;
        let identity = app.verifier.verify(token).await.map_err(|err| {
            app.metrics.auth_failure(err.reason());
            ErrorPayload::new(err.code(), err.to_string())
        })?;
        if identity.user_id != self.identity.user_id {
            return Err(ErrorPayload::new(
                ErrorCode::AuthFailed,
                "the token belongs to another user: reconnect to switch users",
            ));
        }
        *token_deadline = deadline_of(identity.expires_at);
        self.identity = identity;
        Ok(ack(id, None))
    }
}

/// Feeds text frames to the server's message handling exactly as a connection's read
/// loop does, without a socket: one authenticated user on an in-memory store. For
/// fuzzing and for tests that need no network.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use relaywire_chat_server::FrameHarness;
///
/// let mut harness = FrameHarness::new().await;
/// let replies = harness.frame(r#"{"type":"ping","id":"p1"}"#).await;
/// assert!(replies.iter().any(|reply| reply.contains(r#""type":"ack""#)));
/// # });
/// ```
pub struct FrameHarness {
    connection: Connection,
    outbound: mpsc::Receiver<Utf8Bytes>,
    token_deadline: Option<tokio::time::Instant>,
    _close: Arc<watch::Sender<Option<CloseCode>>>,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for FrameHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameHarness").finish_non_exhaustive()
    }
}

impl FrameHarness {
    /// A harness for user `fuzzer`, a participant of the demo chats.
    pub async fn new() -> FrameHarness {
        use crate::config::Config;
        use crate::store::Store;

        let mut config = Config::local("frame-harness-secret-0123");
        config.rate_limit_per_sec = u32::MAX;
        config.rate_limit_burst = u32::MAX;
        config.typing_timeout = Duration::from_millis(1);
        let (store, _thread) = Store::open(&config.database).expect("an in-memory store opens");
        let (app, shutdown) = App::new(config, store);
        app.store
            .run(|db| {
                crate::store::queries::create_chat(
                    db,
                    &relaywire_chat::http::CreateChat {
                        id: Some("general".to_owned()),
                        title: "General".to_owned(),
                        open: Some(true),
                        participant_ids: Some(vec!["fuzzer".to_owned()]),
                    },
                )
            })
            .await
            .expect("the chat is created");
        let identity = Identity {
            user_id: "fuzzer".to_owned(),
            name: "Fuzzer".to_owned(),
            roles: Vec::new(),
            expires_at: None,
        };
        let (frames, outbound) = mpsc::channel(app.config.outbound_queue);
        let close = Arc::new(watch::channel(None).0);
        let conn_id = app
            .connect(&identity, frames, Arc::clone(&close), None)
            .await
            .expect("the harness registers");
        let limiter = RateLimiter::new(app.config.rate_limit_per_sec, app.config.rate_limit_burst);
        let mut harness = FrameHarness {
            connection: Connection {
                app,
                identity,
                conn_id,
                limiter,
            },
            outbound,
            token_deadline: None,
            _close: close,
            _shutdown: shutdown,
        };
        harness.drain();
        harness
    }

    fn drain(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.outbound.try_recv().ok())
            .map(|frame| frame.as_str().to_owned())
            .collect()
    }

    /// Handles one text frame; returns the frames the server queued in answer.
    pub async fn frame(&mut self, text: &str) -> Vec<String> {
        let mut pending = Pending::new();
        let _ = self
            .connection
            .on_text(text, &mut self.token_deadline, &mut pending)
            .await;
        while let Some(answer) = pending.next().await {
            self.connection.deliver(answer);
        }
        self.drain()
    }
}
