//! The connection state machine, without I/O.
//!
//! A driver (the browser's or tokio's) feeds [`Core::handle`] what happened — a socket
//! opened or closed, a message arrived, a token was fetched, the network went online, a
//! timer fired — with the current time, and carries out the [`Command`]s it gets back
//! from [`Core::poll_command`]: open a socket, send a frame, close a socket, fetch a
//! token, settle a request. [`Core::next_deadline`] says when to call it again. The
//! core decides everything else: backoff, heartbeat deadlines, the close-code policy,
//! the outbox, request timeouts and typing auto-stop. It never panics and never
//! formats strings, so it stays small in the browser build.
//!
//! `F` is the driver's frame type: a JS string in the browser (never copied into wasm
//! memory), a `String` natively.

mod backoff;
pub(crate) mod frames;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use relaywire_protocol::{
    ClientErrorCode, CloseAction, CloseCode, HEARTBEAT_INTERVAL_MS, MAX_MESSAGE_SIZE,
    TYPING_TIMEOUT_MS,
};

pub use backoff::ReconnectPolicy;
use backoff::Rng;

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth: Auth::Cookie,
            token_transport: TokenTransport::Message,
            reconnect: ReconnectPolicy::default(),
            heartbeat: Some(HeartbeatPolicy::default()),
            connect_timeout_ms: 10_000,
            queue_size: 1_000,
            request_timeout_ms: 10_000,
            seed: 0,
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

/// What the server said in `connected`, as far as the core needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// Their display name.
    pub user_name: Option<String>,
    /// Their chats.
    pub chat_ids: Vec<String>,
    /// Users sharing a chat with them who are online.
    pub online_user_ids: Vec<String>,
    /// The server's heartbeat interval.
    pub heartbeat_interval_ms: Option<u32>,
    /// The server's typing timeout.
    pub typing_timeout_ms: Option<u32>,
    /// The server's frame limit.
    pub max_message_bytes: Option<u32>,
    /// The newest stored event when the session began.
    pub seq: Option<u64>,
}

/// The parts of a received message the core acts on. Everything else is `Other`, which
/// still proves the connection alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// `connected`.
    Connected(Session),
    /// `ack` of the client message `id`.
    Ack {
        /// The echoed id.
        id: &'a str,
    },
    /// `error`, answering the client message `id` if there is one.
    Error {
        /// The echoed id.
        id: Option<&'a str>,
        /// The error code's wire string.
        code: &'a str,
    },
    /// `user:online`.
    Presence {
        /// The user.
        user_id: &'a str,
        /// Whether they are online now.
        online: bool,
    },
    /// `pong` or any other message.
    Other,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The application asked to connect (or to retry now).
    Connect,
    /// The application closed the client.
    Close,
    /// A socket finished its handshake.
    Opened(SocketId),
    /// A socket closed (1006 when it failed without a close frame).
    Closed {
        /// The socket.
        socket: SocketId,
        /// The close code.
        code: u16,
    },
    /// A message arrived on a socket.
    Message {
        /// The socket.
        socket: SocketId,
        /// What it says.
        inbound: Inbound<'a>,
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

/// The outcome of a token fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome<'a> {
    /// A token, and when it expires (same clock as `now`) if known.
    Token {
        /// The token.
        token: &'a str,
        /// When it expires.
        expires_at: Option<Millis>,
    },
    /// No session: the user is signed out.
    SignedOut,
    /// The fetch failed; it may work later.
    Failed,
}

/// A frame to send: the application's, or one the core wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<F> {
    /// A frame the application handed over.
    App(F),
    /// `auth`, `ping` or `chat:typing`, written by the core.
    Control(String),
}

/// Why a request or message was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The server answered with an `error` of this code.
    Server(String),
    /// The client gave up by itself.
    Client(ClientErrorCode),
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<F> {
    /// Open a socket; `token` goes into `?token=` and `resume_after` into `?lastSeq=`
    /// when present.
    Open {
        /// Its id, for the events it will cause.
        socket: SocketId,
        /// Token for the query string.
        token: Option<String>,
        /// The last event seen, so the server sends what was missed.
        resume_after: Option<u64>,
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
        code: u16,
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
    /// The message with this id was acknowledged.
    Resolve {
        /// Its id.
        id: String,
    },
    /// The message with this id will not be acknowledged.
    Reject {
        /// Its id.
        id: String,
        /// Why.
        reason: Rejection,
    },
    /// The snapshot changed.
    Publish,
}

/// What an acknowledged message changes in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// The user joined this chat.
    Join(String),
    /// The user left this chat.
    Leave(String),
}

/// A message handed to [`Core::send`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<F> {
    /// The id inside the frame (from [`Core::next_id`]); the message then stays in the
    /// outbox until its `ack` or `error`, and is sent again after a reconnect.
    pub id: Option<String>,
    /// The encoded frame.
    pub frame: F,
    /// Give up and reject with `TIMEOUT` when no reply comes this many milliseconds
    /// after it was sent (requests). Time spent waiting for a connection does not count.
    pub timeout_ms: Option<u32>,
    /// What its ack changes.
    pub effect: Effect,
}

#[derive(Debug)]
struct Tracked<F> {
    /// Increases along the outbox, so an entry is found by binary search.
    serial: u64,
    id: Option<String>,
    frame: F,
    timeout_ms: Option<u32>,
    deadline: Option<Millis>,
    effect: Effect,
    sent_on: Option<SocketId>,
}

#[derive(Debug)]
struct Typing {
    chat_id: String,
    stop_at: Millis,
    sent_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Waiting { until: Millis },
    Offline,
    Token { fetch: u32 },
    Opening { socket: SocketId, deadline: Millis },
    Handshake { socket: SocketId, deadline: Millis },
    Open { socket: SocketId, since: Millis },
    Stopped(Status),
}

/// The last failure, for the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// An `ErrorCode` or `ClientErrorCode` wire string, or `CONNECTION_CLOSED`.
    pub code: String,
    /// The close code that came with it, if any.
    pub close_code: Option<u16>,
}

/// The connection state machine. See the module docs.
#[derive(Debug)]
pub struct Core<F> {
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
    token: Option<String>,
    force_refresh: bool,
    refreshed_after_failure: bool,
    refresh_at: Option<Millis>,
    refresh_fetch: Option<u32>,
    next_ping_at: Option<Millis>,
    ping_deadline: Option<Millis>,
    session: Option<Session>,
    last_seq: Option<u64>,
    last_error: Option<LastError>,
    outbox: VecDeque<Tracked<F>>,
    next_serial: u64,
    /// Request deadlines and their entries' serials, earliest on top. Entries answered
    /// since are left behind and dropped when they reach the top, so a burst of
    /// requests costs a logarithm each, not a scan of the outbox per event.
    deadlines: BinaryHeap<Reverse<(Millis, u64)>>,
    typing: Vec<Typing>,
    commands: VecDeque<Command<F>>,
    version: u64,
    session_version: u64,
}

/// The shortest liveness probe after the page becomes visible or the network changes.
const PROBE_TIMEOUT_MS: u64 = 5_000;
/// Refresh a token this long before it expires (or at 90% of its life when shorter).
const REFRESH_MARGIN_MS: u64 = 30_000;
/// Retry an in-band token refresh that failed after this long.
const REFRESH_RETRY_MS: u64 = 15_000;
/// The close code the client sends when it gives a socket up.
const GIVE_UP_CODE: u16 = 4000;

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
        digits[len] = ID_ALPHABET[(value % radix) as usize];
        len += 1;
        value /= radix;
        if value == 0 || len == digits.len() {
            break;
        }
    }
    for digit in digits[..len].iter().rev() {
        out.push(char::from(*digit));
    }
}

impl<F: Clone> Core<F> {
    /// A client core in the `idle` state.
    pub fn new(options: Options) -> Self {
        let mut rng = Rng::new(options.seed);
        // A random prefix keeps ids unique across page loads, which the server relies
        // on to recognise a message sent twice.
        let mut id_prefix = String::with_capacity(14);
        push_base36(&mut id_prefix, rng.next_u64() >> 12);
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
            refresh_at: None,
            refresh_fetch: None,
            next_ping_at: None,
            ping_deadline: None,
            session: None,
            last_seq: None,
            last_error: None,
            outbox: VecDeque::new(),
            next_serial: 0,
            deadlines: BinaryHeap::new(),
            typing: Vec::new(),
            commands: VecDeque::new(),
            version: 0,
            session_version: 0,
        }
    }

    /// The next command to carry out, in order.
    pub fn poll_command(&mut self) -> Option<Command<F>> {
        self.commands.pop_front()
    }

    /// A fresh message id, unique to this client.
    pub fn next_id(&mut self) -> String {
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
            Phase::Open { .. } => Status::Open,
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

    /// Changes whenever [`Core::session`] does (user, chats, presence).
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

    /// The largest frame the server accepts.
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

    fn set_phase(&mut self, phase: Phase) {
        if self.phase != phase {
            self.phase = phase;
            self.changed();
        }
    }

    fn current_socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Opening { socket, .. }
            | Phase::Handshake { socket, .. }
            | Phase::Open { socket, .. } => Some(socket),
            _ => None,
        }
    }

    fn open_socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Open { socket, .. } => Some(socket),
            _ => None,
        }
    }

    /// When [`Core::handle`] wants to be called with [`Event::Timer`], if ever.
    pub fn next_deadline(&self) -> Option<Millis> {
        let phase = match self.phase {
            Phase::Waiting { until } => Some(until),
            Phase::Opening { deadline, .. } | Phase::Handshake { deadline, .. } => Some(deadline),
            _ => None,
        };
        let open = self.open_socket().is_some();
        let heartbeat = if open {
            [self.next_ping_at, self.ping_deadline, self.refresh_at]
        } else {
            [None; 3]
        };
        let requests = self.deadlines.peek().map(|Reverse((at, _))| *at);
        let typing = self.typing.iter().map(|t| t.stop_at);
        phase
            .into_iter()
            .chain(heartbeat.into_iter().flatten())
            .chain(requests)
            .chain(typing)
            .min()
    }

    /// Handles one event at time `now` (milliseconds, monotonic).
    pub fn handle(&mut self, now: Millis, event: Event<'_>) {
        match event {
            Event::Connect => self.connect(now),
            Event::Close => self.close(),
            Event::Opened(socket) => self.opened(socket),
            Event::Closed { socket, code } => {
                if self.current_socket() == Some(socket) {
                    self.disconnected(now, code);
                }
            }
            Event::Message { socket, inbound } => {
                if self.current_socket() == Some(socket) {
                    self.received(now, inbound);
                }
            }
            Event::Token { fetch, outcome } => self.token_fetched(now, fetch, outcome),
            Event::Online => {
                self.online = true;
                match self.phase {
                    Phase::Offline | Phase::Waiting { .. } => self.attempt_now(now),
                    Phase::Open { .. } => self.probe(now),
                    _ => {}
                }
            }
            Event::Offline => {
                self.online = false;
                match self.phase {
                    Phase::Waiting { .. } => self.set_phase(Phase::Offline),
                    // The socket may survive a short outage; a probe tells.
                    Phase::Open { .. } => self.probe(now),
                    _ => {}
                }
            }
            Event::Visible => match self.phase {
                Phase::Open { .. } => self.probe(now),
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
                self.token = Some(token.clone());
                self.open(now);
            }
            Auth::Cookie => self.open(now),
        }
    }

    fn open(&mut self, now: Millis) {
        self.next_socket = self.next_socket.wrapping_add(1);
        let socket = self.next_socket;
        let token = match self.options.token_transport {
            TokenTransport::Query => self.token.clone(),
            TokenTransport::Message => None,
        };
        self.commands.push_back(Command::Open {
            socket,
            token,
            resume_after: self.last_seq,
        });
        let deadline = now + u64::from(self.options.connect_timeout_ms);
        self.set_phase(Phase::Opening { socket, deadline });
    }

    fn opened(&mut self, socket: SocketId) {
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
        if self.options.token_transport == TokenTransport::Message
            && let Some(token) = &self.token
        {
            let frame = Frame::Control(frames::auth(token));
            self.commands.push_back(Command::Send { socket, frame });
        }
        self.set_phase(Phase::Handshake { socket, deadline });
    }

    fn token_fetched(&mut self, now: Millis, fetch: u32, outcome: TokenOutcome<'_>) {
        let in_band = self.refresh_fetch == Some(fetch);
        if in_band {
            self.refresh_fetch = None;
        } else if self.phase != (Phase::Token { fetch }) {
            return;
        }
        match outcome {
            TokenOutcome::Token { token, expires_at } => {
                self.force_refresh = false;
                self.token = Some(token.to_owned());
                self.refresh_at = expires_at.map(|expires_at| {
                    let life = expires_at.saturating_sub(now);
                    let margin = REFRESH_MARGIN_MS.min(life / 10);
                    expires_at.saturating_sub(margin).max(now)
                });
                if in_band {
                    if let Some(socket) = self.open_socket() {
                        let frame = Frame::Control(frames::auth(token));
                        self.commands.push_back(Command::Send { socket, frame });
                    }
                } else {
                    self.open(now);
                }
            }
            TokenOutcome::SignedOut => self.stop(Status::Unauthorized, "AUTH_FAILED", None),
            TokenOutcome::Failed if in_band => self.refresh_at = Some(now + REFRESH_RETRY_MS),
            TokenOutcome::Failed => self.retry_later(now),
        }
    }

    fn received(&mut self, now: Millis, inbound: Inbound<'_>) {
        // Any traffic proves the connection alive.
        self.ping_deadline = None;
        match inbound {
            Inbound::Connected(session) => self.connected(now, session),
            Inbound::Ack { id } => {
                if let Some(tracked) = self.take(id) {
                    self.apply(tracked.effect);
                    self.commands
                        .push_back(Command::Resolve { id: id.to_owned() });
                    self.changed();
                }
            }
            Inbound::Error { id: Some(id), code } => {
                if self.take(id).is_some() {
                    self.commands.push_back(Command::Reject {
                        id: id.to_owned(),
                        reason: Rejection::Server(code.to_owned()),
                    });
                    self.changed();
                }
            }
            Inbound::Error { id: None, code } => {
                self.last_error = Some(LastError {
                    code: code.to_owned(),
                    close_code: None,
                });
                self.changed();
            }
            Inbound::Presence { user_id, online } => {
                if let Some(session) = &mut self.session {
                    let known = session.online_user_ids.iter().any(|u| u == user_id);
                    match (known, online) {
                        (false, true) => session.online_user_ids.push(user_id.to_owned()),
                        (true, false) => session.online_user_ids.retain(|u| u != user_id),
                        _ => return,
                    }
                    self.session_version += 1;
                    self.changed();
                }
            }
            Inbound::Other => {}
        }
    }

    fn take(&mut self, id: &str) -> Option<Tracked<F>> {
        let index = self
            .outbox
            .iter()
            .position(|t| t.id.as_deref() == Some(id))?;
        self.outbox.remove(index)
    }

    fn apply(&mut self, effect: Effect) {
        let Some(session) = &mut self.session else {
            return;
        };
        match effect {
            Effect::Join(chat_id) => {
                if !session.chat_ids.contains(&chat_id) {
                    session.chat_ids.push(chat_id);
                    self.session_version += 1;
                }
            }
            Effect::Leave(chat_id) => {
                session.chat_ids.retain(|c| *c != chat_id);
                self.session_version += 1;
            }
            Effect::None => {}
        }
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
        self.phase = Phase::Open { socket, since: now };
        self.next_ping_at = self.heartbeat_interval().map(|interval| now + interval);
        self.ping_deadline = None;
        // The outbox goes out in order: what was waiting, then what was sent on a
        // socket that died before its ack.
        let mut index = 0;
        while let Some(tracked) = self.outbox.get_mut(index) {
            if tracked.sent_on != Some(socket) {
                tracked.sent_on = Some(socket);
                tracked.deadline = tracked.timeout_ms.map(|ms| now + u64::from(ms));
                if let Some(deadline) = tracked.deadline {
                    self.deadlines.push(Reverse((deadline, tracked.serial)));
                }
                let frame = Frame::App(tracked.frame.clone());
                let keep = tracked.id.is_some();
                self.commands.push_back(Command::Send { socket, frame });
                if !keep {
                    self.outbox.remove(index);
                    continue;
                }
            }
            index += 1;
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
        let Some(socket) = self.open_socket() else {
            return;
        };
        let frame = Frame::Control(frames::PING.to_owned());
        self.commands.push_back(Command::Send { socket, frame });
        let deadline = now + self.heartbeat_timeout().min(PROBE_TIMEOUT_MS);
        self.ping_deadline = Some(self.ping_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    fn timer(&mut self, now: Millis) {
        match self.phase {
            Phase::Waiting { until } if until <= now => self.attempt_now(now),
            Phase::Opening { socket, deadline } | Phase::Handshake { socket, deadline }
                if deadline <= now =>
            {
                self.commands.push_back(Command::CloseSocket {
                    socket,
                    code: GIVE_UP_CODE,
                    reason: "connect timeout",
                });
                self.disconnected(now, CloseCode::Abnormal.code());
            }
            Phase::Open { socket, .. } => {
                if self.ping_deadline.is_some_and(|d| d <= now) {
                    self.commands.push_back(Command::CloseSocket {
                        socket,
                        code: GIVE_UP_CODE,
                        reason: "heartbeat timeout",
                    });
                    self.disconnected(now, CloseCode::Abnormal.code());
                } else if self.next_ping_at.is_some_and(|at| at <= now) {
                    let frame = Frame::Control(frames::PING.to_owned());
                    self.commands.push_back(Command::Send { socket, frame });
                    if self.ping_deadline.is_none() {
                        self.ping_deadline = Some(now + self.heartbeat_timeout());
                    }
                    self.next_ping_at = self.heartbeat_interval().map(|i| now + i);
                }
                if self.refresh_at.is_some_and(|at| at <= now)
                    && self.refresh_fetch.is_none()
                    && self.options.auth == Auth::Provider
                {
                    self.refresh_at = None;
                    self.next_fetch += 1;
                    self.refresh_fetch = Some(self.next_fetch);
                    self.commands.push_back(Command::FetchToken {
                        fetch: self.next_fetch,
                        force_refresh: true,
                    });
                }
            }
            _ => {}
        }
        self.expire_requests(now);
        self.stop_typing_due(now);
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
            if let Some(Tracked { id: Some(id), .. }) = self.outbox.remove(index) {
                self.commands.push_back(Command::Reject {
                    id,
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
        (self.outbox[index].deadline == Some(at)).then_some(index)
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

    fn stop_typing_due(&mut self, now: Millis) {
        let socket = self.open_socket();
        let commands = &mut self.commands;
        self.typing.retain(|typing| {
            if typing.stop_at > now {
                return true;
            }
            if let Some(socket) = socket {
                let frame = Frame::Control(frames::typing(&typing.chat_id, false));
                commands.push_back(Command::Send { socket, frame });
            }
            false
        });
    }

    fn disconnected(&mut self, now: Millis, code: u16) {
        let was_open = match self.phase {
            Phase::Open { since, .. } => Some(since),
            _ => None,
        };
        self.next_ping_at = None;
        self.ping_deadline = None;
        self.typing.clear();
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
        let close = CloseCode::from(code);
        match close.action() {
            CloseAction::Reconnect => {
                if code != CloseCode::Abnormal.code() && code != CloseCode::NoStatus.code() {
                    self.last_error = Some(LastError {
                        code: "CONNECTION_CLOSED".to_owned(),
                        close_code: Some(code),
                    });
                }
                self.retry_later(now);
            }
            CloseAction::RefreshToken => {
                let can_refresh = self.options.auth == Auth::Provider;
                if can_refresh && !self.refreshed_after_failure {
                    self.refreshed_after_failure = true;
                    self.force_refresh = true;
                    self.attempt_now(now);
                } else {
                    self.stop(Status::Unauthorized, "AUTH_FAILED", Some(code));
                }
            }
            CloseAction::Stop => self.stop(Status::Closed, "CONNECTION_CLOSED", Some(code)),
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
                ClientErrorCode::ConnectionFailed.as_str(),
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

    /// Ends connecting for good: every waiting message is rejected.
    fn stop(&mut self, status: Status, code: &str, close_code: Option<u16>) {
        if let Some(socket) = self.current_socket() {
            self.commands.push_back(Command::CloseSocket {
                socket,
                code: CloseCode::Normal.code(),
                reason: "closed",
            });
        }
        let reason = if status == Status::Closed && close_code.is_none() {
            ClientErrorCode::ClientClosed
        } else {
            ClientErrorCode::ConnectionFailed
        };
        self.reject_all(reason);
        self.typing.clear();
        self.next_ping_at = None;
        self.ping_deadline = None;
        self.refresh_at = None;
        self.refresh_fetch = None;
        self.last_error = (close_code.is_some() || status != Status::Closed).then(|| LastError {
            code: code.to_owned(),
            close_code,
        });
        self.phase = Phase::Stopped(status);
        self.changed();
    }

    fn reject_all(&mut self, reason: ClientErrorCode) {
        self.deadlines.clear();
        while let Some(tracked) = self.outbox.pop_front() {
            if let Some(id) = tracked.id {
                self.commands.push_back(Command::Reject {
                    id,
                    reason: Rejection::Client(reason),
                });
            }
        }
    }

    fn close(&mut self) {
        if self.phase == Phase::Stopped(Status::Closed) && self.last_error.is_none() {
            return;
        }
        self.stop(Status::Closed, ClientErrorCode::ClientClosed.as_str(), None);
    }

    /// Why a message cannot be accepted now, if it cannot.
    fn refusal(&self) -> Option<ClientErrorCode> {
        match self.phase {
            Phase::Stopped(Status::Closed) if self.last_error.is_none() => {
                Some(ClientErrorCode::ClientClosed)
            }
            Phase::Stopped(_) => Some(ClientErrorCode::ConnectionFailed),
            _ if self.outbox.len() >= self.options.queue_size => Some(ClientErrorCode::QueueFull),
            _ => None,
        }
    }

    /// Sends a message now, or keeps it until the connection is open. A message with
    /// an id stays until its `ack` or `error` and is sent again after a reconnect.
    pub fn send(&mut self, now: Millis, message: Outgoing<F>) -> Result<(), ClientErrorCode> {
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let socket = self.open_socket();
        let deadline = socket.and(message.timeout_ms).map(|ms| now + u64::from(ms));
        if let Some(socket) = socket {
            let frame = Frame::App(message.frame.clone());
            self.commands.push_back(Command::Send { socket, frame });
            if message.id.is_none() {
                return Ok(());
            }
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(deadline) = deadline {
            self.deadlines.push(Reverse((deadline, serial)));
        }
        self.outbox.push_back(Tracked {
            serial,
            id: message.id,
            frame: message.frame,
            timeout_ms: message.timeout_ms,
            deadline,
            effect: message.effect,
            sent_on: socket,
        });
        self.changed();
        Ok(())
    }

    /// Whether an event numbered `seq` is new to this client; remembers it when it is.
    /// The server replays what a reconnecting client missed, so an event may come
    /// twice: the second time it is dropped.
    pub fn admit(&mut self, seq: u64) -> bool {
        match self.last_seq {
            Some(last) if seq <= last => false,
            _ => {
                self.last_seq = Some(seq);
                true
            }
        }
    }

    /// The last event this client saw.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The request timeout to use when a request names none.
    pub fn default_request_timeout_ms(&self) -> u32 {
        self.options.request_timeout_ms
    }

    /// Starts or stops the typing indicator in a chat. A start is repeated while it
    /// lasts so the server's indicator does not expire, and a stop is sent by itself
    /// after the typing timeout. Nothing is sent while disconnected: typing is
    /// ephemeral.
    pub fn set_typing(&mut self, now: Millis, chat_id: &str, is_typing: bool) {
        let timeout = u64::from(
            self.session
                .as_ref()
                .and_then(|s| s.typing_timeout_ms)
                .unwrap_or(TYPING_TIMEOUT_MS),
        );
        let Some(socket) = self.open_socket() else {
            return;
        };
        let existing = self.typing.iter().position(|t| t.chat_id == chat_id);
        let send = match (existing, is_typing) {
            (Some(index), true) => {
                let Some(typing) = self.typing.get_mut(index) else {
                    return;
                };
                typing.stop_at = now + timeout;
                let resend = now.saturating_sub(typing.sent_at) >= timeout / 2;
                if resend {
                    typing.sent_at = now;
                }
                resend
            }
            (None, true) => {
                self.typing.push(Typing {
                    chat_id: chat_id.to_owned(),
                    stop_at: now + timeout,
                    sent_at: now,
                });
                true
            }
            (Some(_), false) => {
                self.typing.retain(|t| t.chat_id != chat_id);
                true
            }
            (None, false) => false,
        };
        if send {
            let frame = Frame::Control(frames::typing(chat_id, is_typing));
            self.commands.push_back(Command::Send { socket, frame });
        }
    }
}

#[cfg(test)]
mod tests;
