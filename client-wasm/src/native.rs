//! A native Relaywire client on tokio and tokio-tungstenite, driving the same core as
//! the browser client. Rust services use it to talk to a Relaywire server; the load
//! and chaos tests use it as many clients at once.
//!
//! ```no_run
//! # async fn run() -> Result<(), relaywire_client::native::RequestError> {
//! use relaywire_client::core::Auth;
//! use relaywire_client::native::{Client, Options};
//! use relaywire_protocol::{ClientMessage, SendMessage, ServerMessage};
//!
//! let (client, mut messages) = Client::connect(Options::new("ws://127.0.0.1:8080/ws", Auth::Token("eyJ...".into())));
//! let ack = client
//!     .request(ClientMessage::from(SendMessage { chat_id: "general".into(), content: "hi".into() }))
//!     .await?;
//! println!("stored as {:?}", ack.message_id);
//! while let Some(message) = messages.recv().await {
//!     if let ServerMessage::ChatMessage(created) = message {
//!         println!("{}: {}", created.message.sender_name, created.message.content);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use relaywire_protocol::{
    AUTH_BY_MESSAGE, Ack, ClientEnvelope, ClientErrorCode, ClientMessage, ErrorCode, RESUME_PARAM,
    SUBPROTOCOL, ServerMessage, decode_server_message, encode,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::core::{
    self, Auth, Command, Core, Effect, Event, Frame, Inbound, Millis, Outgoing, Rejection, Session,
    SocketId, Status, TokenOutcome,
};

/// Fetches a token: called before every connect, with `true` when the last one was
/// refused as expired.
pub type TokenProvider =
    Arc<dyn Fn(bool) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// The native client's options: the core's, plus where to connect.
#[derive(Clone)]
pub struct Options {
    /// `ws://` or `wss://` URL of the server's WebSocket endpoint.
    pub url: String,
    /// Behaviour shared with the browser client.
    pub core: core::Options,
    /// Called for [`Auth::Provider`].
    pub token_provider: Option<TokenProvider>,
    /// Capacity of the message channel [`Client::connect`] returns; when it is full,
    /// reading from the socket waits.
    pub message_buffer: usize,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("core", &self.core)
            .field("message_buffer", &self.message_buffer)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Defaults for `url` with `auth`.
    pub fn new(url: impl Into<String>, auth: Auth) -> Self {
        Self {
            url: url.into(),
            core: core::Options {
                auth,
                seed: seed(),
                ..core::Options::default()
            },
            token_provider: None,
            message_buffer: 1024,
        }
    }
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Why a request failed.
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
    /// The message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(String),
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
    /// The session from `connected`.
    pub session: Option<Session>,
    /// The last failure's code and close code.
    pub last_error: Option<core::LastError>,
}

enum Request {
    Send {
        message: ClientMessage,
        reply: Option<oneshot::Sender<Result<Ack, RequestError>>>,
        timeout: Option<Duration>,
        accepted: oneshot::Sender<Result<(), RequestError>>,
    },
    Typing {
        chat_id: String,
        is_typing: bool,
    },
    Connect,
    Close(oneshot::Sender<()>),
}

/// A handle on a running client; cheap to clone. The client stops when every handle
/// is dropped or [`Client::close`] is called.
#[derive(Debug, Clone)]
pub struct Client {
    requests: mpsc::UnboundedSender<Request>,
    snapshot: watch::Receiver<Snapshot>,
}

impl Client {
    /// Starts a client on the current tokio runtime. Messages the server sends arrive
    /// on the returned channel.
    pub fn connect(options: Options) -> (Client, mpsc::Receiver<ServerMessage>) {
        let (requests, incoming) = mpsc::unbounded_channel();
        let (messages, messages_rx) = mpsc::channel(options.message_buffer.max(1));
        let core = Core::new(options.core.clone());
        let (snapshot_tx, snapshot) = watch::channel(snapshot_of(&core));
        let driver = Driver {
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
            current_ack: None,
        };
        tokio::spawn(driver.run(incoming));
        let client = Client { requests, snapshot };
        let _ = client.requests.send(Request::Connect);
        (client, messages_rx)
    }

    async fn submit(
        &self,
        message: ClientMessage,
        reply: Option<oneshot::Sender<Result<Ack, RequestError>>>,
        timeout: Option<Duration>,
    ) -> Result<(), RequestError> {
        let (accepted, accepted_rx) = oneshot::channel();
        self.requests
            .send(Request::Send {
                message,
                reply,
                timeout,
                accepted,
            })
            .map_err(|_| RequestError::Client(ClientErrorCode::ClientClosed))?;
        accepted_rx
            .await
            .unwrap_or(Err(RequestError::Client(ClientErrorCode::ClientClosed)))
    }

    /// Sends a message, now or once connected; it stays in the outbox until
    /// acknowledged and survives reconnects. Returns once the client accepted it.
    pub async fn send(&self, message: ClientMessage) -> Result<(), RequestError> {
        self.submit(message, None, None).await
    }

    /// Sends a message and waits for its `ack` (or `error`, or the default timeout).
    pub async fn request(&self, message: ClientMessage) -> Result<Ack, RequestError> {
        self.request_within(message, None).await
    }

    /// Like [`Client::request`] with its own timeout.
    pub async fn request_within(
        &self,
        message: ClientMessage,
        timeout: Option<Duration>,
    ) -> Result<Ack, RequestError> {
        let (reply, reply_rx) = oneshot::channel();
        self.submit(message, Some(reply), timeout).await?;
        reply_rx
            .await
            .unwrap_or(Err(RequestError::Client(ClientErrorCode::ClientClosed)))
    }

    /// Starts or stops the typing indicator; the stop follows by itself.
    pub fn set_typing(&self, chat_id: &str, is_typing: bool) {
        let _ = self.requests.send(Request::Typing {
            chat_id: chat_id.to_owned(),
            is_typing,
        });
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

fn snapshot_of<F: Clone>(core: &Core<F>) -> Snapshot {
    Snapshot {
        status: core.status(),
        attempt: core.attempt(),
        pending: core.pending(),
        session: core.session().cloned(),
        last_error: core.last_error().cloned(),
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Opening = Pin<Box<dyn Future<Output = Result<Socket, tungstenite::Error>> + Send>>;
type Fetching = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

struct Driver {
    core: Core<String>,
    options: Options,
    started: Instant,
    socket: Option<(SocketId, SplitStream<Socket>)>,
    writer: Option<(SocketId, SplitSink<Socket, Message>)>,
    opening: Option<(SocketId, Opening)>,
    token: Option<(u32, Fetching)>,
    replies: HashMap<String, oneshot::Sender<Result<Ack, RequestError>>>,
    messages: mpsc::Sender<ServerMessage>,
    snapshot: watch::Sender<Snapshot>,
    /// The `ack` or `error` being handled, for the reply it settles.
    current_ack: Option<ServerMessage>,
}

fn inbound(message: &ServerMessage) -> Inbound<'_> {
    match message {
        ServerMessage::Connected(connected) => Inbound::Connected(Session {
            user_id: connected.user_id.clone(),
            user_name: connected.user_name.clone(),
            chat_ids: connected.chat_ids.clone(),
            online_user_ids: connected.online_user_ids.clone().unwrap_or_default(),
            heartbeat_interval_ms: connected.heartbeat_interval_ms,
            typing_timeout_ms: connected.typing_timeout_ms,
            max_message_bytes: connected.max_message_bytes,
            seq: connected.seq.map(|seq| seq.get()),
        }),
        ServerMessage::Ack(ack) => Inbound::Ack { id: &ack.id },
        ServerMessage::Error(error) => Inbound::Error {
            id: error.id.as_deref(),
            code: error.code.as_str(),
        },
        ServerMessage::UserOnline(presence) => Inbound::Presence {
            user_id: &presence.user_id,
            online: presence.online,
        },
        _ => Inbound::Other,
    }
}

impl Driver {
    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
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
                    let (fetch, token) = token;
                    self.token = None;
                    let outcome = match &token {
                        Some(token) if !token.is_empty() => TokenOutcome::Token { token, expires_at: None },
                        _ => TokenOutcome::SignedOut,
                    };
                    self.handle(Event::Token { fetch, outcome }).await;
                }
                _ = sleep_until(deadline) => self.handle(Event::Timer).await,
            }
        }
    }

    async fn request(&mut self, request: Request) {
        match request {
            Request::Send {
                message,
                reply,
                timeout,
                accepted,
            } => {
                let result = self.send(message, reply, timeout);
                let _ = accepted.send(result);
                self.execute().await;
            }
            Request::Typing { chat_id, is_typing } => {
                let now = self.now();
                self.core.set_typing(now, &chat_id, is_typing);
                self.execute().await;
            }
            Request::Connect => self.handle(Event::Connect).await,
            Request::Close(_) => {}
        }
    }

    fn send(
        &mut self,
        message: ClientMessage,
        reply: Option<oneshot::Sender<Result<Ack, RequestError>>>,
        timeout: Option<Duration>,
    ) -> Result<(), RequestError> {
        let effect = match &message {
            ClientMessage::ChatJoin(join) => Effect::Join(join.chat_id.clone()),
            ClientMessage::ChatLeave(leave) => Effect::Leave(leave.chat_id.clone()),
            _ => Effect::None,
        };
        let tracked = !matches!(
            message,
            ClientMessage::Ping(_) | ClientMessage::ChatTyping(_)
        );
        let id = tracked.then(|| self.core.next_id());
        let envelope = ClientEnvelope {
            id: id.clone(),
            message,
        };
        let frame = encode(&envelope).map_err(|err| RequestError::Encode(err.to_string()))?;
        if frame.len() > self.core.max_message_bytes() {
            return Err(RequestError::Server {
                code: ErrorCode::MessageTooLarge,
                message: "the message is larger than the server accepts".to_owned(),
            });
        }
        let timeout_ms = match (&reply, timeout) {
            (Some(_), Some(timeout)) => Some(timeout.as_millis().min(u128::from(u32::MAX)) as u32),
            (Some(_), None) => Some(self.core.default_request_timeout_ms()),
            (None, _) => None,
        };
        let now = self.now();
        self.core
            .send(
                now,
                Outgoing {
                    id: id.clone(),
                    frame,
                    timeout_ms,
                    effect,
                },
            )
            .map_err(RequestError::Client)?;
        if let (Some(id), Some(reply)) = (id, reply) {
            self.replies.insert(id, reply);
        }
        Ok(())
    }

    async fn handle(&mut self, event: Event<'_>) {
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
                let code = close.map_or(1005, |frame| u16::from(frame.code));
                self.socket = None;
                self.writer = None;
                self.handle(Event::Closed { socket, code }).await;
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(_)) | None => {
                self.socket = None;
                self.writer = None;
                self.handle(Event::Closed { socket, code: 1006 }).await;
                return;
            }
        };
        let Ok(message) = decode_server_message(&text) else {
            self.handle(Event::Message {
                socket,
                inbound: Inbound::Other,
            })
            .await;
            return;
        };
        let now = self.now();
        self.core.handle(
            now,
            Event::Message {
                socket,
                inbound: inbound(&message),
            },
        );
        if matches!(message, ServerMessage::Ack(_) | ServerMessage::Error(_)) {
            self.current_ack = Some(message.clone());
        }
        self.execute().await;
        self.current_ack = None;
        // A replayed event this client saw already is not handed over twice.
        if let Some(seq) = message.seq()
            && !self.core.admit(seq.get())
        {
            return;
        }
        // Waits when the application reads slowly: back-pressure reaches the socket.
        let _ = self.messages.send(message).await;
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
            Err(_) => self.handle(Event::Closed { socket, code: 1006 }).await,
        }
    }

    fn url(&self, token: Option<&str>, resume_after: Option<u64>) -> String {
        let mut params = Vec::new();
        if let Some(seq) = resume_after {
            params.push(format!("{RESUME_PARAM}={seq}"));
        }
        match token {
            Some(token) => params.push(format!("token={token}")),
            None if self.options.core.auth != Auth::Cookie => {
                let (key, value) = AUTH_BY_MESSAGE;
                params.push(format!("{key}={value}"));
            }
            None => {}
        }
        if params.is_empty() {
            return self.options.url.clone();
        }
        let separator = if self.options.url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}{}", self.options.url, params.join("&"))
    }

    async fn execute(&mut self) {
        let mut publish = false;
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Open {
                    socket,
                    token,
                    resume_after,
                } => {
                    self.socket = None;
                    self.writer = None;
                    let url = self.url(token.as_deref(), resume_after);
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
                                code: code.into(),
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
                        None => Box::pin(async { None }),
                    };
                    self.token = Some((fetch, future));
                }
                Command::Resolve { id } => {
                    if let (Some(reply), Some(ServerMessage::Ack(ack))) =
                        (self.replies.remove(&id), &self.current_ack)
                    {
                        let _ = reply.send(Ok(ack.clone()));
                    }
                }
                Command::Reject { id, reason } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let error = match (reason, &self.current_ack) {
                            (Rejection::Server(_), Some(ServerMessage::Error(error))) => {
                                RequestError::Server {
                                    code: error.code.clone(),
                                    message: error.message.clone(),
                                }
                            }
                            (Rejection::Server(code), _) => RequestError::Server {
                                code: ErrorCode::from_wire(&code),
                                message: String::new(),
                            },
                            (Rejection::Client(code), _) => RequestError::Client(code),
                        };
                        let _ = reply.send(Err(error));
                    }
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

async fn token_progress(token: &mut Option<(u32, Fetching)>) -> (u32, Option<String>) {
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
