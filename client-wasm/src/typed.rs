//! What the two Rust clients share: the handle an application holds, its options, its
//! errors and snapshot, the stream of typed messages, and the serde side of the core's
//! messages. The tokio driver (`native`) and the browser driver (`web`) only do I/O
//! around [`TypedCore`]; every decision stays in the core.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, Stream, StreamExt};
use relaywire_protocol::control::ServerControl;
use relaywire_protocol::{
    ACK_FIELD, Ack, ClientEnvelope, ClientErrorCode, ClientMessages, CloseCode, ErrorCode,
    Protocol, ServerMessages,
};
use serde_json::Value;
use tokio::sync::watch;

use crate::core::{
    self, Auth, Command, Core, Event, Fields, Frame, Key, Millis, Outgoing, Rejection, SendError,
    SendMode, Session, SocketId, Status, TokenOutcome,
};

/// `Send` where the client runs on threads (tokio), nothing in the browser, where
/// futures stay on the page's one thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send> MaybeSend for T {}

/// `Send` where the client runs on threads (tokio), nothing in the browser, where
/// futures stay on the page's one thread.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// `Sync` where the client runs on threads (tokio), nothing in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync> MaybeSync for T {}

/// `Sync` where the client runs on threads (tokio), nothing in the browser.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSync for T {}

/// A token source failed; the client tries again later, with backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token source is unavailable")]
pub struct TokenUnavailable;

/// What a token source's future resolves to: a token, `None` when signed out, or
/// [`TokenUnavailable`].
pub type TokenResult = Result<Option<String>, TokenUnavailable>;

/// The future a [`TokenProvider`] returns.
#[cfg(not(target_arch = "wasm32"))]
pub type TokenFuture = Pin<Box<dyn Future<Output = TokenResult> + Send>>;
/// The future a [`TokenProvider`] returns.
#[cfg(target_arch = "wasm32")]
pub type TokenFuture = Pin<Box<dyn Future<Output = TokenResult>>>;

/// Fetches a token: called before every connect, with `true` when the last one was
/// refused as expired. `Ok(None)` means signed out (the client stops, unauthorized);
/// `Err` means try again later.
#[cfg(not(target_arch = "wasm32"))]
pub type TokenProvider = std::sync::Arc<dyn Fn(bool) -> TokenFuture + Send + Sync>;
/// Fetches a token: called before every connect, with `true` when the last one was
/// refused as expired. `Ok(None)` means signed out (the client stops, unauthorized);
/// `Err` means try again later.
#[cfg(target_arch = "wasm32")]
pub type TokenProvider = std::rc::Rc<dyn Fn(bool) -> TokenFuture>;

/// A client's options: the core's, plus where to connect.
pub struct Options<P> {
    /// The server's WebSocket endpoint: `ws://` or `wss://` (in the browser also
    /// `http://`, `https://` or a path such as `/ws`, resolved against the page).
    pub url: String,
    /// Behaviour shared by every client: auth, reconnect, heartbeat, queue, timeouts.
    pub core: core::Options,
    /// Called for [`Auth::Provider`].
    pub token_provider: Option<TokenProvider>,
    /// Capacity of the [`Messages`] stream; when it is full, reading from the socket
    /// waits for the application.
    pub message_buffer: usize,
    protocol: PhantomData<fn() -> P>,
}

impl<P> Clone for Options<P> {
    fn clone(&self) -> Self {
        Self {
            url: self.url.clone(),
            core: self.core.clone(),
            token_provider: self.token_provider.clone(),
            message_buffer: self.message_buffer,
            protocol: PhantomData,
        }
    }
}

impl<P> std::fmt::Debug for Options<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("core", &self.core)
            .field("message_buffer", &self.message_buffer)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Options<P> {
    /// Defaults for `url` with `auth`, for the protocol `P`.
    pub fn new(url: impl Into<String>, auth: Auth) -> Self {
        Self {
            url: url.into(),
            core: core::Options {
                auth,
                seed: seed(),
                ..core::Options::new(P::descriptor())
            },
            token_provider: None,
            message_buffer: 1024,
            protocol: PhantomData,
        }
    }

    /// Defaults for `url`, authenticating with tokens from `source`: it is called
    /// before every connect with whether the last token was refused as expired, and
    /// resolves to a token, `None` when signed out (the client stops, unauthorized), or
    /// [`TokenUnavailable`] (it tries again later).
    pub fn with_token_source<S, F>(url: impl Into<String>, source: S) -> Self
    where
        S: Fn(bool) -> F + MaybeSend + MaybeSync + 'static,
        F: Future<Output = TokenResult> + MaybeSend + 'static,
    {
        let provider = move |force_refresh| -> TokenFuture { Box::pin(source(force_refresh)) };
        #[cfg(not(target_arch = "wasm32"))]
        let provider: TokenProvider = std::sync::Arc::new(provider);
        #[cfg(target_arch = "wasm32")]
        let provider: TokenProvider = std::rc::Rc::new(provider);
        Self {
            token_provider: Some(provider),
            ..Self::new(url, Auth::Provider)
        }
    }
}

/// Entropy for the core's jitter and id prefix.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(epoch_ms());
    hasher.finish()
}

/// The wall clock, in milliseconds since the epoch.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn epoch_ms() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wall clock, in milliseconds since the epoch.
#[cfg(target_arch = "wasm32")]
pub(crate) fn epoch_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// The options cannot work; nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("INVALID_OPTIONS: {reason}")]
pub struct InvalidOptions {
    /// What is wrong.
    pub reason: &'static str,
}

impl InvalidOptions {
    /// Its code, as a JavaScript client's rejection would carry it.
    pub fn code(&self) -> ClientErrorCode {
        ClientErrorCode::InvalidOptions
    }
}

/// Why a message or request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server answered with an `error`.
    #[error("{code}: {message}")]
    Server {
        /// The error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The client gave up by itself: `TIMEOUT`, `QUEUE_FULL`, `CLIENT_CLOSED`,
    /// `CONNECTION_FAILED`.
    #[error("{0}")]
    Client(ClientErrorCode),
    /// The message was refused before it was sent, with the code a server would answer.
    #[error("{code}: {reason}")]
    Invalid {
        /// `INVALID_MESSAGE`, `VALIDATION_ERROR` or `MESSAGE_TOO_LARGE`.
        code: ErrorCode,
        /// What is wrong.
        reason: &'static str,
    },
}

impl RequestError {
    /// The failure's code: the server's, or the client's own.
    pub fn code(&self) -> core::FailureCode {
        match self {
            RequestError::Server { code, .. } | RequestError::Invalid { code, .. } => {
                core::FailureCode::Server(code.clone())
            }
            RequestError::Client(code) => core::FailureCode::Client(*code),
        }
    }
}

impl From<SendError> for RequestError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Client(code) => RequestError::Client(code),
            SendError::Invalid { code, reason } => RequestError::Invalid { code, reason },
        }
    }
}

/// The connection state, as a client publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The status.
    pub status: Status,
    /// Retries since the last healthy connection.
    pub attempt: u32,
    /// Messages waiting to be sent or acknowledged.
    pub pending: usize,
    /// The session from `connected`, its rooms and who is online kept up to date.
    pub session: Option<Session>,
    /// The last failure's code and close code.
    pub last_error: Option<core::LastError>,
}

impl Snapshot {
    fn of<F: Clone + core::FrameSize, M: Clone>(core: &Core<F, M>) -> Snapshot {
        Snapshot {
            status: core.status(),
            attempt: core.attempt(),
            pending: core.pending(),
            session: core.session().cloned(),
            last_error: core.last_error().cloned(),
        }
    }
}

type Reply = oneshot::Sender<Result<Ack, RequestError>>;

/// What a handle asks of its driver.
pub(crate) enum Request<C> {
    Send {
        message: C,
        mode: SendMode,
        reply: Option<Reply>,
        accepted: oneshot::Sender<Result<(), RequestError>>,
    },
    Connect,
    Close(oneshot::Sender<()>),
}

/// The request already waiting once one was handled, so what the application handed
/// over together is sent together: `Some(None)` when every handle is gone, `None` when
/// nothing waits.
pub(crate) fn waiting<C>(
    requests: &mut mpsc::UnboundedReceiver<Request<C>>,
) -> Option<Option<Request<C>>> {
    match requests.try_recv() {
        Ok(next) => Some(Some(next)),
        Err(err) if err.is_closed() => Some(None),
        Err(_) => None,
    }
}

/// A handle on a running client; cheap to clone. The client stops when every handle
/// is dropped or [`Client::close`] is called.
pub struct Client<P: Protocol> {
    requests: mpsc::UnboundedSender<Request<P::Client>>,
    snapshot: watch::Receiver<Snapshot>,
}

impl<P: Protocol> Clone for Client<P> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            snapshot: self.snapshot.clone(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("protocol", &P::NAME)
            .field("snapshot", &*self.snapshot.borrow())
            .finish()
    }
}

fn closed() -> RequestError {
    RequestError::Client(ClientErrorCode::ClientClosed)
}

impl<P: Protocol> Client<P> {
    async fn submit(
        &self,
        message: P::Client,
        mode: SendMode,
        reply: Option<Reply>,
    ) -> Result<(), RequestError> {
        let (accepted, accepted_rx) = oneshot::channel();
        self.requests
            .unbounded_send(Request::Send {
                message,
                mode,
                reply,
                accepted,
            })
            .map_err(|_| closed())?;
        accepted_rx.await.unwrap_or(Err(closed()))
    }

    /// Hands a message over; returns once the client accepted it. By its type's
    /// policy it waits in the outbox until acknowledged and survives reconnects
    /// (durable and request types), or is sent only while connected (ephemeral types;
    /// a state such as typing is stopped by itself when not renewed).
    pub async fn send(&self, message: P::Client) -> Result<(), RequestError> {
        self.submit(message, SendMode::Send, None).await
    }

    /// Sends a message and waits for its `ack` (or `error`, or the default timeout).
    pub async fn request(&self, message: P::Client) -> Result<Ack, RequestError> {
        self.request_within(message, None).await
    }

    /// Like [`Client::request`] with its own timeout.
    pub async fn request_within(
        &self,
        message: P::Client,
        timeout: Option<Duration>,
    ) -> Result<Ack, RequestError> {
        let (reply, reply_rx) = oneshot::channel();
        let timeout_ms = timeout.map(|t| t.as_millis().min(u128::from(u32::MAX)) as u32);
        self.submit(message, SendMode::Request { timeout_ms }, Some(reply))
            .await?;
        reply_rx.await.unwrap_or(Err(closed()))
    }

    /// Retries now, or starts over after a terminal state.
    pub fn reconnect(&self) {
        let _ = self.requests.unbounded_send(Request::Connect);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every snapshot change.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// The snapshot now, then each time it changes (a reader that falls behind gets the
    /// latest); the stream ends when the client has stopped. What a UI binds to.
    pub fn states(&self) -> impl Stream<Item = Snapshot> + Unpin + 'static {
        let mut watch = self.snapshot.clone();
        watch.mark_changed();
        Box::pin(futures::stream::unfold(watch, |mut watch| async move {
            watch.changed().await.ok()?;
            let snapshot = watch.borrow_and_update().clone();
            Some((snapshot, watch))
        }))
    }

    /// Waits until the status is `status`, up to `limit`; `Err` holds the snapshot when
    /// it did not come.
    pub async fn wait_for(&self, status: Status, limit: Duration) -> Result<Snapshot, Snapshot> {
        let mut watch = self.snapshot.clone();
        let reached = async move {
            watch
                .wait_for(|s| s.status == status)
                .await
                .ok()
                .map(|s| s.clone())
        };
        let reached = std::pin::pin!(reached);
        let deadline = std::pin::pin!(sleep(limit));
        match futures::future::select(reached, deadline).await {
            futures::future::Either::Left((Some(snapshot), _)) => Ok(snapshot),
            _ => Err(self.snapshot()),
        }
    }

    /// Closes the client: waiting messages are rejected with `CLIENT_CLOSED`, the
    /// socket is closed and every timer and listener is gone when this returns.
    pub async fn close(&self) {
        let (done, done_rx) = oneshot::channel();
        if self.requests.unbounded_send(Request::Close(done)).is_ok() {
            let _ = done_rx.await;
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[cfg(target_arch = "wasm32")]
async fn sleep(duration: Duration) {
    // setTimeout takes at most 2^31 - 1 ms; longer waits wait that long.
    let ms = duration.as_millis().min(i32::MAX as u128) as u32;
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// The server's messages to the application, each once (replayed events it has seen
/// are dropped): a [`Stream`], or read one by one with [`Messages::recv`]. It ends when
/// the client has stopped.
#[derive(Debug)]
pub struct Messages<M> {
    receiver: mpsc::Receiver<M>,
}

impl<M> Messages<M> {
    /// The next message; `None` once the client has stopped.
    pub async fn recv(&mut self) -> Option<M> {
        self.receiver.next().await
    }
}

impl<M> Stream for Messages<M> {
    type Item = M;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        self.receiver.poll_next_unpin(cx)
    }
}

/// What a driver must do on its platform; the rest of the core's commands are carried
/// out by [`TypedCore`] itself.
#[derive(Debug)]
pub(crate) enum Io {
    /// Open a socket to the options' URL with these query parameters.
    Open {
        socket: SocketId,
        params: Vec<(&'static str, String)>,
    },
    /// Send a text frame on a socket.
    Send { socket: SocketId, text: String },
    /// Close a socket.
    Close {
        socket: SocketId,
        code: CloseCode,
        reason: &'static str,
    },
    /// Fetch a token and report it with [`TypedCore::token`].
    FetchToken { fetch: u32, force_refresh: bool },
}

/// The core with its typed ends: the handles' requests and their replies, the
/// application's message stream and the snapshot.
pub(crate) struct TypedCore<P: Protocol> {
    core: Core<String, Received<P::Server>>,
    token_provider: Option<TokenProvider>,
    replies: HashMap<String, Reply>,
    messages: mpsc::Sender<P::Server>,
    snapshot: watch::Sender<Snapshot>,
    /// The core said the snapshot changed; published once the commands of the event
    /// are carried out.
    publish: bool,
}

/// A received message, and the acknowledgement its envelope carried (protocol 3: the
/// sender's copy of what its message stored).
#[derive(Debug, Clone)]
pub(crate) struct Received<M> {
    message: M,
    ack: Option<Ack>,
}

/// A new client's parts: the driver's typed core, the handle, the message stream and
/// the handles' requests.
pub(crate) type Parts<P> = (
    TypedCore<P>,
    Client<P>,
    Messages<<P as Protocol>::Server>,
    mpsc::UnboundedReceiver<Request<<P as Protocol>::Client>>,
);

impl<P: Protocol> TypedCore<P> {
    pub(crate) fn new(options: &Options<P>) -> Parts<P> {
        let (requests, requests_rx) = mpsc::unbounded();
        let (messages, receiver) = mpsc::channel(options.message_buffer.max(1));
        let core = Core::new(options.core.clone());
        let (snapshot, snapshot_rx) = watch::channel(Snapshot::of(&core));
        let client = Client {
            requests,
            snapshot: snapshot_rx,
        };
        // The first thing the driver does is connect.
        client.reconnect();
        let typed = TypedCore {
            core,
            token_provider: options.token_provider.clone(),
            replies: HashMap::new(),
            messages,
            snapshot,
            publish: false,
        };
        (typed, client, Messages { receiver }, requests_rx)
    }

    /// When the core wants [`Event::Timer`].
    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.core.next_deadline()
    }

    /// Feeds the core one event.
    pub(crate) fn handle(&mut self, now: Millis, event: Event<'_, Received<P::Server>>) {
        self.core.handle(now, event);
    }

    /// Carries out a handle's request (`None`: every handle is gone, which closes the
    /// client as `close()` does); `Some` with the channel to answer once the client
    /// has closed.
    pub(crate) fn request(
        &mut self,
        now: Millis,
        request: Option<Request<P::Client>>,
    ) -> Option<oneshot::Sender<()>> {
        let request = request.unwrap_or_else(|| Request::Close(oneshot::channel().0));
        match request {
            Request::Send {
                message,
                mode,
                reply,
                accepted,
            } => {
                let outgoing = OutgoingMessage::new(&message);
                let result = match (self.core.send(now, &outgoing, mode), reply) {
                    (Ok(Some(id)), Some(reply)) => {
                        self.replies.insert(id, reply);
                        Ok(())
                    }
                    (Ok(_), _) => Ok(()),
                    (Err(err), _) => Err(err.into()),
                };
                let _ = accepted.send(result);
                None
            }
            Request::Connect => {
                self.core.handle(now, Event::Connect);
                None
            }
            Request::Close(done) => {
                self.core.handle(now, Event::Close);
                Some(done)
            }
        }
    }

    /// Feeds the core a text frame from `socket`, decoded with serde: the envelope
    /// once as JSON, for the core's fields and the typed message; each message of a
    /// batch (protocol 3) in turn.
    pub(crate) fn received(&mut self, now: Millis, socket: SocketId, text: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(messages)) => {
                for message in messages {
                    self.received_one(now, socket, &message);
                }
            }
            Ok(message) => self.received_one(now, socket, &message),
            // Not a message: it still proves the connection alive.
            Err(_) => self.core.handle(now, Event::Traffic { socket }),
        }
    }

    fn received_one(&mut self, now: Millis, socket: SocketId, value: &Value) {
        let Ok(message) = <P::Server as serde::Deserialize>::deserialize(value) else {
            self.core.handle(now, Event::Traffic { socket });
            return;
        };
        let ack = value
            .get(ACK_FIELD)
            .and_then(|ack| <Ack as serde::Deserialize>::deserialize(ack).ok());
        let payload = value.get("payload").unwrap_or(&Value::Null);
        let type_name = value.get("type").and_then(Value::as_str);
        let inbound = core::read(self.core.descriptor(), type_name, &Payload(payload))
            .answering(ack.as_ref().map(|ack| ack.id.clone()));
        self.core.handle(
            now,
            Event::Message {
                socket,
                inbound,
                message: Received { message, ack },
            },
        );
    }

    /// The largest frame the server takes: what a batch of frames must fit.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        self.core.max_message_bytes()
    }

    /// A token fetch from the options' token source (signed out when there is none).
    pub(crate) fn fetch_token(&self, force_refresh: bool) -> TokenFuture {
        match &self.token_provider {
            Some(provider) => provider(force_refresh),
            None => Box::pin(async { Ok(None) }),
        }
    }

    /// Feeds the core the result of token fetch `fetch`.
    pub(crate) fn token(&mut self, now: Millis, fetch: u32, result: &TokenResult) {
        let outcome = TokenOutcome::from_fetch(
            result.as_ref().map(Option::as_deref).map_err(|_| ()),
            now,
            epoch_ms(),
        );
        self.core.handle(now, Event::Token { fetch, outcome });
    }

    /// The next thing the driver must do; `None` when the core has nothing more. It
    /// delivers messages (waiting while the application's stream is full), settles
    /// requests and publishes the snapshot itself.
    pub(crate) async fn next_io(&mut self) -> Option<Io> {
        loop {
            let Some(command) = self.core.poll_command() else {
                if std::mem::take(&mut self.publish) {
                    self.snapshot.send_replace(Snapshot::of(&self.core));
                }
                return None;
            };
            match command {
                Command::Open { socket, params } => return Some(Io::Open { socket, params }),
                Command::Send { socket, frame } => {
                    let (Frame::App(text) | Frame::Control(text)) = frame;
                    return Some(Io::Send { socket, text });
                }
                Command::CloseSocket {
                    socket,
                    code,
                    reason,
                } => {
                    return Some(Io::Close {
                        socket,
                        code,
                        reason,
                    });
                }
                Command::FetchToken {
                    fetch,
                    force_refresh,
                } => {
                    return Some(Io::FetchToken {
                        fetch,
                        force_refresh,
                    });
                }
                Command::Deliver { message, .. } => {
                    // Waits when the application reads slowly: back-pressure reaches
                    // the socket. An application that dropped its stream gets nothing.
                    let _ = self.messages.send(message.message).await;
                }
                Command::Resolve { id, reply } => {
                    // An `ack`, or the acknowledgement an event carried.
                    let ack = match (reply.message.control(), reply.ack) {
                        (Some(ServerControl::Ack(ack)), _) => Some(ack.clone()),
                        (_, carried) => carried,
                    };
                    if let (Some(waiting), Some(ack)) = (self.replies.remove(&id), ack) {
                        let _ = waiting.send(Ok(ack));
                    }
                }
                Command::Reject { id, reason } => {
                    let Some(waiting) = self.replies.remove(&id) else {
                        continue;
                    };
                    let error = match reason {
                        Rejection::Server { code, reply } => RequestError::Server {
                            message: match reply.message.control() {
                                Some(ServerControl::Error(error)) => error.message.clone(),
                                _ => String::new(),
                            },
                            code,
                        },
                        Rejection::Client(code) => RequestError::Client(code),
                    };
                    let _ = waiting.send(Err(error));
                }
                Command::Publish => self.publish = true,
            }
        }
    }
}

/// A JSON payload read by the core.
struct Payload<'a>(&'a Value);

impl Fields for Payload<'_> {
    fn text(&self, key: Key<'_>) -> Option<String> {
        self.0.get(key.name())?.as_str().map(str::to_owned)
    }

    fn number(&self, key: Key<'_>) -> Option<f64> {
        self.0.get(key.name())?.as_f64()
    }

    fn flag(&self, key: Key<'_>) -> Option<bool> {
        self.0.get(key.name())?.as_bool()
    }

    fn texts(&self, key: Key<'_>) -> Vec<String> {
        self.0
            .get(key.name())
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An application message on its way out: typed, with its payload as JSON for the
/// fields the core reads.
struct OutgoingMessage<'a, C> {
    message: &'a C,
    type_name: &'a str,
    payload: Value,
}

impl<'a, C: ClientMessages> OutgoingMessage<'a, C> {
    fn new(message: &'a C) -> Self {
        let payload = serde_json::to_value(message)
            .ok()
            .and_then(|mut value| value.get_mut("payload").map(Value::take))
            .unwrap_or(Value::Null);
        Self {
            message,
            type_name: relaywire_protocol::Messages::type_name(message),
            payload,
        }
    }
}

impl<C> Fields for OutgoingMessage<'_, C> {
    fn text(&self, key: Key<'_>) -> Option<String> {
        Payload(&self.payload).text(key)
    }
    fn number(&self, key: Key<'_>) -> Option<f64> {
        Payload(&self.payload).number(key)
    }
    fn flag(&self, key: Key<'_>) -> Option<bool> {
        Payload(&self.payload).flag(key)
    }
    fn texts(&self, key: Key<'_>) -> Vec<String> {
        Payload(&self.payload).texts(key)
    }
}

impl<C: ClientMessages> Outgoing<String> for OutgoingMessage<'_, C> {
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn encode(&self, id: Option<&str>) -> Option<String> {
        let envelope = ClientEnvelope {
            id: id.map(str::to_owned),
            message: self.message,
        };
        serde_json::to_string(&envelope).ok()
    }

    fn encode_switched(&self, field: &str, value: bool) -> Option<String> {
        let mut payload = self.payload.clone();
        *payload.get_mut(field)? = Value::Bool(value);
        let switched = C::decode_payload(self.type_name, payload)?.ok()?;
        serde_json::to_string(&ClientEnvelope::<C>::new(switched)).ok()
    }
}
