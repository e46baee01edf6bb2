//! Bad input gets a coded error and the connection stays usable; floods, silence,
//! slow readers and oversized frames are contained.

use std::time::Duration;

use futures_util::SinkExt;
use relaywire_protocol::CloseCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Ending, TestServer, config, json_of};

async fn still_usable(client: &mut crate::support::Client) {
    let reply = client
        .request("alive", json!({"type": "ping", "payload": {}}))
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");
}

#[tokio::test]
async fn malformed_and_invalid_frames_get_their_code_and_change_nothing() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let cases = [
        ("{not json", "INVALID_MESSAGE", None),
        (r#"["chat:message"]"#, "INVALID_MESSAGE", None),
        (
            r#"{"type":"chat:delete","id":"d1","payload":{}}"#,
            "INVALID_MESSAGE",
            Some("d1"),
        ),
        (
            r#"{"type":"chat:message","id":"v1","payload":{"chatId":"general"}}"#,
            "VALIDATION_ERROR",
            Some("v1"),
        ),
        (
            r#"{"type":"chat:message","id":"v2","payload":{"chatId":"general","content":"  "}}"#,
            "VALIDATION_ERROR",
            Some("v2"),
        ),
        (
            r#"{"type":"chat:typing","payload":{"chatId":"general","isTyping":"yes"}}"#,
            "VALIDATION_ERROR",
            None,
        ),
    ];
    for (text, code, id) in cases {
        alice.send_text(text).await;
        let error = alice.next_json().await;
        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["payload"]["code"], code, "{text}: {error}");
        match id {
            Some(id) => assert_eq!(error["payload"]["id"], id),
            None => assert!(error["payload"].get("id").is_none()),
        }
    }
    alice.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        alice.next_json().await["payload"]["code"],
        "INVALID_MESSAGE"
    );
    still_usable(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn frames_over_the_size_limit_are_refused() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let content = "x".repeat(12_000);
    alice
        .send(json!({"type": "chat:message", "id": "big", "payload": {"chatId": "general", "content": content}}))
        .await;
    let error = alice.next_json().await;
    assert_eq!(error["payload"]["code"], "MESSAGE_TOO_LARGE", "{error}");
    still_usable(&mut alice).await;

    // Far beyond the limit, the socket itself refuses the frame: close 1009.
    alice.send_text(&"y".repeat(1_000_000)).await;
    assert_eq!(
        alice.ending().await,
        Ending::Closed(CloseCode::MessageTooBig.code())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_users_connections_share_one_rate() {
    let mut config = config();
    config.user_rate_limit_per_sec = 1;
    config.user_rate_limit_burst = 10;
    let server = TestServer::with(config).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(server.connect("alice").await.0);
    }
    // Five connections at four messages each: within each connection's own rate, but
    // twice the user's burst.
    let mut stored = 0;
    let mut limited = 0;
    for (c, client) in clients.iter_mut().enumerate() {
        for i in 0..4 {
            let id = format!("m{c}-{i}");
            let frame =
                json!({"type": "chat:message", "payload": {"chatId": "general", "content": id}});
            let reply = client.request(&id, frame).await;
            match reply["type"].as_str() {
                Some("ack") => stored += 1,
                _ => {
                    assert_eq!(reply["payload"]["code"], "RATE_LIMITED", "{reply}");
                    let message = reply["payload"]["message"].as_str().unwrap();
                    assert!(message.contains("this user's connections"), "{message}");
                    limited += 1;
                }
            }
        }
    }
    // The burst and at most a message or two of refill in the time it took.
    assert!((10..=12).contains(&stored), "{stored} stored");
    assert_eq!(stored + limited, 20);
    let (_, history) = json_of(server.admin(
        reqwest::Method::GET,
        "/api/chats/general/messages?limit=100",
    ))
    .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), stored);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_users_limit_are_refused_with_a_code() {
    let mut config = config();
    config.user_connection_limit = 3;
    let server = TestServer::with(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(server.connect("alice").await.0);
    }
    let url = format!(
        "{}?token={}",
        server.ws_url(),
        crate::support::token("alice")
    );
    let mut extra = crate::support::Client::open(&url, &[]).await;
    let error = extra.next_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], "RATE_LIMITED", "{error}");
    assert_eq!(
        extra.ending().await,
        Ending::Closed(CloseCode::TryAgainLater.code())
    );
    // Other users are not affected, and a slot freed is a slot to take.
    server.connect("bob").await;
    let mut first = held.remove(0);
    first.ws.close(None).await.unwrap();
    assert!(matches!(
        first.ending().await,
        Ending::Closed(_) | Ending::Dropped
    ));
    let mut taken = None;
    for _ in 0..50 {
        let mut client = crate::support::Client::open(&url, &[]).await;
        if client.next_json().await["type"] == "connected" {
            taken = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(taken.is_some(), "the freed slot is taken");
    server.shutdown().await;
}

#[tokio::test]
async fn floods_are_rate_limited_then_closed() {
    let mut config = config();
    config.rate_limit_per_sec = 5;
    config.rate_limit_burst = 5;
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    for i in 0..6 {
        alice
            .send(json!({"type": "ping", "id": format!("p{i}"), "payload": {}}))
            .await;
    }
    let mut limited = None;
    for _ in 0..20 {
        let reply = alice.next_json().await;
        if reply["type"] == "error" {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the sixth message is limited");
    assert_eq!(limited["payload"]["code"], "RATE_LIMITED");
    assert_eq!(limited["payload"]["id"], "p5");
    assert!(
        limited["payload"]["details"]["retryAfterMs"]
            .as_u64()
            .unwrap()
            <= 200
    );

    // After a pause the client may go on.
    tokio::time::sleep(Duration::from_millis(400)).await;
    still_usable(&mut alice).await;

    // A client that keeps flooding is closed.
    for _ in 0..200 {
        if alice
            .ws
            .send(Message::text(r#"{"type":"ping"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        alice.ending().await,
        Ending::Closed(CloseCode::RateLimited.code())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let mut config = config();
    config.heartbeat_interval = Duration::from_millis(150);
    config.connection_timeout = Duration::from_millis(500);
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    // Not reading means not answering the server's pings either.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        alice.ending().await,
        Ending::Closed(CloseCode::IdleTimeout.code())
    );

    // A client that reads answers pings and stays.
    let (mut bob, _) = server.connect("bob").await;
    bob.expect_silence(Duration::from_millis(900)).await;
    still_usable(&mut bob).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_reader_is_closed_instead_of_buffered() {
    let mut config = config();
    config.outbound_queue = 8;
    let server = TestServer::with(config).await;
    let (mut slow, _) = server.connect("bob").await;
    let event = json!({
        "userId": "bob",
        "message": {"type": "event", "payload": {"name": "bulk", "data": "z".repeat(3_900)}}
    });
    // Bob never reads: the socket buffers fill, then his queue, then he is closed.
    let mut reached = 0;
    for _ in 0..3_000 {
        let (_, delivery) = json_of(
            server
                .admin(reqwest::Method::POST, "/api/messages/user")
                .json(&event),
        )
        .await;
        if delivery["connectionsReached"] == 0 {
            break;
        }
        reached += 1;
    }
    assert!(reached < 3_000, "the queue never overflowed");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("relaywire_slow_consumers_total 1"),
        "{metrics}"
    );
    assert_eq!(
        slow.ending().await,
        Ending::Closed(CloseCode::SlowConsumer.code())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_test_hook_stops_pongs() {
    let mut config = config();
    config.test_hooks = true;
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    let pause = |paused: bool| {
        server
            .http
            .post(server.url("/test/pongs"))
            .json(&json!({"paused": paused}))
            .send()
    };
    assert_eq!(pause(true).await.unwrap().status(), 204);
    alice.send(json!({"type": "ping", "payload": {}})).await;
    alice.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(pause(false).await.unwrap().status(), 204);
    alice.send(json!({"type": "ping", "payload": {}})).await;
    assert_eq!(alice.next_json().await["type"], "pong");

    // Without TEST_HOOKS the endpoint does not exist.
    let plain = TestServer::start().await;
    let status = plain
        .http
        .post(plain.url("/test/pongs"))
        .json(&json!({"paused": true}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    plain.shutdown().await;
    server.shutdown().await;
}

/// Reads until the server closes the TCP connection; how long that took.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the server closes the connection within five seconds");
        match read {
            Ok(0) | Err(_) => return started.elapsed(),
            // A 408 or 503 answer may come first.
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() {
    use tokio::io::AsyncWriteExt;
    let mut config = config();
    config.header_read_timeout = Duration::from_millis(400);
    let server = TestServer::with(config).await;

    // Silent: connected, nothing sent.
    let mut silent = tokio::net::TcpStream::connect(server.server.addr())
        .await
        .unwrap();
    let waited = closed_by_server(&mut silent).await;
    assert!(waited >= Duration::from_millis(300), "{waited:?}");

    // Slowloris: a header line now and then, never the end of the headers.
    let mut trickle = tokio::net::TcpStream::connect(server.server.addr())
        .await
        .unwrap();
    trickle
        .write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let line = format!("X-Trickle-{i}: x\r\n");
            if trickle.write_all(line.as_bytes()).await.is_err() {
                return Some(i);
            }
        }
        None
    });
    let stopped_after = writer.await.unwrap();
    assert!(
        matches!(stopped_after, Some(lines) if lines < 15),
        "the trickle was cut: {stopped_after:?}"
    );

    // A real client is unaffected.
    let (mut alice, _) = server.connect("alice").await;
    still_usable(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_websockets_included() {
    let mut config = config();
    config.max_connections = 2;
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    let _idle = tokio::net::TcpStream::connect(server.server.addr())
        .await
        .unwrap();
    // Give the server a moment to accept the idle one.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A third connection, TCP or WebSocket, is closed at once.
    let mut third = tokio::net::TcpStream::connect(server.server.addr())
        .await
        .unwrap();
    assert!(closed_by_server(&mut third).await < Duration::from_secs(1));
    let refused = crate::support::Client::try_open(&server.ws_url(), &[]).await;
    assert!(refused.is_err(), "a WebSocket over the cap is refused");
    let metrics = reqwest::get(format!("http://{}/metrics", server.server.addr())).await;
    assert!(metrics.is_err(), "even /metrics waits for room");

    // The WebSocket holds its place after the upgrade; closing it makes room.
    still_usable(&mut alice).await;
    drop(alice);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = server.metrics().await;
    assert!(
        text.lines().any(
            |line| line.starts_with("relaywire_connections_refused_total ")
                && line != "relaywire_connections_refused_total 0"
        ),
        "{text}"
    );
    server.shutdown().await;
}
