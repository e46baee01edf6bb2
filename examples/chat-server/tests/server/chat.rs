//! Chat traffic between real connections: messages, receipts, typing, presence,
//! joining and leaving, and membership checks.

use std::time::Duration;

use relaywire_chat::ServerMessage;
use serde_json::json;

use crate::support::{TestServer, config, json_of};

#[tokio::test]
async fn a_message_is_stored_acknowledged_and_fanned_out() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;

    let ack = alice
        .request("c1", json!({"type": "chat:message", "payload": {"chatId": "general", "content": "Hello, Bob!"}}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let message_id = ack["payload"]["messageId"].as_str().unwrap().to_owned();

    let ServerMessage::ChatMessage(delivered) = ({
        let json = bob.next_of("chat:message").await;
        relaywire_chat::decode_server_message(&json.to_string()).unwrap()
    }) else {
        panic!("not a chat message");
    };
    assert_eq!(delivered.chat_id, "general");
    assert_eq!(delivered.message.id, message_id);
    assert_eq!(delivered.message.sender_id, "alice");
    assert_eq!(delivered.message.sender_name, "alice name");
    assert_eq!(delivered.message.content, "Hello, Bob!");
    assert!(delivered.message.created_at.ends_with('Z'));

    // The sender's own connections get it too, so every tab shows it.
    assert_eq!(
        alice.next_of("chat:message").await["payload"]["message"]["id"],
        message_id.as_str()
    );

    // Without an id there is no ack, but the message is delivered.
    alice
        .send(
            json!({"type": "chat:message", "payload": {"chatId": "general", "content": "no ack"}}),
        )
        .await;
    assert_eq!(
        bob.next_of("chat:message").await["payload"]["message"]["content"],
        "no ack"
    );
    assert_eq!(
        alice.next_json().await["payload"]["message"]["content"],
        "no ack"
    );

    let (_, history) =
        json_of(server.admin(reqwest::Method::GET, "/api/chats/general/messages")).await;
    let contents: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, [json!("Hello, Bob!"), json!("no ack")]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_resent_message_is_stored_and_delivered_once() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    let frame =
        json!({"type": "chat:message", "payload": {"chatId": "general", "content": "once"}});
    let first = alice.request("same-id", frame.clone()).await;
    let again = alice.request("same-id", frame).await;
    assert_eq!(first["payload"]["messageId"], again["payload"]["messageId"]);
    assert_eq!(
        bob.next_of("chat:message").await["payload"]["message"]["content"],
        "once"
    );
    bob.expect_silence(Duration::from_millis(300)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_id_used_again_for_another_message_is_refused_and_forgotten_after_the_window() {
    let mut config = config();
    config.dedup_window = Duration::from_millis(1500);
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    let say = |chat: &str, content: &str| json!({"type": "chat:message", "payload": {"chatId": chat, "content": content}});
    let first = alice.request("reused", say("general", "first")).await;
    assert_eq!(first["type"], "ack", "{first}");
    // The same id, other content or another chat: a coded error, nothing stored.
    for other in [say("general", "second"), say("random", "first")] {
        let refused = alice.request("reused", other).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["payload"]["code"], "ID_REUSED", "{refused}");
    }
    // The same message again (spacing and field order aside) is a resend.
    alice
        .send_text(r#"{ "payload": {"content": "first", "chatId": "general"}, "id": "reused", "type": "chat:message" }"#)
        .await;
    let resent = alice.next_of("ack").await;
    assert_eq!(
        resent["payload"]["messageId"],
        first["payload"]["messageId"]
    );
    let (_, history) =
        json_of(server.admin(reqwest::Method::GET, "/api/chats/general/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);

    // After the window the id is forgotten and may carry a new message.
    let mut reused = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = alice.request("reused", say("general", "later")).await;
        if reply["type"] == "ack" {
            reused = Some(reply);
            break;
        }
        assert_eq!(reply["payload"]["code"], "ID_REUSED", "{reply}");
    }
    let reused = reused.expect("the id is forgotten within the window and a second");
    assert_ne!(
        reused["payload"]["messageId"],
        first["payload"]["messageId"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn non_participants_get_not_participant() {
    let server = TestServer::start().await;
    let (mut carol, connected) = server.connect("carol").await;
    assert_eq!(connected["payload"]["chatIds"], json!([]));
    for frame in [
        json!({"type": "chat:message", "payload": {"chatId": "design", "content": "let me in"}}),
        json!({"type": "chat:typing", "payload": {"chatId": "design", "isTyping": true}}),
        json!({"type": "chat:read", "payload": {"chatId": "design", "messageId": "m"}}),
        json!({"type": "chat:leave", "payload": {"chatId": "general"}}),
    ] {
        let reply = carol.request("x", frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame}");
        assert_eq!(
            reply["payload"]["code"], "NOT_PARTICIPANT",
            "{frame}: {reply}"
        );
    }
    // A chat that does not exist answers as a closed one does, so ids cannot be probed.
    for frame in [
        json!({"type": "chat:join", "payload": {"chatId": "nope"}}),
        json!({"type": "chat:join", "payload": {"chatId": "design"}}),
        json!({"type": "chat:message", "payload": {"chatId": "nope", "content": "hi"}}),
        json!({"type": "chat:read", "payload": {"chatId": "nope", "messageId": "m"}}),
        json!({"type": "chat:typing", "payload": {"chatId": "nope", "isTyping": true}}),
        json!({"type": "chat:leave", "payload": {"chatId": "nope"}}),
    ] {
        let reply = carol.request("j", frame.clone()).await;
        assert_eq!(
            reply["payload"]["code"], "NOT_PARTICIPANT",
            "{frame}: {reply}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn joining_and_leaving_an_open_chat_is_live() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut carol, _) = server.connect("carol").await;

    let reply = carol
        .request(
            "j",
            json!({"type": "chat:join", "payload": {"chatId": "general"}}),
        )
        .await;
    assert_eq!(reply["type"], "ack");
    // They now share a chat: presence is exchanged.
    assert_eq!(
        alice.next_of("user:online").await["payload"],
        json!({"userId": "carol", "online": true})
    );
    assert_eq!(
        carol.next_of("user:online").await["payload"],
        json!({"userId": "alice", "online": true})
    );

    alice
        .request(
            "m1",
            json!({"type": "chat:message", "payload": {"chatId": "general", "content": "welcome"}}),
        )
        .await;
    assert_eq!(
        carol.next_of("chat:message").await["payload"]["message"]["content"],
        "welcome"
    );

    let reply = carol
        .request(
            "l",
            json!({"type": "chat:leave", "payload": {"chatId": "general"}}),
        )
        .await;
    assert_eq!(reply["type"], "ack");
    alice
        .request(
            "m2",
            json!({"type": "chat:message", "payload": {"chatId": "general", "content": "gone?"}}),
        )
        .await;
    carol.expect_silence(Duration::from_millis(300)).await;
    let reply = carol
        .request(
            "m3",
            json!({"type": "chat:message", "payload": {"chatId": "general", "content": "hi"}}),
        )
        .await;
    assert_eq!(reply["payload"]["code"], "NOT_PARTICIPANT");
    server.shutdown().await;
}

#[tokio::test]
async fn read_receipts_are_stored_and_fanned_out() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    let ack = alice
        .request(
            "m",
            json!({"type": "chat:message", "payload": {"chatId": "general", "content": "read me"}}),
        )
        .await;
    let message_id = ack["payload"]["messageId"].as_str().unwrap().to_owned();
    bob.next_of("chat:message").await;

    let reply = bob
        .request(
            "r",
            json!({"type": "chat:read", "payload": {"chatId": "general", "messageId": message_id}}),
        )
        .await;
    assert_eq!(reply["type"], "ack");
    let receipt = alice.next_of("chat:read").await;
    assert_eq!(receipt["payload"]["userId"], "bob");
    assert_eq!(receipt["payload"]["messageId"], message_id.as_str());
    assert!(
        receipt["payload"]["readAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let (_, receipts) = json_of(
        server
            .http
            .get(server.url("/api/chats/general/receipts"))
            .bearer_auth(crate::support::token("alice")),
    )
    .await;
    assert_eq!(receipts["receipts"][0]["userId"], "bob");

    let reply = bob
        .request(
            "r2",
            json!({"type": "chat:read", "payload": {"chatId": "general", "messageId": "missing"}}),
        )
        .await;
    assert_eq!(reply["payload"]["code"], "NOT_FOUND");
    server.shutdown().await;
}

#[tokio::test]
async fn typing_fans_out_and_expires_on_the_server() {
    let mut config = config();
    config.state_timeout = Duration::from_millis(400);
    let server = TestServer::with(config).await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    alice.next_of("user:online").await;

    alice
        .send(json!({"type": "chat:typing", "payload": {"chatId": "general", "isTyping": true}}))
        .await;
    let typing = bob.next_of("chat:typing").await;
    assert_eq!(
        typing["payload"],
        json!({"chatId": "general", "userId": "alice", "userName": "alice name", "isTyping": true})
    );
    // No stop arrives: the server ends it after the typing timeout.
    let started = std::time::Instant::now();
    let stopped = bob.next_of("chat:typing").await;
    assert_eq!(stopped["payload"]["isTyping"], false);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // An explicit stop ends it at once, and the typist does not see their own.
    alice
        .send(json!({"type": "chat:typing", "payload": {"chatId": "general", "isTyping": true}}))
        .await;
    assert_eq!(
        bob.next_of("chat:typing").await["payload"]["isTyping"],
        true
    );
    alice
        .send(json!({"type": "chat:typing", "payload": {"chatId": "general", "isTyping": false}}))
        .await;
    assert_eq!(
        bob.next_of("chat:typing").await["payload"]["isTyping"],
        false
    );
    alice.expect_silence(Duration::from_millis(500)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn presence_goes_to_users_who_share_a_chat() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut carol, _) = server.connect("carol").await;
    let (bob, connected) = server.connect("bob").await;
    assert_eq!(connected["payload"]["onlineUserIds"], json!(["alice"]));
    assert_eq!(
        alice.next_of("user:online").await["payload"],
        json!({"userId": "bob", "online": true})
    );
    // Carol shares no chat with Bob.
    carol.expect_silence(Duration::from_millis(300)).await;

    drop(bob);
    assert_eq!(
        alice.next_of("user:online").await["payload"],
        json!({"userId": "bob", "online": false})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_disconnect_ends_the_users_typing() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    bob.send(json!({"type": "chat:typing", "payload": {"chatId": "general", "isTyping": true}}))
        .await;
    assert_eq!(
        alice.next_of("chat:typing").await["payload"]["isTyping"],
        true
    );
    drop(bob);
    assert_eq!(
        alice.next_of("chat:typing").await["payload"]["isTyping"],
        false
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    alice.send(json!({"type": "ping", "payload": {}})).await;
    let pong = alice.next_json().await;
    assert_eq!(pong["type"], "pong");
    assert!(
        pong["payload"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // The seed's shape without a payload works too.
    alice.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(alice.next_json().await["type"], "pong");
    server.shutdown().await;
}
