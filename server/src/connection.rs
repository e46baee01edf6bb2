//! The WebSocket transport, on axum: the handshake ([`Handshake`], one extractor),
//! authentication, then a read loop that hands client messages to the app and a
//! writer that drains the connection's queue, numbered events in order.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use relaywire_protocol::control::ClientControl;
use relaywire_protocol::{
    AUTH_BY_MESSAGE, Ack, ClientEnvelope, ClientMessages, CloseCode, Connected, ErrorCode,
    ErrorPayload, MAX_BATCH_BYTES, Messages, PROTOCOL_VERSION, Pong, Protocol, RESUME_PARAM,
    SUBPROTOCOL, SUPPORTED_SUBPROTOCOLS, Seq, ServerMessages, Wire, decode_client_message,
    join_batches, split_batch, with_ack,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::sleep_until;

use crate::app::{Answer, App, Context, Failure, Turn};
use crate::auth::{AuthError, Identity, token_from_handshake};
use crate::hub::{ConnId, Frame, NotRegistered, Outbound, Registration};
use crate::rate_limit::{Limits, RateLimiter, Refused, SharedLimiter};
use crate::relay::{Answering, Relay, encoded};
use crate::shutdown::TaskGuard;
use crate::store::{AnswerKey, with_seq};
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

/// The scheduler turns a writer waits at most for its queue to stop growing.
const MAX_GATHER_TURNS: usize = 8;
/// Messages read ahead while earlier ones wait for the store. Their writes then share
/// a commit, and a client's burst costs one store round trip instead of one each.
const MAX_IN_FLIGHT: usize = 64;
/// How long the answers still pending may take once the server decides to close.
const FLUSH_ANSWERS: Duration = Duration::from_secs(2);

/// The app and its relay: the state of the WebSocket route.
pub(crate) struct Served<A: App> {
    pub(crate) relay: Relay<A::Protocol>,
    pub(crate) app: Arc<A>,
}

impl<A: App> Clone for Served<A> {
    fn clone(&self) -> Self {
        Self {
            relay: self.relay.clone(),
            app: Arc::clone(&self.app),
        }
    }
}

impl<A: App> FromRef<Served<A>> for Relay<A::Protocol> {
    fn from_ref(served: &Served<A>) -> Self {
        served.relay.clone()
    }
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

/// Which protocol version the handshake settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Negotiated {
    /// No subprotocol offered: the client is taken to speak version 2, the wire of the
    /// chat server's documentation (no batches, an `ack` for every message).
    Unstated,
    /// One this server speaks.
    Supported(&'static str),
    /// None this server speaks: the handshake completes (echoing them) so the client
    /// can read the 4005 that follows.
    Unsupported(Vec<String>),
}

impl Negotiated {
    /// What the connection's protocol version changes on it.
    fn wire(&self) -> Wire {
        match self {
            Negotiated::Supported(chosen) => Wire::negotiated(Some(chosen)),
            Negotiated::Unstated | Negotiated::Unsupported(_) => Wire::negotiated(None),
        }
    }
}

/// Everything the handshake says: the protocol version, the token it carries (if the
/// client did not announce an `auth` message instead), and where to resume.
#[derive(Debug)]
pub(crate) struct Handshake {
    pub(crate) negotiated: Negotiated,
    pub(crate) token: Option<String>,
    pub(crate) resume_after: Option<Seq>,
}

impl<P: Protocol> FromRequestParts<Relay<P>> for Handshake {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, relay: &Relay<P>) -> Result<Self, Failure> {
        let config = relay.config();
        if !relay.origins().allows(&parts.headers) {
            relay.metrics().auth_failure("origin");
            tracing::warn!(origin = ?parts.headers.get(header::ORIGIN), "refused a WebSocket from a disallowed origin");
            return Err(Failure::new(ErrorCode::Forbidden, "origin not allowed"));
        }
        let Query(query) = Query::<Vec<(String, String)>>::from_request_parts(parts, relay)
            .await
            .map_err(|rejection| Failure::new(ErrorCode::ValidationError, rejection.body_text()))?;
        let offered = offered_protocols(&parts.headers);
        let negotiated = match SUPPORTED_SUBPROTOCOLS
            .iter()
            .find(|supported| offered.iter().any(|p| p == *supported))
        {
            Some(chosen) => Negotiated::Supported(chosen),
            None if offered.is_empty() => Negotiated::Unstated,
            None => Negotiated::Unsupported(offered),
        };
        let resume_after = query
            .iter()
            .find(|(key, _)| key == RESUME_PARAM)
            .and_then(|(_, value)| value.parse::<u64>().ok())
            .and_then(|value| Seq::new(value).ok());
        // A client that will send an `auth` message means it: a cookie the browser
        // sends along must not make it someone else.
        let (param, by_message) = AUTH_BY_MESSAGE;
        let token = if query
            .iter()
            .any(|(key, value)| key == param && value == by_message)
        {
            None
        } else {
            query
                .iter()
                .find(|(key, value)| key == "token" && !value.is_empty())
                .map(|(_, value)| value.clone())
                .or_else(|| {
                    let cookies = relay
                        .origins()
                        .usable_cookies(&parts.headers, &config.auth_cookies);
                    token_from_handshake(&parts.headers, None, cookies)
                })
        };
        Ok(Handshake {
            negotiated,
            token,
            resume_after,
        })
    }
}

impl<A: App> FromRequestParts<Served<A>> for Handshake {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, served: &Served<A>) -> Result<Self, Failure> {
        <Handshake as FromRequestParts<Relay<A::Protocol>>>::from_request_parts(
            parts,
            &served.relay,
        )
        .await
    }
}

/// `GET /ws`: the handshake, then the connection.
pub(crate) async fn upgrade<A: App>(
    State(served): State<Served<A>>,
    handshake: Handshake,
    upgrade: WebSocketUpgrade,
) -> Response {
    let upgrade = match &handshake.negotiated {
        Negotiated::Supported(chosen) => upgrade.protocols([*chosen]),
        Negotiated::Unsupported(offered) => upgrade.protocols(offered.clone()),
        Negotiated::Unstated => upgrade,
    };
    let relay = &served.relay;
    // Frames up to the limit are decoded; larger ones up to this cap get a
    // MESSAGE_TOO_LARGE error and the connection stays; beyond it, the socket closes 1009.
    let hard_cap = (relay.config().limits.max_message_bytes * 4).max(64 * 1024);
    let guard = relay.tracker().enter();
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
            run(served, socket, handshake).await;
        })
        .into_response()
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(code.reason()),
    }))
}

fn server_frame<S: ServerMessages>(message: impl Into<S>) -> Frame {
    Frame::from(encoded(&message.into()))
}

/// Sends an `error` and closes: how a connection that never authenticated ends.
async fn reject<S: ServerMessages>(sink: &mut Sink, error: ErrorPayload, code: CloseCode) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        sink.send(Message::Text(server_frame::<S>(error))).await?;
        sink.send(close_message(code)).await
    })
    .await;
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

async fn run<A: App>(served: Served<A>, socket: WebSocket, handshake: Handshake) {
    let relay = served.relay.clone();
    let wire = handshake.negotiated.wire();
    let (mut sink, mut stream) = socket.split();
    if matches!(handshake.negotiated, Negotiated::Unsupported(_)) {
        let error = ErrorPayload::new(
            ErrorCode::InvalidMessage,
            format!("this server speaks {SUBPROTOCOL}"),
        );
        reject::<Server<A>>(&mut sink, error, CloseCode::UnsupportedVersion).await;
        return;
    }
    let identity = match authenticate(&relay, &mut stream, handshake.token).await {
        Ok(identity) => identity,
        Err(failure) => {
            relay.metrics().auth_failure(failure.error.reason());
            relay.metrics().error(failure.error.code().as_str());
            tracing::info!(reason = failure.error.reason(), "authentication failed");
            let error = ErrorPayload::new(failure.error.code(), failure.error.to_string())
                .answering(failure.id);
            let code = failure.error.close_code(relay.config().auth_close_code);
            reject::<Server<A>>(&mut sink, error, code).await;
            return;
        }
    };

    let (outbound_tx, outbound) = mpsc::channel(relay.config().outbound_queue);
    let (close, closing) = watch::channel(None);
    let close = Arc::new(close);
    let (conn_id, head, user_limiter) = match register(
        &relay,
        &identity,
        outbound_tx.clone(),
        Arc::clone(&close),
        handshake.resume_after,
        wire,
    )
    .await
    {
        Ok(registered) => registered,
        Err((failure, code)) => {
            if code == CloseCode::InternalError {
                tracing::error!(error = ?failure, "registering a connection failed");
            } else {
                tracing::info!(user_id = %identity.user_id, reason = %failure.0.message, "connection refused");
            }
            relay.metrics().error(failure.0.code.as_str());
            reject::<Server<A>>(&mut sink, failure.0, code).await;
            return;
        }
    };
    // Unregisters however this task ends, a panic included: no ghost stays online.
    let registration = Registration::new(Arc::clone(relay.hub()), conn_id);
    relay.metrics().connection_opened();
    tracing::info!(user_id = %identity.user_id, conn_id, "user connected");
    let started = Instant::now();

    let writer = tokio::spawn(write_loop(Writer {
        sink,
        outbound,
        closing: closing.clone(),
        heartbeat: relay.config().heartbeat_interval,
        relay: relay.clone(),
        user_id: identity.user_id.clone(),
        last_seq: head,
        wire,
    }));
    let reason = Connection {
        app: Arc::clone(&served.app),
        relay: relay.clone(),
        identity,
        conn_id,
        wire,
        replies: outbound_tx,
        close: Arc::clone(&close),
        limits: Limits::new(
            RateLimiter::new(
                relay.config().rate_limit_per_sec,
                relay.config().rate_limit_burst,
            ),
            user_limiter,
        ),
        line: None,
    }
    .read_loop(&mut stream, closing)
    .await;
    if let Some(code) = reason {
        close.send_replace(Some(code));
    }
    drop(registration);
    if tokio::time::timeout(WRITE_TIMEOUT, writer).await.is_err() {
        tracing::warn!(conn_id, "writer did not finish in time");
    }
    // Finish the closing handshake: the client answers our close frame (the socket
    // replies to its close by itself), then the TCP connection can go.
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    relay.metrics().connection_closed();
    tracing::info!(
        conn_id,
        duration_ms = started.elapsed().as_millis() as u64,
        close_code = reason.map(CloseCode::code),
        "user disconnected"
    );
}

/// Registers an authenticated connection: records the user, loads their rooms, and
/// queues `connected` as the connection's first frame. With `resume_after`, the events
/// the client missed follow at once, before anything new: the registration runs as the
/// store's follow-up, so no event can fall in between. Returns the connection's id,
/// the user's head (the last event its queue holds) and the user's rate limiter; or
/// why it was refused, with the close code that says so.
async fn register<P: Protocol>(
    relay: &Relay<P>,
    identity: &Identity,
    outbound: mpsc::Sender<Outbound>,
    close: Arc<watch::Sender<Option<CloseCode>>>,
    resume_after: Option<Seq>,
    wire: Wire,
) -> Result<(ConnId, Seq, SharedLimiter), (Failure, CloseCode)> {
    let internal = |failure: Failure| {
        let code = if failure.retry_later() {
            CloseCode::TryAgainLater
        } else {
            CloseCode::InternalError
        };
        (failure, code)
    };
    let config = relay.config().clone();
    // The replay must fit in the connection's queue beside live traffic.
    let replay_limit = (config.outbound_queue / 2).max(1);
    let hub = Arc::clone(relay.hub());
    let user_id = identity.user_id.clone();
    let name = identity.name.clone();
    let (registered_tx, registered) = oneshot::channel();
    let elsewhere = relay.peers_online_elsewhere(&identity.user_id).await;
    // Where follow-ups are not in commit order, or other nodes publish, an event may
    // be committed after the session was read yet reach this node before the
    // connection is registered: one look at the store once registered finds it.
    let catch_up =
        (relay.cluster().is_some() || !relay.store().orders_follow_ups()).then(|| outbound.clone());
    let start = relay
        .store()
        .open_session(
            identity.user_id.clone(),
            identity.name.clone(),
            resume_after,
            replay_limit,
            Box::new(move |start| {
                let registered = hub.register(&user_id, &start.rooms, outbound, close, |here| {
                    let mut online = here;
                    online.extend(elsewhere);
                    let opening = Opening {
                        user_id: &user_id,
                        name: &name,
                        online,
                        resume_after,
                        wire,
                    };
                    opening
                        .frames::<P::Server>(&config, start)
                        .into_iter()
                        .map(Frame::from)
                        .collect()
                });
                if registered.is_ok()
                    && let Some(catch_up) = catch_up
                {
                    let _ = catch_up.try_send(Outbound::CatchUp);
                }
                if let Ok(registered) = &registered
                    && registered.replaced > 0
                {
                    tracing::info!(user_id = %user_id, replaced = registered.replaced, "replaced older connections");
                }
                let _ = registered_tx.send(registered);
            }),
        )
        .await
        .map_err(|err| internal(Failure::from(err)))?;
    let registered = registered.await.map_err(|_| {
        internal(Failure::new(
            ErrorCode::InternalError,
            "the connection was not registered",
        ))
    })?;
    match registered {
        Ok(registered) => Ok((registered.id, start.head, registered.user_limiter)),
        Err(NotRegistered::TooManyConnections(limit)) => Err((
            Failure::new(
                ErrorCode::RateLimited,
                format!(
                    "this user already holds {limit} connections, the most allowed: close one first"
                ),
            ),
            CloseCode::TryAgainLater,
        )),
    }
}

/// What a connection's first frames say: who it is, who of their peers is online,
/// where it resumes and what its protocol version is.
pub(crate) struct Opening<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) name: &'a str,
    /// Their peers online (unsorted, possibly repeated).
    pub(crate) online: Vec<String>,
    pub(crate) resume_after: Option<Seq>,
    pub(crate) wire: Wire,
}

impl Opening<'_> {
    /// `connected`, then the events missed since the resume point, in order.
    pub(crate) fn frames<S: ServerMessages>(
        mut self,
        config: &crate::Config,
        start: &crate::store::SessionStart,
    ) -> Vec<String> {
        self.online.sort();
        self.online.dedup();
        let connected = S::from(Connected {
            user_id: self.user_id.to_owned(),
            chat_ids: start.rooms.clone(),
            user_name: Some(self.name.to_owned()),
            online_user_ids: Some(self.online),
            heartbeat_interval_ms: Some(millis(config.heartbeat_interval)),
            connection_timeout_ms: Some(millis(config.connection_timeout)),
            typing_timeout_ms: Some(millis(config.state_timeout)),
            max_message_bytes: u32::try_from(config.limits.max_message_bytes).ok(),
            protocol_version: Some(self.wire.version()),
            seq: Some(start.head),
            replayed: self
                .resume_after
                .map(|_| u32::try_from(start.missed.len()).unwrap_or(u32::MAX)),
            replay_truncated: start.truncated.then_some(true),
        });
        std::iter::once(encoded(&connected))
            .chain(start.missed.iter().map(|(_, frame)| frame.clone()))
            .collect()
    }
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
async fn authenticate<P: Protocol>(
    relay: &Relay<P>,
    stream: &mut Stream,
    token: Option<String>,
) -> Result<Identity, AuthFailure> {
    if let Some(token) = token {
        return Ok(relay.verifier().verify(&token).await?);
    }
    let deadline = tokio::time::Instant::now() + relay.config().auth_timeout;
    let mut shutting_down = relay.shutting_down();
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
        let decoded: Result<ClientEnvelope<P::Client>, _> =
            decode_client_message(&text, &relay.config().limits);
        return match decoded {
            Ok(envelope) => match envelope.message.control() {
                Some(ClientControl::Auth(auth)) => relay
                    .verifier()
                    .verify(&auth.token)
                    .await
                    .map_err(|error| AuthFailure {
                        error,
                        id: envelope.id,
                    }),
                _ => Err(AuthFailure {
                    error: AuthError::Missing,
                    id: envelope.id,
                }),
            },
            Err(err) => Err(AuthFailure {
                error: AuthError::Invalid(format!("expected an auth message: {err}")),
                id: err.id().map(str::to_owned),
            }),
        };
    }
}

/// A connection's writing side: its queue, drained into the socket, with the user's
/// numbered stream kept in order.
struct Writer<P: Protocol> {
    sink: Sink,
    outbound: mpsc::Receiver<Outbound>,
    closing: watch::Receiver<Option<CloseCode>>,
    heartbeat: Duration,
    relay: Relay<P>,
    user_id: String,
    /// The last event of the user's stream this connection has had.
    last_seq: Seq,
    wire: Wire,
}

impl<P: Protocol> Writer<P> {
    /// The frames to write for a queued item: none for an event the connection has had;
    /// for one after a gap, what the store holds in between first.
    async fn frames_of(&mut self, item: Outbound) -> Vec<Frame> {
        let (seq, template, ack) = match item {
            Outbound::Frame(frame) => return vec![frame],
            Outbound::Event(seq, template, ack) => (seq, template, ack),
            Outbound::CatchUp => {
                return self
                    .caught_up(Seq::new(Seq::MAX).unwrap_or(self.last_seq))
                    .await;
            }
        };
        if seq <= self.last_seq {
            // The connection had the event already (a catch-up raced it): the
            // acknowledgement its copy would have carried goes alone.
            return ack
                .map(|ack| vec![server_frame::<P::Server>((*ack).clone())])
                .unwrap_or_default();
        }
        let mut frames = if seq.get() > self.last_seq.get() + 1 {
            self.caught_up(Seq::new(seq.get() - 1).unwrap_or(seq)).await
        } else {
            Vec::new()
        };
        let frame = with_seq(&template, seq);
        frames.push(Frame::from(match ack {
            Some(ack) => with_ack(&frame, &ack),
            None => frame,
        }));
        self.last_seq = seq;
        frames
    }

    /// What the store holds of the user's stream after the last event this connection
    /// has had, up to `up_to`; the connection has had it then.
    async fn caught_up(&mut self, up_to: Seq) -> Vec<Frame> {
        match self
            .relay
            .store()
            .events_between(self.user_id.clone(), self.last_seq, up_to)
            .await
        {
            Ok(missed) => {
                if let Some((seq, _)) = missed.last() {
                    self.last_seq = *seq;
                }
                missed
                    .into_iter()
                    .map(|(_, frame)| Frame::from(frame))
                    .collect()
            }
            Err(err) => {
                tracing::warn!(error = %err, "catching a connection up failed; its client resumes later");
                Vec::new()
            }
        }
    }
}

/// Writes one message; `false` when the socket failed or stayed blocked too long.
async fn send(sink: &mut Sink, message: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

/// Drains the connection's queue into the socket (up to [`MAX_WRITE_BATCH`] frames per
/// flush: under fan-out, one write call carries many frames), pings, and sends the
/// close frame when asked to close.
async fn write_loop<P: Protocol>(mut writer: Writer<P>) {
    let heartbeat = writer.heartbeat;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        tokio::select! {
            biased;
            changed = writer.closing.changed() => {
                let code = if changed.is_ok() { *writer.closing.borrow() } else { Some(CloseCode::GoingAway) };
                let Some(code) = code else { continue };
                // What was queued before the close (e.g. the error that explains it)
                // still goes out, unless the client is too slow to read it.
                if code != CloseCode::SlowConsumer {
                    while let Ok(item) = writer.outbound.try_recv() {
                        for frame in writer.frames_of(item).await {
                            if !send(&mut writer.sink, Message::Text(frame)).await {
                                return;
                            }
                        }
                    }
                }
                let _ = send(&mut writer.sink, close_message(code)).await;
                return;
            }
            item = writer.outbound.recv() => {
                let Some(item) = item else { return };
                // Turns of the scheduler before draining, while the queue still grows
                // ([`MAX_GATHER_TURNS`]): a fan-out queues its events on every member's
                // connection in one pass of the store's follow-ups, so after them more
                // go in this write. Fan-out to 200 in `cargo xtask bench`: the workers'
                // CPU per delivery fell by a third (fewer `send` calls, most of their
                // time), and deliveries/s and p50 improved; alone, a frame waits one
                // turn, microseconds.
                let mut queued = writer.outbound.len();
                for _ in 0..MAX_GATHER_TURNS {
                    tokio::task::yield_now().await;
                    let now = writer.outbound.len();
                    if now == queued {
                        break;
                    }
                    queued = now;
                }
                let mut frames = writer.frames_of(item).await;
                while frames.len() < MAX_WRITE_BATCH {
                    let Ok(item) = writer.outbound.try_recv() else { break };
                    frames.extend(writer.frames_of(item).await);
                }
                let frames = if writer.wire.batches() && frames.len() > 1 {
                    join_batches(frames.iter().map(Frame::as_str), MAX_BATCH_BYTES)
                        .into_iter()
                        .map(Frame::from)
                        .collect()
                } else {
                    frames
                };
                let write = async {
                    for frame in frames {
                        writer.sink.feed(Message::Text(frame)).await?;
                    }
                    writer.sink.flush().await
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
                    return;
                }
            }
            _ = ping.tick() => {
                if !send(&mut writer.sink, Message::Ping(Default::default())).await {
                    return;
                }
            }
        }
    }
}

type Client<A> = <<A as App>::Protocol as Protocol>::Client;
type Server<A> = <<A as App>::Protocol as Protocol>::Server;

/// An authenticated connection's read side.
pub(crate) struct Connection<A: App> {
    app: Arc<A>,
    relay: Relay<A::Protocol>,
    identity: Identity,
    conn_id: ConnId,
    wire: Wire,
    /// The connection's own queue, for its answers: they need no hub.
    replies: mpsc::Sender<Outbound>,
    close: Arc<watch::Sender<Option<CloseCode>>>,
    limits: Limits,
    /// The end of the line of this connection's messages (see [`Turn`]).
    line: Option<watch::Receiver<bool>>,
}

/// How one client message was answered.
type Reply = Result<Option<Answer>, Failure>;

/// A reply and the id of the message it answers.
struct Pending {
    id: Option<String>,
    reply: Reply,
    /// Set to the stored event's id when the sender's copy of it carried the
    /// acknowledgement (protocol 3).
    answered: Option<Arc<OnceLock<String>>>,
}

/// Answers in the order their messages arrived; some still wait for the store.
type Answers = FuturesOrdered<BoxFuture<'static, Pending>>;

/// A message handled at once, or one whose answer waits.
enum Handled {
    Now(Reply),
    /// The answer to come, and what says its copy carried the acknowledgement.
    Later(BoxFuture<'static, Reply>, Option<Arc<OnceLock<String>>>),
}

/// The instant a token expires, on tokio's clock.
fn deadline_of(expires_at: Option<SystemTime>) -> Option<tokio::time::Instant> {
    let expires_at = expires_at?;
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    // Past what the clock can hold means never, not an overflow.
    tokio::time::Instant::now().checked_add(left)
}

/// The digest a durable message is recognised by when it is sent again: SHA-256 of
/// its canonical JSON (type and payload, as the server re-encodes it, so the client's
/// field order and spacing do not matter), 128 bits in hex.
fn fingerprint(message: &impl serde::Serialize) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    let canonical = serde_json::to_vec(message).unwrap_or_default();
    let digest = sha2::Sha256::digest(&canonical);
    digest[..16]
        .iter()
        .fold(String::with_capacity(32), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Whether a socket error is a frame over the size cap: tungstenite says so by kind.
fn is_too_big(err: &axum::Error) -> bool {
    let source = std::error::Error::source(err);
    matches!(
        source.and_then(|source| source.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

impl<A: App> Connection<A> {
    /// Reads until the connection ends; returns the close code to send, if the server
    /// is the one closing. Messages are read ahead of their answers (up to
    /// [`MAX_IN_FLIGHT`]); answers go out in the order the messages came.
    async fn read_loop(
        mut self,
        stream: &mut Stream,
        closing: watch::Receiver<Option<CloseCode>>,
    ) -> Option<CloseCode> {
        let mut answers = Answers::new();
        let reason = self.read_until_closed(stream, closing, &mut answers).await;
        if reason.is_some() {
            // The server is closing: what was read still gets its answer first.
            let flush = async {
                while let Some(pending) = answers.next().await {
                    self.deliver(pending);
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
        answers: &mut Answers,
    ) -> Option<CloseCode> {
        let idle_timeout = self.relay.config().connection_timeout;
        let mut idle_deadline = tokio::time::Instant::now() + idle_timeout;
        let far_future = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut token_deadline = deadline_of(self.identity.expires_at);
        let mut shutting_down = self.relay.shutting_down();
        loop {
            let message = tokio::select! {
                Some(pending) = answers.next(), if !answers.is_empty() => {
                    self.deliver(pending);
                    continue;
                }
                message = stream.next(), if answers.len() < MAX_IN_FLIGHT => message,
                _ = closing.changed() => return None,
                _ = shutting_down.wait_for(|stopping| *stopping) => return Some(CloseCode::GoingAway),
                _ = sleep_until(idle_deadline) => return Some(CloseCode::IdleTimeout),
                _ = sleep_until(token_deadline.unwrap_or(far_future)) => {
                    let error = Failure::new(ErrorCode::AuthFailed, "token expired: send a fresh token in an auth message");
                    self.answer(answers, None, Err(error));
                    return Some(CloseCode::TokenExpired);
                }
            };
            idle_deadline = tokio::time::Instant::now() + idle_timeout;
            match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(code) = self.on_text(&text, &mut token_deadline, answers).await {
                        return Some(code);
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    self.relay.metrics().message_in("binary");
                    let error = Failure::new(
                        ErrorCode::InvalidMessage,
                        "binary frames are not supported: send JSON text",
                    );
                    self.answer(answers, None, Err(error));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Err(err)) => {
                    if is_too_big(&err) {
                        return Some(CloseCode::MessageTooBig);
                    }
                    tracing::debug!(error = %err, "socket error");
                    return None;
                }
            }
        }
    }

    /// Sends an answer now when nothing is pending before it, else queues it behind.
    fn answer(&self, answers: &mut Answers, id: Option<String>, reply: Reply) {
        let pending = Pending {
            id,
            reply,
            answered: None,
        };
        if answers.is_empty() {
            self.deliver(pending);
        } else {
            answers.push_back(std::future::ready(pending).boxed());
        }
    }

    /// Sends a message's answer: its `ack` (when it had an id) or its `error`.
    fn deliver(&self, pending: Pending) {
        let answered_in_copy = |answer: &Answer| {
            let answered = pending
                .answered
                .as_ref()
                .and_then(|answered| answered.get());
            answered.is_some() && answered == answer.message_id.as_ref()
        };
        match (pending.reply, pending.id) {
            (Ok(Some(answer)), Some(id)) => {
                // The sender's copy of what it stored acknowledged it already.
                if !self.relay.acks_paused() && !answered_in_copy(&answer) {
                    self.send(Ack {
                        id,
                        message_id: answer.message_id,
                    });
                }
            }
            (Ok(_), _) => {}
            (Err(failure), _) if failure.retry_later() => {
                // No answer to the message: its client keeps it in the outbox, and
                // sends it again once reconnected (after 1013, with its backoff).
                self.error(failure.0);
                self.close.send_replace(Some(CloseCode::TryAgainLater));
            }
            (Err(failure), id) => self.error(failure.0.answering(id)),
        }
    }

    /// Queues a frame on this connection's own queue; a full queue means the client
    /// reads too slowly, and the connection is closed as a slow consumer.
    fn send(&self, message: impl Into<Server<A>>) {
        let frame = Outbound::Frame(server_frame::<Server<A>>(message));
        if let Err(mpsc::error::TrySendError::Full(_)) = self.replies.try_send(frame)
            && self
                .close
                .send_replace(Some(CloseCode::SlowConsumer))
                .is_none()
        {
            self.relay.metrics().slow_consumer();
            tracing::warn!(user_id = %self.identity.user_id, "outbound queue full; closing slow consumer");
        }
    }

    fn error(&self, error: ErrorPayload) {
        self.relay.metrics().error(error.code.as_str());
        self.send(error);
    }

    /// Handles one text frame; returns a close code when the connection must end.
    async fn on_text(
        &mut self,
        text: &str,
        token_deadline: &mut Option<tokio::time::Instant>,
        answers: &mut Answers,
    ) -> Option<CloseCode> {
        if !self.wire.batches() {
            return self.on_message(text, token_deadline, answers).await;
        }
        // Protocol 3: a frame may carry several messages, each handled as if it came
        // alone (its own checks, rate and answer), in order.
        match split_batch(text, &self.relay.config().limits) {
            Ok(messages) => {
                for message in messages {
                    if let Some(code) = self.on_message(message, token_deadline, answers).await {
                        return Some(code);
                    }
                }
                None
            }
            Err(err) => {
                self.relay.metrics().message_in("invalid");
                let error = Failure::from_payload(err.to_error_payload());
                self.answer(answers, None, Err(error));
                None
            }
        }
    }

    /// Handles one message; returns a close code when the connection must end.
    async fn on_message(
        &mut self,
        text: &str,
        token_deadline: &mut Option<tokio::time::Instant>,
        answers: &mut Answers,
    ) -> Option<CloseCode> {
        let decoded: Result<ClientEnvelope<Client<A>>, _> =
            decode_client_message(text, &self.relay.config().limits);
        let id = match &decoded {
            Ok(envelope) => envelope.id.clone(),
            Err(err) => err.id().map(str::to_owned),
        };
        if let Err(refused) = self.limits.check(Instant::now()) {
            self.relay.metrics().message_in("rate_limited");
            let message = match refused {
                Refused::Connection(_) => "too many messages on this connection: slow down",
                Refused::User(_) => "too many messages from this user's connections: slow down",
            };
            let mut error = ErrorPayload::new(ErrorCode::RateLimited, message);
            error.details = Some(
                serde_json::json!({ "retryAfterMs": refused.retry_after().as_millis() as u64 }),
            );
            self.answer(answers, id, Err(Failure::from_payload(error)));
            return self.limits.is_abusive().then_some(CloseCode::RateLimited);
        }
        let envelope = match decoded {
            Ok(envelope) => envelope,
            Err(err) => {
                self.relay.metrics().message_in("invalid");
                self.answer(
                    answers,
                    id,
                    Err(Failure::from_payload(err.to_error_payload())),
                );
                return None;
            }
        };
        self.relay
            .metrics()
            .message_in(envelope.message.type_name());
        match self.handle(envelope, token_deadline).await {
            Handled::Now(reply) => self.answer(answers, id, reply),
            Handled::Later(reply, answered) => {
                let pending = reply.map(move |reply| Pending {
                    id,
                    reply,
                    answered,
                });
                answers.push_back(pending.boxed());
            }
        }
        None
    }

    async fn handle(
        &mut self,
        envelope: ClientEnvelope<Client<A>>,
        token_deadline: &mut Option<tokio::time::Instant>,
    ) -> Handled {
        let ClientEnvelope { id, message } = envelope;
        match message.control() {
            Some(ClientControl::Auth(auth)) => {
                let token = auth.token.clone();
                return Handled::Now(self.reauthenticate(&token, token_deadline).await);
            }
            Some(ClientControl::Ping) => {
                if self.relay.pongs_paused() {
                    return Handled::Now(Ok(None));
                }
                self.send(Pong {
                    timestamp: now_rfc3339(),
                });
                // Like every message, a ping with an id is acknowledged too.
                return Handled::Now(Ok(Some(Answer::ok())));
            }
            None => {}
        }
        // What waits for the store owns its own handles, so more can be read meanwhile.
        let delivery = message.policy().delivery;
        let app = Arc::clone(&self.app);
        let relay = self.relay.clone();
        let identity = self.identity.clone();
        // Taken as the message is read, whatever order the handlers are polled in.
        let turn = Turn::after(&mut self.line);
        let answering = id
            .clone()
            .filter(|_| self.wire.answers_in_copies())
            .map(|client_id| Answering {
                connection: self.conn_id,
                user_id: self.identity.user_id.clone(),
                client_id,
                answered: Arc::new(OnceLock::new()),
            });
        let answered = answering
            .as_ref()
            .map(|answering| Arc::clone(&answering.answered));
        Handled::Later(
            async move {
                let answer_key =
                    id.as_ref()
                        .filter(|_| delivery.is_deduplicated())
                        .map(|client_id| AnswerKey {
                            user_id: identity.user_id.clone(),
                            client_id: client_id.clone(),
                            fingerprint: fingerprint(&message),
                        });
                // A durable message handled before is answered as it was then.
                if let Some(key) = &answer_key
                    && let Some(answer) = relay.store().answer(key.clone()).await?
                {
                    return Ok(Some(Answer { message_id: answer }));
                }
                let (ctx, answered) =
                    Context::new(relay.clone(), identity, answer_key.clone(), answering, turn);
                let type_name = message.type_name().to_owned();
                // A handler that panics is a bug in the app: its message is answered
                // INTERNAL_ERROR and the connection, and every other, goes on.
                let handled = std::panic::AssertUnwindSafe(app.handle(ctx, message))
                    .catch_unwind()
                    .await;
                let answer = match handled {
                    Ok(answer) => answer?,
                    Err(_) => {
                        tracing::error!(message_type = %type_name, "the app's handler panicked");
                        return Err(Failure::new(
                            ErrorCode::InternalError,
                            "the server could not complete this",
                        ));
                    }
                };
                if let Some(key) = answer_key
                    && !answered.load(std::sync::atomic::Ordering::Relaxed)
                {
                    relay
                        .store()
                        .record_answer(key, answer.message_id.clone())
                        .await?;
                }
                Ok(Some(answer))
            }
            .boxed(),
            answered,
        )
    }

    /// A fresh token on an open connection: same user, new expiry.
    async fn reauthenticate(
        &mut self,
        token: &str,
        token_deadline: &mut Option<tokio::time::Instant>,
    ) -> Reply {
        let relay = &self.relay;
        let identity = relay.verifier().verify(token).await.map_err(|err| {
            relay.metrics().auth_failure(err.reason());
            Failure::from(err)
        })?;
        if identity.user_id != self.identity.user_id {
            return Err(Failure::new(
                ErrorCode::AuthFailed,
                "the token belongs to another user: reconnect to switch users",
            ));
        }
        *token_deadline = deadline_of(identity.expires_at);
        self.identity = identity;
        Ok(Some(Answer::ok()))
    }
}

/// A connection whose socket the server does not hold (a gateway holds it, or a test
/// feeds it frames): the read loop's message handling, one frame at a time, with what
/// it queues collected instead of written.
pub(crate) struct Detached<A: App> {
    connection: Connection<A>,
    outbound: mpsc::Receiver<Outbound>,
    token_deadline: Option<tokio::time::Instant>,
    close: Arc<watch::Sender<Option<CloseCode>>>,
}

impl<A: App> Detached<A> {
    /// Handles `identity`'s messages as the connection `conn_id` of protocol `wire`,
    /// queueing what it sends on `queue`.
    pub(crate) fn new(
        app: Arc<A>,
        relay: Relay<A::Protocol>,
        identity: Identity,
        (conn_id, wire): (ConnId, Wire),
        limits: Limits,
        (replies, outbound): (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>),
        close: Arc<watch::Sender<Option<CloseCode>>>,
    ) -> Self {
        let token_deadline = deadline_of(identity.expires_at);
        Self {
            connection: Connection {
                app,
                relay,
                identity,
                conn_id,
                wire,
                replies,
                close: Arc::clone(&close),
                limits,
                line: None,
            },
            outbound,
            token_deadline,
            close,
        }
    }

    /// Handles one text frame until every message in it is answered; the close code,
    /// when the connection must end.
    pub(crate) async fn frame(&mut self, text: &str) -> Option<CloseCode> {
        let mut answers = Answers::new();
        let code = self
            .connection
            .on_text(text, &mut self.token_deadline, &mut answers)
            .await;
        while let Some(pending) = answers.next().await {
            self.connection.deliver(pending);
        }
        code.or(*self.close.borrow())
    }

    /// The frames queued since the last call, in order.
    pub(crate) fn drain(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.outbound.try_recv().ok())
            .filter_map(|item| match item {
                Outbound::Frame(frame) => Some(frame.as_str().to_owned()),
                Outbound::Event(seq, template, ack) => {
                    let frame = with_seq(&template, seq);
                    Some(match ack {
                        Some(ack) => with_ack(&frame, &ack),
                        None => frame,
                    })
                }
                Outbound::CatchUp => None,
            })
            .collect()
    }

    /// Who the connection is now (a fresh `auth` may have renewed it).
    pub(crate) fn identity(&self) -> &Identity {
        &self.connection.identity
    }
}

/// Feeds text frames to the server's message handling exactly as a connection's read
/// loop does, without a socket: one authenticated user on an in-memory store. For
/// fuzzing and for tests that need no network.
pub struct FrameHarness<A: App> {
    detached: Detached<A>,
    _shutdown: watch::Sender<bool>,
}

impl<A: App> std::fmt::Debug for FrameHarness<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameHarness").finish_non_exhaustive()
    }
}

impl<A: App> FrameHarness<A> {
    /// A harness for the user `identity` of `app` on an in-memory store, with no rate
    /// limit; `config` adjusts the rest. The app's `start` runs first.
    pub async fn new(
        app: A,
        identity: Identity,
        config: crate::Config,
    ) -> Result<Self, crate::ServerError> {
        let mut config = config;
        config.rate_limit_per_sec = u32::MAX;
        config.rate_limit_burst = u32::MAX;
        config.user_rate_limit_per_sec = u32::MAX;
        config.user_rate_limit_burst = u32::MAX;
        config.database = crate::config::Database::Memory;
        let (store, _thread) =
            crate::store::sqlite::SqliteStore::open(&crate::store::sqlite::Location::Memory)?;
        let (relay, shutdown) = Relay::new(config, Arc::new(store), None);
        app.start(&relay).await?;
        let (outbound_tx, outbound) = mpsc::channel(relay.config().outbound_queue);
        let close = Arc::new(watch::channel(None).0);
        // The current protocol, batches and answering copies included.
        let wire = Wire::new(PROTOCOL_VERSION);
        let (conn_id, _, user_limiter) = register(
            &relay,
            &identity,
            outbound_tx.clone(),
            Arc::clone(&close),
            None,
            wire,
        )
        .await
        .map_err(|(failure, _)| crate::ServerError::Start(failure.0.message))?;
        let limits = Limits::new(
            RateLimiter::new(
                relay.config().rate_limit_per_sec,
                relay.config().rate_limit_burst,
            ),
            user_limiter,
        );
        let mut detached = Detached::new(
            Arc::new(app),
            relay,
            identity,
            (conn_id, wire),
            limits,
            (outbound_tx, outbound),
            close,
        );
        detached.token_deadline = None;
        // Not `connected`: the harness shows what frames are answered with.
        detached.drain();
        Ok(FrameHarness {
            detached,
            _shutdown: shutdown,
        })
    }

    /// Handles one text frame; returns the frames the server queued in answer.
    pub async fn frame(&mut self, text: &str) -> Vec<String> {
        let _ = self.detached.frame(text).await;
        self.detached.drain()
    }
}
