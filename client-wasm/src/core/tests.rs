//! The state machine under a virtual clock: every transition, deadline and policy.

use relaywire_chat::ChatProtocol;
use relaywire_protocol::Protocol;

use super::*;

/// The wire of protocol 3, whose server speaks first.
const V3: Wire = Wire::new(3);

/// A message as the tests send it: a type and string or boolean payload fields. Its
/// frame is `type#id{field=value,...}`, enough to tell frames apart.
#[derive(Debug, Clone)]
struct Msg {
    type_name: &'static str,
    fields: Vec<(&'static str, Field)>,
    id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Text(String),
    Flag(bool),
}

impl Msg {
    fn new(type_name: &'static str) -> Self {
        Self {
            type_name,
            fields: Vec::new(),
            id: None,
        }
    }

    fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    fn text(mut self, key: &'static str, value: &str) -> Self {
        self.fields.push((key, Field::Text(value.to_owned())));
        self
    }

    fn flag(mut self, key: &'static str, value: bool) -> Self {
        self.fields.push((key, Field::Flag(value)));
        self
    }

    fn frame(&self, id: Option<&str>) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| match value {
                Field::Text(text) => format!("{key}={text}"),
                Field::Flag(flag) => format!("{key}={flag}"),
            })
            .collect();
        format!(
            "{}#{}{{{}}}",
            self.type_name,
            id.unwrap_or(""),
            fields.join(",")
        )
    }

    fn get(&self, key: Key<'_>) -> Option<&Field> {
        self.fields
            .iter()
            .find(|(name, _)| *name == key.name())
            .map(|(_, value)| value)
    }
}

impl Fields for Msg {
    fn text(&self, key: Key<'_>) -> Option<String> {
        match self.get(key)? {
            Field::Text(text) => Some(text.clone()),
            Field::Flag(_) => None,
        }
    }
    fn number(&self, _: Key<'_>) -> Option<f64> {
        None
    }
    fn flag(&self, key: Key<'_>) -> Option<bool> {
        match self.get(key)? {
            Field::Flag(flag) => Some(*flag),
            Field::Text(_) => None,
        }
    }
    fn texts(&self, _: Key<'_>) -> Vec<String> {
        Vec::new()
    }
}

impl Outgoing<String> for Msg {
    fn type_name(&self) -> &str {
        self.type_name
    }
    fn encode(&self, id: Option<&str>) -> Option<String> {
        Some(self.frame(id))
    }
    fn chosen_id(&self) -> Option<String> {
        self.id.clone()
    }
    fn encode_switched(&self, field: &str, value: bool) -> Option<String> {
        let mut switched = self.clone();
        for (key, old) in &mut switched.fields {
            if *key == field {
                *old = Field::Flag(value);
            }
        }
        Some(switched.frame(None))
    }
}

/// A chat message with this text.
fn say(text: &str) -> Msg {
    Msg::new("chat:message")
        .text("chatId", "general")
        .text("content", text)
}

fn typing(chat: &str, on: bool) -> Msg {
    Msg::new("chat:typing")
        .text("chatId", chat)
        .flag("isTyping", on)
}

/// A core driven by hand, with a clock that only moves when told. Received messages
/// are their labels.
struct Harness {
    core: Core<String, String>,
    now: Millis,
}

fn defaults() -> Options {
    Options::new(ChatProtocol::descriptor())
}

fn no_jitter() -> Options {
    Options {
        reconnect: ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        },
        seed: 1,
        ..defaults()
    }
}

fn session(user: &str) -> Session {
    Session {
        user_id: user.to_owned(),
        rooms: vec!["general".to_owned()],
        ..Session::default()
    }
}

fn message(socket: SocketId, inbound: Inbound) -> Event<'static, String> {
    let label = format!("{inbound:?}");
    Event::Message {
        socket,
        inbound,
        message: label,
    }
}

fn ack(socket: SocketId, id: &str) -> Event<'static, String> {
    message(socket, Inbound::Ack { id: id.to_owned() })
}

impl Harness {
    fn new(options: Options) -> Self {
        Self {
            core: Core::new(options),
            now: 0,
        }
    }

    fn handle(&mut self, event: Event<'_, String>) -> Vec<Command<String, String>> {
        self.core.handle(self.now, event);
        self.commands()
    }

    /// The commands since the last call, without `Publish` and deliveries.
    fn commands(&mut self) -> Vec<Command<String, String>> {
        std::iter::from_fn(|| self.core.poll_command())
            .filter(|c| !matches!(c, Command::Publish | Command::Deliver { .. }))
            .collect()
    }

    /// Moves the clock to `to`, firing every deadline on the way at its own time.
    fn run_until(&mut self, to: Millis) -> Vec<Command<String, String>> {
        let mut out = Vec::new();
        while let Some(deadline) = self.core.next_deadline().filter(|d| *d <= to) {
            self.now = self.now.max(deadline);
            out.extend(self.handle(Event::Timer));
        }
        self.now = to;
        out
    }

    fn advance(&mut self, ms: Millis) -> Vec<Command<String, String>> {
        self.run_until(self.now + ms)
    }

    fn expect_open(commands: &[Command<String, String>]) -> SocketId {
        match commands.iter().find(|c| matches!(c, Command::Open { .. })) {
            Some(Command::Open { socket, .. }) => *socket,
            _ => panic!("no Open in {commands:?}"),
        }
    }

    /// Connect → Opened → connected; returns the socket.
    fn connect(&mut self) -> SocketId {
        let socket = Self::expect_open(&self.handle(Event::Connect));
        self.establish(socket);
        socket
    }

    fn establish(&mut self, socket: SocketId) -> Vec<Command<String, String>> {
        let mut out = self.handle(Event::Opened(socket, V3));
        out.extend(self.handle(message(socket, Inbound::Connected(session("alice")))));
        assert_eq!(self.core.status(), Status::Open);
        out
    }

    fn closed(&mut self, socket: SocketId, code: u16) -> Vec<Command<String, String>> {
        self.handle(Event::Closed {
            socket,
            code: CloseCode::from(code),
        })
    }

    /// Sends a tracked message; returns its id.
    fn send(&mut self, message: &Msg) -> Result<String, SendError> {
        let now = self.now;
        self.core
            .send(now, message, SendMode::Send)
            .map(|id| id.unwrap_or_default())
    }

    fn request(&mut self, message: &Msg, timeout_ms: u32) -> String {
        let now = self.now;
        self.core
            .send(
                now,
                message,
                SendMode::Request {
                    timeout_ms: Some(timeout_ms),
                },
            )
            .expect("accepted")
            .expect("a request gets an id")
    }

    fn ephemeral(&mut self, message: &Msg) {
        let now = self.now;
        assert_eq!(self.core.send(now, message, SendMode::Send), Ok(None));
    }
}

fn sent(commands: &[Command<String, String>]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Send {
                frame: Frame::App(f) | Frame::Control(f),
                ..
            } => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn no_params() -> Vec<(&'static str, String)> {
    Vec::new()
}

#[test]
fn a_first_connection_goes_idle_connecting_open() {
    let mut h = Harness::new(no_jitter());
    assert_eq!(h.core.status(), Status::Idle);
    let commands = h.handle(Event::Connect);
    assert_eq!(
        commands,
        [Command::Open {
            socket: 1,
            params: no_params(),
        }]
    );
    assert_eq!(h.core.status(), Status::Connecting);
    // Cookie auth sends nothing on open.
    assert_eq!(h.handle(Event::Opened(1, V3)), []);
    assert_eq!(h.core.status(), Status::Connecting);
    h.handle(message(1, Inbound::Connected(session("alice"))));
    assert_eq!(h.core.status(), Status::Open);
    assert_eq!(h.core.session().unwrap().user_id, "alice");
    assert_eq!(h.core.attempt(), 0);
}

#[test]
fn tokens_travel_in_the_first_message_or_the_query() {
    let mut h = Harness::new(Options {
        auth: Auth::Token("t0k".into()),
        ..no_jitter()
    });
    let commands = h.handle(Event::Connect);
    // The server is told to wait for the message, so a cookie cannot stand in.
    assert_eq!(
        commands,
        [Command::Open {
            socket: 1,
            params: vec![("auth", "message".to_owned())],
        }]
    );
    assert_eq!(sent(&h.handle(Event::Opened(1, V3))), [frames::auth("t0k")]);

    let mut h = Harness::new(Options {
        auth: Auth::Token("t0k".into()),
        token_transport: TokenTransport::Query,
        ..no_jitter()
    });
    assert_eq!(
        h.handle(Event::Connect),
        [Command::Open {
            socket: 1,
            params: vec![("token", "t0k".to_owned())],
        }]
    );
    assert_eq!(h.handle(Event::Opened(1, V3)), []);
}

/// Under protocol 4 the client speaks first, so a server that cannot (API Gateway)
/// answers with `connected`: with its `auth` when it sends one, or else a `ping`.
#[test]
fn under_protocol_4_the_client_opens_every_connection() {
    let v4 = Wire::new(4);
    let mut h = Harness::new(no_jitter());
    h.handle(Event::Connect);
    assert_eq!(sent(&h.handle(Event::Opened(1, v4))), [frames::PING]);
    assert_eq!(h.core.status(), Status::Connecting);
    h.handle(message(1, Inbound::Connected(session("alice"))));
    assert_eq!(h.core.status(), Status::Open);

    let mut h = Harness::new(Options {
        auth: Auth::Token("t0k".into()),
        ..no_jitter()
    });
    h.handle(Event::Connect);
    // The `auth` opens it; no `ping` follows.
    assert_eq!(sent(&h.handle(Event::Opened(1, v4))), [frames::auth("t0k")]);

    let mut h = Harness::new(Options {
        auth: Auth::Token("t0k".into()),
        token_transport: TokenTransport::Query,
        ..no_jitter()
    });
    h.handle(Event::Connect);
    assert_eq!(sent(&h.handle(Event::Opened(1, v4))), [frames::PING]);
}

#[test]
fn a_token_provider_is_asked_before_every_connect() {
    let mut h = Harness::new(Options {
        auth: Auth::Provider,
        ..no_jitter()
    });
    assert_eq!(
        h.handle(Event::Connect),
        [Command::FetchToken {
            fetch: 1,
            force_refresh: false
        }]
    );
    let commands = h.handle(Event::Token {
        fetch: 1,
        outcome: TokenOutcome::Token {
            token: "first",
            expires_at: None,
        },
    });
    let socket = Harness::expect_open(&commands);
    assert_eq!(sent(&h.establish(socket)), [frames::auth("first")]);
    // A dropped connection fetches again (the token may have been rotated).
    h.closed(socket, 1006);
    let commands = h.run_until(h.now + 1_000);
    assert_eq!(
        commands,
        [Command::FetchToken {
            fetch: 2,
            force_refresh: false
        }]
    );
    // A stale answer is ignored.
    assert_eq!(
        h.handle(Event::Token {
            fetch: 1,
            outcome: TokenOutcome::SignedOut
        }),
        []
    );
    // A failed fetch is retried with backoff, as a failed connection is.
    h.handle(Event::Token {
        fetch: 2,
        outcome: TokenOutcome::Failed,
    });
    assert_eq!(h.core.status(), Status::Reconnecting);
    assert_eq!(h.core.next_retry_at().unwrap() - h.now, 2_000);
    let commands = h.advance(2_000);
    assert_eq!(
        commands,
        [Command::FetchToken {
            fetch: 3,
            force_refresh: false
        }]
    );
    // Signed out: unauthorized, no retry.
    h.handle(Event::Token {
        fetch: 3,
        outcome: TokenOutcome::SignedOut,
    });
    assert_eq!(h.core.status(), Status::Unauthorized);
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn failed_attempts_back_off_exponentially_up_to_the_cap() {
    let mut h = Harness::new(no_jitter());
    let mut socket = Harness::expect_open(&h.handle(Event::Connect));
    let mut waits = Vec::new();
    for _ in 0..7 {
        h.closed(socket, 1006);
        assert_eq!(h.core.status(), Status::Reconnecting);
        let retry_at = h.core.next_retry_at().unwrap();
        waits.push(retry_at - h.now);
        socket = Harness::expect_open(&h.run_until(retry_at));
    }
    assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
}

#[test]
fn jittered_delays_stay_in_their_band() {
    let mut h = Harness::new(Options {
        seed: 99,
        ..defaults()
    });
    let mut socket = Harness::expect_open(&h.handle(Event::Connect));
    for attempt in 1..=6u32 {
        h.closed(socket, 1006);
        let wait = h.core.next_retry_at().unwrap() - h.now;
        let full = 1_000u64 << (attempt - 1);
        assert!(
            wait >= full / 2 && wait <= full,
            "attempt {attempt}: {wait}"
        );
        socket = Harness::expect_open(&h.advance(wait));
    }
}

#[test]
fn out_of_attempts_fails_and_rejects_what_waits() {
    let mut h = Harness::new(Options {
        reconnect: ReconnectPolicy {
            max_attempts: Some(2),
            initial_delay_ms: 1_000,
            max_delay_ms: 5_000,
            jitter: 0.0,
            ..ReconnectPolicy::default()
        },
        ..no_jitter()
    });
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    let queued = h.send(&say("queued")).unwrap();
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(1_000));
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(2_000));
    let commands = h.closed(socket, 1006);
    assert_eq!(h.core.status(), Status::Failed);
    assert!(commands.contains(&Command::Reject {
        id: queued,
        reason: Rejection::Client(ClientErrorCode::ConnectionFailed)
    }));
    assert_eq!(
        h.core.last_error().unwrap().code,
        FailureCode::Client(ClientErrorCode::ConnectionFailed)
    );
    assert_eq!(
        h.send(&say("late")),
        Err(SendError::Client(ClientErrorCode::ConnectionFailed))
    );
    // Connecting again always works.
    assert!(matches!(
        h.handle(Event::Connect)[..],
        [Command::Open { .. }]
    ));
    assert_eq!(h.core.attempt(), 0);
}

#[test]
fn a_healthy_connection_resets_the_retry_count() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(1_000));
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(2_000));
    h.establish(socket);
    // Open only briefly: the count goes on.
    h.advance(1_000);
    h.closed(socket, 1011);
    assert_eq!(h.core.attempt(), 3);
    let socket = Harness::expect_open(&h.advance(4_000));
    h.establish(socket);
    // Open for longer than reset_after: the count starts over.
    h.advance(6_000);
    h.closed(socket, 1011);
    assert_eq!(h.core.attempt(), 1);
    assert_eq!(h.core.next_retry_at().unwrap() - h.now, 1_000);
}

#[test]
fn a_server_going_away_gets_one_early_jittered_retry_after_a_healthy_connection() {
    for (code, seed) in [(1001, 7), (1012, 8), (1001, 9), (1012, 10)] {
        let mut h = Harness::new(Options { seed, ..defaults() });
        let socket = h.connect();
        h.advance(6_000);
        h.closed(socket, code);
        assert_eq!(h.core.status(), Status::Reconnecting);
        // Within the jitter share (0.5) of the first step (1,000 ms), not counted.
        let wait = h.core.next_retry_at().unwrap() - h.now;
        assert!(wait < 500, "close {code}: waits {wait} ms");
        assert_eq!(h.core.attempt(), 0);
        // The early retry fails: the backoff starts from its first step.
        let socket = Harness::expect_open(&h.advance(wait));
        h.closed(socket, 1006);
        assert_eq!(h.core.attempt(), 1);
        let wait = h.core.next_retry_at().unwrap() - h.now;
        assert!((500..=1_000).contains(&wait), "then waits {wait} ms");
        // Going away again right after connecting: the count goes on, no early retry.
        let socket = Harness::expect_open(&h.advance(wait));
        h.establish(socket);
        h.advance(100);
        h.closed(socket, code);
        assert_eq!(h.core.attempt(), 2);
        let wait = h.core.next_retry_at().unwrap() - h.now;
        assert!((1_000..=2_000).contains(&wait), "and then {wait} ms");
    }
}

#[test]
fn with_retries_off_a_server_going_away_ends_the_client() {
    let mut h = Harness::new(Options {
        reconnect: ReconnectPolicy {
            max_attempts: Some(0),
            ..ReconnectPolicy::default()
        },
        ..no_jitter()
    });
    let socket = h.connect();
    h.advance(6_000);
    h.closed(socket, 1001);
    assert_eq!(h.core.status(), Status::Failed);
    assert_eq!(h.core.next_retry_at(), None);
}

#[test]
fn without_jitter_a_server_going_away_is_retried_at_once() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.advance(6_000);
    h.closed(socket, 1012);
    assert_eq!(h.core.next_retry_at(), Some(h.now));
    Harness::expect_open(&h.advance(0));
}

#[test]
fn close_codes_decide_between_retry_refresh_and_stop() {
    for (code, status) in [
        (1000, Status::Closed),
        (4003, Status::Closed),
        (4005, Status::Closed),
        (4008, Status::Closed),
        (4600, Status::Closed),
        (1001, Status::Reconnecting),
        (1011, Status::Reconnecting),
        (4004, Status::Reconnecting),
        (4006, Status::Reconnecting),
        (4400, Status::Reconnecting),
        (4001, Status::Unauthorized),
        (4002, Status::Unauthorized),
        (1008, Status::Unauthorized),
    ] {
        let mut h = Harness::new(no_jitter());
        let socket = h.connect();
        h.closed(socket, code);
        assert_eq!(h.core.status(), status, "close code {code}");
        let last = h.core.last_error().unwrap();
        assert_eq!(last.close_code, Some(CloseCode::from(code)));
        let expected = match status {
            Status::Unauthorized => FailureCode::Server(ErrorCode::AuthFailed),
            _ => FailureCode::Client(ClientErrorCode::ConnectionClosed),
        };
        assert_eq!(last.code, expected, "close code {code}");
        if status != Status::Reconnecting {
            assert_eq!(
                h.core.next_deadline(),
                None,
                "code {code} leaves nothing scheduled"
            );
        }
    }
}

#[test]
fn an_expired_token_is_refreshed_once_then_unauthorized() {
    let mut h = Harness::new(Options {
        auth: Auth::Provider,
        ..no_jitter()
    });
    h.handle(Event::Connect);
    let token = |h: &mut Harness, fetch: u32, token: &str| {
        Harness::expect_open(&h.handle(Event::Token {
            fetch,
            outcome: TokenOutcome::Token {
                token,
                expires_at: None,
            },
        }))
    };
    let socket = token(&mut h, 1, "old");
    h.establish(socket);
    // 4002: fetch a fresh token at once, forcing the refresh.
    assert_eq!(
        h.closed(socket, 4002),
        [Command::FetchToken {
            fetch: 2,
            force_refresh: true
        }]
    );
    let socket = token(&mut h, 2, "new");
    h.handle(Event::Opened(socket, V3));
    // The refreshed token fails too: stop, no retry storm.
    h.closed(socket, 4001);
    assert_eq!(h.core.status(), Status::Unauthorized);
    assert_eq!(
        h.core.last_error().unwrap().code,
        FailureCode::Server(ErrorCode::AuthFailed)
    );
    assert_eq!(h.core.next_deadline(), None);

    // After a success, a later expiry may refresh again.
    h.handle(Event::Connect);
    let socket = token(&mut h, 3, "fresh");
    h.establish(socket);
    assert_eq!(
        h.closed(socket, 4002),
        [Command::FetchToken {
            fetch: 4,
            force_refresh: true
        }]
    );
}

#[test]
fn cookie_or_static_token_auth_failures_stop_at_once() {
    for auth in [Auth::Cookie, Auth::Token("bad".into())] {
        let mut h = Harness::new(Options {
            auth,
            ..no_jitter()
        });
        let socket = Harness::expect_open(&h.handle(Event::Connect));
        h.handle(Event::Opened(socket, V3));
        h.handle(message(
            socket,
            Inbound::Error {
                id: None,
                code: ErrorCode::AuthFailed,
                close_code: None,
            },
        ));
        h.closed(socket, 4001);
        assert_eq!(h.core.status(), Status::Unauthorized);
        assert_eq!(h.core.next_deadline(), None);
    }
}

/// A gateway closes every connection with 1000; the server names the code it means in
/// the `error` before, and the client acts on that one: a retry after "try again
/// later", where 1000 alone would stop it.
#[test]
fn a_close_announced_in_an_error_decides_over_the_gateways_1000() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.establish(socket);
    h.handle(message(
        socket,
        Inbound::Error {
            id: None,
            code: ErrorCode::InternalError,
            close_code: Some(CloseCode::TryAgainLater.code()),
        },
    ));
    h.closed(socket, 1000);
    assert_eq!(h.core.status(), Status::Reconnecting);
    assert!(h.core.next_deadline().is_some());
    // Announced on one socket, it does not outlive it: a plain 1000 later stops.
    let socket = loop {
        let commands = h.advance(100);
        if commands.iter().any(|c| matches!(c, Command::Open { .. })) {
            break Harness::expect_open(&commands);
        }
    };
    h.establish(socket);
    h.closed(socket, 1000);
    assert_eq!(h.core.status(), Status::Closed);
}

#[test]
fn a_connect_attempt_that_does_not_open_in_time_is_abandoned() {
    let mut h = Harness::new(Options {
        connect_timeout_ms: 3_000,
        ..no_jitter()
    });
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    let commands = h.advance(3_000);
    assert!(commands.contains(&Command::CloseSocket {
        socket,
        code: CloseCode::ClientGaveUp,
        reason: "connect timeout"
    }));
    assert_eq!(h.core.status(), Status::Reconnecting);
    // Its late events change nothing.
    assert_eq!(h.handle(Event::Opened(socket, V3)), []);
    assert_eq!(h.closed(socket, 1006), []);
    // A socket that opens but never authenticates is abandoned too.
    let socket = Harness::expect_open(&h.advance(1_000));
    h.handle(Event::Opened(socket, V3));
    let commands = h.advance(3_000);
    assert!(commands.contains(&Command::CloseSocket {
        socket,
        code: CloseCode::ClientGaveUp,
        reason: "connect timeout"
    }));
}

#[test]
fn no_traffic_after_a_ping_means_the_connection_is_dead() {
    let mut h = Harness::new(Options {
        heartbeat: Some(HeartbeatPolicy {
            interval_ms: 30_000,
            timeout_ms: 10_000,
        }),
        ..no_jitter()
    });
    let socket = h.connect();
    let commands = h.advance(30_000);
    assert_eq!(sent(&commands), [frames::PING]);
    // Any traffic before the deadline keeps it alive.
    h.advance(5_000);
    h.handle(message(socket, Inbound::Other));
    assert_eq!(h.advance(10_000), []);
    // The next ping gets nothing back: closed and retried, though the socket never said so.
    let commands = h.advance(15_000);
    assert_eq!(sent(&commands), [frames::PING]);
    let commands = h.advance(10_000);
    assert!(commands.contains(&Command::CloseSocket {
        socket,
        code: CloseCode::ClientGaveUp,
        reason: "heartbeat timeout"
    }));
    assert_eq!(h.core.status(), Status::Reconnecting);
}

#[test]
fn the_servers_heartbeat_interval_wins() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.handle(Event::Opened(socket, V3));
    let mut announced = session("alice");
    announced.heartbeat_interval_ms = Some(2_000);
    h.handle(message(socket, Inbound::Connected(announced)));
    assert_eq!(sent(&h.advance(1_999)), Vec::<String>::new());
    assert_eq!(sent(&h.advance(1)), [frames::PING]);
}

#[test]
fn a_visible_page_checks_liveness_at_once() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.advance(1_000);
    assert_eq!(sent(&h.handle(Event::Visible)), [frames::PING]);
    let commands = h.advance(5_000);
    assert!(commands.contains(&Command::CloseSocket {
        socket,
        code: CloseCode::ClientGaveUp,
        reason: "heartbeat timeout"
    }));
    // Waiting to retry: a visible page retries now.
    assert!(h.core.next_retry_at().is_some());
    assert!(matches!(
        h.handle(Event::Visible)[..],
        [Command::Open { .. }]
    ));
}

#[test]
fn offline_pauses_retries_and_online_retries_at_once() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.handle(Event::Offline);
    h.closed(socket, 1006);
    assert_eq!(h.core.status(), Status::Offline);
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.advance(60_000), []);
    assert!(matches!(
        h.handle(Event::Online)[..],
        [Command::Open { .. }]
    ));

    // Going offline while waiting pauses the wait too.
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.closed(socket, 1006);
    h.handle(Event::Offline);
    assert_eq!(h.core.status(), Status::Offline);
    assert_eq!(h.advance(60_000), []);
}

#[test]
fn tracked_messages_wait_in_order_and_a_full_queue_refuses() {
    let mut h = Harness::new(Options {
        queue_size: 3,
        ..no_jitter()
    });
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    let a = h.send(&say("a")).unwrap();
    let b = h.send(&say("b")).unwrap();
    let c = h.send(&say("c")).unwrap();
    assert_eq!(
        h.send(&say("d")),
        Err(SendError::Client(ClientErrorCode::QueueFull))
    );
    // Ephemeral messages are never queued: dropped while not connected.
    h.ephemeral(&Msg::new("ping"));
    assert_eq!(h.core.pending(), 3);
    let commands = h.establish(socket);
    assert_eq!(
        sent(&commands),
        [
            say("a").frame(Some(&a)),
            say("b").frame(Some(&b)),
            say("c").frame(Some(&c))
        ]
    );
    // A tracked message waits for its ack.
    assert_eq!(h.core.pending(), 3);
    for id in [&a, &b, &c] {
        h.handle(ack(socket, id));
    }
    assert_eq!(h.core.pending(), 0);
    // Open: straight out, ephemeral ones too.
    let e = h.send(&say("e")).unwrap();
    h.ephemeral(&Msg::new("ping"));
    assert_eq!(
        sent(&h.commands()),
        [say("e").frame(Some(&e)), Msg::new("ping").frame(None)]
    );
}

#[test]
fn what_the_protocol_does_not_know_or_cannot_carry_is_refused() {
    let mut h = Harness::new(no_jitter());
    h.connect();
    assert!(matches!(
        h.send(&Msg::new("chat:mesage")),
        Err(SendError::Invalid {
            code: ErrorCode::InvalidMessage,
            ..
        })
    ));
    // Asking for an answer to an ephemeral message is a mistake.
    let now = h.now;
    assert!(matches!(
        h.core.send(
            now,
            &typing("general", true),
            SendMode::Request { timeout_ms: None }
        ),
        Err(SendError::Invalid {
            code: ErrorCode::InvalidMessage,
            ..
        })
    ));
    // A join needs the room field its policy names.
    assert!(matches!(
        h.send(&Msg::new("chat:join")),
        Err(SendError::Invalid {
            code: ErrorCode::ValidationError,
            ..
        })
    ));
    // Larger than the server said it accepts.
    let big = "x".repeat(MAX_MESSAGE_SIZE);
    assert!(matches!(
        h.send(&say(&big)),
        Err(SendError::Invalid {
            code: ErrorCode::MessageTooLarge,
            ..
        })
    ));
    assert_eq!(h.core.pending(), 0);
}

#[test]
fn requests_resolve_reject_or_time_out() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let r1 = h.request(&say("r1"), 1_000);
    let r2 = h.request(&say("r2"), 1_000);
    let r3 = h.request(&say("r3"), 1_000);
    h.commands();
    let event = ack(socket, &r1);
    let Event::Message { message: reply, .. } = &event else {
        unreachable!()
    };
    let reply = reply.clone();
    assert_eq!(
        h.handle(event),
        [Command::Resolve {
            id: r1.clone(),
            reply
        }]
    );
    let error = message(
        socket,
        Inbound::Error {
            id: Some(r2.clone()),
            code: ErrorCode::NotParticipant,
            close_code: None,
        },
    );
    let Event::Message { message: reply, .. } = &error else {
        unreachable!()
    };
    let reply = reply.clone();
    assert_eq!(
        h.handle(error),
        [Command::Reject {
            id: r2,
            reason: Rejection::Server {
                code: ErrorCode::NotParticipant,
                reply
            }
        }]
    );
    assert_eq!(
        h.advance(1_000),
        [Command::Reject {
            id: r3.clone(),
            reason: Rejection::Client(ClientErrorCode::Timeout)
        }]
    );
    // Replies to nothing change nothing.
    assert_eq!(h.handle(ack(socket, &r3)), []);
}

#[test]
fn received_messages_are_delivered_after_what_they_settle() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let id = h.request(&say("hi"), 1_000);
    h.commands();
    h.core.handle(h.now, ack(socket, &id));
    let commands: Vec<_> = std::iter::from_fn(|| h.core.poll_command())
        .filter(|c| *c != Command::Publish)
        .collect();
    assert!(matches!(
        commands[..],
        [
            Command::Resolve { .. },
            Command::Deliver { known: true, .. }
        ]
    ));
    h.core.handle(h.now, message(socket, Inbound::Unknown));
    assert!(matches!(
        h.core.poll_command(),
        Some(Command::Deliver { known: false, .. })
    ));
}

#[test]
fn unacknowledged_messages_are_sent_again_after_a_reconnect() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let m1 = h.send(&say("m1")).unwrap();
    let m2 = h.send(&say("m2")).unwrap();
    assert_eq!(
        sent(&h.commands()),
        [say("m1").frame(Some(&m1)), say("m2").frame(Some(&m2))]
    );
    h.handle(ack(socket, &m1));
    h.closed(socket, 1006);
    let m3 = h.send(&say("m3")).unwrap();
    let socket = Harness::expect_open(&h.advance(1_000));
    // Only what was not acknowledged, in order, each once, under its own id.
    assert_eq!(
        sent(&h.establish(socket)),
        [say("m2").frame(Some(&m2)), say("m3").frame(Some(&m3))]
    );
    let m4 = h.send(&say("m4")).unwrap();
    assert_eq!(sent(&h.commands()), [say("m4").frame(Some(&m4))]);
}

#[test]
fn a_tracked_message_keeps_the_id_it_was_given_across_reconnects() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    assert_eq!(h.send(&say("m1").with_id("tab-7")), Ok("tab-7".to_owned()));
    assert_eq!(sent(&h.commands()), [say("m1").frame(Some("tab-7"))]);
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(1_000));
    assert_eq!(sent(&h.establish(socket)), [say("m1").frame(Some("tab-7"))]);
    h.handle(ack(socket, "tab-7"));
    assert_eq!(h.core.pending(), 0);
    // An id the server would refuse is refused here, and nothing is queued.
    for bad in [
        String::new(),
        "x".repeat(relaywire_protocol::MAX_ID_BYTES + 1),
    ] {
        assert!(matches!(
            h.send(&say("m2").with_id(&bad)),
            Err(SendError::Invalid {
                code: ErrorCode::ValidationError,
                ..
            })
        ));
    }
    assert_eq!(h.core.pending(), 0);
}

#[test]
fn join_and_leave_acks_update_the_rooms_and_presence_the_online_list() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    for sent in [
        Msg::new("chat:join").text("chatId", "random"),
        Msg::new("chat:leave").text("chatId", "general"),
    ] {
        let before = h.core.session().unwrap().rooms.clone();
        let id = h.send(&sent).unwrap();
        assert_eq!(
            h.core.session().unwrap().rooms,
            before,
            "not before the ack"
        );
        h.handle(ack(socket, &id));
    }
    assert_eq!(h.core.session().unwrap().rooms, ["random"]);
    let online = |user: &str, online: bool| {
        message(
            socket,
            Inbound::Presence {
                user_id: user.to_owned(),
                online,
            },
        )
    };
    h.handle(online("bob", true));
    h.handle(online("bob", true));
    assert_eq!(h.core.session().unwrap().online_user_ids, ["bob"]);
    h.handle(online("bob", false));
    assert!(h.core.session().unwrap().online_user_ids.is_empty());
}

#[test]
fn an_ephemeral_state_repeats_while_active_and_stops_by_itself() {
    let mut h = Harness::new(no_jitter());
    h.connect();
    let on = typing("general", true).frame(None);
    let off = typing("general", false).frame(None);
    h.ephemeral(&typing("general", true));
    assert_eq!(sent(&h.commands()), std::slice::from_ref(&on));
    h.now = 1_000;
    h.ephemeral(&typing("general", true));
    assert_eq!(
        sent(&h.commands()),
        Vec::<String>::new(),
        "not resent within half the lifetime"
    );
    h.now = 2_000;
    h.ephemeral(&typing("general", true));
    assert_eq!(
        sent(&h.commands()),
        std::slice::from_ref(&on),
        "kept alive for the server"
    );
    // No more keystrokes: the stop goes out by itself after the lifetime.
    assert_eq!(sent(&h.advance(2_999)), Vec::<String>::new());
    assert_eq!(sent(&h.advance(1)), std::slice::from_ref(&off));
    // An explicit stop goes at once, once; states of other keys are their own.
    h.ephemeral(&typing("general", true));
    h.ephemeral(&typing("random", true));
    h.ephemeral(&typing("general", false));
    h.ephemeral(&typing("general", false));
    assert_eq!(
        sent(&h.commands()),
        [on, typing("random", true).frame(None), off]
    );
    assert_eq!(
        sent(&h.advance(5_000)),
        [typing("random", false).frame(None)]
    );
    // Not connected: nothing is sent, nothing kept.
    let socket = 1;
    h.closed(socket, 1006);
    h.ephemeral(&typing("general", true));
    assert_eq!(sent(&h.commands()), Vec::<String>::new());
}

#[test]
fn the_servers_state_lifetime_wins() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.handle(Event::Opened(socket, V3));
    let mut announced = session("alice");
    announced.state_ttl_ms = Some(500);
    h.handle(message(socket, Inbound::Connected(announced)));
    h.commands();
    h.ephemeral(&typing("general", true));
    h.commands();
    assert_eq!(sent(&h.advance(499)), Vec::<String>::new());
    assert_eq!(sent(&h.advance(1)), [typing("general", false).frame(None)]);
}

#[test]
fn close_settles_everything_and_leaves_nothing_scheduled() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let r = h.request(&say("r"), 5_000);
    h.ephemeral(&typing("general", true));
    h.commands();
    let commands = h.handle(Event::Close);
    assert_eq!(
        commands,
        [
            Command::CloseSocket {
                socket,
                code: CloseCode::Normal,
                reason: "closed"
            },
            Command::Reject {
                id: r,
                reason: Rejection::Client(ClientErrorCode::ClientClosed)
            },
        ]
    );
    assert_eq!(h.core.status(), Status::Closed);
    assert_eq!(h.core.last_error(), None);
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(
        h.send(&say("x")),
        Err(SendError::Client(ClientErrorCode::ClientClosed))
    );
    // Events of the old socket are ignored; closing twice does nothing.
    assert_eq!(h.closed(socket, 1000), []);
    assert_eq!(h.handle(Event::Close), []);
}

#[test]
fn connect_close_connect_never_leaves_two_sockets() {
    // What React StrictMode does: mount, unmount, mount.
    let mut h = Harness::new(no_jitter());
    let first = Harness::expect_open(&h.handle(Event::Connect));
    assert_eq!(
        h.handle(Event::Close),
        [Command::CloseSocket {
            socket: first,
            code: CloseCode::Normal,
            reason: "closed"
        }]
    );
    let second = Harness::expect_open(&h.handle(Event::Connect));
    assert_ne!(first, second);
    assert_eq!(h.handle(Event::Opened(first, V3)), []);
    h.establish(second);
    // A second Connect while open does nothing.
    assert_eq!(h.handle(Event::Connect), []);
}

#[test]
fn the_version_changes_only_when_the_snapshot_does() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let version = h.core.version();
    h.handle(message(socket, Inbound::Other));
    h.handle(Event::Timer);
    h.handle(Event::Connect);
    assert_eq!(h.core.version(), version);
    h.handle(message(
        socket,
        Inbound::Presence {
            user_id: "bob".into(),
            online: true,
        },
    ));
    assert!(h.core.version() > version);
}

#[test]
fn tokens_are_refreshed_in_band_before_they_expire() {
    let mut h = Harness::new(Options {
        auth: Auth::Provider,
        heartbeat: None,
        ..no_jitter()
    });
    h.handle(Event::Connect);
    let socket = Harness::expect_open(&h.handle(Event::Token {
        fetch: 1,
        outcome: TokenOutcome::Token {
            token: "short",
            expires_at: Some(600_000),
        },
    }));
    h.establish(socket);
    let commands = h.run_until(570_000);
    assert!(
        commands.contains(&Command::FetchToken {
            fetch: 2,
            force_refresh: true
        }),
        "{commands:?}"
    );
    // A failed refresh is tried again later, without dropping the connection.
    assert_eq!(
        h.handle(Event::Token {
            fetch: 2,
            outcome: TokenOutcome::Failed,
        }),
        []
    );
    assert_eq!(h.core.next_deadline(), Some(585_000));
    let commands = h.run_until(585_000);
    assert!(commands.contains(&Command::FetchToken {
        fetch: 3,
        force_refresh: true
    }));
    let commands = h.handle(Event::Token {
        fetch: 3,
        outcome: TokenOutcome::Token {
            token: "renewed",
            expires_at: Some(1_200_000),
        },
    });
    assert_eq!(sent(&commands), [frames::auth("renewed")]);
    assert_eq!(h.core.status(), Status::Open);
}

#[test]
fn ids_are_unique_and_share_a_random_prefix() {
    let mut a = Core::<String, String>::new(Options {
        seed: 1,
        ..defaults()
    });
    let mut b = Core::<String, String>::new(Options {
        seed: 2,
        ..defaults()
    });
    let ids: Vec<String> = (0..100).map(|_| a.next_id()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 100);
    let prefix = ids[0].split('-').next().unwrap().to_owned();
    assert!(ids.iter().all(|id| id.starts_with(&prefix)));
    assert_ne!(b.next_id().split('-').next().unwrap(), prefix);
    assert!(ids.iter().all(|id| id.len() <= 32));
}

#[test]
fn a_request_times_out_only_after_it_was_sent() {
    let mut h = Harness::new(Options {
        heartbeat: None,
        ..no_jitter()
    });
    let socket = h.connect();
    h.closed(socket, 1006);
    let r = h.request(&say("r"), 1_000);
    // Ten seconds without a connection: still waiting, not timed out.
    let mut socket = Harness::expect_open(&h.advance(1_000));
    for _ in 0..3 {
        h.closed(socket, 1006);
        let commands = h.advance(h.core.next_retry_at().unwrap() - h.now);
        assert!(
            !commands.iter().any(|c| matches!(c, Command::Reject { .. })),
            "{commands:?}"
        );
        socket = Harness::expect_open(&commands);
    }
    assert!(h.now >= 10_000);
    // Sent on the new connection, the clock starts.
    assert_eq!(sent(&h.establish(socket)), [say("r").frame(Some(&r))]);
    assert_eq!(h.advance(999), []);
    assert_eq!(
        h.advance(1),
        [Command::Reject {
            id: r,
            reason: Rejection::Client(ClientErrorCode::Timeout)
        }]
    );
}

/// Whether the event numbered `seq` reached the application.
fn delivered(h: &mut Harness, socket: SocketId, seq: u64) -> bool {
    h.core.handle(
        h.now,
        message(
            socket,
            Inbound::Numbered {
                seq: Some(seq),
                answers: None,
            },
        ),
    );
    std::iter::from_fn(|| h.core.poll_command()).any(|c| matches!(c, Command::Deliver { .. }))
}

#[test]
fn events_are_delivered_once_and_a_reconnect_resumes_after_the_last() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.handle(Event::Opened(socket, V3));
    let mut announced = session("alice");
    announced.seq = Some(10);
    h.handle(message(socket, Inbound::Connected(announced.clone())));
    assert_eq!(h.core.last_seq(), Some(10));
    assert!(
        !delivered(&mut h, socket, 10),
        "what came before the session is not replayed twice"
    );
    assert!(delivered(&mut h, socket, 11));
    assert!(!delivered(&mut h, socket, 11));
    assert!(!delivered(&mut h, socket, 5));
    assert!(delivered(&mut h, socket, 14));
    h.closed(socket, 1006);
    let commands = h.advance(1_000);
    assert!(
        commands.contains(&Command::Open {
            socket: 2,
            params: vec![("lastSeq", "14".to_owned())],
        }),
        "{commands:?}"
    );
    // The server's replay starts after 14; duplicates it may send are dropped.
    h.handle(Event::Opened(2, V3));
    h.handle(message(
        2,
        Inbound::Connected(Session {
            seq: Some(20),
            ..announced.clone()
        }),
    ));
    assert!(!delivered(&mut h, 2, 14));
    assert!(delivered(&mut h, 2, 15));

    // A server whose log is behind the client lost its store: start from its head.
    h.closed(2, 1006);
    let socket = Harness::expect_open(&h.advance(h.core.next_retry_at().unwrap() - h.now));
    h.handle(Event::Opened(socket, V3));
    h.handle(message(
        socket,
        Inbound::Connected(Session {
            seq: Some(3),
            ..announced
        }),
    ));
    assert_eq!(h.core.last_seq(), Some(3));
    assert!(delivered(&mut h, socket, 4));
}

#[test]
fn a_kept_seq_resumes_the_first_connect() {
    let mut options = no_jitter();
    options.resume_from = Some(7);
    let mut h = Harness::new(options);
    let commands = h.handle(Event::Connect);
    assert!(
        commands.contains(&Command::Open {
            socket: 1,
            params: vec![("lastSeq", "7".to_owned())],
        }),
        "{commands:?}"
    );
    let socket = Harness::expect_open(&commands);
    h.handle(Event::Opened(socket, V3));
    let mut announced = session("alice");
    announced.seq = Some(12);
    h.handle(message(socket, Inbound::Connected(announced)));
    // The replay of 8 to 12 is new to this client; what it kept is not.
    assert_eq!(h.core.last_seq(), Some(7));
    assert!(!delivered(&mut h, socket, 7));
    assert!(delivered(&mut h, socket, 8));
}

#[test]
fn numbers_are_written_in_decimal_without_formatting_machinery() {
    for value in [0, 7, 10, 4_096, 9_007_199_254_740_991, u64::MAX] {
        assert_eq!(super::decimal(value), value.to_string());
    }
}

#[test]
fn many_requests_time_out_at_their_own_deadlines_and_answered_ones_never() {
    let mut options = no_jitter();
    options.queue_size = 10_000;
    let mut h = Harness::new(options);
    let socket = h.connect();
    // 3,000 requests with timeouts of 1 to 3 seconds, 3 sent each millisecond.
    let mut expected = Vec::new();
    for i in 0..3_000u32 {
        let timeout = 1_000 + (i * 7919) % 2_000;
        h.now = u64::from(i / 3);
        let id = h.request(&say(&i.to_string()), timeout);
        expected.push((h.now + u64::from(timeout), i, id));
    }
    h.commands();
    // Every other one is answered: those must never time out.
    for (_, _, id) in expected.iter().step_by(2) {
        h.handle(ack(socket, id));
    }
    let mut open: Vec<(u64, u32, String)> = expected.into_iter().skip(1).step_by(2).collect();
    open.sort();
    assert_eq!(
        h.core.next_deadline(),
        Some(open[0].0),
        "the earliest open request"
    );
    let mut rejected = Vec::new();
    while let Some(deadline) = h.core.next_deadline().filter(|d| *d <= 10_000) {
        h.now = h.now.max(deadline);
        for command in h.handle(Event::Timer) {
            if let Command::Reject { id, reason } = command {
                assert_eq!(reason, Rejection::Client(ClientErrorCode::Timeout));
                rejected.push((h.now, id));
            }
        }
    }
    // Each timed out exactly at its deadline, in deadline order.
    assert_eq!(rejected.len(), open.len());
    for ((at, _, id), (rejected_at, rejected_id)) in open.iter().zip(&rejected) {
        assert_eq!((at, id), (rejected_at, rejected_id));
    }
    assert_eq!(h.core.pending(), 0);
    assert_eq!(h.core.next_deadline().filter(|d| *d <= 10_000), None);
}

#[test]
fn control_fields_are_read_once_for_both_clients() {
    struct Payload(Vec<(&'static str, f64)>, Vec<(&'static str, &'static str)>);
    impl Fields for Payload {
        fn text(&self, key: Key<'_>) -> Option<String> {
            self.1
                .iter()
                .find(|(k, _)| *k == key.name())
                .map(|(_, v)| (*v).to_owned())
        }
        fn number(&self, key: Key<'_>) -> Option<f64> {
            self.0
                .iter()
                .find(|(k, _)| *k == key.name())
                .map(|(_, v)| *v)
        }
        fn flag(&self, _: Key<'_>) -> Option<bool> {
            None
        }
        fn texts(&self, _: Key<'_>) -> Vec<String> {
            Vec::new()
        }
    }
    let descriptor = ChatProtocol::descriptor();
    let connected = Payload(
        vec![
            ("seq", -1.0),
            ("heartbeatIntervalMs", 2.5),
            ("maxMessageBytes", 4096.0),
        ],
        vec![("userId", "u")],
    );
    let Inbound::Connected(session) = read(&descriptor, Some("connected"), &connected) else {
        panic!()
    };
    // Numbers that are not whole, or out of range, are ignored rather than wrapped.
    assert_eq!(session.seq, None);
    assert_eq!(session.heartbeat_interval_ms, None);
    assert_eq!(session.max_message_bytes, Some(4096));
    let event = Payload(vec![("seq", 9_007_199_254_740_992.0)], vec![]);
    assert_eq!(
        read(&descriptor, Some("chat:message"), &event),
        Inbound::Numbered {
            seq: None,
            answers: None
        }
    );
    let event = Payload(vec![("seq", 42.0)], vec![]);
    assert_eq!(
        read(&descriptor, Some("chat:read"), &event),
        Inbound::Numbered {
            seq: Some(42),
            answers: None
        }
    );
    assert_eq!(
        read(&descriptor, Some("chat:read"), &event).answering(Some("c-1".into())),
        Inbound::Numbered {
            seq: Some(42),
            answers: Some("c-1".into())
        },
        "a numbered event may acknowledge a client message"
    );
    assert_eq!(
        read(&descriptor, Some("chat:typing"), &event),
        Inbound::Other
    );
    assert_eq!(
        read(&descriptor, Some("chat:typing"), &event).answering(Some("c-1".into())),
        Inbound::Other,
        "a live message acknowledges nothing"
    );
    assert_eq!(
        read(&descriptor, Some("poll:new"), &event),
        Inbound::Unknown
    );
    assert_eq!(read(&descriptor, None, &event), Inbound::Unknown);
    let error = Payload(vec![], vec![("code", "RATE_LIMITED"), ("id", "x")]);
    assert_eq!(
        read(&descriptor, Some("error"), &error),
        Inbound::Error {
            id: Some("x".into()),
            code: ErrorCode::RateLimited,
            close_code: None,
        }
    );
}

#[test]
fn the_senders_copy_of_what_it_stored_acknowledges_it_and_arrives_once() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let id = h.request(&say("hello"), 1_000);
    h.commands();
    assert_eq!(h.core.pending(), 1);
    // The stored event, carrying the request's acknowledgement (protocol 3).
    let copy = message(
        socket,
        Inbound::Numbered {
            seq: Some(1),
            answers: Some(id.clone()),
        },
    );
    let Event::Message { message: reply, .. } = &copy else {
        unreachable!()
    };
    let reply = reply.clone();
    h.core.handle(h.now, copy);
    let commands: Vec<_> = std::iter::from_fn(|| h.core.poll_command())
        .filter(|c| !matches!(c, Command::Publish))
        .collect();
    assert_eq!(
        commands,
        [
            Command::Resolve {
                id: id.clone(),
                reply: reply.clone()
            },
            Command::Deliver {
                message: reply,
                known: true
            }
        ],
        "resolved, then handed to the application like any event"
    );
    assert_eq!(h.core.pending(), 0, "it left the outbox");
    assert_eq!(h.advance(1_000), [], "no timeout follows");
    // The same copy replayed after a reconnect is neither delivered nor settled twice.
    assert!(!delivered(&mut h, socket, 1));
    let again = message(
        socket,
        Inbound::Numbered {
            seq: Some(1),
            answers: Some(id),
        },
    );
    assert_eq!(h.handle(again), []);
}
