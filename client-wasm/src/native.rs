//! A native Relaywire client on tokio and tokio-tungstenite, driving the same core as
//! the browser client, for any protocol. Rust services use it to talk to a Relaywire
//! server; the load and chaos tests use it as many clients at once.
//!
//! Join a chat, send to it, and read the stored message back (this runs as a test,
//! against a chat server started by the hidden lines):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = relaywire_tests::Server::start("native-doc", |_| {}).await;
//! # let (url, token) = (server.ws_url(), relaywire_tests::token("ada"));
//! use relaywire_chat::{ChatProtocol, ClientMessage, JoinChat, SendMessage, ServerMessage};
//! use relaywire_client::core::Auth;
//! use relaywire_client::native::{Client, Options, RequestError};
//!
//! // `url` is the server's `ws://` or `wss://` endpoint, `token` a JWT it accepts.
//! let (client, mut messages) = Client::<ChatProtocol>::connect(Options::new(url, Auth::Token(token)));
//! // A chat's messages reach members only: join first.
//! client.request(JoinChat { chat_id: "general".into() }.into()).await?;
//! let hello = SendMessage { chat_id: "general".into(), content: "hi".into() };
//! match client.request(ClientMessage::from(hello)).await {
//!     Ok(ack) => println!("stored as {:?}", ack.message_id),
//!     Err(RequestError::Server { code, .. }) => println!("refused: {code}"),
//!     Err(other) => return Err(other.into()),
//! }
//! while let Some(message) = messages.recv().await {
//!     if let ServerMessage::ChatMessage(created) = message {
//!         println!("{}: {}", created.message.sender_name, created.message.content);
//!         break;
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use relaywire_protocol::control::ServerControl;
use relaywire_protocol::{
    Ack, ClientEnvelope, ClientErrorCode, ErrorCode, Protocol, SUBPROTOCOL, ServerMessages,
};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::core::{
    self, Auth, Command, Core, Event, Fields, Frame, Key, Millis, Outgoing, Rejection, SendError,
    SendMode, Session, SocketId, Status, TokenOutcome,
};

/// A token source failed; the client tries again later, with backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token source is unavailable")]
pub struct TokenUnavailable;

/// Fetches a token: called before every connect, with `true` when the last one was
/// refused as expired. `Ok(None)` means signed out (the client stops, unauthorized);
/// `Err` means try again later.
pub type TokenProvider = Arc<
    dyn Fn(bool) -> Pin<Box<dyn Future<Output = Result<Option<String>, TokenUnavailable>> + Send>>
        + Send
        + Sync,
>;

/// The native client's options: the core's, plus where to connect.
pub struct Options<P> {
    /// `ws://` or `wss://` URL of the server's WebSocket endpoint.
    pub url: String,
    /// Behaviour shared with the browser client.
    pub core: core::Options,
    /// Called for [`Auth::Provider`].
    pub token_provider: Option<TokenProvider>,
    /// Capacity of the message channel [`Client::connect`] returns; when it is full,
    /// reading from the socket waits.
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
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
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

impl From<SendError> for RequestError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Client(code) => RequestError::Client(code),
            SendError::Invalid { code, reason } => RequestError::Invalid { code, reason },
        }
    }
}

/// The connection state, as the native client publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The status.
    pub status: Status,
    /// Retries since the last healthy connection.
    pub attempt: u32,
    /// Messages waiting to be sent or acknowledged.
    pub pending: usize,
    /// The session from `connected`, its rooms kept up to date.
    pub session: Option<Session>,
    /// The last failure's code and close code.
    pub last_error: Option<core::LastError>,
}

type Reply = oneshot::Sender<Result<Ack, RequestError>>;

enum Request<C> {
    Send {
        message: C,
        mode: SendMode,
        reply: Option<Reply>,
        accepted: oneshot::Sender<Result<(), RequestError>>,
    },
    Connect,
    Close(oneshot::Sender<()>),
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
    /// Starts a client on the current tokio runtime. Messages the server sends arrive
    /// on the returned channel, each once: replayed events it has seen are dropped.
    pub fn connect(options: Options<P>) -> (Client<P>, mpsc::Receiver<P::Server>) {
        let (requests, incoming) = mpsc::unbounded_channel();
        let (messages, messages_rx) = mpsc::channel(options.message_buffer.max(1));
        let core = Core::new(options.core.clone());
        let (snapshot_tx, snapshot) = watch::channel(snapshot_of(&core));
        let driver = Driver::<P> {
            core,
            options,
            started: Instant::now(),
            socket: None,
            writer: None,
            opening: None,
            token: None,
            replies: HashMap::new(),
            messages,
            snapshot: snapshot_tx,
        };
        tokio::spawn(driver.run(incoming));
        let client = Client { requests, snapshot };
        let _ = client.requests.send(Request::Connect);
        (client, messages_rx)
    }

    async fn submit(
        &self,
        message: P::Client,
        mode: SendMode,
        reply: Option<Reply>,
    ) -> Result<(), RequestError> {
        let (accepted, accepted_rx) = oneshot::channel();
        self.requests
            .send(Request::Send {
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
        let _ = self.requests.send(Request::Connect);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every snapshot change.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// Waits until the status is `status`, up to `limit`.
    pub async fn wait_for(&self, status: Status, limit: Duration) -> Result<Snapshot, Snapshot> {
        let mut watch = self.snapshot.clone();
        let result = tokio::time::timeout(limit, watch.wait_for(|s| s.status == status)).await;
        match result {
            Ok(Ok(snapshot)) => Ok(snapshot.clone()),
            _ => Err(self.snapshot()),
        }
    }

    /// Closes the client: waiting messages are rejected with `CLIENT_CLOSED`.
    pub async fn close(&self) {
        let (done, done_rx) = oneshot::channel();
        if self.requests.send(Request::Close(done)).is_ok() {
            let _ = done_rx.await;
        }
    }
}

fn snapshot_of<F: Clone + core::FrameSize, M: Clone>(core: &Core<F, M>) -> Snapshot {
    Snapshot {
        status: core.status(),
        attempt: core.attempt(),
        pending: core.pending(),
        session: core.session().cloned(),
        last_error: core.last_error().cloned(),
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

impl<'a, C: relaywire_protocol::ClientMessages> OutgoingMessage<'a, C> {
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

impl<C: relaywire_protocol::ClientMessages> Outgoing<String> for OutgoingMessage<'_, C> {
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

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Opening = Pin<Box<dyn Future<Output = Result<Socket, tungstenite::Error>> + Send>>;
type Fetching = Pin<Box<dyn Future<Output = Result<Option<String>, TokenUnavailable>> + Send>>;

struct Driver<P: Protocol> {
    core: Core<String, P::Server>,
    options: Options<P>,
    started: Instant,
    socket: Option<(SocketId, SplitStream<Socket>)>,
    writer: Option<(SocketId, SplitSink<Socket, Message>)>,
    opening: Option<(SocketId, Opening)>,
    token: Option<(u32, Fetching)>,
    replies: HashMap<String, Reply>,
    messages: mpsc::Sender<P::Server>,
    snapshot: watch::Sender<Snapshot>,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The server's URL with the core's parameters, percent-encoded.
fn url_with(base: &str, params: &[(&'static str, String)]) -> String {
    let Ok(mut url) = url::Url::parse(base) else {
        return base.to_owned();
    };
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
    }
    url.into()
}

impl<P: Protocol> Driver<P> {
    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request<P::Client>>) {
        loop {
            let deadline = self
                .core
                .next_deadline()
                .map(|at| self.started + Duration::from_millis(at));
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Close(done)) => {
                        self.handle(Event::Close).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(request) => self.request(request).await,
                    None => {
                        self.handle(Event::Close).await;
                        return;
                    }
                },
                frame = next_frame(&mut self.socket) => self.received(frame).await,
                opened = open_progress(&mut self.opening) => self.opened(opened).await,
                token = token_progress(&mut self.token) => {
                    let (fetch, result) = token;
                    self.token = None;
                    let now = self.now();
                    let outcome = TokenOutcome::from_fetch(
                        result.as_ref().map(Option::as_deref).map_err(|_| ()),
                        now,
                        epoch_ms(),
                    );
                    self.handle(Event::Token { fetch, outcome }).await;
                }
                _ = sleep_until(deadline) => self.handle(Event::Timer).await,
            }
        }
    }

    async fn request(&mut self, request: Request<P::Client>) {
        match request {
            Request::Send {
                message,
                mode,
                reply,
                accepted,
            } => {
                let now = self.now();
                let outgoing = OutgoingMessage::new(&message);
                let result = self.core.send(now, &outgoing, mode);
                let result = match (result, reply) {
                    (Ok(Some(id)), Some(reply)) => {
                        self.replies.insert(id, reply);
                        Ok(())
                    }
                    (Ok(_), _) => Ok(()),
                    (Err(err), _) => Err(err.into()),
                };
                let _ = accepted.send(result);
                self.execute().await;
            }
            Request::Connect => self.handle(Event::Connect).await,
            Request::Close(_) => {}
        }
    }

    async fn handle(&mut self, event: Event<'_, P::Server>) {
        let now = self.now();
        self.core.handle(now, event);
        self.execute().await;
    }

    async fn received(&mut self, frame: Option<Result<Message, tungstenite::Error>>) {
        let Some((socket, _)) = &self.socket else {
            return;
        };
        let socket = *socket;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                let code = close.map_or(relaywire_protocol::CloseCode::NoStatus, |frame| {
                    u16::from(frame.code).into()
                });
                self.socket = None;
                self.writer = None;
                self.handle(Event::Closed { socket, code }).await;
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(_)) | None => {
                self.socket = None;
                self.writer = None;
                let code = relaywire_protocol::CloseCode::Abnormal;
                self.handle(Event::Closed { socket, code }).await;
                return;
            }
        };
        // The envelope once as JSON, for the core's fields and the typed message.
        let value: Option<Value> = serde_json::from_str(&text).ok();
        let typed = value
            .as_ref()
            .and_then(|value| serde_json::from_value::<P::Server>(value.clone()).ok());
        let Some((value, message)) = value.zip(typed) else {
            // Not a message: it still proves the connection alive.
            self.handle(Event::Traffic { socket }).await;
            return;
        };
        let payload = value.get("payload").unwrap_or(&Value::Null);
        let type_name = value.get("type").and_then(Value::as_str);
        let inbound = core::read(self.core.descriptor(), type_name, &Payload(payload));
        self.handle(Event::Message {
            socket,
            inbound,
            message,
        })
        .await;
    }

    async fn opened(&mut self, opened: (SocketId, Result<Socket, tungstenite::Error>)) {
        self.opening = None;
        let (socket, result) = opened;
        match result {
            Ok(stream) => {
                let (sink, stream) = stream.split();
                self.writer = Some((socket, sink));
                self.socket = Some((socket, stream));
                self.handle(Event::Opened(socket)).await;
            }
            Err(_) => {
                let code = relaywire_protocol::CloseCode::Abnormal;
                self.handle(Event::Closed { socket, code }).await
            }
        }
    }

    async fn execute(&mut self) {
        let mut publish = false;
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Open { socket, params } => {
                    self.socket = None;
                    self.writer = None;
                    let url = url_with(&self.options.url, &params);
                    let connect: Opening = Box::pin(async move {
                        let mut request = url.into_client_request()?;
                        request.headers_mut().insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_static(SUBPROTOCOL),
                        );
                        tokio_tungstenite::connect_async(request)
                            .await
                            .map(|(s, _)| s)
                    });
                    self.opening = Some((socket, connect));
                }
                Command::Send { socket, frame } => {
                    let text = match frame {
                        Frame::App(text) | Frame::Control(text) => text,
                    };
                    if let Some((current, sink)) = &mut self.writer
                        && *current == socket
                    {
                        // A failed write shows up as a read error next.
                        let _ = sink.send(Message::text(text)).await;
                    }
                }
                Command::CloseSocket {
                    socket,
                    code,
                    reason,
                } => {
                    if let Some((current, mut sink)) = self.writer.take() {
                        if current == socket {
                            let frame = CloseFrame {
                                code: code.code().into(),
                                reason: reason.into(),
                            };
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                sink.send(Message::Close(Some(frame))),
                            )
                            .await;
                            self.socket = None;
                        } else {
                            self.writer = Some((current, sink));
                        }
                    }
                    if self.opening.as_ref().is_some_and(|(id, _)| *id == socket) {
                        self.opening = None;
                    }
                }
                Command::FetchToken {
                    fetch,
                    force_refresh,
                } => {
                    let future: Fetching = match &self.options.token_provider {
                        Some(provider) => provider(force_refresh),
                        None => Box::pin(async { Ok(None) }),
                    };
                    self.token = Some((fetch, future));
                }
                Command::Deliver { message, .. } => {
                    // Waits when the application reads slowly: back-pressure reaches
                    // the socket.
                    let _ = self.messages.send(message).await;
                }
                Command::Resolve { id, reply } => {
                    if let (Some(waiting), Some(ServerControl::Ack(ack))) =
                        (self.replies.remove(&id), reply.control())
                    {
                        let _ = waiting.send(Ok(ack.clone()));
                    }
                }
                Command::Reject { id, reason } => {
                    let Some(waiting) = self.replies.remove(&id) else {
                        continue;
                    };
                    let error = match reason {
                        Rejection::Server { code, reply } => RequestError::Server {
                            message: match reply.control() {
                                Some(ServerControl::Error(error)) => error.message.clone(),
                                _ => String::new(),
                            },
                            code,
                        },
                        Rejection::Client(code) => RequestError::Client(code),
                    };
                    let _ = waiting.send(Err(error));
                }
                Command::Publish => publish = true,
            }
        }
        if publish {
            self.snapshot.send_replace(snapshot_of(&self.core));
        }
    }
}

async fn next_frame(
    socket: &mut Option<(SocketId, SplitStream<Socket>)>,
) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some((_, stream)) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn open_progress(
    opening: &mut Option<(SocketId, Opening)>,
) -> (SocketId, Result<Socket, tungstenite::Error>) {
    match opening {
        Some((socket, future)) => {
            let result = future.await;
            (*socket, result)
        }
        None => std::future::pending().await,
    }
}

async fn token_progress(
    token: &mut Option<(u32, Fetching)>,
) -> (u32, Result<Option<String>, TokenUnavailable>) {
    match token {
        Some((fetch, future)) => {
            let token = future.await;
            (*fetch, token)
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
