//! The state machine under a virtual clock: every transition, deadline and policy.

use super::*;

/// A core driven by hand, with a clock that only moves when told.
struct Harness {
    core: Core<String>,
    now: Millis,
}

fn no_jitter() -> Options {
    Options {
        reconnect: ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        },
        seed: 1,
        ..Options::default()
    }
}

fn session(user: &str) -> Session {
    Session {
        user_id: user.to_owned(),
        chat_ids: vec!["general".to_owned()],
        ..Session::default()
    }
}

impl Harness {
    fn new(options: Options) -> Self {
        Self {
            core: Core::new(options),
            now: 0,
        }
    }

    fn handle(&mut self, event: Event<'_>) -> Vec<Command<String>> {
        self.core.handle(self.now, event);
        self.commands()
    }

    fn commands(&mut self) -> Vec<Command<String>> {
        std::iter::from_fn(|| self.core.poll_command())
            .filter(|c| *c != Command::Publish)
            .collect()
    }

    /// Moves the clock to `to`, firing every deadline on the way at its own time.
    fn run_until(&mut self, to: Millis) -> Vec<Command<String>> {
        let mut out = Vec::new();
        while let Some(deadline) = self.core.next_deadline().filter(|d| *d <= to) {
            self.now = self.now.max(deadline);
            out.extend(self.handle(Event::Timer));
        }
        self.now = to;
        out
    }

    fn advance(&mut self, ms: Millis) -> Vec<Command<String>> {
        self.run_until(self.now + ms)
    }

    fn expect_open(commands: &[Command<String>]) -> SocketId {
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

    fn establish(&mut self, socket: SocketId) -> Vec<Command<String>> {
        let mut out = self.handle(Event::Opened(socket));
        out.extend(self.handle(Event::Message {
            socket,
            inbound: Inbound::Connected(session("alice")),
        }));
        assert_eq!(self.core.status(), Status::Open);
        out
    }

    fn closed(&mut self, socket: SocketId, code: u16) -> Vec<Command<String>> {
        self.handle(Event::Closed { socket, code })
    }

    fn send(
        &mut self,
        text: &str,
        id: Option<&str>,
        timeout_ms: Option<u32>,
    ) -> Result<(), ClientErrorCode> {
        let now = self.now;
        self.core.send(
            now,
            Outgoing {
                id: id.map(str::to_owned),
                frame: text.to_owned(),
                timeout_ms,
                effect: Effect::None,
            },
        )
    }
}

fn sent(commands: &[Command<String>]) -> Vec<String> {
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

#[test]
fn a_first_connection_goes_idle_connecting_open() {
    let mut h = Harness::new(no_jitter());
    assert_eq!(h.core.status(), Status::Idle);
    let commands = h.handle(Event::Connect);
    assert_eq!(
        commands,
        [Command::Open {
            socket: 1,
            token: None,
            resume_after: None,
        }]
    );
    assert_eq!(h.core.status(), Status::Connecting);
    // Cookie auth sends nothing on open.
    assert_eq!(h.handle(Event::Opened(1)), []);
    assert_eq!(h.core.status(), Status::Connecting);
    h.handle(Event::Message {
        socket: 1,
        inbound: Inbound::Connected(session("alice")),
    });
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
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    assert_eq!(
        sent(&h.handle(Event::Opened(socket))),
        [frames::auth("t0k")]
    );

    let mut h = Harness::new(Options {
        auth: Auth::Token("t0k".into()),
        token_transport: TokenTransport::Query,
        ..no_jitter()
    });
    assert_eq!(
        h.handle(Event::Connect),
        [Command::Open {
            socket: 1,
            token: Some("t0k".into()),
            resume_after: None,
        }]
    );
    assert_eq!(h.handle(Event::Opened(1)), []);
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
    // Signed out: unauthorized, no retry.
    h.handle(Event::Token {
        fetch: 2,
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
        ..Options::default()
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
    h.send("queued", Some("q1"), None).unwrap();
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(1_000));
    h.closed(socket, 1006);
    let socket = Harness::expect_open(&h.advance(2_000));
    let commands = h.closed(socket, 1006);
    assert_eq!(h.core.status(), Status::Failed);
    assert!(commands.contains(&Command::Reject {
        id: "q1".into(),
        reason: Rejection::Client(ClientErrorCode::ConnectionFailed)
    }));
    assert_eq!(h.core.last_error().unwrap().code, "CONNECTION_FAILED");
    assert_eq!(
        h.send("late", None, None),
        Err(ClientErrorCode::ConnectionFailed)
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
    h.closed(socket, 1001);
    assert_eq!(h.core.attempt(), 3);
    let socket = Harness::expect_open(&h.advance(4_000));
    h.establish(socket);
    // Open for longer than reset_after: the count starts over.
    h.advance(6_000);
    h.closed(socket, 1001);
    assert_eq!(h.core.attempt(), 1);
    assert_eq!(h.core.next_retry_at().unwrap() - h.now, 1_000);
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
        if status != Status::Reconnecting {
            assert_eq!(
                h.core.next_deadline(),
                None,
                "code {code} leaves nothing scheduled"
            );
            assert_eq!(h.core.last_error().unwrap().close_code, Some(code));
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
    h.handle(Event::Opened(socket));
    // The refreshed token fails too: stop, no retry storm.
    h.closed(socket, 4001);
    assert_eq!(h.core.status(), Status::Unauthorized);
    assert_eq!(h.core.last_error().unwrap().code, "AUTH_FAILED");
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
        h.handle(Event::Opened(socket));
        h.handle(Event::Message {
            socket,
            inbound: Inbound::Error {
                id: None,
                code: "AUTH_FAILED",
            },
        });
        h.closed(socket, 4001);
        assert_eq!(h.core.status(), Status::Unauthorized);
        assert_eq!(h.core.next_deadline(), None);
    }
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
        code: 4000,
        reason: "connect timeout"
    }));
    assert_eq!(h.core.status(), Status::Reconnecting);
    // Its late events change nothing.
    assert_eq!(h.handle(Event::Opened(socket)), []);
    assert_eq!(h.handle(Event::Closed { socket, code: 1006 }), []);
    // A socket that opens but never authenticates is abandoned too.
    let socket = Harness::expect_open(&h.advance(1_000));
    h.handle(Event::Opened(socket));
    let commands = h.advance(3_000);
    assert!(commands.contains(&Command::CloseSocket {
        socket,
        code: 4000,
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
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Other,
    });
    assert_eq!(h.advance(10_000), []);
    // The next ping gets nothing back: closed and retried, though the socket never said so.
    let commands = h.advance(15_000);
    assert_eq!(sent(&commands), [frames::PING]);
    let commands = h.advance(10_000);
    assert!(commands.contains(&Command::CloseSocket {
        socket,
        code: 4000,
        reason: "heartbeat timeout"
    }));
    assert_eq!(h.core.status(), Status::Reconnecting);
}

#[test]
fn the_servers_heartbeat_interval_wins() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.handle(Event::Opened(socket));
    let mut announced = session("alice");
    announced.heartbeat_interval_ms = Some(2_000);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Connected(announced),
    });
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
        code: 4000,
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
fn messages_wait_in_order_and_a_full_queue_refuses() {
    let mut h = Harness::new(Options {
        queue_size: 3,
        ..no_jitter()
    });
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.send("a", Some("1"), None).unwrap();
    h.send("b", None, None).unwrap();
    h.send("c", Some("3"), None).unwrap();
    assert_eq!(h.send("d", None, None), Err(ClientErrorCode::QueueFull));
    assert_eq!(h.core.pending(), 3);
    let commands = h.establish(socket);
    assert_eq!(sent(&commands), ["a", "b", "c"]);
    // Without an id a message is done once sent; with one it waits for its ack.
    assert_eq!(h.core.pending(), 2);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Ack { id: "1" },
    });
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Ack { id: "3" },
    });
    assert_eq!(h.core.pending(), 0);
    // Open: straight out.
    h.send("e", None, None).unwrap();
    assert_eq!(sent(&h.commands()), ["e"]);
}

#[test]
fn requests_resolve_reject_or_time_out() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.send("r1", Some("r1"), Some(1_000)).unwrap();
    h.send("r2", Some("r2"), Some(1_000)).unwrap();
    h.send("r3", Some("r3"), Some(1_000)).unwrap();
    h.commands();
    assert_eq!(
        h.handle(Event::Message {
            socket,
            inbound: Inbound::Ack { id: "r1" }
        }),
        [Command::Resolve { id: "r1".into() }]
    );
    assert_eq!(
        h.handle(Event::Message {
            socket,
            inbound: Inbound::Error {
                id: Some("r2"),
                code: "NOT_PARTICIPANT"
            }
        }),
        [Command::Reject {
            id: "r2".into(),
            reason: Rejection::Server("NOT_PARTICIPANT".into())
        }]
    );
    assert_eq!(
        h.advance(1_000),
        [Command::Reject {
            id: "r3".into(),
            reason: Rejection::Client(ClientErrorCode::Timeout)
        }]
    );
    // Replies to nothing change nothing.
    assert_eq!(
        h.handle(Event::Message {
            socket,
            inbound: Inbound::Ack { id: "r3" }
        }),
        []
    );
}

#[test]
fn unacknowledged_messages_are_sent_again_after_a_reconnect() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.send("m1", Some("m1"), None).unwrap();
    h.send("m2", Some("m2"), None).unwrap();
    assert_eq!(sent(&h.commands()), ["m1", "m2"]);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Ack { id: "m1" },
    });
    h.closed(socket, 1006);
    h.send("m3", Some("m3"), None).unwrap();
    let socket = Harness::expect_open(&h.advance(1_000));
    // Only what was not acknowledged, in order, and each once.
    assert_eq!(sent(&h.establish(socket)), ["m2", "m3"]);
    h.send("m4", Some("m4"), None).unwrap();
    assert_eq!(sent(&h.commands()), ["m4"]);
}

#[test]
fn join_and_leave_acks_update_the_chats_and_presence_the_online_list() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    for (id, effect) in [
        ("j", Effect::Join("random".into())),
        ("l", Effect::Leave("general".into())),
    ] {
        let now = h.now;
        h.core
            .send(
                now,
                Outgoing {
                    id: Some(id.into()),
                    frame: id.into(),
                    timeout_ms: None,
                    effect,
                },
            )
            .unwrap();
        h.handle(Event::Message {
            socket,
            inbound: Inbound::Ack { id },
        });
    }
    assert_eq!(h.core.session().unwrap().chat_ids, ["random"]);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Presence {
            user_id: "bob",
            online: true,
        },
    });
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Presence {
            user_id: "bob",
            online: true,
        },
    });
    assert_eq!(h.core.session().unwrap().online_user_ids, ["bob"]);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Presence {
            user_id: "bob",
            online: false,
        },
    });
    assert!(h.core.session().unwrap().online_user_ids.is_empty());
}

#[test]
fn typing_repeats_while_active_and_stops_by_itself() {
    let mut h = Harness::new(no_jitter());
    h.connect();
    h.core.set_typing(0, "general", true);
    assert_eq!(sent(&h.commands()), [frames::typing("general", true)]);
    h.now = 1_000;
    h.core.set_typing(1_000, "general", true);
    assert_eq!(
        sent(&h.commands()),
        Vec::<String>::new(),
        "not resent within half the timeout"
    );
    h.now = 2_000;
    h.core.set_typing(2_000, "general", true);
    assert_eq!(
        sent(&h.commands()),
        [frames::typing("general", true)],
        "kept alive for the server"
    );
    // No more keystrokes: the stop goes out by itself after the typing timeout.
    assert_eq!(sent(&h.advance(2_999)), Vec::<String>::new());
    assert_eq!(sent(&h.advance(1)), [frames::typing("general", false)]);
    // An explicit stop goes at once, once.
    h.core.set_typing(h.now, "general", true);
    h.core.set_typing(h.now, "general", false);
    h.core.set_typing(h.now, "general", false);
    assert_eq!(
        sent(&h.commands()),
        [
            frames::typing("general", true),
            frames::typing("general", false)
        ]
    );
    // Nothing is left to stop.
    assert_eq!(sent(&h.advance(5_000)), Vec::<String>::new());
}

#[test]
fn close_settles_everything_and_leaves_nothing_scheduled() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    h.send("r", Some("r"), Some(5_000)).unwrap();
    h.core.set_typing(h.now, "general", true);
    h.commands();
    let commands = h.handle(Event::Close);
    assert_eq!(
        commands,
        [
            Command::CloseSocket {
                socket,
                code: 1000,
                reason: "closed"
            },
            Command::Reject {
                id: "r".into(),
                reason: Rejection::Client(ClientErrorCode::ClientClosed)
            },
        ]
    );
    assert_eq!(h.core.status(), Status::Closed);
    assert_eq!(h.core.last_error(), None);
    assert_eq!(h.core.next_deadline(), None);
    assert_eq!(h.send("x", None, None), Err(ClientErrorCode::ClientClosed));
    // Events of the old socket are ignored; closing twice does nothing.
    assert_eq!(h.handle(Event::Closed { socket, code: 1000 }), []);
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
            code: 1000,
            reason: "closed"
        }]
    );
    let second = Harness::expect_open(&h.handle(Event::Connect));
    assert_ne!(first, second);
    assert_eq!(h.handle(Event::Opened(first)), []);
    h.establish(second);
    // A second Connect while open does nothing.
    assert_eq!(h.handle(Event::Connect), []);
}

#[test]
fn the_version_changes_only_when_the_snapshot_does() {
    let mut h = Harness::new(no_jitter());
    let socket = h.connect();
    let version = h.core.version();
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Other,
    });
    h.handle(Event::Timer);
    h.handle(Event::Connect);
    assert_eq!(h.core.version(), version);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Presence {
            user_id: "bob",
            online: true,
        },
    });
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
    let commands = h.handle(Event::Token {
        fetch: 2,
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
    let mut a = Core::<String>::new(Options {
        seed: 1,
        ..Options::default()
    });
    let mut b = Core::<String>::new(Options {
        seed: 2,
        ..Options::default()
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
    h.send("r", Some("r"), Some(1_000)).unwrap();
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
    assert_eq!(sent(&h.establish(socket)), ["r"]);
    assert_eq!(h.advance(999), []);
    assert_eq!(
        h.advance(1),
        [Command::Reject {
            id: "r".into(),
            reason: Rejection::Client(ClientErrorCode::Timeout)
        }]
    );
}

#[test]
fn events_are_admitted_once_and_a_reconnect_resumes_after_the_last() {
    let mut h = Harness::new(no_jitter());
    let socket = Harness::expect_open(&h.handle(Event::Connect));
    h.handle(Event::Opened(socket));
    let mut announced = session("alice");
    announced.seq = Some(10);
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Connected(announced.clone()),
    });
    assert_eq!(h.core.last_seq(), Some(10));
    assert!(
        !h.core.admit(10),
        "what came before the session is not replayed twice"
    );
    assert!(h.core.admit(11));
    assert!(!h.core.admit(11));
    assert!(!h.core.admit(5));
    assert!(h.core.admit(14));
    h.closed(socket, 1006);
    let commands = h.advance(1_000);
    assert!(
        commands.contains(&Command::Open {
            socket: 2,
            token: None,
            resume_after: Some(14)
        }),
        "{commands:?}"
    );
    // The server's replay starts after 14; duplicates it may send are dropped.
    h.handle(Event::Opened(2));
    h.handle(Event::Message {
        socket: 2,
        inbound: Inbound::Connected(Session {
            seq: Some(20),
            ..announced.clone()
        }),
    });
    assert!(!h.core.admit(14));
    assert!(h.core.admit(15));

    // A server whose log is behind the client lost its store: start from its head.
    h.closed(2, 1006);
    let socket = Harness::expect_open(&h.advance(h.core.next_retry_at().unwrap() - h.now));
    h.handle(Event::Opened(socket));
    h.handle(Event::Message {
        socket,
        inbound: Inbound::Connected(Session {
            seq: Some(3),
            ..announced
        }),
    });
    assert_eq!(h.core.last_seq(), Some(3));
    assert!(h.core.admit(4));
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
        let id = format!("q{i}");
        let timeout = 1_000 + (i * 7919) % 2_000;
        h.now = u64::from(i / 3);
        h.send(&id, Some(&id), Some(timeout)).unwrap();
        expected.push((h.now + u64::from(timeout), i, id));
    }
    h.commands();
    // Every other one is answered: those must never time out.
    for (_, _, id) in expected.iter().step_by(2) {
        h.handle(Event::Message {
            socket,
            inbound: Inbound::Ack { id },
        });
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
