//! The browser driver of the typed Rust client: web-sys's WebSocket, the page's events
//! through gloo-events, one gloo-timers timeout for the core's next deadline, and a
//! task on the page's event loop (`spawn_local`) that feeds the core what happens.
//!
//! It drives `web_sys::WebSocket` directly rather than gloo-net's socket: gloo-net's
//! stream hides the close code and cannot close a split socket with one, and the close
//! code is what the core's reconnect policy acts on.

use std::future::poll_fn;
use std::task::Poll;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use relaywire_protocol::{CLIENT_SUBPROTOCOLS, CloseCode, Protocol, Wire, join_batches};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, MessageEvent, Url, VisibilityState, WebSocket};

use crate::core::{Event, Millis, SocketId};
use crate::typed::{
    Client, InvalidOptions, Io, Messages, Options, Received, Request, TokenResult, TypedCore,
    waiting,
};

/// Something that happened outside the driver's task: on a socket, on the page, or to
/// a token fetch.
enum Signal {
    Opened(SocketId),
    Frame(SocketId, String),
    /// A frame that is not text: it proves the connection alive.
    Traffic(SocketId),
    Closed(SocketId, CloseCode),
    Token(u32, TokenResult),
    Online,
    Offline,
    Visible,
}

/// The socket the core asked for, with its listeners; dropping it removes them.
struct Socket {
    id: SocketId,
    ws: WebSocket,
    /// The server speaks protocol 3: frames sent together travel as one batch.
    batches: bool,
    _listeners: [EventListener; 3],
}

struct Driver<P: Protocol> {
    typed: TypedCore<P>,
    url: Url,
    socket: Option<Socket>,
    signals: mpsc::UnboundedSender<Signal>,
    /// Online, offline and visibility listeners, removed when the driver ends.
    _page: Vec<EventListener>,
    /// The timeout for the core's next deadline, and that deadline.
    timer: Option<(Millis, TimeoutFuture)>,
    /// Frames for a protocol 3 socket, sent as batches once the requests and events at
    /// hand are handled.
    outgoing: Vec<String>,
}

/// What woke the driver.
enum Wake<C> {
    Request(Option<Request<C>>),
    Signal(Signal),
    Timer,
}

/// The core's clock: milliseconds of `performance.now()` (the page's monotonic clock),
/// or of the wall clock where there is none.
fn now() -> Millis {
    thread_local! {
        static PERFORMANCE: Option<web_sys::Performance> =
            js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
                .ok()
                .and_then(|performance| performance.dyn_into().ok());
    }
    let ms = PERFORMANCE.with(|performance| match performance {
        Some(performance) => performance.now(),
        None => js_sys::Date::now(),
    });
    ms.max(0.0) as Millis
}

/// The WebSocket endpoint `url` names: a `ws:` or `wss:` URL, `http:` or `https:`
/// (connected with `ws:` and `wss:`), or a path resolved against the page.
fn endpoint(url: &str) -> Result<Url, InvalidOptions> {
    let page = web_sys::window().and_then(|window| window.location().href().ok());
    let resolved = match &page {
        Some(page) => Url::new_with_base(url, page),
        None => Url::new(url),
    };
    let url = resolved.map_err(|_| InvalidOptions {
        reason: "`url` must be a ws:, wss:, http: or https: URL, or a path on the page's server",
    })?;
    match url.protocol().as_str() {
        "ws:" | "wss:" => {}
        "http:" => url.set_protocol("ws:"),
        "https:" => url.set_protocol("wss:"),
        _ => {
            return Err(InvalidOptions {
                reason: "`url` must be a ws:, wss:, http: or https: URL, or a path on the page's server",
            });
        }
    }
    Ok(url)
}

/// Listens to the page's online, offline and visibility events, where there is a
/// page (a worker has none of them).
fn page_listeners(signals: &mpsc::UnboundedSender<Signal>) -> Vec<EventListener> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    let signal = |make: fn() -> Signal| {
        let signals = signals.clone();
        move |_: &web_sys::Event| {
            let _ = signals.unbounded_send(make());
        }
    };
    let mut listeners = vec![
        EventListener::new(&window, "online", signal(|| Signal::Online)),
        EventListener::new(&window, "offline", signal(|| Signal::Offline)),
    ];
    if let Some(document) = window.document() {
        let signals = signals.clone();
        let visible = document.clone();
        listeners.push(EventListener::new(
            &document,
            "visibilitychange",
            move |_| {
                if visible.visibility_state() == VisibilityState::Visible {
                    let _ = signals.unbounded_send(Signal::Visible);
                }
            },
        ));
    }
    listeners
}

/// Starts a client on the page's event loop.
pub(super) fn start<P: Protocol>(
    options: Options<P>,
) -> Result<(Client<P>, Messages<P::Server>), InvalidOptions> {
    let url = endpoint(&options.url)?;
    let (typed, client, messages, requests) = TypedCore::new(&options);
    let (signals, signals_rx) = mpsc::unbounded();
    let offline = web_sys::window().is_some_and(|window| !window.navigator().on_line());
    if offline {
        let _ = signals.unbounded_send(Signal::Offline);
    }
    let driver = Driver {
        typed,
        url,
        socket: None,
        _page: page_listeners(&signals),
        signals,
        timer: None,
        outgoing: Vec::new(),
    };
    wasm_bindgen_futures::spawn_local(driver.run(requests, signals_rx));
    Ok((client, messages))
}

impl<P: Protocol> Driver<P> {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request<P::Client>>,
        mut signals: mpsc::UnboundedReceiver<Signal>,
    ) {
        loop {
            self.arm_timer();
            let timer = &mut self.timer;
            let wake = poll_fn(|cx| {
                if let Poll::Ready(request) = requests.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Request(request));
                }
                if let Poll::Ready(Some(signal)) = signals.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Signal(signal));
                }
                if let Some((_, timeout)) = timer
                    && timeout.poll_unpin(cx).is_ready()
                {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Request(mut request) => loop {
                    let closed = self.typed.request(now(), request);
                    self.execute().await;
                    if let Some(done) = closed {
                        // The socket is closed; the listeners and the timer go with the
                        // driver, before the caller hears it is done.
                        drop(self);
                        let _ = done.send(());
                        return;
                    }
                    match waiting(&mut requests) {
                        Some(next) => request = next,
                        None => break,
                    }
                },
                Wake::Signal(signal) => self.signal(signal).await,
                Wake::Timer => {
                    self.timer = None;
                    self.handle(Event::Timer).await;
                }
            }
            self.flush();
        }
    }

    /// Keeps one timeout, for the core's next deadline.
    fn arm_timer(&mut self) {
        let Some(at) = self.typed.next_deadline() else {
            self.timer = None;
            return;
        };
        if self.timer.as_ref().is_some_and(|(armed, _)| *armed == at) {
            return;
        }
        // setTimeout takes at most 2^31 - 1 ms.
        let wait = at.saturating_sub(now()).min(i32::MAX as u64) as u32;
        self.timer = Some((at, TimeoutFuture::new(wait)));
    }

    async fn handle(&mut self, event: Event<'_, Received<P::Server>>) {
        self.typed.handle(now(), event);
        self.execute().await;
    }

    fn current(&self, socket: SocketId) -> bool {
        self.socket
            .as_ref()
            .is_some_and(|current| current.id == socket)
    }

    async fn signal(&mut self, signal: Signal) {
        match signal {
            Signal::Opened(socket) if self.current(socket) => {
                let Some(current) = &mut self.socket else {
                    return;
                };
                // No subprotocol reads as "", which names no version: version 2.
                let wire = Wire::negotiated(Some(current.ws.protocol().as_str()));
                current.batches = wire.batches();
                self.handle(Event::Opened(socket, wire)).await;
            }
            Signal::Frame(socket, text) if self.current(socket) => {
                self.typed.received(now(), socket, &text);
                self.execute().await;
            }
            Signal::Traffic(socket) if self.current(socket) => {
                self.handle(Event::Traffic { socket }).await;
            }
            Signal::Closed(socket, code) if self.current(socket) => {
                self.socket = None;
                self.handle(Event::Closed { socket, code }).await;
            }
            Signal::Token(fetch, result) => {
                self.typed.token(now(), fetch, &result);
                self.execute().await;
            }
            Signal::Online => self.handle(Event::Online).await,
            Signal::Offline => self.handle(Event::Offline).await,
            Signal::Visible => self.handle(Event::Visible).await,
            // Events of a socket the core no longer wants.
            Signal::Opened(_) | Signal::Frame(..) | Signal::Traffic(_) | Signal::Closed(..) => {}
        }
    }

    async fn execute(&mut self) {
        while let Some(io) = self.typed.next_io().await {
            match io {
                Io::Open { socket, params } => self.open(socket, &params),
                Io::Send { socket, text } => match &self.socket {
                    Some(current) if current.id == socket && current.batches => {
                        self.outgoing.push(text);
                    }
                    Some(current) if current.id == socket => {
                        // A closing socket drops data silently; the outbox and the
                        // heartbeat cover it.
                        let _ = current.ws.send_with_str(&text);
                    }
                    _ => {}
                },
                Io::Close {
                    socket,
                    code,
                    reason,
                } => {
                    if self.current(socket) {
                        self.close_socket(code, reason);
                    }
                }
                Io::FetchToken {
                    fetch,
                    force_refresh,
                } => {
                    let future = self.typed.fetch_token(force_refresh);
                    let signals = self.signals.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = future.await;
                        let _ = signals.unbounded_send(Signal::Token(fetch, result));
                    });
                }
            }
        }
    }

    /// Sends what waits for the socket, as few batch frames as fit the server's limit.
    fn flush(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.outgoing);
        if let Some(socket) = &self.socket {
            for frame in join_batches(frames, self.typed.max_frame_bytes()) {
                let _ = socket.ws.send_with_str(&frame);
            }
        }
    }

    /// Closes the current socket; its listeners go first, so no event of it comes.
    /// What still waited to be sent on it goes first.
    fn close_socket(&mut self, code: CloseCode, reason: &str) {
        self.flush();
        if let Some(Socket { ws, _listeners, .. }) = self.socket.take() {
            drop(_listeners);
            // The core closes with 1000 or 4000, which the browser accepts.
            let _ = ws.close_with_code_and_reason(code.code(), reason);
        }
    }

    fn open(&mut self, socket: SocketId, params: &[(&'static str, String)]) {
        self.close_socket(CloseCode::Normal, "replaced");
        let url = Url::new(&self.url.href()).ok();
        if let Some(url) = &url {
            let search = url.search_params();
            for (key, value) in params {
                search.set(key, value);
            }
        }
        let protocols: js_sys::Array = CLIENT_SUBPROTOCOLS
            .iter()
            .copied()
            .map(JsValue::from_str)
            .collect();
        let ws = url.and_then(|url| WebSocket::new_with_str_sequence(&url.href(), &protocols).ok());
        let Some(ws) = ws else {
            // The URL was checked at start; the browser refused anyway. Retry later.
            self.typed.handle(
                now(),
                Event::Closed {
                    socket,
                    code: CloseCode::Abnormal,
                },
            );
            return;
        };
        let opened = {
            let signals = self.signals.clone();
            EventListener::new(&ws, "open", move |_| {
                let _ = signals.unbounded_send(Signal::Opened(socket));
            })
        };
        let message = {
            let signals = self.signals.clone();
            EventListener::new(&ws, "message", move |event| {
                let data = event
                    .dyn_ref::<MessageEvent>()
                    .map_or(JsValue::UNDEFINED, MessageEvent::data);
                let signal = match data.as_string() {
                    Some(text) => Signal::Frame(socket, text),
                    None => Signal::Traffic(socket),
                };
                let _ = signals.unbounded_send(signal);
            })
        };
        let closed = {
            let signals = self.signals.clone();
            EventListener::new(&ws, "close", move |event| {
                let code = event
                    .dyn_ref::<CloseEvent>()
                    .map_or(CloseCode::Abnormal, |event| CloseCode::from(event.code()));
                let _ = signals.unbounded_send(Signal::Closed(socket, code));
            })
        };
        self.socket = Some(Socket {
            id: socket,
            ws,
            batches: false,
            _listeners: [opened, message, closed],
        });
    }
}
