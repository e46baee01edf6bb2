//! The connection state machine, without I/O, for any protocol.
//!
//! A driver (the browser's or tokio's) feeds [`Core::handle`] what happened (a socket
//! opened or closed, a message arrived, a token was fetched, the network went online, a
//! timer fired) with the current time, hands it the application's messages through
//! [`Core::send`], and carries out the [`Command`]s it gets back from
//! [`Core::poll_command`]: open a socket, send a frame, close a socket, fetch a token,
//! deliver a message to the application, settle a request. [`Core::next_deadline`]
//! says when to call it again.
//!
//! The core decides everything else, by the protocol's
//! [`Descriptor`]: which messages get an id and
//! wait in the outbox, which are dropped while disconnected, what an acknowledgement
//! changes, which received events are replays to drop, when an ephemeral state is
//! renewed or stopped, the backoff, the heartbeat and connect deadlines, the close-code
//! policy, token refreshes and request timeouts. It never panics and never formats
//! strings, so it stays small in the browser build.
//!
//! `F` is the driver's outgoing frame (a JS string in the browser, never copied into
//! wasm memory; a `String` natively) and `M` its received message (a JS object, or the
//! catalogue's typed message), which the core hands back in the commands it settles.

mod backoff;
mod fields;
pub(crate) mod frames;
mod token;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use relaywire_protocol::policy::{Descriptor, RoomChange};
use relaywire_protocol::{
    AUTH_BY_MESSAGE, ClientErrorCode, CloseAction, CloseCode, ErrorCode, HEARTBEAT_INTERVAL_MS,
    MAX_MESSAGE_SIZE, RESUME_PARAM, TYPING_TIMEOUT_MS, Wire,
};

pub use backoff::ReconnectPolicy;
use backoff::Rng;
pub use fields::{Fields, Inbound, Key, Session, read};
pub use token::TokenOutcome;

/// Milliseconds on a monotonic clock.
pub type Millis = u64;

/// Identifies one socket the core asked for; events of older sockets are ignored.
pub type SocketId = u32;

/// How the client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The browser sends the session cookie with the handshake; nothing to do.
    Cookie,
    /// A fixed token.
    Token(String),
    /// Ask the driver for a token before every connect ([`Command::FetchToken`]).
    Provider,
}

/// Where a token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTransport {
    /// In a first `auth` message: keeps tokens out of URLs and logs (default).
    Message,
    /// In the `?token=` query parameter.
    Query,
}

/// Heartbeat settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatPolicy {
    /// Ping every this many milliseconds; the server's `heartbeatIntervalMs` wins.
    /// Default 30000.
    pub interval_ms: u32,
    /// No traffic this long after a ping means the connection is dead. Default 10000.
    pub timeout_ms: u32,
}

impl Default for HeartbeatPolicy {
    fn default() -> Self {
        Self {
            interval_ms: HEARTBEAT_INTERVAL_MS,
            timeout_ms: 10_000,
        }
    }
}

/// Everything the core's behaviour depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The protocol's message types and their policies.
    pub descriptor: Descriptor,
    /// How the client authenticates.
    pub auth: Auth,
    /// Where the token travels.
    pub token_transport: TokenTransport,
    /// Retry policy.
    pub reconnect: ReconnectPolicy,
    /// Heartbeat policy; `None` disables pings.
    pub heartbeat: Option<HeartbeatPolicy>,
    /// A connect attempt that is not `open` after this many milliseconds is abandoned.
    /// Default 10000.
    pub connect_timeout_ms: u32,
    /// Messages that may wait for a connection or an ack. Default 1000.
    pub queue_size: usize,
    /// Request timeout when the request names none, in milliseconds. Default 10000.
    pub request_timeout_ms: u32,
    /// Seed for jitter and id prefixes (the driver passes entropy).
    pub seed: u64,
    /// The `seq` of the last numbered message the application kept (persisted across
    /// page loads or restarts, say): the first connect resumes after it, so the server
    /// replays what came since. `None` starts at the server's newest event.
    pub resume_from: Option<u64>,
}

impl Options {
    /// The defaults, for a protocol.
    pub fn new(descriptor: Descriptor) -> Self {
        Self {
            descriptor,
            auth: Auth::Cookie,
            token_transport: TokenTransport::Message,
            reconnect: ReconnectPolicy::default(),
            heartbeat: Some(HeartbeatPolicy::default()),
            connect_timeout_ms: 10_000,
            queue_size: 1_000,
            request_timeout_ms: 10_000,
            seed: 0,
            resume_from: None,
        }
    }
}

/// The connection status the application sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started yet.
    Idle,
    /// The first connection is being made.
    Connecting,
    /// Authenticated and live.
    Open,
    /// The connection was lost (or the first one failed); retrying.
    Reconnecting,
    /// The browser is offline; retrying resumes when it is back.
    Offline,
    /// Authentication failed for good; the application must sign in again.
    Unauthorized,
    /// Closed by the application, or ended by the server on purpose.
    Closed,
    /// Out of retries.
    Failed,
}

impl Status {
    /// The status as the snapshot spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting => "connecting",
            Status::Open => "open",
            Status::Reconnecting => "reconnecting",
            Status::Offline => "offline",
            Status::Unauthorized => "unauthorized",
            Status::Closed => "closed",
            Status::Failed => "failed",
        }
    }
}

/// Something that happened. `M` is the driver's received message.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a, M> {
    /// The application asked to connect (or to retry now).
    Connect,
    /// The application closed the client.
    Close,
    /// A socket finished its handshake, speaking this protocol version.
    Opened(SocketId, Wire),
    /// A socket closed ([`CloseCode::Abnormal`] when it failed without a close frame).
    Closed {
        /// The socket.
        socket: SocketId,
        /// The close code.
        code: CloseCode,
    },
    /// A message arrived on a socket.
    Message {
        /// The socket.
        socket: SocketId,
        /// What it says, as [`read`] reads it.
        inbound: Inbound,
        /// The message itself, handed back when it is delivered or settles a request.
        message: M,
    },
    /// A frame arrived that is not a message: it proves the connection alive, nothing
    /// more.
    Traffic {
        /// The socket.
        socket: SocketId,
    },
    /// The driver fetched a token (after [`Command::FetchToken`]).
    Token {
        /// The fetch's number.
        fetch: u32,
        /// Its outcome.
        outcome: TokenOutcome<'a>,
    },
    /// The browser went online.
    Online,
    /// The browser went offline.
    Offline,
    /// The page became visible (timers may have been throttled meanwhile).
    Visible,
    /// A deadline from [`Core::next_deadline`] passed.
    Timer,
}

/// A frame to send: the application's, or one the core wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<F> {
    /// A frame encoded from the application's message.
    App(F),
    /// `auth` or `ping`, written by the core.
    Control(String),
}

/// Why a request or message was given up.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection<M> {
    /// The server answered with an `error` of this code.
    Server {
        /// The code.
        code: ErrorCode,
        /// The `error` message.
        reply: M,
    },
    /// The client gave up by itself.
    Client(ClientErrorCode),
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command<F, M> {
    /// Open a socket to the server's URL with these query parameters (the driver adds
    /// the application's own).
    Open {
        /// Its id, for the events it will cause.
        socket: SocketId,
        /// `lastSeq`, and `token` or `auth=message`, in order.
        params: Vec<(&'static str, String)>,
    },
    /// Send a frame on a socket.
    Send {
        /// The socket.
        socket: SocketId,
        /// The frame.
        frame: Frame<F>,
    },
    /// Close a socket (no event for it is expected any more).
    CloseSocket {
        /// The socket.
        socket: SocketId,
        /// Close code to send.
        code: CloseCode,
        /// Reason to send.
        reason: &'static str,
    },
    /// Fetch a token and report it with [`Event::Token`].
    FetchToken {
        /// The fetch's number, to quote back.
        fetch: u32,
        /// Whether the cached token is known bad.
        force_refresh: bool,
    },
    /// Hand a received message to the application.
    Deliver {
        /// The message.
        message: M,
        /// Whether its type is one the protocol knows.
        known: bool,
    },
    /// The message with this id was acknowledged by `reply`.
    Resolve {
        /// Its id.
        id: String,
        /// The `ack`.
        reply: M,
    },
    /// The message with this id will not be acknowledged.
    Reject {
        /// Its id.
        id: String,
        /// Why.
        reason: Rejection<M>,
    },
    /// The snapshot changed.
    Publish,
}

/// A message the application sends, as the core sees it: its type, its fields, and how
/// to encode it. Each driver implements it over its own message representation.
pub trait Outgoing<F>: Fields {
    /// The wire `type`.
    fn type_name(&self) -> &str;
    /// The frame, with `id` when it has one; `None` when it cannot be encoded.
    fn encode(&self, id: Option<&str>) -> Option<F>;
    /// The frame with the boolean payload field `field` set to `value`, without an id
    /// (how an ephemeral state is stopped).
    fn encode_switched(&self, field: &str, value: bool) -> Option<F>;
    /// The id the application gave a tracked message, which it keeps instead of one
    /// the core makes up: a message handed over twice with one id (by tabs sharing a
    /// connection, when the tab holding it goes) is stored once. `None` by default.
    fn chosen_id(&self) -> Option<String> {
        None
    }
}

/// The size of an outgoing frame.
pub trait FrameSize {
    /// Whether the frame is at most `max_bytes` bytes of UTF-8.
    fn fits(&self, max_bytes: usize) -> bool;
}

impl FrameSize for String {
    fn fits(&self, max_bytes: usize) -> bool {
        self.len() <= max_bytes
    }
}

/// How the application sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// Fire and forget; a tracked message still waits for its answer in the outbox.
    Send,
    /// Wait for the answer: resolved by the `ack`, rejected by an `error` or after
    /// `timeout_ms` (the default timeout when `None`) from when it was sent.
    Request {
        /// Its own timeout.
        timeout_ms: Option<u32>,
    },
}

/// Why the core refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The client's own reason: `CLIENT_CLOSED`, `CONNECTION_FAILED`, `QUEUE_FULL`.
    Client(ClientErrorCode),
    /// The message itself is wrong, with the code a server would have answered.
    Invalid {
        /// `INVALID_MESSAGE`, `VALIDATION_ERROR` or `MESSAGE_TOO_LARGE`.
        code: ErrorCode,
        /// What is wrong, for people.
        reason: &'static str,
    },
}

impl SendError {
    /// The code a rejection carries.
    pub fn code(&self) -> FailureCode {
        match self {
            SendError::Client(code) => FailureCode::Client(*code),
            SendError::Invalid { code, .. } => FailureCode::Server(code.clone()),
        }
    }
}

/// A failure's code: the server's, or one the client raises by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureCode {
    /// An `ErrorCode` (from the server, or the one it would answer).
    Server(ErrorCode),
    /// A `ClientErrorCode`.
    Client(ClientErrorCode),
}

impl FailureCode {
    /// The wire string, e.g. `AUTH_FAILED` or `CONNECTION_CLOSED`.
    pub fn as_str(&self) -> &str {
        match self {
            FailureCode::Server(code) => code.as_str(),
            FailureCode::Client(code) => code.as_str(),
        }
    }
}

/// The last failure, for the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// What failed.
    pub code: FailureCode,
    /// The close code that came with it, if any.
    pub close_code: Option<CloseCode>,
}

/// A tracked message: it waits in the outbox until answered.
#[derive(Debug)]
struct Tracked<F> {
    /// Increases along the outbox, so an entry is found by binary search.
    serial: u64,
    id: String,
    frame: F,
    timeout_ms: Option<u32>,
    deadline: Option<Millis>,
    /// The room its acknowledgement joins or leaves.
    room: Option<(RoomChange, String)>,
    sent_on: Option<SocketId>,
}

/// An ephemeral state that is on: renewed while the application keeps sending it,
/// stopped by the core when it does not.
#[derive(Debug)]
struct ActiveState<F> {
    type_name: String,
    key: String,
    stop_at: Millis,
    sent_at: Millis,
    stop_frame: F,
}

/// The heartbeat of an open connection.
#[derive(Debug, Clone, Copy)]
struct Heartbeat {
    next_ping_at: Option<Millis>,
    /// Traffic must arrive by then (after a ping or a probe).
    deadline: Option<Millis>,
}

/// An open connection.
#[derive(Debug, Clone, Copy)]
struct Open {
    socket: SocketId,
    since: Millis,
    heartbeat: Heartbeat,
    /// An in-band token refresh under way.
    refreshing: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle,
    Waiting { until: Millis },
    Offline,
    Token { fetch: u32 },
    Opening { socket: SocketId, deadline: Millis },
    Handshake { socket: SocketId, deadline: Millis },
    Open(Open),
    Stopped(Status),
}

/// The token in use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    value: String,
    /// When to refresh it in band, while open.
    refresh_at: Option<Millis>,
}

/// The connection state machine. See the module docs.
#[derive(Debug)]
pub struct Core<F, M> {
    options: Options,
    phase: Phase,
    rng: Rng,
    id_prefix: String,
    next_id: u64,
    next_socket: SocketId,
    next_fetch: u32,
    attempt: u32,
    has_connected: bool,
    online: bool,
    token: Option<Token>,
    force_refresh: bool,
    refreshed_after_failure: bool,
    session: Option<Session>,
    last_seq: Option<u64>,
    /// The close code the server announced in an `error` on this socket.
    announced_close: Option<u16>,
    last_error: Option<LastError>,
    outbox: VecDeque<Tracked<F>>,
    next_serial: u64,
    /// Request deadlines and their entries' serials, earliest on top. Entries answered
    /// since are left behind and dropped when they reach the top, so a burst of
    /// requests costs a logarithm each, not a scan of the outbox per event.
    deadlines: BinaryHeap<Reverse<(Millis, u64)>>,
    states: Vec<ActiveState<F>>,
    commands: VecDeque<Command<F, M>>,
    version: u64,
    session_version: u64,
}

/// The shortest liveness probe after the page becomes visible or the network changes.
const PROBE_TIMEOUT_MS: u64 = 5_000;
/// Refresh a token this long before it expires (or at 90% of its life when shorter).
const REFRESH_MARGIN_MS: u64 = 30_000;
/// Retry an in-band token refresh that failed after this long.
const REFRESH_RETRY_MS: u64 = 15_000;

const ID_ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn push_base36(out: &mut String, value: u64) {
    push_digits(out, value, 36);
}

/// `value` in decimal, without the float and formatting code `to_string` brings into
/// the browser build.
///
/// ```
/// assert_eq!(relaywire_client::core::decimal(9_007_199_254_740_991), "9007199254740991");
/// ```
pub fn decimal(value: u64) -> String {
    let mut out = String::with_capacity(20);
    push_digits(&mut out, value, 10);
    out
}

/// Appends `value` in `radix` (2 to 36), most significant digit first.
fn push_digits(out: &mut String, mut value: u64, radix: u64) {
    // u64::MAX has 20 decimal digits, and fewer in any larger radix.
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        let digit = ID_ALPHABET.get((value % radix) as usize).copied();
        if let (Some(digit), Some(slot)) = (digit, digits.get_mut(len)) {
            *slot = digit;
        }
        len += 1;
        value /= radix;
        if value == 0 || len == digits.len() {
            break;
        }
    }
    for digit in digits.iter().take(len).rev() {
        out.push(char::from(*digit));
    }
}

impl<F: Clone + FrameSize, M: Clone> Core<F, M> {
    /// A client core in the `idle` state.
    pub fn new(options: Options) -> Self {
        let mut rng = Rng::new(options.seed);
        // A random prefix keeps ids unique across page loads, which the server relies
        // on to recognise a message sent twice.
        let mut id_prefix = String::with_capacity(14);
        push_base36(&mut id_prefix, rng.next_u64() >> 12);
        let last_seq = options.resume_from;
        Self {
            options,
            phase: Phase::Idle,
            rng,
            id_prefix,
            next_id: 0,
            next_socket: 0,
            next_fetch: 0,
            attempt: 0,
            has_connected: false,
            online: true,
            token: None,
            force_refresh: false,
            refreshed_after_failure: false,
            session: None,
            last_seq,
            announced_close: None,
            last_error: None,
            outbox: VecDeque::new(),
            next_serial: 0,
            deadlines: BinaryHeap::new(),
            states: Vec::new(),
            commands: VecDeque::new(),
            version: 0,
            session_version: 0,
        }
    }

    /// The next command to carry out, in order.
    pub fn poll_command(&mut self) -> Option<Command<F, M>> {
        self.commands.pop_front()
    }

    /// The protocol's descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.options.descriptor
    }

    /// A fresh message id, unique to this client.
    fn next_id(&mut self) -> String {
        self.next_id += 1;
        let mut id = String::with_capacity(self.id_prefix.len() + 8);
        id.push_str(&self.id_prefix);
        id.push('-');
        push_base36(&mut id, self.next_id);
        id
    }

    /// The status the application sees.
    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Idle => Status::Idle,
            Phase::Stopped(status) => status,
            Phase::Offline => Status::Offline,
            Phase::Open(_) => Status::Open,
            _ if self.has_connected || self.attempt > 0 => Status::Reconnecting,
            _ => Status::Connecting,
        }
    }

    /// Changes whenever anything in the snapshot does.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The retries since the last healthy connection.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the next attempt starts, while waiting to retry.
    pub fn next_retry_at(&self) -> Option<Millis> {
        match self.phase {
            Phase::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// The session from the latest `connected`, kept while reconnecting.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Changes whenever [`Core::session`] does (user, rooms, presence).
    pub fn session_version(&self) -> u64 {
        self.session_version
    }

    /// The last failure.
    pub fn last_error(&self) -> Option<&LastError> {
        self.last_error.as_ref()
    }

    /// Messages that wait to be sent or acknowledged.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// The last event this client saw.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The largest frame the server accepts: what a driver that puts several frames in
    /// one (protocol 3) keeps each batch within.
    pub fn max_message_bytes(&self) -> usize {
        self.session
            .as_ref()
            .and_then(|s| s.max_message_bytes)
            .map_or(MAX_MESSAGE_SIZE, |bytes| bytes as usize)
    }

    fn changed(&mut self) {
        self.version += 1;
        self.commands.push_back(Command::Publish);
    }

    /// Moves to `phase`. Every phase it is given is a new one (a new socket, fetch or
    /// deadline) except `Offline`, which an attempt may enter again: that changes
    /// nothing the snapshot shows.
    fn set_phase(&mut self, phase: Phase) {
        let same = matches!((self.phase, phase), (Phase::Offline, Phase::Offline));
        self.phase = phase;
        if !same {
            self.changed();
        }
    }

    fn current_socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Opening { socket, .. } | Phase::Handshake { socket, .. } => Some(socket),
            Phase::Open(open) => Some(open.socket),
            _ => None,
        }
    }

    fn open_socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Open(open) => Some(open.socket),
            _ => None,
        }
    }

    /// When [`Core::handle`] wants to be called with [`Event::Timer`], if ever.
    pub fn next_deadline(&self) -> Option<Millis> {
        let (phase, heartbeat) = match self.phase {
            Phase::Waiting { until } => (Some(until), [None; 3]),
            Phase::Opening { deadline, .. } | Phase::Handshake { deadline, .. } => {
                (Some(deadline), [None; 3])
            }
            Phase::Open(open) => {
                let refresh = match (&self.token, open.refreshing) {
                    (Some(token), None) if self.options.auth == Auth::Provider => token.refresh_at,
                    _ => None,
                };
                let beat = open.heartbeat;
                (None, [beat.next_ping_at, beat.deadline, refresh])
            }
            _ => (None, [None; 3]),
        };
        let requests = self.deadlines.peek().map(|Reverse((at, _))| *at);
        let states = self.states.iter().map(|state| state.stop_at);
        phase
            .into_iter()
            .chain(heartbeat.into_iter().flatten())
            .chain(requests)
            .chain(states)
            .min()
    }

    /// Handles one event at time `now` (milliseconds, monotonic).
    pub fn handle(&mut self, now: Millis, event: Event<'_, M>) {
        match event {
            Event::Connect => self.connect(now),
            Event::Close => self.close(),
            Event::Opened(socket, wire) => self.opened(socket, wire),
            Event::Closed { socket, code } => {
                if self.current_socket() == Some(socket) {
                    self.disconnected(now, code);
                }
            }
            Event::Message {
                socket,
                inbound,
                message,
            } => {
                if self.current_socket() == Some(socket) {
                    self.received(now, inbound, message);
                }
            }
            Event::Traffic { socket } => {
                if let Phase::Open(open) = &mut self.phase
                    && open.socket == socket
                {
                    open.heartbeat.deadline = None;
                }
            }
            Event::Token { fetch, outcome } => self.token_fetched(now, fetch, outcome),
            Event::Online => {
                self.online = true;
                match self.phase {
                    Phase::Offline | Phase::Waiting { .. } => self.attempt_now(now),
                    Phase::Open(_) => self.probe(now),
                    _ => {}
                }
            }
            Event::Offline => {
                self.online = false;
                match self.phase {
                    Phase::Waiting { .. } => self.set_phase(Phase::Offline),
                    // The socket may survive a short outage; a probe tells.
                    Phase::Open(_) => self.probe(now),
                    _ => {}
                }
            }
            Event::Visible => match self.phase {
                Phase::Open(_) => self.probe(now),
                Phase::Waiting { .. } => self.attempt_now(now),
                _ => {}
            },
            Event::Timer => self.timer(now),
        }
        // An answered request may have held the earliest deadline.
        self.prune_deadlines();
    }

    fn connect(&mut self, now: Millis) {
        match self.phase {
            Phase::Idle | Phase::Stopped(_) => {
                self.attempt = 0;
                self.refreshed_after_failure = false;
                self.last_error = None;
                self.attempt_now(now);
            }
            Phase::Waiting { .. } | Phase::Offline => self.attempt_now(now),
            _ => {}
        }
    }

    /// Starts an attempt unless the browser is offline.
    fn attempt_now(&mut self, now: Millis) {
        if !self.online {
            self.set_phase(Phase::Offline);
            return;
        }
        match &self.options.auth {
            Auth::Provider => {
                self.next_fetch += 1;
                let fetch = self.next_fetch;
                self.commands.push_back(Command::FetchToken {
                    fetch,
                    force_refresh: self.force_refresh,
                });
                self.set_phase(Phase::Token { fetch });
            }
            Auth::Token(token) => {
                self.token = Some(Token {
                    value: token.clone(),
                    refresh_at: None,
                });
                self.open(now);
            }
            Auth::Cookie => self.open(now),
        }
    }

    /// The query parameters of a connect: what to resume after, and how the client
    /// authenticates.
    fn connect_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::with_capacity(2);
        if let Some(seq) = self.last_seq {
            params.push((RESUME_PARAM, decimal(seq)));
        }
        match (&self.token, self.options.token_transport) {
            (Some(token), TokenTransport::Query) => params.push(("token", token.value.clone())),
            // The token follows in the first message; cookies must not stand in for it.
            _ if self.options.auth != Auth::Cookie => {
                let (key, value) = AUTH_BY_MESSAGE;
                params.push((key, value.to_owned()));
            }
            _ => {}
        }
        params
    }

    fn open(&mut self, now: Millis) {
        self.next_socket = self.next_socket.wrapping_add(1);
        let socket = self.next_socket;
        let params = self.connect_params();
        self.commands.push_back(Command::Open { socket, params });
        let deadline = now + u64::from(self.options.connect_timeout_ms);
        self.set_phase(Phase::Opening { socket, deadline });
    }

    fn opened(&mut self, socket: SocketId, wire: Wire) {
        let Phase::Opening {
            socket: current,
            deadline,
        } = self.phase
        else {
            return;
        };
        if current != socket {
            return;
        }
        self.announced_close = None;
        if self.options.token_transport == TokenTransport::Message
            && let Some(token) = &self.token
        {
            let frame = Frame::Control(frames::auth(&token.value));
            self.commands.push_back(Command::Send { socket, frame });
        } else if wire.client_opens() {
            // A server that cannot speak first (API Gateway) sends `connected` in
            // answer to this.
            let frame = Frame::Control(frames::PING.to_owned());
            self.commands.push_back(Command::Send { socket, frame });
        }
        self.set_phase(Phase::Handshake { socket, deadline });
    }

    fn token_fetched(&mut self, now: Millis, fetch: u32, outcome: TokenOutcome<'_>) {
        let in_band = matches!(self.phase, Phase::Open(open) if open.refreshing == Some(fetch));
        if in_band {
            if let Phase::Open(open) = &mut self.phase {
                open.refreshing = None;
            }
        } else if !matches!(self.phase, Phase::Token { fetch: current } if current == fetch) {
            return;
        }
        match outcome {
            TokenOutcome::Token { token, expires_at } => {
                self.force_refresh = false;
                self.token = Some(Token {
                    value: token.to_owned(),
                    refresh_at: expires_at.map(|expires_at| {
                        let life = expires_at.saturating_sub(now);
                        let margin = REFRESH_MARGIN_MS.min(life / 10);
                        expires_at.saturating_sub(margin).max(now)
                    }),
                });
                match self.open_socket() {
                    Some(socket) if in_band => {
                        let frame = Frame::Control(frames::auth(token));
                        self.commands.push_back(Command::Send { socket, frame });
                    }
                    _ => self.open(now),
                }
            }
            TokenOutcome::SignedOut => self.stop(
                Status::Unauthorized,
                FailureCode::Server(ErrorCode::AuthFailed),
                None,
            ),
            TokenOutcome::Failed if in_band => {
                if let Some(token) = &mut self.token {
                    token.refresh_at = Some(now + REFRESH_RETRY_MS);
                }
            }
            TokenOutcome::Failed => self.retry_later(now),
        }
    }

    fn received(&mut self, now: Millis, inbound: Inbound, message: M) {
        // Any traffic proves the connection alive.
        if let Phase::Open(open) = &mut self.phase {
            open.heartbeat.deadline = None;
        }
        let known = inbound.is_known();
        match inbound {
            Inbound::Connected(session) => self.connected(now, session),
            Inbound::Ack { id } => self.acknowledged(id, &message),
            Inbound::Error {
                id: Some(id), code, ..
            } => {
                if self.take(&id).is_some() {
                    self.commands.push_back(Command::Reject {
                        id,
                        reason: Rejection::Server {
                            code,
                            reply: message.clone(),
                        },
                    });
                    self.changed();
                }
            }
            Inbound::Error {
                id: None,
                code,
                close_code,
            } => {
                self.announced_close = close_code;
                self.last_error = Some(LastError {
                    code: FailureCode::Server(code),
                    close_code: None,
                });
                self.changed();
            }
            Inbound::Presence { user_id, online } => self.presence(user_id, online),
            Inbound::Numbered { seq, answers } => {
                // The sender's own copy of what its message stored acknowledges it.
                if let Some(id) = answers {
                    self.acknowledged(id, &message);
                }
                // A replayed event this client saw already is not handed over twice.
                if let Some(seq) = seq
                    && !self.admit(seq)
                {
                    return;
                }
            }
            Inbound::Other | Inbound::Unknown => {}
        }
        self.commands.push_back(Command::Deliver { message, known });
    }

    /// The tracked message `id` was acknowledged by `message` (an `ack`, or an event
    /// carrying one): it leaves the outbox, its room change applies, its request
    /// resolves with `message`.
    fn acknowledged(&mut self, id: String, message: &M) {
        if let Some(tracked) = self.take(&id) {
            self.apply(tracked.room);
            self.commands.push_back(Command::Resolve {
                id,
                reply: message.clone(),
            });
            self.changed();
        }
    }

    /// Whether an event numbered `seq` is new to this client; remembers it when it is.
    /// The server replays what a reconnecting client missed, so an event may come
    /// twice: the second time it is dropped.
    fn admit(&mut self, seq: u64) -> bool {
        match self.last_seq {
            Some(last) if seq <= last => false,
            _ => {
                self.last_seq = Some(seq);
                true
            }
        }
    }

    fn presence(&mut self, user_id: String, online: bool) {
        let Some(session) = &mut self.session else {
            return;
        };
        let known = session.online_user_ids.contains(&user_id);
        match (known, online) {
            (false, true) => session.online_user_ids.push(user_id),
            (true, false) => session.online_user_ids.retain(|u| *u != user_id),
            _ => return,
        }
        self.session_version += 1;
        self.changed();
    }

    fn take(&mut self, id: &str) -> Option<Tracked<F>> {
        let index = self.outbox.iter().position(|t| t.id == id)?;
        self.outbox.remove(index)
    }

    fn apply(&mut self, room: Option<(RoomChange, String)>) {
        let (Some(session), Some((change, room))) = (&mut self.session, room) else {
            return;
        };
        match change {
            RoomChange::Join if !session.rooms.contains(&room) => session.rooms.push(room),
            RoomChange::Join => return,
            RoomChange::Leave => session.rooms.retain(|r| *r != room),
        }
        self.session_version += 1;
    }

    fn connected(&mut self, now: Millis, session: Session) {
        let Phase::Handshake { socket, .. } = self.phase else {
            return;
        };
        self.has_connected = true;
        self.refreshed_after_failure = false;
        self.last_error = None;
        // Resume from where this client stopped; a server whose log is behind it lost
        // its store, so start from its head instead of dropping everything as seen.
        self.last_seq = match (self.last_seq, session.seq) {
            (Some(last), Some(head)) if last > head => Some(head),
            (None, head) => head,
            (last, _) => last,
        };
        self.session = Some(session);
        self.session_version += 1;
        self.phase = Phase::Open(Open {
            socket,
            since: now,
            heartbeat: Heartbeat {
                next_ping_at: self.heartbeat_interval().map(|interval| now + interval),
                deadline: None,
            },
            refreshing: None,
        });
        // The outbox goes out in order: what was waiting, then what was sent on a
        // socket that died before its answer.
        for tracked in &mut self.outbox {
            if tracked.sent_on == Some(socket) {
                continue;
            }
            tracked.sent_on = Some(socket);
            tracked.deadline = tracked.timeout_ms.map(|ms| now + u64::from(ms));
            if let Some(deadline) = tracked.deadline {
                self.deadlines.push(Reverse((deadline, tracked.serial)));
            }
            let frame = Frame::App(tracked.frame.clone());
            self.commands.push_back(Command::Send { socket, frame });
        }
        self.changed();
    }

    fn heartbeat_interval(&self) -> Option<Millis> {
        let policy = self.options.heartbeat?;
        let interval = self
            .session
            .as_ref()
            .and_then(|s| s.heartbeat_interval_ms)
            .unwrap_or(policy.interval_ms);
        Some(u64::from(interval.max(100)))
    }

    fn heartbeat_timeout(&self) -> Millis {
        self.options
            .heartbeat
            .map_or(PROBE_TIMEOUT_MS, |h| u64::from(h.timeout_ms))
    }

    /// Pings now and expects traffic soon: after the page was hidden or the network
    /// changed, the socket may be open on paper only.
    fn probe(&mut self, now: Millis) {
        let timeout = self.heartbeat_timeout().min(PROBE_TIMEOUT_MS);
        let Phase::Open(open) = &mut self.phase else {
            return;
        };
        let deadline = now + timeout;
        open.heartbeat.deadline = Some(
            open.heartbeat
                .deadline
                .map_or(deadline, |d| d.min(deadline)),
        );
        let socket = open.socket;
        let frame = Frame::Control(frames::PING.to_owned());
        self.commands.push_back(Command::Send { socket, frame });
    }

    fn give_up(&mut self, now: Millis, socket: SocketId, reason: &'static str) {
        self.commands.push_back(Command::CloseSocket {
            socket,
            code: CloseCode::ClientGaveUp,
            reason,
        });
        self.disconnected(now, CloseCode::Abnormal);
    }

    fn timer(&mut self, now: Millis) {
        match self.phase {
            Phase::Waiting { until } if until <= now => self.attempt_now(now),
            Phase::Opening { socket, deadline } | Phase::Handshake { socket, deadline }
                if deadline <= now =>
            {
                self.give_up(now, socket, "connect timeout");
            }
            Phase::Open(open) => self.open_timer(now, open),
            _ => {}
        }
        self.expire_requests(now);
        self.stop_states_due(now);
    }

    fn open_timer(&mut self, now: Millis, open: Open) {
        let beat = open.heartbeat;
        if beat.deadline.is_some_and(|d| d <= now) {
            self.give_up(now, open.socket, "heartbeat timeout");
            return;
        }
        let mut heartbeat = beat;
        if beat.next_ping_at.is_some_and(|at| at <= now) {
            let frame = Frame::Control(frames::PING.to_owned());
            self.commands.push_back(Command::Send {
                socket: open.socket,
                frame,
            });
            if heartbeat.deadline.is_none() {
                heartbeat.deadline = Some(now + self.heartbeat_timeout());
            }
            heartbeat.next_ping_at = self.heartbeat_interval().map(|i| now + i);
        }
        let refresh_due = open.refreshing.is_none()
            && self.options.auth == Auth::Provider
            && self
                .token
                .as_ref()
                .and_then(|t| t.refresh_at)
                .is_some_and(|at| at <= now);
        let mut refreshing = open.refreshing;
        if refresh_due {
            if let Some(token) = &mut self.token {
                token.refresh_at = None;
            }
            self.next_fetch += 1;
            refreshing = Some(self.next_fetch);
            self.commands.push_back(Command::FetchToken {
                fetch: self.next_fetch,
                force_refresh: true,
            });
        }
        self.phase = Phase::Open(Open {
            heartbeat,
            refreshing,
            ..open
        });
    }

    fn expire_requests(&mut self, now: Millis) {
        let mut expired = false;
        while let Some(&Reverse((at, serial))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(index) = self.live_deadline(at, serial) else {
                continue;
            };
            if let Some(tracked) = self.outbox.remove(index) {
                self.commands.push_back(Command::Reject {
                    id: tracked.id,
                    reason: Rejection::Client(ClientErrorCode::Timeout),
                });
            }
            expired = true;
        }
        self.prune_deadlines();
        if expired {
            self.changed();
        }
    }

    /// The outbox index of the entry `serial` when its deadline is still `at`.
    fn live_deadline(&self, at: Millis, serial: u64) -> Option<usize> {
        let index = self
            .outbox
            .binary_search_by_key(&serial, |t| t.serial)
            .ok()?;
        (self.outbox.get(index)?.deadline == Some(at)).then_some(index)
    }

    /// Drops deadlines of entries answered or re-timed since, so the top is current.
    fn prune_deadlines(&mut self) {
        while let Some(&Reverse((at, serial))) = self.deadlines.peek() {
            if self.live_deadline(at, serial).is_some() {
                break;
            }
            self.deadlines.pop();
        }
    }

    /// Sends the stop of every ephemeral state the application stopped renewing.
    fn stop_states_due(&mut self, now: Millis) {
        let socket = self.open_socket();
        let commands = &mut self.commands;
        self.states.retain(|state| {
            if state.stop_at > now {
                return true;
            }
            if let Some(socket) = socket {
                let frame = Frame::App(state.stop_frame.clone());
                commands.push_back(Command::Send { socket, frame });
            }
            false
        });
    }

    fn disconnected(&mut self, now: Millis, code: CloseCode) {
        // A server whose close cannot carry its code (a gateway's is always 1000)
        // announced it in an `error` just before: that code's policy applies.
        let code = match (code, self.announced_close.take()) {
            (CloseCode::Normal | CloseCode::NoStatus | CloseCode::Abnormal, Some(announced)) => {
                CloseCode::from(announced)
            }
            (code, _) => code,
        };
        let was_open = match self.phase {
            Phase::Open(open) => Some(open.since),
            _ => None,
        };
        self.states.clear();
        // Whatever was in flight waits for the next connection; its clock restarts then.
        for tracked in &mut self.outbox {
            tracked.deadline = None;
        }
        self.deadlines.clear();
        if let Some(since) = was_open
            && now.saturating_sub(since) >= u64::from(self.options.reconnect.reset_after_ms)
        {
            self.attempt = 0;
        }
        let action = code.action();
        match action {
            CloseAction::Reconnect | CloseAction::ReconnectSoon => {
                if !matches!(code, CloseCode::Abnormal | CloseCode::NoStatus) {
                    self.last_error = Some(LastError {
                        code: FailureCode::Client(ClientErrorCode::ConnectionClosed),
                        close_code: Some(code),
                    });
                }
                // Only after a healthy connection (a server that closes this way again
                // and again gets the backoff), and never when retries are off.
                let retries = self.options.reconnect.max_attempts != Some(0);
                if action == CloseAction::ReconnectSoon
                    && was_open.is_some()
                    && self.attempt == 0
                    && retries
                {
                    self.retry_soon(now);
                } else {
                    self.retry_later(now);
                }
            }
            CloseAction::RefreshToken => {
                let can_refresh = self.options.auth == Auth::Provider;
                if can_refresh && !self.refreshed_after_failure {
                    self.refreshed_after_failure = true;
                    self.force_refresh = true;
                    self.attempt_now(now);
                } else {
                    self.stop(
                        Status::Unauthorized,
                        FailureCode::Server(ErrorCode::AuthFailed),
                        Some(code),
                    );
                }
            }
            CloseAction::Stop => self.stop(
                Status::Closed,
                FailureCode::Client(ClientErrorCode::ConnectionClosed),
                Some(code),
            ),
        }
    }

    fn retry_later(&mut self, now: Millis) {
        self.attempt = self.attempt.saturating_add(1);
        if self
            .options
            .reconnect
            .max_attempts
            .is_some_and(|max| self.attempt > max)
        {
            self.stop(
                Status::Failed,
                FailureCode::Client(ClientErrorCode::ConnectionFailed),
                None,
            );
            return;
        }
        if !self.online {
            self.set_phase(Phase::Offline);
            return;
        }
        let unit = self.rng.unit();
        let delay = self.options.reconnect.delay(self.attempt, unit);
        self.set_phase(Phase::Waiting { until: now + delay });
    }

    /// The one early retry [`CloseAction::ReconnectSoon`] allows: within the jitter
    /// share of the first backoff step, and not counted, so if it fails the backoff
    /// starts from its first step.
    fn retry_soon(&mut self, now: Millis) {
        if !self.online {
            self.set_phase(Phase::Offline);
            return;
        }
        // The share jitter takes off the first step, 0 to `jitter × initial_delay_ms`;
        // never below zero, since that step is at most `initial_delay_ms`.
        let reconnect = self.options.reconnect;
        let delay = u64::from(reconnect.initial_delay_ms) - reconnect.delay(1, self.rng.unit());
        self.set_phase(Phase::Waiting { until: now + delay });
    }

    /// Ends connecting for good: every waiting message is rejected.
    fn stop(&mut self, status: Status, code: FailureCode, close_code: Option<CloseCode>) {
        if let Some(socket) = self.current_socket() {
            self.commands.push_back(Command::CloseSocket {
                socket,
                code: CloseCode::Normal,
                reason: "closed",
            });
        }
        let reason = if status == Status::Closed && close_code.is_none() {
            ClientErrorCode::ClientClosed
        } else {
            ClientErrorCode::ConnectionFailed
        };
        self.reject_all(reason);
        self.states.clear();
        self.last_error = (close_code.is_some() || status != Status::Closed)
            .then_some(LastError { code, close_code });
        self.phase = Phase::Stopped(status);
        self.changed();
    }

    fn reject_all(&mut self, reason: ClientErrorCode) {
        self.deadlines.clear();
        while let Some(tracked) = self.outbox.pop_front() {
            self.commands.push_back(Command::Reject {
                id: tracked.id,
                reason: Rejection::Client(reason),
            });
        }
    }

    fn close(&mut self) {
        if matches!(self.phase, Phase::Stopped(Status::Closed)) && self.last_error.is_none() {
            return;
        }
        self.stop(
            Status::Closed,
            FailureCode::Client(ClientErrorCode::ClientClosed),
            None,
        );
    }

    /// Why nothing can be sent now, if nothing can.
    fn refusal(&self) -> Option<ClientErrorCode> {
        match self.phase {
            Phase::Stopped(Status::Closed) if self.last_error.is_none() => {
                Some(ClientErrorCode::ClientClosed)
            }
            Phase::Stopped(_) => Some(ClientErrorCode::ConnectionFailed),
            _ => None,
        }
    }

    /// Hands the application's message over. By its type's policy, it is sent now if
    /// connected and waits in the outbox until answered (tracked types: they get an id,
    /// returned here), or is sent only if connected (ephemeral types; a state is
    /// renewed or stopped as it changes). Requests are tracked and time out.
    pub fn send(
        &mut self,
        now: Millis,
        message: &impl Outgoing<F>,
        mode: SendMode,
    ) -> Result<Option<String>, SendError> {
        if let Some(refusal) = self.refusal() {
            return Err(SendError::Client(refusal));
        }
        let Some(policy) = self.options.descriptor.client_policy(message.type_name()) else {
            return Err(SendError::Invalid {
                code: ErrorCode::InvalidMessage,
                reason: "no such client message type in the protocol",
            });
        };
        if !policy.delivery.is_tracked() {
            if mode != SendMode::Send {
                return Err(SendError::Invalid {
                    code: ErrorCode::InvalidMessage,
                    reason: "an ephemeral message gets no answer",
                });
            }
            return self.send_ephemeral(now, message).map(|()| None);
        }
        if self.outbox.len() >= self.options.queue_size {
            return Err(SendError::Client(ClientErrorCode::QueueFull));
        }
        let room = match &policy.room {
            Some(effect) => match message.text(Key::Field(&effect.field)) {
                Some(room) => Some((effect.change, room)),
                None => return Err(invalid_field()),
            },
            None => None,
        };
        let id = match message.chosen_id() {
            Some(id) if id.is_empty() || id.len() > relaywire_protocol::MAX_ID_BYTES => {
                return Err(SendError::Invalid {
                    code: ErrorCode::ValidationError,
                    reason: "`id` must be a string of 1 to 128 bytes",
                });
            }
            Some(id) => id,
            None => self.next_id(),
        };
        let frame = self.encode_checked(message, Some(&id))?;
        let timeout_ms = match mode {
            SendMode::Send => None,
            SendMode::Request { timeout_ms } => {
                Some(timeout_ms.unwrap_or(self.options.request_timeout_ms))
            }
        };
        let socket = self.open_socket();
        let deadline = socket.and(timeout_ms).map(|ms| now + u64::from(ms));
        if let Some(socket) = socket {
            let frame = Frame::App(frame.clone());
            self.commands.push_back(Command::Send { socket, frame });
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(deadline) = deadline {
            self.deadlines.push(Reverse((deadline, serial)));
        }
        self.outbox.push_back(Tracked {
            serial,
            id: id.clone(),
            frame,
            timeout_ms,
            deadline,
            room,
            sent_on: socket,
        });
        self.changed();
        Ok(Some(id))
    }

    fn encode_checked(&self, message: &impl Outgoing<F>, id: Option<&str>) -> Result<F, SendError> {
        let frame = message.encode(id).ok_or(SendError::Invalid {
            code: ErrorCode::ValidationError,
            reason: "the payload cannot be encoded as JSON",
        })?;
        if !frame.fits(self.max_message_bytes()) {
            return Err(SendError::Invalid {
                code: ErrorCode::MessageTooLarge,
                reason: "the message is larger than the server accepts",
            });
        }
        Ok(frame)
    }

    /// An ephemeral message: sent when connected, dropped otherwise. A state (its type
    /// names `key` and `active`) starts, is renewed (repeated once half its lifetime
    /// has passed), or stops; the core sends its stop when no renewal comes in time.
    fn send_ephemeral(&mut self, now: Millis, message: &impl Outgoing<F>) -> Result<(), SendError> {
        let state = self
            .options
            .descriptor
            .client_policy(message.type_name())
            .and_then(|policy| policy.state.clone());
        let Some(state) = state else {
            let frame = self.encode_checked(message, None)?;
            if let Some(socket) = self.open_socket() {
                let frame = Frame::App(frame);
                self.commands.push_back(Command::Send { socket, frame });
            }
            return Ok(());
        };
        let (Some(key), Some(active)) = (
            message.text(Key::Field(&state.key)),
            message.flag(Key::Field(&state.active)),
        ) else {
            return Err(invalid_field());
        };
        let frame = self.encode_checked(message, None)?;
        let Some(socket) = self.open_socket() else {
            // Ephemeral: nothing is kept for later.
            return Ok(());
        };
        let ttl = u64::from(
            self.session
                .as_ref()
                .and_then(|s| s.state_ttl_ms)
                .unwrap_or(TYPING_TIMEOUT_MS),
        );
        let type_name = message.type_name();
        let existing = self
            .states
            .iter()
            .position(|s| s.key == key && s.type_name == type_name);
        let send = match (existing, active) {
            (Some(index), true) => {
                let Some(current) = self.states.get_mut(index) else {
                    return Ok(());
                };
                current.stop_at = now + ttl;
                let renew = now.saturating_sub(current.sent_at) >= ttl / 2;
                if renew {
                    current.sent_at = now;
                }
                renew
            }
            (None, true) => {
                let stop_frame = message
                    .encode_switched(&state.active, false)
                    .ok_or(invalid_field())?;
                self.states.push(ActiveState {
                    type_name: type_name.to_owned(),
                    key,
                    stop_at: now + ttl,
                    sent_at: now,
                    stop_frame,
                });
                true
            }
            (Some(_), false) => {
                // `retain`, not `remove`: no index panic (and its formatting) to ship.
                self.states
                    .retain(|state| state.key != key || state.type_name != type_name);
                true
            }
            (None, false) => false,
        };
        if send {
            let frame = Frame::App(frame);
            self.commands.push_back(Command::Send { socket, frame });
        }
        Ok(())
    }
}

fn invalid_field() -> SendError {
    SendError::Invalid {
        code: ErrorCode::ValidationError,
        reason: "a payload field the protocol names is missing or mistyped",
    }
}

#[cfg(test)]
mod tests;
