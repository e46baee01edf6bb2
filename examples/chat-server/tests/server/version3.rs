//! Protocol 3: batches both ways, and the sender's copy of what its message stored
//! as that message's acknowledgement; protocol 2 clients keep theirs. Protocol 4: the
//! client opens the connection.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, TestServer};

const V3: &str = "relaywire.v3";
const V2: &str = "relaywire.v2";

fn say(content: &str) -> Value {
    json!({"type": "chat:message", "payload": {"chatId": "general", "content": content}})
}

fn with_id(id: &str, mut frame: Value) -> Value {
    frame["id"] = json!(id);
    frame
}

/// The stored messages of `general`, oldest first.
async fn history(server: &TestServer) -> Vec<String> {
    let page: Value = server
        .admin(
            reqwest::Method::GET,
            "/api/chats/general/messages?limit=100",
        )
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("JSON");
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn the_senders_copy_is_its_acknowledgement_and_others_see_no_ack() {
    let server = TestServer::start().await;
    let (mut alice, connected) = server.connect_with("alice", V3).await;
    assert_eq!(alice.protocol.as_deref(), Some(V3));
    assert_eq!(connected["payload"]["protocolVersion"], 3);
    let (mut bob, _) = server.connect_with("bob", V2).await;

    alice.send(with_id("m1", say("one frame"))).await;
    let copy = alice.next_of("chat:message").await;
    let stored = copy["payload"]["message"]["id"].clone();
    assert_eq!(
        copy["ack"],
        json!({"id": "m1", "messageId": stored}),
        "the copy carries the acknowledgement: {copy}"
    );
    assert_eq!(copy["payload"]["message"]["content"], "one frame");
    alice
        .expect_none_of("ack", Duration::from_millis(300))
        .await;

    // Another member's copy is the plain event.
    let seen = bob.next_of("chat:message").await;
    assert_eq!(seen["payload"]["message"]["id"], stored);
    assert!(seen.get("ack").is_none(), "{seen}");
    server.shutdown().await;
}

#[tokio::test]
async fn protocol_2_and_unstated_clients_get_an_ack_for_every_message() {
    let server = TestServer::start().await;
    let (mut older, connected) = server.connect_with("alice", V2).await;
    assert_eq!(connected["payload"]["protocolVersion"], 2);
    let ack = older.request("m1", say("acknowledged the old way")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let copy = older.next_of("chat:message").await;
    assert!(copy.get("ack").is_none(), "{copy}");
    assert_eq!(
        copy["payload"]["message"]["id"],
        ack["payload"]["messageId"]
    );

    // A client that names no subprotocol speaks the documented wire: version 2.
    let (mut plain, connected) = server.connect("bob").await;
    assert_eq!(plain.protocol, None);
    assert_eq!(connected["payload"]["protocolVersion"], 2);
    let ack = plain.request("m2", say("no subprotocol")).await;
    assert_eq!(ack["type"], "ack");
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_sent_again_is_answered_with_an_ack_and_stored_once() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect_with("alice", V3).await;
    alice.send(with_id("again", say("once"))).await;
    let copy = alice.next_of("chat:message").await;
    assert_eq!(copy["ack"]["id"], "again");
    // No copy the second time: nothing new was stored, so the answer is an `ack`.
    let ack = alice.request("again", say("once")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["messageId"], copy["ack"]["messageId"]);
    alice
        .expect_none_of("chat:message", Duration::from_millis(300))
        .await;
    assert_eq!(history(&server).await, ["once"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_handled_message_by_message_in_order() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect_with("alice", V3).await;
    let batch = json!([
        with_id("b1", say("first")),
        with_id("b2", say("   ")),
        {"type": "ping", "id": "p"},
        with_id("b3", say("third")),
    ]);
    alice.send(batch).await;
    let mut answers = Vec::new();
    while answers.len() < 4 {
        let message = alice.next_json().await;
        match message["type"].as_str() {
            Some("chat:message") => answers.push(format!("copy {}", message["ack"]["id"])),
            Some("error") => answers.push(format!(
                "error {} {}",
                message["payload"]["id"], message["payload"]["code"]
            )),
            Some("ack") => answers.push(format!("ack {}", message["payload"]["id"])),
            // A pong goes out at once; answers keep the order of their messages.
            _ => {}
        }
    }
    assert_eq!(
        answers,
        [
            r#"copy "b1""#,
            r#"error "b2" "VALIDATION_ERROR""#,
            r#"ack "p""#,
            r#"copy "b3""#
        ],
        "each message answered alone, in order"
    );
    assert_eq!(history(&server).await, ["first", "third"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_that_is_no_batch_is_refused_whole() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect_with("alice", V3).await;
    for (frame, code) in [
        ("[]", "INVALID_MESSAGE"),
        ("[{\"type\":\"ping\"", "INVALID_MESSAGE"),
        ("[[{\"type\":\"ping\"}]]", "INVALID_MESSAGE"),
        ("[42]", "INVALID_MESSAGE"),
    ] {
        alice.send_text(frame).await;
        let error = alice.next_of("error").await;
        assert_eq!(error["payload"]["code"], code, "{frame}: {error}");
    }
    // A protocol 2 connection takes no batch at all.
    let (mut older, _) = server.connect_with("bob", V2).await;
    older.send_text("[{\"type\":\"ping\"}]").await;
    let error = older.next_of("error").await;
    assert_eq!(error["payload"]["code"], "INVALID_MESSAGE", "{error}");
    assert!(history(&server).await.is_empty());
    server.shutdown().await;
}

/// The raw text frames of `client` until `messages` messages have come.
async fn raw_frames(client: &mut Client, messages: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut count = 0;
    while count < messages {
        let next = tokio::time::timeout(Duration::from_secs(5), client.ws.next())
            .await
            .expect("a frame within five seconds")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = next {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            count += frame.as_array().map_or(1, Vec::len);
            frames.push(frame);
        }
    }
    frames
}

#[tokio::test]
async fn frames_queued_together_travel_as_one_batch_on_protocol_3_only() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect_with("alice", V3).await;
    let batch: Vec<Value> = (0..40)
        .map(|i| with_id(&format!("r{i}"), say(&format!("replay {i}"))))
        .collect();
    alice.send(Value::Array(batch)).await;
    let mut acknowledged = 0;
    while acknowledged < 40 {
        if alice.next_of("chat:message").await.get("ack").is_some() {
            acknowledged += 1;
        }
    }
    // Bob comes back and is replayed the forty at once: they are queued together.
    let url = format!(
        "{}?token={}&lastSeq=0",
        server.ws_url(),
        crate::support::token("bob")
    );
    let mut bob = Client::open(&url, &[("sec-websocket-protocol", V3)]).await;
    let frames = raw_frames(&mut bob, 41).await;
    assert!(
        frames.len() <= 3,
        "41 messages in {} frames: {frames:?}",
        frames.len()
    );
    let contents: Vec<&str> = frames
        .iter()
        .flat_map(|frame| match frame {
            Value::Array(messages) => messages.iter().collect::<Vec<_>>(),
            message => vec![message],
        })
        .filter_map(|message| message["payload"]["message"]["content"].as_str())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("replay {i}")).collect();
    assert_eq!(contents, expected, "in order");

    // The same replay to a protocol 2 client: a frame each.
    let mut older = Client::open(&url, &[("sec-websocket-protocol", V2)]).await;
    let frames = raw_frames(&mut older, 41).await;
    assert_eq!(frames.len(), 41, "one message per frame on protocol 2");
    server.shutdown().await;
}

/// Protocol 4 changes nothing on this server but who may speak first: the client's
/// opening `ping` (what lets a server that cannot send first answer with `connected`)
/// is answered after `connected`, like any other.
#[tokio::test]
async fn protocol_4_clients_open_with_a_ping_that_this_server_answers_after_connected() {
    let server = TestServer::start().await;
    let (mut alice, connected) = server
        .connect_with(
            "alice",
            relaywire_protocol::CLIENT_SUBPROTOCOLS.join(", ").as_str(),
        )
        .await;
    assert_eq!(alice.protocol.as_deref(), Some("relaywire.v4"));
    assert_eq!(connected["payload"]["protocolVersion"], 4);
    alice.send(json!({"type": "ping", "payload": {}})).await;
    assert_eq!(alice.next_json().await["type"], "pong");
    // Batches and answering copies are protocol 3's, still.
    alice
        .send(json!([
            with_id("m1", say("first")),
            with_id("m2", say("second"))
        ]))
        .await;
    let first = alice.next_of("chat:message").await;
    assert_eq!(first["ack"]["id"], "m1", "{first}");
    let second = alice.next_of("chat:message").await;
    assert_eq!(second["ack"]["id"], "m2", "{second}");
    server.shutdown().await;
}
