//! Nothing lost, nothing doubled: stored events are numbered, a reconnecting client
//! gets what it missed before anything new, and a message re-sent after a lost ack is
//! stored once.

use serde_json::{Value, json};

use crate::support::{Client, TestServer, config, token};

fn say(text: &str) -> Value {
    json!({"type": "chat:message", "payload": {"chatId": "general", "content": text}})
}

#[tokio::test]
async fn stored_events_are_numbered_in_order() {
    let server = TestServer::start().await;
    let (mut alice, connected) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    let head = connected["payload"]["seq"].as_u64().unwrap();
    let ack = alice.request("m1", say("one")).await;
    let message_id = ack["payload"]["messageId"].as_str().unwrap().to_owned();
    let delivered = bob.next_of("chat:message").await;
    assert_eq!(delivered["payload"]["seq"], head + 1);
    bob.request(
        "r1",
        json!({"type": "chat:read", "payload": {"chatId": "general", "messageId": message_id}}),
    )
    .await;
    assert_eq!(alice.next_of("chat:read").await["payload"]["seq"], head + 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed_first() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, connected) = server.connect("bob").await;
    let seen = connected["payload"]["seq"].as_u64().unwrap();
    alice.request("m0", say("seen live")).await;
    let live = bob.next_of("chat:message").await["payload"]["seq"]
        .as_u64()
        .unwrap();
    drop(bob);

    // While Bob is away: two messages in his chat, one in a chat he is not in.
    alice.request("m1", say("missed one")).await;
    alice.request("m2", json!({"type": "chat:message", "payload": {"chatId": "design", "content": "design talk"}})).await;
    let (_carol, _) = server.connect("carol").await;
    alice.request("m3", say("missed two")).await;

    let url = format!("{}?token={}&lastSeq={live}", server.ws_url(), token("bob"));
    let mut bob = Client::open(&url, &[]).await;
    let connected = bob.next_json().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["payload"]["replayed"], 3, "{connected}");
    assert!(connected["payload"].get("replayTruncated").is_none());
    // The replay comes before anything else, in order, numbered after what he saw.
    let mut seqs = Vec::new();
    let mut contents = Vec::new();
    for _ in 0..3 {
        let frame = bob.next_json().await;
        assert_eq!(frame["type"], "chat:message", "{frame}");
        seqs.push(frame["payload"]["seq"].as_u64().unwrap());
        contents.push(
            frame["payload"]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(contents, ["missed one", "design talk", "missed two"]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > live && live > seen);

    // Live traffic follows the replay.
    alice.request("m4", say("live again")).await;
    assert_eq!(
        bob.next_of("chat:message").await["payload"]["message"]["content"],
        "live again"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_long_absence_is_replayed_up_to_a_limit_and_says_so() {
    let mut config = config();
    config.outbound_queue = 8;
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    for i in 0..6 {
        alice.request(&format!("m{i}"), say(&format!("n{i}"))).await;
    }
    let url = format!("{}?token={}&lastSeq=0", server.ws_url(), token("bob"));
    let mut bob = Client::open(&url, &[]).await;
    let connected = bob.next_json().await;
    assert_eq!(connected["payload"]["replayed"], 4);
    assert_eq!(connected["payload"]["replayTruncated"], true);
    for i in 0..4 {
        assert_eq!(
            bob.next_json().await["payload"]["message"]["content"],
            format!("n{i}")
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_resent_on_a_new_connection_is_stored_once() {
    let server = TestServer::start().await;
    let (mut bob, _) = server.connect("bob").await;
    let (mut first, _) = server.connect("alice").await;
    let ack = first.request("c-42", say("only once")).await;
    drop(first);
    // The ack was lost with the connection: the client sends it again.
    let (mut second, _) = server.connect("alice").await;
    let again = second.request("c-42", say("only once")).await;
    assert_eq!(again["payload"]["messageId"], ack["payload"]["messageId"]);
    assert_eq!(
        bob.next_of("chat:message").await["payload"]["message"]["content"],
        "only once"
    );
    bob.expect_none_of("chat:message", std::time::Duration::from_millis(300))
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_burst_is_answered_and_delivered_in_the_order_sent() {
    let mut config = config();
    config.rate_limit_per_sec = 100_000;
    config.rate_limit_burst = 100_000;
    config.user_rate_limit_per_sec = 100_000;
    config.user_rate_limit_burst = 100_000;
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    // Sent without waiting: the server reads ahead while earlier ones are stored, and
    // must still answer each in turn. A few answers come without the store (a ping,
    // a malformed frame, a chat the sender is not in) and must wait their turn.
    let mut expected = Vec::new();
    for i in 0..300 {
        let id = format!("b{i}");
        match i % 50 {
            7 => alice.send(json!({"type": "ping", "id": id, "payload": {}})).await,
            19 => alice.send(json!({"type": "chat:message", "id": id, "payload": {"chatId": "general"}})).await,
            33 => alice.send(json!({"type": "chat:message", "id": id, "payload": {"chatId": "nowhere", "content": "x"}})).await,
            _ => alice.send(json!({"type": "chat:message", "id": id, "payload": {"chatId": "general", "content": format!("burst {i}")}})).await,
        }
        expected.push(id);
    }
    let mut answered = Vec::new();
    while answered.len() < expected.len() {
        let frame = alice.next_json().await;
        if frame["type"] == "ack" || frame["type"] == "error" {
            answered.push(frame["payload"]["id"].as_str().unwrap_or("?").to_owned());
        }
    }
    assert_eq!(answered, expected, "answers in the order sent");

    let sent: Vec<String> = (0..300)
        .filter(|i| ![7, 19, 33].contains(&(i % 50)))
        .map(|i| format!("burst {i}"))
        .collect();
    let mut last_seq = 0;
    let mut contents = Vec::new();
    while contents.len() < sent.len() {
        let frame = bob.next_of("chat:message").await;
        let seq = frame["payload"]["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "numbered in order: {seq} after {last_seq}");
        last_seq = seq;
        contents.push(
            frame["payload"]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(contents, sent, "delivered once each, in the order sent");
    server.shutdown().await;
}
