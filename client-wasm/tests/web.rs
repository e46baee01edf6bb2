//! The typed Rust client (`relaywire_client::web`) in headless Chromium against the
//! real chat server: auth modes, the typed stream, requests and their error codes,
//! reconnect with resume, and a close that leaves nothing.
//!
//! `cargo xtask test browser` runs it with the server and its supervisor; see
//! `support/env.rs` for running it with `wasm-pack test`.
#![cfg(all(target_arch = "wasm32", feature = "web"))]

#[path = "support/env.rs"]
mod env;
// The module documentation's example, as written there.
#[allow(unreachable_pub)]
#[path = "support/web_quick_start.rs"]
mod quick_start;

use std::time::Duration;

use futures::StreamExt;
use relaywire_chat::{ChatProtocol, ServerMessage};
use relaywire_client::core::{
    Auth, FailureCode, HeartbeatPolicy, ReconnectPolicy, Status, TokenTransport,
};
use relaywire_client::web::{Client, Messages, Options, RequestError, Snapshot, TokenUnavailable};
use relaywire_protocol::{ClientErrorCode, CloseCode, ErrorCode};
use wasm_bindgen_test::*;

use env::{TestEnv, sleep, unique};

wasm_bindgen_test_configure!(run_in_browser);

type Chat = Client<ChatProtocol>;

/// Quick retries, so a restart costs the tests little time.
fn quick(mut options: Options<ChatProtocol>) -> Options<ChatProtocol> {
    options.core.reconnect = ReconnectPolicy {
        initial_delay_ms: 200,
        max_delay_ms: 2_000,
        jitter: 0.0,
        ..ReconnectPolicy::default()
    };
    options
}

async fn token_options(env: &TestEnv, user: &str) -> Options<ChatProtocol> {
    quick(Options::new(
        env.ws_url(),
        Auth::Token(env.token(user, 3600).await),
    ))
}

/// Waits until the client's status is `status`.
async fn reach(client: &Chat, status: Status) -> Snapshot {
    client
        .wait_for(status, Duration::from_secs(10))
        .await
        .unwrap_or_else(|snapshot| panic!("no {status:?} within 10 s: {snapshot:?}"))
}

/// A connected client for `user`.
async fn open(env: &TestEnv, user: &str) -> (Chat, Messages<ServerMessage>) {
    let (client, messages) =
        Client::connect(token_options(env, user).await).expect("valid options");
    reach(&client, Status::Open).await;
    (client, messages)
}

/// The next message `pick` takes, within `ms` milliseconds.
async fn next<T>(
    messages: &mut Messages<ServerMessage>,
    ms: u32,
    mut pick: impl FnMut(ServerMessage) -> Option<T>,
) -> Option<T> {
    let deadline = js_sys::Date::now() + f64::from(ms);
    loop {
        let left = (deadline - js_sys::Date::now()).max(0.0) as u32;
        let message = std::pin::pin!(messages.next());
        let timeout = std::pin::pin!(sleep(left));
        match futures::future::select(message, timeout).await {
            futures::future::Either::Left((Some(message), _)) => {
                if let Some(found) = pick(message) {
                    return Some(found);
                }
            }
            _ => return None,
        }
    }
}

/// Waits until `probe` holds, polling every 20 ms, for up to `ms`.
async fn until(what: &str, ms: u32, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = js_sys::Date::now() + f64::from(ms);
    while !probe().await {
        assert!(
            js_sys::Date::now() < deadline,
            "timed out after {ms} ms waiting for {what}"
        );
        sleep(20).await;
    }
}

fn chat_content(message: ServerMessage) -> Option<String> {
    match message {
        ServerMessage::ChatMessage(created) => Some(created.message.content),
        _ => None,
    }
}

#[wasm_bindgen_test]
async fn the_quick_start_says_hello_and_reads_it_back() {
    let Some(env) = env::find().await else { return };
    let token = env.token(&unique("quick"), 3600).await;
    let echoed = quick_start::say_hello(&env.ws_url(), token).await;
    assert_eq!(echoed.as_deref(), Ok("hello from Rust"));
}

#[wasm_bindgen_test]
async fn connects_with_a_token_in_a_message_or_the_query_a_token_source_and_the_cookie() {
    let Some(env) = env::find().await else { return };
    let ana = unique("ana");

    // A fixed token, in a first `auth` message (the default).
    let (client, _messages) = open(&env, &ana).await;
    let session = client.snapshot().session.expect("a session");
    assert_eq!(session.user_id, ana, "token auth");
    client.close().await;

    // A fixed token in the query string.
    let mut options = token_options(&env, &ana).await;
    options.core.token_transport = TokenTransport::Query;
    let (client, _messages) = Client::connect(options).expect("valid options");
    assert_eq!(
        reach(&client, Status::Open)
            .await
            .session
            .map(|s| s.user_id),
        Some(ana.clone())
    );
    client.close().await;

    // An async token source, asked before the connect.
    let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let source = {
        let (env, ana, asked) = (env.clone(), ana.clone(), asked.clone());
        move |force_refresh| {
            asked.borrow_mut().push(force_refresh);
            let (env, ana) = (env.clone(), ana.clone());
            async move { Ok(Some(env.token(&ana, 3600).await)) }
        }
    };
    let (client, _messages) =
        Client::connect(quick(Options::with_token_source(env.ws_url(), source)))
            .expect("valid options");
    reach(&client, Status::Open).await;
    assert_eq!(*asked.borrow(), [false], "the token source's calls");
    client.close().await;

    // The HTTP-only cookie of the server's dev login: nothing to configure.
    let cookie_user = unique("cookie");
    env.dev_login(&cookie_user).await;
    let (client, _messages) =
        Client::<ChatProtocol>::connect(Options::new(env.ws_url(), Auth::Cookie))
            .expect("valid options");
    let session = reach(&client, Status::Open)
        .await
        .session
        .expect("a session");
    assert_eq!(session.user_id, cookie_user, "cookie auth");
    client.close().await;

    // A URL that cannot work is refused at once, with its code.
    let refused = Client::<ChatProtocol>::connect(Options::new("ftp://example.com", Auth::Cookie));
    let err = refused.expect_err("an ftp: URL is refused");
    assert_eq!(err.code(), ClientErrorCode::InvalidOptions);
}

#[wasm_bindgen_test]
async fn a_refused_token_ends_unauthorized_and_an_expired_one_is_refreshed_once() {
    let Some(env) = env::find().await else { return };
    let options = quick(Options::new(
        env.ws_url(),
        Auth::Token("not-a-token".into()),
    ));
    let (client, _messages) = Client::<ChatProtocol>::connect(options).expect("valid options");
    let snapshot = reach(&client, Status::Unauthorized).await;
    let last = snapshot.last_error.expect("the failure");
    assert_eq!(last.code, FailureCode::Server(ErrorCode::AuthFailed));
    assert_eq!(last.close_code, Some(CloseCode::AuthFailed));
    sleep(1_000).await;
    assert_eq!(
        client.snapshot().status,
        Status::Unauthorized,
        "no retry after a refusal"
    );
    // A request now fails at once instead of waiting forever.
    let err = client.join_chat("general").await.expect_err("refused");
    assert_eq!(err, RequestError::Client(ClientErrorCode::ConnectionFailed));
    client.close().await;

    // The first token has expired: the source is asked again, forced, once.
    let bea = unique("bea");
    let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let source = {
        let (env, bea, asked) = (env.clone(), bea.clone(), asked.clone());
        move |force_refresh: bool| {
            asked.borrow_mut().push(force_refresh);
            let (env, bea) = (env.clone(), bea.clone());
            async move {
                let ttl = if force_refresh { 3600 } else { -60 };
                Ok(Some(env.token(&bea, ttl).await))
            }
        }
    };
    let (client, _messages) =
        Client::<ChatProtocol>::connect(quick(Options::with_token_source(env.ws_url(), source)))
            .expect("valid options");
    reach(&client, Status::Open).await;
    assert_eq!(
        *asked.borrow(),
        [false, true],
        "an expired token is refreshed once, forced"
    );
    client.close().await;

    // A source that fails is asked again later; one that says signed out stops.
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let source = {
        let calls = calls.clone();
        move |_| {
            calls.set(calls.get() + 1);
            let result = if calls.get() == 1 {
                Err(TokenUnavailable)
            } else {
                Ok(None)
            };
            async move { result }
        }
    };
    let (client, _messages) =
        Client::<ChatProtocol>::connect(quick(Options::with_token_source(env.ws_url(), source)))
            .expect("valid options");
    reach(&client, Status::Unauthorized).await;
    assert_eq!(
        calls.get(),
        2,
        "a failed fetch is retried; signed out is final"
    );
    client.close().await;
}

#[wasm_bindgen_test]
async fn two_clients_chat_with_receipts_typing_and_presence_on_the_typed_stream() {
    let Some(env) = env::find().await else { return };
    let (alice_id, bob_id) = (unique("alice"), unique("bob"));
    let (alice, mut alice_messages) = open(&env, &alice_id).await;
    let (bob, mut bob_messages) = open(&env, &bob_id).await;
    alice.join_chat("random").await.expect("alice joins");
    bob.join_chat("random").await.expect("bob joins");
    let rooms = alice.snapshot().session.expect("a session").rooms;
    assert!(
        rooms.iter().any(|room| room == "random"),
        "the join shows in the snapshot: {rooms:?}"
    );

    // The state as a stream: a UI binds to it; it sees Bob come online.
    let mut states = alice.states();
    let online = async {
        while let Some(state) = states.next().await {
            let session = state.session.expect("a session");
            if session.online_user_ids.contains(&bob_id) {
                return true;
            }
        }
        false
    };
    let (online, timeout) = (std::pin::pin!(online), std::pin::pin!(sleep(5_000)));
    let seen = futures::future::select(online, timeout).await;
    assert!(
        matches!(seen, futures::future::Either::Left((true, _))),
        "presence reaches the state stream"
    );

    // A message, typed end to end.
    let ack = bob
        .send_chat_message("random", "Hello, Alice!")
        .await
        .expect("stored");
    let stored = ack
        .message_id
        .clone()
        .expect("the ack names the stored message");
    let created = next(&mut alice_messages, 5_000, |message| match message {
        ServerMessage::ChatMessage(created) if created.message.id == stored => Some(created),
        _ => None,
    })
    .await
    .expect("alice receives it");
    assert_eq!(
        (
            created.chat_id.as_str(),
            created.message.sender_id.as_str(),
            created.message.content.as_str()
        ),
        ("random", bob_id.as_str(), "Hello, Alice!")
    );
    assert!(created.seq.is_some(), "a numbered event");

    // A read receipt.
    bob.mark_read("random", &stored).await.expect("marked read");
    let receipt = next(&mut alice_messages, 5_000, |message| match message {
        ServerMessage::ChatRead(receipt) if receipt.user_id == bob_id => Some(receipt),
        _ => None,
    })
    .await
    .expect("the receipt");
    assert_eq!(receipt.message_id, stored);

    // Typing: one call, and the stop follows by itself after the server's timeout.
    let started = js_sys::Date::now();
    alice.set_typing("random", true).await.expect("accepted");
    let typing = |on: bool| {
        let alice_id = alice_id.clone();
        move |message| match message {
            ServerMessage::ChatTyping(typing)
                if typing.user_id == alice_id && typing.is_typing == on =>
            {
                Some(())
            }
            _ => None,
        }
    };
    next(&mut bob_messages, 5_000, typing(true))
        .await
        .expect("typing starts");
    next(&mut bob_messages, 6_000, typing(false))
        .await
        .expect("typing stops by itself");
    let lasted = js_sys::Date::now() - started;
    assert!(
        lasted >= 2_500.0,
        "typing stopped after {lasted} ms, before the 3000 ms timeout"
    );

    // Presence: Bob leaves, Alice hears it.
    bob.close().await;
    let gone = next(&mut alice_messages, 5_000, |message| match message {
        ServerMessage::UserOnline(change) if change.user_id == bob_id && !change.online => Some(()),
        _ => None,
    })
    .await;
    assert!(gone.is_some(), "bob goes offline");
    let session = alice.snapshot().session.expect("a session");
    assert!(
        !session.online_user_ids.contains(&bob_id),
        "the snapshot follows"
    );
    alice.close().await;
}

#[wasm_bindgen_test]
async fn requests_resolve_or_fail_with_their_codes_and_time_out() {
    let Some(env) = env::find().await else { return };
    let (client, _messages) = open(&env, &unique("carl")).await;

    // The server refuses: its code.
    let err = client
        .send_chat_message("no-such-chat", "hi")
        .await
        .expect_err("refused");
    assert!(
        matches!(
            &err,
            RequestError::Server {
                code: ErrorCode::NotParticipant,
                ..
            }
        ),
        "a chat the user is not in: {err:?}"
    );

    // The client refuses before sending: the code the server would have answered.
    let err = client
        .send_chat_message("random", "x".repeat(20_000))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            &err,
            RequestError::Invalid {
                code: ErrorCode::MessageTooLarge,
                ..
            }
        ),
        "a frame over the server's limit: {err:?}"
    );

    // No answer within the request's own timeout.
    client.join_chat("random").await.expect("joined");
    env.pause_acks(true).await;
    let message = relaywire_chat::ClientMessage::from(relaywire_chat::SendMessage {
        chat_id: "random".into(),
        content: "waits".into(),
    });
    let err = client
        .request_within(message, Some(Duration::from_millis(300)))
        .await;
    env.pause_acks(false).await;
    assert_eq!(err, Err(RequestError::Client(ClientErrorCode::Timeout)));
    client.close().await;
}

#[wasm_bindgen_test]
async fn a_restart_loses_nothing_and_a_kept_seq_resumes_a_new_client() {
    let Some(env) = env::find().await else { return };
    if env.supervisor.is_none() {
        web_sys::console::warn_1(&"skipped: no supervisor to restart the server with".into());
        return;
    }
    let (writer_id, reader_id) = (unique("writer"), unique("reader"));
    let (writer, _writer_messages) = open(&env, &writer_id).await;
    let (reader, mut reader_messages) = open(&env, &reader_id).await;
    writer.join_chat("random").await.expect("joined");
    reader.join_chat("random").await.expect("joined");
    // The seq the reader's app would have kept before the outage.
    let ack = writer
        .send_chat_message("random", "before")
        .await
        .expect("stored");
    let kept = next(&mut reader_messages, 5_000, |message| match message {
        ServerMessage::ChatMessage(created)
            if Some(&created.message.id) == ack.message_id.as_ref() =>
        {
            created.seq
        }
        _ => None,
    })
    .await
    .expect("the reader has it, numbered");

    env.supervise("kill").await;
    reach(&writer, Status::Reconnecting).await;
    let sends = ["one", "two", "three"].map(|text| {
        let writer = writer.clone();
        async move { writer.send_chat_message("random", text).await }
    });
    let sends = futures::future::join_all(sends);
    let pending = async {
        until("the messages wait in the outbox", 2_000, async || {
            writer.snapshot().pending == 3
        })
        .await;
        env.supervise("start").await;
    };
    let (acks, ()) = futures::join!(sends, pending);
    let ids: Vec<String> = acks
        .into_iter()
        .map(|ack| {
            ack.expect("acknowledged after the restart")
                .message_id
                .expect("an id")
        })
        .collect();
    assert_eq!(writer.snapshot().pending, 0);

    // The reader reconnected by itself and got each exactly once, in order.
    let mut got = Vec::new();
    while let Some(content) = next(&mut reader_messages, 1_500, chat_content).await {
        got.push(content);
    }
    assert_eq!(
        got,
        ["one", "two", "three"],
        "the reader's stream after the restart"
    );

    // A new client that kept the seq from before the outage is replayed what followed.
    let mut options = token_options(&env, &reader_id).await;
    options.core.resume_from = Some(kept.get());
    let (resumed, mut resumed_messages) = Client::connect(options).expect("valid options");
    let mut replayed = Vec::new();
    while let Some(message) = next(&mut resumed_messages, 1_500, |message| match message {
        ServerMessage::ChatMessage(created) => Some(created.message.id),
        _ => None,
    })
    .await
    {
        replayed.push(message);
    }
    assert_eq!(replayed, ids, "replayed after the kept seq, once, in order");
    for client in [writer, reader, resumed] {
        client.close().await;
    }
}

#[wasm_bindgen_test]
async fn a_server_that_stops_answering_is_detected_and_left() {
    let Some(env) = env::find().await else { return };
    // The test server announces a 1000 ms heartbeat, which wins over the client's own.
    let mut options = token_options(&env, &unique("dana")).await;
    options.core.heartbeat = Some(HeartbeatPolicy {
        interval_ms: 60_000,
        timeout_ms: 1_000,
    });
    let (client, _messages) = Client::connect(options).expect("valid options");
    reach(&client, Status::Open).await;
    env.pause_pongs(true).await;
    let started = js_sys::Date::now();
    let left = client
        .wait_for(Status::Reconnecting, Duration::from_secs(4))
        .await;
    let took = js_sys::Date::now() - started;
    env.pause_pongs(false).await;
    assert!(left.is_ok(), "the silent connection is given up");
    assert!(
        took <= 2_600.0,
        "noticed after {took} ms, more than interval + timeout"
    );
    reach(&client, Status::Open).await;
    client.close().await;
}

#[wasm_bindgen_test]
async fn close_and_dropping_every_handle_leave_nothing() {
    let Some(env) = env::find().await else { return };
    let eve = unique("eve");
    let (client, mut messages) = open(&env, &eve).await;
    let mut states = client.states();
    assert_eq!(env.connections(&eve).await, 1);
    client.close().await;
    assert_eq!(client.snapshot().status, Status::Closed);
    // The driver is gone: the streams end (after what they held) and nothing more is
    // accepted.
    while messages.next().await.is_some() {}
    while states.next().await.is_some() {}
    let err = client.join_chat("random").await.expect_err("closed");
    assert_eq!(err, RequestError::Client(ClientErrorCode::ClientClosed));
    until("the server sees the socket closed", 5_000, async || {
        env.connections(&eve).await == 0
    })
    .await;
    // The page's events reach no one.
    let window = web_sys::window().expect("a page");
    for event in ["online", "offline"] {
        let event = web_sys::Event::new(event).expect("an event");
        window.dispatch_event(&event).expect("dispatched");
    }

    // Dropping every handle closes the client as `close` does.
    let frank = unique("frank");
    let (client, mut messages) = open(&env, &frank).await;
    let copy = client.clone();
    drop(client);
    assert_eq!(env.connections(&frank).await, 1, "a clone keeps it running");
    drop(copy);
    // The stream ends once the last handle is gone.
    while messages.next().await.is_some() {}
    until("the server sees the socket closed", 5_000, async || {
        env.connections(&frank).await == 0
    })
    .await;
}
