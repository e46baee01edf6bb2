//! A native Relaywire client on tokio and tokio-tungstenite, driving the same core as
//! the browser clients, for any protocol. Rust services use it to talk to a Relaywire
//! server; the load and chaos tests use it as many clients at once. Its API is the
//! browser's typed Rust client's (`web`): the same [`Client`], options, errors and
//! message stream.
//!
//! Join a chat, send to it, and read the stored message back (this runs as a test,
//! against a chat server started by the hidden lines):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = relaywire_tests::Server::start("native-doc", |_| {}).await;
//! # let (url, token) = (server.ws_url(), relaywire_tests::token("ada"));
//! use relaywire_chat::{ChatProtocol, ServerMessage};
//! use relaywire_client::core::Auth;
//! use relaywire_client::native::{Client, Options, RequestError};
//!
//! // `url` is the server's `ws://` or `wss://` endpoint, `token` a JWT it accepts.
//! let options = Options::<ChatProtocol>::new(url, Auth::Token(token));
//! let (client, mut messages) = Client::connect(options)?;
//! // A chat's messages reach members only: join first. (`join_chat` and
//! // `send_chat_message` are the `chat` feature's helpers.)
//! client.join_chat("general").await?;
//! match client.send_chat_message("general", "hi").await {
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

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use relaywire_protocol::{CLIENT_SUBPROTOCOLS, CloseCode, Protocol, Wire, join_batches};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::core::{Event, Millis, SocketId};
pub use crate::typed::{
    Client, InvalidOptions, MaybeSend, MaybeSync, Messages, Options, RequestError, Snapshot,
    TokenFuture, TokenProvider, TokenResult, TokenUnavailable,
};
use crate::typed::{Io, Received, Request, TypedCore, waiting};

impl<P: Protocol> Client<P> {
    /// Starts a client on the current tokio runtime. Messages the server sends arrive
    /// on the returned stream, each once: replayed events it has seen are dropped.
    ///
    /// The URL must be `ws://`, `wss://`, `http://` or `https://` (the last two
    /// connect with `ws://` and `wss://`).
    pub fn connect(
        options: Options<P>,
    ) -> Result<(Client<P>, Messages<P::Server>), InvalidOptions> {
        let url = endpoint(&options.url)?;
        let (typed, client, messages, requests) = TypedCore::new(&options);
        let driver = Driver::<P> {
            typed,
            url,
            started: Instant::now(),
            socket: None,
            writer: None,
            opening: None,
            token: None,
        };
        tokio::spawn(driver.run(requests));
        Ok((client, messages))
    }
}

/// The WebSocket endpoint `url` names.
fn endpoint(url: &str) -> Result<url::Url, InvalidOptions> {
    let invalid = InvalidOptions {
        reason: "`url` must be a ws:, wss:, http: or https: URL",
    };
    let mut url = url::Url::parse(url).map_err(|_| invalid.clone())?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(invalid),
    };
    url.set_scheme(scheme).map_err(|()| invalid)?;
    Ok(url)
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The socket's read buffer to start with. tungstenite zero-fills the whole buffer
/// before every read (128 KiB by default), which costs more than reading a frame of a
/// few KiB: the benchmark's load generator, reading the same way, spent a third of its
/// CPU on that fill. A larger frame grows the buffer.
const READ_BUFFER: usize = 8 * 1024;

/// An open socket, and the protocol version its server chose.
type Opened = (Socket, Wire);
type Opening = Pin<Box<dyn Future<Output = Result<Opened, tungstenite::Error>> + Send>>;

struct Driver<P: Protocol> {
    typed: TypedCore<P>,
    url: url::Url,
    started: Instant,
    socket: Option<(SocketId, SplitStream<Socket>)>,
    writer: Option<Writer>,
    opening: Option<(SocketId, Opening)>,
    token: Option<(u32, TokenFuture)>,
}

/// The sending half of the current socket.
struct Writer {
    socket: SocketId,
    sink: SplitSink<Socket, Message>,
    /// The server speaks protocol 3: frames sent together travel as one batch.
    batches: bool,
    /// Frames sent together, written once the requests and events at hand are handled.
    outgoing: Vec<String>,
}

impl<P: Protocol> Driver<P> {
    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request<P::Client>>) {
        loop {
            let deadline = self
                .typed
                .next_deadline()
                .map(|at| self.started + Duration::from_millis(at));
            tokio::select! {
                mut request = requests.next() => loop {
                    let now = self.now();
                    let closed = self.typed.request(now, request);
                    self.execute().await;
                    if let Some(done) = closed {
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    match waiting(&mut requests) {
                        Some(next) => request = next,
                        None => break,
                    }
                },
                frame = next_frame(&mut self.socket) => self.received(frame).await,
                opened = open_progress(&mut self.opening) => self.opened(opened).await,
                token = token_progress(&mut self.token) => {
                    let (fetch, result) = token;
                    self.token = None;
                    let now = self.now();
                    self.typed.token(now, fetch, &result);
                    self.execute().await;
                }
                _ = sleep_until(deadline) => self.handle(Event::Timer).await,
            }
            self.flush().await;
        }
    }

    /// Writes what waits, as few batch frames as fit the server's limit, in one flush.
    async fn flush(&mut self) {
        let max = self.typed.max_frame_bytes();
        let Some(writer) = &mut self.writer else {
            return;
        };
        if writer.outgoing.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut writer.outgoing);
        let write = async {
            for frame in join_batches(frames, max) {
                writer.sink.feed(Message::text(frame)).await?;
            }
            writer.sink.flush().await
        };
        // A failed write shows up as a read error next.
        let _ = write.await;
    }

    async fn handle(&mut self, event: Event<'_, Received<P::Server>>) {
        let now = self.now();
        self.typed.handle(now, event);
        self.execute().await;
    }

    async fn received(&mut self, frame: Option<Result<Message, tungstenite::Error>>) {
        let Some((socket, _)) = &self.socket else {
            return;
        };
        let socket = *socket;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let now = self.now();
                self.typed.received(now, socket, &text);
                self.execute().await;
            }
            Some(Ok(Message::Close(close))) => {
                let code = close.map_or(CloseCode::NoStatus, |frame| u16::from(frame.code).into());
                self.socket = None;
                self.writer = None;
                self.handle(Event::Closed { socket, code }).await;
            }
            // Pings, pongs and binary frames prove the connection alive.
            Some(Ok(_)) => self.handle(Event::Traffic { socket }).await,
            Some(Err(_)) | None => {
                self.socket = None;
                self.writer = None;
                let code = CloseCode::Abnormal;
                self.handle(Event::Closed { socket, code }).await;
            }
        }
    }

    async fn opened(&mut self, opened: (SocketId, Result<Opened, tungstenite::Error>)) {
        self.opening = None;
        let (socket, result) = opened;
        match result {
            Ok((stream, wire)) => {
                let (sink, stream) = stream.split();
                self.writer = Some(Writer {
                    socket,
                    sink,
                    batches: wire.batches(),
                    outgoing: Vec::new(),
                });
                self.socket = Some((socket, stream));
                self.handle(Event::Opened(socket, wire)).await;
            }
            Err(_) => {
                let code = CloseCode::Abnormal;
                self.handle(Event::Closed { socket, code }).await
            }
        }
    }

    async fn execute(&mut self) {
        while let Some(io) = self.typed.next_io().await {
            match io {
                Io::Open { socket, params } => {
                    self.socket = None;
                    self.writer = None;
                    let mut url = self.url.clone();
                    if !params.is_empty() {
                        let mut query = url.query_pairs_mut();
                        for (key, value) in &params {
                            query.append_pair(key, value);
                        }
                    }
                    let connect: Opening = Box::pin(async move {
                        let mut request = url.as_str().into_client_request()?;
                        // The current version first; a server of the one before picks it.
                        let offered = CLIENT_SUBPROTOCOLS.join(", ");
                        if let Ok(offered) = HeaderValue::from_str(&offered) {
                            request
                                .headers_mut()
                                .insert("sec-websocket-protocol", offered);
                        }
                        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
                        let (socket, response) = tokio_tungstenite::connect_async_with_config(
                            request,
                            Some(config),
                            false,
                        )
                        .await?;
                        let chosen = response.headers().get("sec-websocket-protocol");
                        let chosen = chosen.and_then(|chosen| chosen.to_str().ok());
                        Ok((socket, Wire::negotiated(chosen)))
                    });
                    self.opening = Some((socket, connect));
                }
                Io::Send { socket, text } => match &mut self.writer {
                    Some(writer) if writer.socket == socket && writer.batches => {
                        writer.outgoing.push(text);
                    }
                    Some(writer) if writer.socket == socket => {
                        // A failed write shows up as a read error next.
                        let _ = writer.sink.send(Message::text(text)).await;
                    }
                    _ => {}
                },
                Io::Close {
                    socket,
                    code,
                    reason,
                } => {
                    if self
                        .writer
                        .as_ref()
                        .is_some_and(|writer| writer.socket == socket)
                    {
                        // What waited goes before the close.
                        self.flush().await;
                    }
                    if let Some(mut writer) = self.writer.take() {
                        if writer.socket == socket {
                            let frame = CloseFrame {
                                code: code.code().into(),
                                reason: reason.into(),
                            };
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                writer.sink.send(Message::Close(Some(frame))),
                            )
                            .await;
                            self.socket = None;
                        } else {
                            self.writer = Some(writer);
                        }
                    }
                    if self.opening.as_ref().is_some_and(|(id, _)| *id == socket) {
                        self.opening = None;
                    }
                }
                Io::FetchToken {
                    fetch,
                    force_refresh,
                } => {
                    self.token = Some((fetch, self.typed.fetch_token(force_refresh)));
                }
            }
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
) -> (SocketId, Result<Opened, tungstenite::Error>) {
    match opening {
        Some((socket, future)) => {
            let result = future.await;
            (*socket, result)
        }
        None => std::future::pending().await,
    }
}

async fn token_progress(token: &mut Option<(u32, TokenFuture)>) -> (u32, TokenResult) {
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
